"""SentryMiddleware with the real SDK sending to a local HTTP endpoint started by the test."""
from __future__ import annotations

import gzip
import json
import logging
import sys
import threading
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from wsgiref.validate import validator

import pytest
import sentry_sdk
import webtest

from cliquet_wsgi.errors import ConfigurationError
from cliquet_wsgi.middlewares.errors import ErrorsMiddleware
from cliquet_wsgi.middlewares.request_log import RequestLogMiddleware
from cliquet_wsgi.middlewares.sentry import SentryMiddleware, filter_factory, strip_sensitive_headers
from cliquet_wsgi.registry import Registry
from cliquet_wsgi.stack import wrap
from tests.secrets import BASIC_AUTH_USERS, TOKENS, basic_header

AUTHORIZATION = basic_header(*BASIC_AUTH_USERS[0])
COOKIE = f"session={TOKENS[2]}"


class SentryServer:
    """Accepts envelopes like sentry.io's ``/api/<project>/envelope/`` and keeps them."""

    def __init__(self) -> None:
        self.bodies: list[bytes] = []
        self.paths: list[str] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                encoding = self.headers.get("Content-Encoding", "")
                if encoding == "gzip":
                    body = gzip.decompress(body)
                elif encoding == "deflate":
                    body = zlib.decompress(body)
                server.paths.append(self.path)
                server.bodies.append(body)
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"{}")

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        self.dsn = f"http://key@127.0.0.1:{self.port}/1"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def events(self) -> list[dict]:
        """Every ``event`` item of the envelopes received so far (after flushing the SDK)."""
        sentry_sdk.flush(timeout=5)
        events = []
        for body in self.bodies:
            # Envelope: a header line, then (item header, payload) line pairs.
            lines = [line for line in body.split(b"\n") if line]
            for header, payload in zip(lines[1::2], lines[2::2]):
                if json.loads(header).get("type") == "event":
                    events.append(json.loads(payload))
        return events

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def sentry_server():
    server = SentryServer()
    yield server
    # Later tests log errors too: they must not be sent anywhere.
    sentry_sdk.get_client().close()
    sentry_sdk.get_global_scope().set_client(None)
    server.close()


def crashing_view(environ, start_response):
    logging.getLogger("tests.sentry.view").info("about to crash")
    raise RuntimeError("view crashed")


def stack(dsn: str, app=crashing_view, errors: bool = True):
    registry = Registry()
    inner = ErrorsMiddleware(validator(app), registry=registry) if errors else validator(app)
    sentry = SentryMiddleware(inner, registry=registry, sentry_dsn=dsn, sentry_env="test-env",
                              project_name="myapp", project_version="1.2.3")
    return webtest.TestApp(RequestLogMiddleware(sentry, registry=registry))


def test_unhandled_error_is_reported_once_with_request_context(sentry_server):
    app = stack(sentry_server.dsn)
    response = app.get("/v1/things?token=abc", headers={"Authorization": AUTHORIZATION, "Cookie": COOKIE,
                                                        "User-Agent": "tests/1"}, status=500)
    assert response.json["errno"] == 999
    [event] = sentry_server.events()
    assert sentry_server.paths == ["/api/1/envelope/"]
    assert event["level"] == "error"
    assert event["environment"] == "test-env"
    assert event["release"] == "myapp@1.2.3"
    assert [v["type"] for v in event["exception"]["values"]] == ["RuntimeError"]
    assert event["exception"]["values"][0]["value"] == "view crashed"
    assert event["request"]["method"] == "GET"
    assert event["request"]["url"] == "http://localhost:80/v1/things"
    assert event["request"]["headers"]["User-Agent"] == "tests/1"
    assert {k.lower() for k in event["request"]["headers"]} & {"authorization", "cookie"} == set()
    assert event["tags"]["request_id"] == response.headers["X-Request-Id"]
    assert "user" not in event
    assert [c["message"] for c in event["breadcrumbs"]["values"]] == ["about to crash"]
    raw = b"".join(sentry_server.bodies)
    for secret in (AUTHORIZATION.split()[1], TOKENS[2], b"token=abc"):
        assert (secret if isinstance(secret, bytes) else secret.encode()) not in raw


def test_breadcrumbs_of_other_requests_are_not_attached(sentry_server):
    logging.getLogger("tests.sentry.outside").warning("logged outside any request")
    app = stack(sentry_server.dsn)
    app.get("/v1/things", status=500)
    app.get("/v1/other", status=500)
    first, second = sentry_server.events()
    assert [c["message"] for c in first["breadcrumbs"]["values"]] == ["about to crash"]
    assert [c["message"] for c in second["breadcrumbs"]["values"]] == ["about to crash"]


def test_escaping_exception_is_reported_once_even_when_logged_again(sentry_server):
    app = stack(sentry_server.dsn, errors=False)
    with pytest.raises(RuntimeError) as caught:
        app.get("/v1/things", headers={"Authorization": AUTHORIZATION})
    # The server logs what escaped: the SDK's dedupe drops that second report.
    logging.getLogger("tests.sentry.server").error("Exception while serving", exc_info=caught.value)
    [event] = sentry_server.events()
    assert [v["type"] for v in event["exception"]["values"]] == ["RuntimeError"]
    assert "authorization" not in {k.lower() for k in event["request"]["headers"]}


def test_successful_requests_send_nothing(sentry_server):
    def ok(environ, start_response):
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"ok"]

    app = stack(sentry_server.dsn, app=ok)
    assert app.get("/v1/").body == b"ok"
    assert sentry_server.events() == []


def test_initialised_once_per_dsn(sentry_server):
    SentryMiddleware(crashing_view, registry=Registry(), sentry_dsn=sentry_server.dsn)
    client = sentry_sdk.get_client()
    SentryMiddleware(crashing_view, registry=Registry(), sentry_dsn=sentry_server.dsn)
    assert sentry_sdk.get_client() is client
    assert not client.options["send_default_pii"]
    if "data_collection" in client.options:
        assert client.options["data_collection"]["user_info"] is False
    assert client.options["include_local_variables"] is False
    assert client.options["default_integrations"] is False


@pytest.mark.parametrize(
    "headers, expected",
    [
        pytest.param({"Authorization": "Basic x", "Accept": "*/*"}, {"Accept": "*/*"}, id="dict"),
        pytest.param([["cookie", "a=b"], ["X-Auth-Token", "t"], ["Host", "h"]], [["Host", "h"]], id="list"),
        pytest.param({"Proxy-Authorization": "x", "X-Api-Key": "k", "X-Request-Id": "r"}, {"X-Request-Id": "r"},
                     id="other-credentials"),
    ],
)
def test_before_send_strips_credentials(headers, expected):
    event = {"request": {"headers": headers, "cookies": {"a": "b"}, "query_string": "token=x", "method": "GET"}}
    assert strip_sensitive_headers(event, None) == {"request": {"headers": expected, "method": "GET"}}


@pytest.mark.parametrize(
    "dsn",
    [pytest.param("", id="missing"), pytest.param("not a dsn", id="garbage"), pytest.param("http://h/1", id="no-key")],
)
def test_bad_dsn_fails_at_startup(dsn):
    with pytest.raises(ConfigurationError, match="sentry_dsn"):
        SentryMiddleware(crashing_view, registry=Registry(), sentry_dsn=dsn)


def test_missing_sdk_is_a_configuration_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "sentry_sdk", None)
    with pytest.raises(ConfigurationError, match="pip install"):
        SentryMiddleware(crashing_view, registry=Registry(), sentry_dsn="http://key@127.0.0.1:9/1")


def test_filter_factory(sentry_server):
    app = filter_factory({}, sentry_dsn=sentry_server.dsn, sentry_env="ini", registry_name="sentry-test")(
        ErrorsMiddleware(crashing_view, registry=Registry()))
    webtest.TestApp(app).get("/v1/x", status=500)
    [event] = sentry_server.events()
    assert event["environment"] == "ini"
    assert event["request"]["url"] == "http://localhost:80/v1/x"


def test_default_stack_reports_each_failure_once(sentry_server):
    """Through wrap(): errors and batch both log failures; one event per failure, none for the rest."""

    def view(environ, start_response):
        if environ["PATH_INFO"].endswith("/crash"):
            raise RuntimeError("view crashed")
        start_response("200 OK", [("Content-Type", "application/json")])
        return [b"{}"]

    app = webtest.TestApp(wrap(view, sentry_dsn=sentry_server.dsn, userid_hmac_secret="x" * 16))
    app.get("/v1/things/crash", headers={"Authorization": AUTHORIZATION}, status=500)
    app.get("/v1/things", headers={"Authorization": AUTHORIZATION}, status=200)
    app.post_json("/v1/batch", {"requests": [{"method": "GET", "path": "/things/crash"},
                                             {"method": "GET", "path": "/things"}]},
                  headers={"Authorization": AUTHORIZATION}, expect_errors=True)
    events = sentry_server.events()
    assert [e["request"]["url"] for e in events] == [
        "http://localhost:80/v1/things/crash", "http://localhost:80/v1/batch"]
    assert [e["exception"]["values"][-1]["type"] for e in events] == ["RuntimeError", "RuntimeError"]
    assert AUTHORIZATION.split()[1].encode() not in b"".join(sentry_server.bodies)
