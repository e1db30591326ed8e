"""RELIABILITY S9: no Authorization value, password or HMAC secret in the logs.

The default stack is driven with credentials in every place a client can put
them, with every logger at DEBUG; every record is then rendered with both
formatters of the request log and searched for the secrets of
``tests/secrets.py``. The session-wide scan of ``tests/conftest.py`` checks
the same list against every record of the whole suite.
"""
from __future__ import annotations

import json
import logging
from wsgiref.validate import validator

import pytest
import webtest

from cliquet_wsgi.middlewares.request_log import ClassicFormatter, JsonFormatter
from cliquet_wsgi.stack import wrap
from tests.secrets import BASIC_AUTH_USERS, HMAC_SECRETS, SECRETS, TOKENS, SecretScanHandler, basic_header

HMAC_SECRET = HMAC_SECRETS[1]
(USER, PASSWORD), (OTHER_USER, OTHER_PASSWORD) = BASIC_AUTH_USERS
view_logger = logging.getLogger("tests.no_secrets.view")


def view(environ, start_response):
    """Logs what careful views log, and fails on demand."""
    view_logger.debug("view called for %s", environ.get("cliquet.user_id"))
    if environ["PATH_INFO"].endswith("/crash"):
        raise RuntimeError("view crashed")
    body = json.dumps({"user": environ.get("cliquet.user_id")}).encode()
    start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
    return [body]


@pytest.fixture
def app():
    stack = wrap(
        validator(view),
        multiauth_policies=["basicauth"],
        userid_hmac_secret=HMAC_SECRET,
        project_name="secrets-test",
    )
    return webtest.TestApp(stack)


@pytest.fixture
def log(caplog):
    caplog.set_level(logging.DEBUG)
    return caplog


def rendered(records: list[logging.LogRecord]) -> list[str]:
    json_formatter, classic_formatter = JsonFormatter(), ClassicFormatter()
    return [json_formatter.format(r) for r in records] + [classic_formatter.format(r) for r in records]


def assert_clean(records: list[logging.LogRecord]) -> None:
    scanner = SecretScanHandler(SECRETS)
    for record in records:
        scanner.handle(record)
    assert scanner.offences == []
    for line in rendered(records):
        for secret in SECRETS:
            assert secret not in line


def test_credentials_everywhere_are_not_logged(app, log):
    auth = {"Authorization": basic_header(USER, PASSWORD)}
    assert app.get("/v1/things", headers=auth).json["user"].startswith("basicauth:")
    app.get("/v1/things", headers={"Authorization": basic_header(USER, "")}, expect_errors=True)
    app.get("/v1/things", headers={"Authorization": "Basic " + PASSWORD}, expect_errors=True)
    app.get("/v1/things", headers={"Authorization": f"Bearer {TOKENS[2]}"}, expect_errors=True)
    app.get("/v1/", headers=auth)
    # Careless clients put secrets in querystrings and cookies too.
    app.get(f"/v1/things?password={OTHER_PASSWORD}&access_token={TOKENS[2]}&_limit=2", headers=auth)
    app.get("/v1/things", headers={"Cookie": f"session={TOKENS[2]}"})
    batch = {"requests": [
        {"method": "GET", "path": "/things", "headers": {"Authorization": basic_header(OTHER_USER, OTHER_PASSWORD)}},
        {"method": "GET", "path": f"/things?password={OTHER_PASSWORD}",
         "headers": {"Authorization": f"Bearer {TOKENS[2]}"}},
    ]}
    responses = app.post_json("/v1/batch", batch, headers=auth).json["responses"]
    assert [r["status"] for r in responses] == [200, 200]
    records = log.records
    assert len([r for r in records if r.name == "cliquet_wsgi.request.summary"
                and r.mozlog_type == "subrequest.summary"]) == 2
    summaries = [r for r in records
                 if r.name == "cliquet_wsgi.request.summary" and r.mozlog_type == "request.summary"]
    assert summaries[-1].fields["batch_size"] == 2
    summaries = summaries[:-1]
    assert [s.fields["authn_type"] for s in summaries] == [
        "basicauth", "basicauth", None, None, None, "basicauth", None]
    assert summaries[5].fields["querystring"] == {
        "password": "[redacted]", "access_token": "[redacted]", "_limit": "2"}
    assert_clean(records)


def test_unhandled_error_with_credentials_is_logged_without_them(app, log):
    response = app.get("/v1/things/crash", headers={"Authorization": basic_header(OTHER_USER, OTHER_PASSWORD)},
                       expect_errors=True)
    assert response.status_int == 500
    records = log.records
    errors = [r for r in records if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and errors[0].exc_info is not None
    assert_clean(records)


def test_the_scan_catches_a_leak():
    # The check itself must be able to fail: a record carrying a secret in an
    # argument, in an extra field or in an exception is reported.
    scanner = SecretScanHandler(SECRETS)
    logger = logging.getLogger("tests.no_secrets.leaky")
    logger.propagate = False
    logger.addHandler(scanner)
    try:
        logger.info("user %s", USER)
        logger.info("header %s", {"Authorization": basic_header(USER, PASSWORD)})
        logger.info("summary", extra={"fields": {"secret": HMAC_SECRET}})
        try:
            raise ValueError(TOKENS[0])
        except ValueError:
            logger.exception("failed")
    finally:
        logger.removeHandler(scanner)
        logger.propagate = True
    assert scanner.count == 4
    assert len(scanner.offences) == 3


def test_session_scan_is_installed(secret_log_scan):
    before = secret_log_scan.count
    logging.getLogger("tests.no_secrets").debug("a harmless debug line")
    assert secret_log_scan.count == before + 1
    assert logging.getLogger().getEffectiveLevel() == logging.DEBUG
