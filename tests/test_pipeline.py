"""The demo pipeline exactly as ``paste.ini`` builds it, and the ``cliquet-wsgi`` command."""
import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid

import pytest
import webtest

from cliquet_wsgi.cli import main as cli_main
from tests.secrets import basic_header

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
INI = os.path.join(ROOT, "paste.ini")
ALICE = {"Authorization": basic_header("alice", "alice-pa55word-9f2")}
BOB = {"Authorization": basic_header("bob", "bob-pa55word-7e1")}
# userid_hmac_secret of paste.ini is "development-only-secret-change-me".
ALICE_ID = "basicauth:" + __import__("hmac").new(
    b"development-only-secret-change-me", b"alice:alice-pa55word-9f2", "sha256").hexdigest()


@pytest.fixture
def demo_env(tmp_path, monkeypatch):
    db = f"sqlite:///{tmp_path}/demo.sqlite"
    for name in ("STORAGE_URL", "PERMISSION_URL", "CACHE_URL"):
        monkeypatch.setenv(f"CLIQUET_{name}", db)
    # Each test gets its own registry (the ini path would otherwise share one).
    monkeypatch.setenv("CLIQUET_REGISTRY_NAME", f"pipeline-{uuid.uuid4()}")
    return tmp_path


@pytest.fixture
def app(demo_env, capsys):
    from cliquet_wsgi.cli import _load_app, migrate_backends

    wsgi, registries = _load_app(INI, "main")
    migrate_backends(registries)
    capsys.readouterr()
    return webtest.TestApp(wsgi, extra_environ={"HTTP_HOST": "localhost:8000"})


def test_hello(app):
    response = app.get("/v1/", headers=ALICE)
    assert response.status_int == 200
    assert response.headers["Content-Type"] == "application/json; charset=UTF-8"
    # Origin: this request sent none, so no "Access-Control-Allow-Origin: *" (RELIABILITY S5).
    assert response.headers["Vary"] == "Authorization, Origin"
    body = response.json
    assert body["user"]["id"] == ALICE_ID
    assert {k: body[k] for k in ("project_name", "project_version", "http_api_version",
                                 "cliquet_protocol_version", "url", "settings")} == {
        "project_name": "demo", "project_version": "1.0.0", "http_api_version": "1.0",
        "cliquet_protocol_version": "2", "url": "http://localhost:8000/v1/",
        "settings": {"batch_max_requests": 25, "readonly": False},
    }
    assert {"basicauth", "batch_atomic"} <= set(body["capabilities"])


def test_unprefixed_path_redirects(app):
    response = app.get("/articles?_limit=2", status=307)
    assert response.headers["Location"] == "http://localhost:8000/v1/articles?_limit=2"


def test_articles_are_per_user(app):
    created = app.post_json("/v1/articles", {"data": {"title": "MoFo"}}, headers=ALICE, status=201).json["data"]
    assert created["title"] == "MoFo"
    listing = app.get("/v1/articles", headers=ALICE)
    assert listing.json == {"data": [created]}
    assert listing.headers["ETag"] == f'"{created["last_modified"]}"'
    assert listing.headers["Total-Records"] == "1"
    assert app.get("/v1/articles", headers=BOB).json == {"data": []}
    missing = app.get(f"/v1/articles/{created['id']}", headers=BOB, status=404)
    assert missing.json == {"code": 404, "errno": 110, "error": "Not Found"}
    anonymous = app.get("/v1/articles", status=401)
    assert anonymous.json["errno"] == 104
    assert anonymous.headers["WWW-Authenticate"] == 'Basic realm="Realm"'


def test_bookmarks_are_validated(app):
    created = app.post_json("/v1/bookmarks", {"data": {"url": "https://a.org/", "device": "phone"}},
                            headers=ALICE, status=201).json["data"]
    conflict = app.post_json("/v1/bookmarks", {"data": {"url": "https://a.org/"}}, headers=ALICE, status=409)
    assert conflict.json == {
        "code": 409, "errno": 122, "error": "Conflict",
        "message": f"Conflict of field url on record {created['id']}",
        "details": {"field": "url", "existing": created},
    }
    invalid = app.post_json("/v1/bookmarks", {"data": {"title": "no url"}}, headers=ALICE, status=400)
    assert invalid.json["errno"] == 107
    assert invalid.json["details"][0]["location"] == "body"
    readonly = app.patch_json(f"/v1/bookmarks/{created['id']}", {"data": {"device": "laptop"}},
                              headers=ALICE, status=400)
    assert readonly.json["message"] == "data.device in body: Cannot modify device"


def test_legacy_views_of_the_demo(app):
    app.post_json("/v1/articles", {"data": {"title": "a"}}, headers=ALICE, status=201)
    app.post_json("/v1/bookmarks", {"data": {"url": "https://b.org/"}}, headers=ALICE, status=201)
    score = app.get("/v1/score", headers=ALICE)
    assert score.json == {"user": ALICE_ID, "articles": 1, "bookmarks": 1, "score": 3}
    assert app.get("/v1/score", status=401).json["errno"] == 104
    about = app.get("/v1/about")
    assert about.headers["Content-Type"] == "text/html; charset=utf-8"
    assert b'<a href="/v1/articles">' in about.body
    not_found = app.get("/v1/nowhere", status=404)
    assert not_found.json == {"code": 404, "errno": 111, "error": "Not Found",
                              "message": "The resource you are looking for could not be found."}


def test_batch_through_the_pipeline(app):
    response = app.post_json("/v1/batch", {
        "defaults": {"method": "POST", "path": "/articles"},
        "requests": [{"body": {"data": {"title": "one"}}}, {"body": {"data": {"title": "two"}}},
                     {"method": "GET", "path": "/articles?_sort=title"}],
    }, headers=ALICE)
    statuses = [r["status"] for r in response.json["responses"]]
    assert statuses == [201, 201, 200]
    assert [r["title"] for r in response.json["responses"][2]["body"]["data"]] == ["one", "two"]
    assert response.json["responses"][0]["path"] == "/v1/articles"


def test_heartbeats(app):
    heartbeat = app.get("/v1/__heartbeat__")
    assert heartbeat.json == {"storage": True, "cache": True, "permission": True}
    assert app.get("/__lbheartbeat__").json == {}
    assert app.get("/v1/__version__", status=404).json["errno"] == 111


def test_cors_preflight_and_headers(app):
    # RELIABILITY S5: the preflight needs no credentials (auth is on) and carries no data.
    preflight = app.options("/v1/articles", headers={
        "Origin": "https://app.example.org", "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization, content-type"})
    assert preflight.status_int == 200
    assert preflight.body == b""
    assert preflight.headers["Access-Control-Allow-Origin"] == "*"
    assert "POST" in preflight.headers["Access-Control-Allow-Methods"]
    listing = app.get("/v1/articles", headers={**ALICE, "Origin": "https://app.example.org"})
    assert listing.headers["Access-Control-Allow-Origin"] == "*"
    exposed = {h.strip() for h in listing.headers["Access-Control-Expose-Headers"].split(",")}
    assert {"Backoff", "Retry-After", "Alert", "Next-Page", "Total-Records", "ETag"} <= exposed


def test_request_id_is_echoed(app):
    response = app.get("/v1/", headers={"X-Request-Id": "abc-123"})
    assert response.headers["X-Request-Id"] == "abc-123"


# -- the command line ----------------------------------------------------------------------


def test_migrate_command_is_idempotent(demo_env, capsys):
    assert cli_main(["migrate", INI]) == 0
    first = capsys.readouterr().out.splitlines()
    assert first == ["storage: created schema version 1", "cache: created schema version 1",
                     "permission: created schema version 1", "3 backend(s) up to date"]


def test_migrate_twice(demo_env, capsys, monkeypatch):
    assert cli_main(["migrate", INI]) == 0
    capsys.readouterr()
    monkeypatch.setenv("CLIQUET_REGISTRY_NAME", f"pipeline-{uuid.uuid4()}")
    assert cli_main(["migrate", INI]) == 0
    assert capsys.readouterr().out.splitlines() == [
        "storage: schema already at version 1", "cache: schema already at version 1",
        "permission: schema already at version 1", "3 backend(s) up to date"]


def test_cli_refuses_bad_configuration(demo_env, monkeypatch, capsys):
    monkeypatch.setenv("CLIQUET_PAGINATE_BY", "-3")
    assert cli_main(["migrate", INI]) == 2
    assert "configuration error: Invalid value for setting 'paginate_by'" in capsys.readouterr().err


def _free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_serve_command_serves_the_demo(demo_env):
    port = _free_port()
    env = dict(os.environ)
    process = subprocess.Popen(
        [sys.executable, "-m", "cliquet_wsgi.cli", "serve", INI, "--port", str(port)],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/", timeout=2) as response:
                    body = json.loads(response.read())
                    break
            except (urllib.error.URLError, ConnectionError):
                if time.monotonic() > deadline or process.poll() is not None:
                    raise AssertionError(process.stdout.read1().decode() if process.poll() is not None else "timeout")
                time.sleep(0.2)
        assert body["project_name"] == "demo"
        assert body["url"] == f"http://127.0.0.1:{port}/v1/"
    finally:
        process.terminate()
        process.wait(timeout=10)
        process.stdout.close()


def test_serve_logs_json_when_asked(demo_env, tmp_path):
    """CLIQUET_LOGGING_RENDERER=json switches the ini's console handler to mozlog JSON lines."""
    port = _free_port()
    env = dict(os.environ, CLIQUET_LOGGING_RENDERER="json")
    process = subprocess.Popen(
        [sys.executable, "-m", "cliquet_wsgi", "serve", INI, "--port", str(port)],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/__lbheartbeat__", timeout=2):
                    break
            except (urllib.error.URLError, ConnectionError):
                assert time.monotonic() < deadline and process.poll() is None
                time.sleep(0.2)
    finally:
        process.terminate()
        process.wait(timeout=10)
    lines = [json.loads(line) for line in process.stderr.read().decode().splitlines() if line.startswith("{")]
    process.stderr.close()
    summaries = [line for line in lines if line["Type"] == "request.summary"]
    assert summaries and summaries[-1]["Fields"]["path"] == "/v1/__lbheartbeat__"
    assert summaries[-1]["Fields"]["code"] == 200


def test_migrate_command_on_postgresql(demo_env, capsys, monkeypatch):
    """`cliquet-wsgi migrate` creates the PostgreSQL schemas of an empty database, then finds them there."""
    import pg8000.native

    from cliquet_wsgi.testing import postgresql_database

    name = f"cliquet_cli_migrate_{uuid.uuid4().hex[:12]}"
    url = postgresql_database(name)
    for variable in ("CLIQUET_STORAGE_URL", "CLIQUET_PERMISSION_URL", "CLIQUET_CACHE_URL"):
        monkeypatch.setenv(variable, url)
    try:
        assert cli_main(["migrate", INI]) == 0
        assert capsys.readouterr().out.splitlines() == [
            "storage: created schema version 2", "cache: created schema version 1",
            "permission: created schema version 1", "3 backend(s) up to date"]
        monkeypatch.setenv("CLIQUET_REGISTRY_NAME", f"pipeline-{uuid.uuid4()}")
        assert cli_main(["migrate", INI]) == 0
        assert capsys.readouterr().out.splitlines() == [
            "storage: schema already at version 2", "cache: schema already at version 1",
            "permission: schema already at version 1", "3 backend(s) up to date"]
    finally:
        from cliquet_wsgi.registry import all_registries

        for registry in all_registries():
            if registry.settings.get("storage_url") == url:
                registry.close()
        from urllib.parse import urlsplit

        parts = urlsplit(url)
        admin = pg8000.native.Connection(parts.username or "postgres", host=parts.hostname, port=parts.port or 5432,
                                         database="postgres")
        admin.run(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()
