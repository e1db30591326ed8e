"""Tests of the batch middleware (PROTOCOL §7, RELIABILITY I11, S4)."""
from __future__ import annotations

import base64
import json
import logging
import threading
import uuid
from wsgiref.validate import validator

import pytest
import webtest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cliquet_wsgi.errors import BackendError, CliquetError, error_response, not_found
from cliquet_wsgi.middlewares import batch as batch_module
from cliquet_wsgi.middlewares.auth import AuthMiddleware, basicauth_user_id
from cliquet_wsgi.middlewares.batch import BatchMiddleware
from cliquet_wsgi.registry import Registry
from cliquet_wsgi.rendering import json_dumps
from cliquet_wsgi.settings import load_settings
from cliquet_wsgi.testing import POSTGRESQL_URL, require_service, tcp_reachable

SECRET = "batch-test-secret"


def basic(credentials: str) -> str:
    return "Basic " + base64.b64encode(credentials.encode()).decode()


def reply(start_response, status, body, headers=()):
    payload = json.dumps(body).encode() if not isinstance(body, bytes) else body
    content_type = "application/json" if not isinstance(body, bytes) else "text/plain; charset=utf-8"
    start_response(
        f"{status} {'OK' if status < 400 else 'Error'}",
        [("Content-Type", content_type), ("Content-Length", str(len(payload))), *headers],
    )
    return [payload]


class ItemsApp:
    """A small WSGI app below batch that writes to ``registry.storage``.

    ``POST /items`` stores ``body.data``; ``GET /items`` lists them;
    ``POST /items/fail|unavailable|conflict`` write then raise; ``/echo``
    describes the environ it received; ``/status/<n>``, ``/text``,
    ``/redirect``, ``/articles`` (404 with a trailing slash).
    """

    def __init__(self, registry, collection):
        self.registry = registry
        self.collection = collection
        self.calls = 0

    def __call__(self, environ, start_response):
        self.calls += 1
        method, path = environ["REQUEST_METHOD"], environ["PATH_INFO"]
        if path.startswith("/v1/"):
            path = path[3:]  # mounted without a version layer
        storage = self.registry.storage
        parent = environ.get("cliquet.user_id") or ""
        if path == "/items" and method == "POST":
            data = json.loads(environ["wsgi.input"].read(int(environ["CONTENT_LENGTH"])))["data"]
            return reply(start_response, 201, {"data": storage.create(self.collection, parent, data)})
        if path == "/items" and method == "GET":
            records, _ = storage.get_all(self.collection, parent)
            return reply(start_response, 200, {"data": sorted(r["title"] for r in records)})
        if path.startswith("/items/") and method == "POST":
            storage.create(self.collection, parent, {"title": path})
            if path == "/items/fail":
                raise RuntimeError("bug in the view /secret/path.py")
            if path == "/items/unavailable":
                raise BackendError(OSError("connection reset"))
            if path == "/items/conflict":
                raise CliquetError(409, 122, message="Conflict")
        if path == "/echo":
            body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0)).decode()
            return reply(
                start_response,
                200,
                {
                    "method": method,
                    "script_name": environ["SCRIPT_NAME"],
                    "path_info": environ["PATH_INFO"],
                    "query": environ.get("QUERY_STRING", ""),
                    "content_type": environ.get("CONTENT_TYPE"),
                    "content_length": environ.get("CONTENT_LENGTH"),
                    "body": body,
                    "headers": {k: v for k, v in environ.items() if k.startswith("HTTP_") and k != "HTTP_HOST"},
                    "batch": environ.get("cliquet.batch"),
                    "memo": id(environ.get("cliquet.memo")),
                    "version_prefix": environ.get("cliquet.version_prefix"),
                    "path_orig": list(environ.get("cliquet.path_orig") or []),
                    "user_id": environ.get("cliquet.user_id"),
                },
                headers=[("X-Twice", "a"), ("X-Twice", "b")],
            )
        if path.startswith("/status/"):
            return reply(start_response, int(path[len("/status/"):]), {"status": int(path[len("/status/"):])})
        if path == "/text":
            return reply(start_response, 200, b"plain text")
        if path == "/write-elsewhere":
            # Another thread writes while this sub-request runs: it must not wait for the batch.
            outcome = []
            writer = threading.Thread(target=lambda: outcome.append(
                _attempt(lambda: storage.create(self.collection, "elsewhere", {"title": "other"}))))
            writer.start()
            writer.join()
            return reply(start_response, 200, {"written": outcome == [None]})
        if path.startswith("/legacy/"):
            # A framework's own error page (HTML), with a header of its own.
            page = b"<html><body>Error</body></html>"
            status = int(path[len("/legacy/"):])
            start_response(f"{status} Legacy Reason", [("Content-Type", "text/html; charset=utf-8"),
                                                       ("Content-Length", str(len(page))), ("X-Kept", "1")])
            return [page]
        if path == "/redirect":
            location = f"http://{environ['HTTP_HOST']}{environ['SCRIPT_NAME']}/echo?from=redirect"
            return reply(start_response, 302, {}, headers=[("Location", location)])
        if path == "/articles":
            return reply(start_response, 200, {"data": []})
        return error_response(not_found(), start_response)


def _attempt(call):
    try:
        call()
    except Exception as exc:  # reported to the test through the response
        return repr(exc)
    return None


class VersionShim:
    """Moves ``/v1`` from PATH_INFO to SCRIPT_NAME as the version layer does (kept tiny on purpose)."""

    def __init__(self, app):
        self.app = app

    def __call__(self, environ, start_response):
        path = environ["PATH_INFO"]
        if path.startswith("/v1/"):
            environ["cliquet.path_orig"] = (environ["SCRIPT_NAME"], path)
            environ["cliquet.version_prefix"] = "/v1"
            environ["SCRIPT_NAME"] += "/v1"
            environ["PATH_INFO"] = path[3:]
        return self.app(environ, start_response)


def build(storage_url="memory://", auth=False, shim=True, storage_settings=(), **kwargs):
    registry = Registry(load_settings({"storage_url": storage_url, **dict(storage_settings)}, environ={}))
    if storage_url.startswith("postgres"):
        registry.storage.initialize_schema()
    collection = "item-" + uuid.uuid4().hex
    inner = ItemsApp(registry, collection)
    app = validator(inner)
    if auth:
        app = AuthMiddleware(app, registry=registry, userid_hmac_secret=SECRET, settings={})
    app = BatchMiddleware(app, registry=registry, **kwargs)
    if shim:
        app = VersionShim(app)
    return webtest.TestApp(validator(app)), inner, registry


def stored(registry, inner, parent=""):
    records, _ = registry.storage.get_all(inner.collection, parent)
    return sorted(r["title"] for r in records)


# -- validation: 400 before anything runs -------------------------------------------------------------

OK = {"path": "/echo"}


def invalid(name, description, message=None):
    if message is None:
        message = description if name is not None and name in description else (
            f"{name} in body: {description}" if name is not None else f"body: {description}"
        )
    return {
        "code": 400,
        "errno": 107,
        "error": "Invalid parameters",
        "message": message,
        "details": [{"location": "body", "name": name, "description": description}],
    }


@pytest.mark.parametrize(
    "body, expected",
    [
        pytest.param({}, invalid("requests", "requests is missing"), id="requests-missing"),
        pytest.param({"requests": {}}, invalid("requests", "requests should be a list"), id="requests-not-list"),
        pytest.param([], invalid(None, "Invalid JSON request body: expected an object"), id="body-list"),
        pytest.param({"requests": [], "foo": 1}, invalid("foo", "foo is not allowed"), id="unknown-top-key"),
        pytest.param({"requests": [OK, {"path": "/echo", "bdoy": {}}]},
                     invalid("requests.1.bdoy", "bdoy is not allowed"), id="unknown-request-key"),
        pytest.param({"requests": [OK], "defaults": {"x": 1}}, invalid("defaults.x", "x is not allowed"),
                     id="unknown-defaults-key"),
        pytest.param({"requests": [OK], "defaults": []}, invalid("defaults", "defaults should be an object"),
                     id="defaults-not-object"),
        pytest.param({"requests": [OK, "x"]}, invalid("requests.1", "requests.1 should be an object"),
                     id="request-not-object"),
        pytest.param({"requests": [{"path": "/echo", "method": "get"}]},
                     invalid("requests.0.method", '"get" is not one of GET, HEAD, DELETE, TRACE, POST, PUT, PATCH'),
                     id="method-lower-case"),
        pytest.param({"requests": [{"path": "/echo", "method": "CONNECT"}]},
                     invalid("requests.0.method", '"CONNECT" is not one of GET, HEAD, DELETE, TRACE, POST, PUT, PATCH'),
                     id="method-unknown"),
        pytest.param({"requests": [{"method": "GET"}]}, invalid("requests.0.path", "path is missing"),
                     id="path-missing"),
        pytest.param({"requests": [{"path": "echo"}]},
                     invalid("requests.0.path", "path should be an absolute path starting with / (no scheme or host)"),
                     id="path-relative"),
        pytest.param({"requests": [{"path": "http://evil.example/v1/echo"}]},
                     invalid("requests.0.path", "path should be an absolute path starting with / (no scheme or host)"),
                     id="path-absolute-url"),
        pytest.param({"requests": [{"path": "//evil.example/v1/echo"}]},
                     invalid("requests.0.path", "path should be an absolute path starting with / (no scheme or host)"),
                     id="path-network-reference"),
        pytest.param({"requests": [{"path": "/echo\r\nX: y"}]},
                     invalid("requests.0.path", "path contains whitespace, control characters or a fragment"),
                     id="path-crlf"),
        pytest.param({"requests": [{"path": 42}]}, invalid("requests.0.path", "path should be a string"),
                     id="path-not-string"),
        pytest.param({"requests": [{"path": "/echo", "headers": {"X-A": 1}}]},
                     invalid("requests.0.headers.X-A", "header values should be strings"), id="header-not-string"),
        pytest.param({"requests": [{"path": "/echo", "headers": []}]},
                     invalid("requests.0.headers", "headers should be an object"), id="headers-not-object"),
        pytest.param({"requests": [{"path": "/echo", "headers": {"X_Remote_User": "admin"}}]},
                     invalid("requests.0.headers.X_Remote_User", "invalid header name (letters, digits and - only)"),
                     id="header-underscore"),
        pytest.param({"requests": [{"path": "/echo", "headers": {"X-A": "a\r\nSet-Cookie: x"}}]},
                     invalid("requests.0.headers.X-A", "header values cannot contain line breaks"),
                     id="header-crlf"),
        pytest.param({"requests": [{"path": "/echo", "body": [1]}]},
                     invalid("requests.0.body", "body should be an object"), id="body-not-object"),
        pytest.param({"requests": [OK], "atomic": "yes"}, invalid("atomic", "atomic should be a boolean"),
                     id="atomic-not-bool"),
        pytest.param({"requests": [OK] * 26}, invalid("requests", "Number of requests is limited to 25"),
                     id="too-many"),
        pytest.param({"requests": [OK, {"path": "/batch"}]},
                     invalid("requests", "Recursive call on /batch endpoint is forbidden.",
                             "requests in body: Recursive call on /batch endpoint is forbidden."),
                     id="recursion"),
        pytest.param({"requests": [OK, {"path": "/v1/batch/?x=1"}]},
                     invalid("requests", "Recursive call on /batch endpoint is forbidden."), id="recursion-prefixed"),
        pytest.param({"requests": [OK, {"path": "/v1/%62atch"}]},
                     invalid("requests", "Recursive call on /batch endpoint is forbidden."), id="recursion-encoded"),
    ],
)
def test_invalid_batches_are_refused_before_any_subrequest(body, expected):
    app, inner, _ = build()
    response = app.post_json("/v1/batch", body, status=400)
    assert response.json == expected
    assert inner.calls == 0


def test_invalid_json_body():
    app, inner, _ = build()
    response = app.post("/v1/batch", "{not json", content_type="application/json", status=400)
    assert response.json["errno"] == 107
    assert [d["name"] for d in response.json["details"]] == [None, "requests"]
    assert response.json["details"][0]["description"].startswith("Invalid JSON request body: ")
    assert inner.calls == 0


def test_all_errors_reported_with_indexes():
    app, _, _ = build()
    body = {"requests": [{"path": "/echo", "foo": 1}, {"method": "X", "path": "/echo"}, {}]}
    response = app.post_json("/v1/batch", body, status=400)
    assert [d["name"] for d in response.json["details"]] == ["requests.0.foo", "requests.1.method", "requests.2.path"]


def test_max_requests_setting_and_unlimited():
    app, _, _ = build(batch_max_requests=2)
    response = app.post_json("/v1/batch", {"requests": [OK] * 3}, status=400)
    assert response.json["message"] == "Number of requests is limited to 2"
    app, _, _ = build(batch_max_requests=0)
    assert len(app.post_json("/v1/batch", {"requests": [OK] * 30}).json["responses"]) == 30


def test_body_too_large():
    app, inner, _ = build(max_body_bytes=100)
    body = {"requests": [{"path": "/echo", "body": {"x": "y" * 200}}]}
    response = app.post_json("/v1/batch", body, status=413)
    assert response.json == {"code": 413, "errno": 113, "error": "Request Entity Too Large",
                             "message": "Request body is too large."}
    assert inner.calls == 0


def test_zero_max_body_bytes_means_no_limit():
    app, _, _ = build(max_body_bytes=0)
    body = {"requests": [{"path": "/echo", "body": {"x": "y" * 2000}}]}
    assert app.post_json("/v1/batch", body).json["responses"][0]["status"] == 200


def test_any_content_type_accepted():
    app, _, _ = build()
    response = app.post("/v1/batch", json.dumps({"requests": [OK]}), content_type="text/plain")
    assert response.json["responses"][0]["status"] == 200


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE", "PATCH"])
def test_other_methods_405(method):
    # RELIABILITY I8 on the batch endpoint (TRACE, CONNECT, FOO: resources/test_stack.py).
    app, inner, _ = build()
    response = app.request("/v1/batch", method=method, status=405)
    assert response.headers["Allow"] == "POST"
    assert response.json == {"code": 405, "errno": 115, "error": "Method Not Allowed",
                             "message": "Method not allowed on this endpoint."}
    assert inner.calls == 0


def test_other_paths_pass_through():
    app, inner, _ = build()
    assert app.get("/v1/echo").json["path_info"] == "/echo"
    app.post("/v1/batches", status=404)
    assert inner.calls == 2


@pytest.mark.parametrize(
    "method, status, errno",
    [pytest.param("POST", 200, None, id="served"), pytest.param("GET", 405, 115, id="refused")],
)
def test_route_name_and_errno_for_outer_layers(method, status, errno):
    """Metrics and logs above read the endpoint name and errno from the environ."""
    registry = Registry(load_settings({}, environ={}))
    seen = {}
    inner = BatchMiddleware(lambda environ, start_response: None, registry=registry)

    def outer(environ, start_response):
        body = inner(environ, start_response)
        seen.update({k: environ.get(k) for k in ("cliquet.route_name", "cliquet.route_pattern", "cliquet.errno")})
        return body

    app = webtest.TestApp(outer)
    app.request("/v1/batch", method=method, body=b'{"requests": []}', status=status)
    assert seen == {"cliquet.route_name": "batch", "cliquet.route_pattern": "/batch", "cliquet.errno": errno}


def test_registers_capability_public_setting_and_endpoint_methods():
    _, _, registry = build(batch_max_requests=10)
    assert registry.public_settings["batch_max_requests"] == 10
    assert "batch_atomic" in registry.capabilities
    assert registry.endpoint_methods("/batch") == ["POST"]


def test_one_mebibyte_of_sub_bodies_refused_by_default():
    app, inner, _ = build()
    body = {"requests": [{"path": "/echo", "body": {"x": "y" * 45000}}] * 25}
    app.post_json("/v1/batch", body, status=413)
    assert inner.calls == 0


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3),
    max_leaves=12,
)
REQUEST_LIKE = st.fixed_dictionaries(
    {},
    optional={
        "method": st.sampled_from(["GET", "get", "POST", "FOO", 1]),
        "path": st.sampled_from(["/echo", "echo", "/batch", "//x", "/status/404", 3]) | st.text(max_size=10),
        "headers": st.dictionaries(st.sampled_from(["X-A", "X_A", "Authorization"]), JSON_VALUES, max_size=2),
        "body": JSON_VALUES,
        "extra": JSON_VALUES,
    },
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    body=st.one_of(
        JSON_VALUES,
        st.fixed_dictionaries(
            {"requests": st.lists(REQUEST_LIKE, max_size=4)},
            optional={"defaults": REQUEST_LIKE, "atomic": JSON_VALUES},
        ),
    )
)
def test_fuzzed_bodies_never_5xx(body):
    """I1/I11: any JSON body gets a protocol answer, never a server error."""
    app, _, _ = build(storage_url="memory://")
    response = app.post("/v1/batch", json.dumps(body), content_type="application/json", expect_errors=True)
    assert response.status_int in (200, 400), response.text
    if response.status_int == 400:
        assert response.json["errno"] == 107 and response.json["message"]


@settings(max_examples=100, deadline=None)
@given(raw=st.binary(max_size=64))
def test_fuzzed_bytes_never_5xx(raw):
    app, _, _ = build(storage_url="memory://")
    response = app.post("/v1/batch", raw, content_type="application/json", expect_errors=True)
    assert response.status_int in (200, 400), response.text


# -- dispatch ----------------------------------------------------------------------------------


def test_empty_batch():
    app, _, _ = build()
    response = app.post_json("/v1/batch", {"requests": []})
    assert response.json == {"responses": []}


def test_subrequest_environ_and_response():
    app, _, _ = build()
    body = {
        "defaults": {"method": "POST", "headers": {"X-Default": "d", "X-Both": "default"},
                     "body": {"data": {"a": 1, "nested": {"x": 1}}}},
        "requests": [
            {"path": "/echo?_limit=2&q=%C3%A9t%C3%A9", "headers": {"X-Both": "request", "Content-Length": "999"},
             "body": {"data": {"b": 2, "nested": {"y": 2}}}},
        ],
    }
    response = app.post_json(
        "/v1/batch", body, headers={"Authorization": "Bearer parent", "X-Parent": "p", "X-Both": "parent"}
    )
    (sub,) = response.json["responses"]
    assert sub["status"] == 200
    assert sub["path"] == "/v1/echo"
    assert sub["headers"] == {"Content-Type": "application/json", "Content-Length": sub["headers"]["Content-Length"],
                              "X-Twice": "a, b"}
    echo = sub["body"]
    sent = json.loads(echo.pop("body"))
    assert sent == {"data": {"a": 1, "b": 2, "nested": {"x": 1, "y": 2}}}
    assert echo.pop("content_length") == str(len(json.dumps(sent, separators=(",", ":"))))
    assert echo.pop("memo") != 0
    assert echo == {
        "method": "POST",
        "script_name": "/v1",
        "path_info": "/echo",
        "query": "_limit=2&q=%C3%A9t%C3%A9",
        "content_type": "application/json; charset=utf-8",
        "headers": {"HTTP_AUTHORIZATION": "Bearer parent", "HTTP_X_PARENT": "p", "HTTP_X_BOTH": "request",
                    "HTTP_X_DEFAULT": "d"},
        "batch": {"size": 1, "atomic": False, "parent_headers": {
            "HTTP_AUTHORIZATION": "Bearer parent", "HTTP_X_PARENT": "p", "HTTP_X_BOTH": "parent",
            "HTTP_HOST": "localhost:80"}},
        "version_prefix": "/v1",
        "path_orig": ["", "/v1/echo"],
        "user_id": None,
    }


def test_memo_shared_between_subrequests():
    app, _, _ = build()
    response = app.post_json("/v1/batch", {"requests": [OK, OK]})
    first, second = (r["body"]["memo"] for r in response.json["responses"])
    assert first == second


@pytest.mark.parametrize("path", ["/echo", "/v1/echo"])
def test_prefix_optional(path):
    app, _, _ = build()
    (sub,) = app.post_json("/v1/batch", {"requests": [{"path": path}]}).json["responses"]
    assert (sub["path"], sub["body"]["script_name"], sub["body"]["path_info"]) == ("/v1/echo", "/v1", "/echo")


def test_alone_without_version_layer_keeps_prefix_in_path_info():
    app, _, _ = build(shim=False)
    (sub,) = app.post_json("/v1/batch", {"requests": [{"path": "/echo"}]}).json["responses"]
    assert (sub["path"], sub["body"]["script_name"], sub["body"]["path_info"]) == ("/v1/echo", "", "/v1/echo")


def test_response_bodies_json_text_and_head():
    app, _, _ = build()
    body = {"requests": [{"path": "/text"}, {"path": "/echo", "method": "HEAD"}, {"path": "/nowhere"}]}
    text, head, missing = app.post_json("/v1/batch", body).json["responses"]
    assert (text["status"], text["body"]) == (200, "plain text")
    assert (head["status"], head["body"]) == (200, "")
    error = {"code": 404, "errno": 111, "error": "Not Found",
             "message": "The resource you are looking for could not be found."}
    assert missing == {
        "status": 404,
        "path": "/v1/nowhere",
        "headers": {"Content-Type": "application/json; charset=UTF-8", "Content-Length": str(len(json_dumps(error)))},
        "body": error,
    }


def test_trailing_slash_followed_once():
    app, inner, _ = build()
    (sub,) = app.post_json("/v1/batch", {"requests": [{"path": "/articles/?a=1"}]}).json["responses"]
    assert (sub["status"], sub["path"], sub["body"]) == (200, "/v1/articles", {"data": []})
    assert inner.calls == 2


def test_redirect_followed_once_with_same_method_and_body():
    app, _, _ = build()
    body = {"requests": [{"path": "/redirect", "method": "PUT", "body": {"k": "v"}}]}
    (sub,) = app.post_json("/v1/batch", body).json["responses"]
    assert (sub["status"], sub["path"]) == (200, "/v1/echo")
    assert (sub["body"]["method"], sub["body"]["query"], json.loads(sub["body"]["body"])) == (
        "PUT", "from=redirect", {"k": "v"})


def test_returned_5xx_is_embedded():
    app, _, registry = build()
    body = {"requests": [{"path": "/items", "method": "POST", "body": {"data": {"title": "a"}}},
                        {"path": "/status/503"}]}
    responses = app.post_json("/v1/batch", body).json["responses"]
    assert [r["status"] for r in responses] == [201, 503]


def test_subrequest_log_lines_without_credentials(caplog):
    app, _, _ = build()
    with caplog.at_level(logging.INFO, logger="cliquet_wsgi.request.summary"):
        app.post_json("/v1/batch", {"requests": [OK, {"path": "/nowhere"}]}, headers={"Authorization": basic("u:pw")},
                      extra_environ={"cliquet.request_id": "rid-1"})
    summaries = [r for r in caplog.records if getattr(r, "mozlog_type", None) == "subrequest.summary"]
    assert [r.getMessage() for r in summaries] == ["GET /v1/echo 200", "GET /v1/nowhere 404"]
    assert [{k: v for k, v in r.fields.items() if k != "t"} for r in summaries] == [
        {"path": "/v1/echo", "method": "GET", "code": 200, "errno": None, "rid": "rid-1"},
        {"path": "/v1/nowhere", "method": "GET", "code": 404, "errno": None, "rid": "rid-1"},
    ]
    assert basic("u:pw").split()[1] not in caplog.text


# -- transaction -------------------------------------------------------------------------------


def create(title):
    return {"method": "POST", "path": "/items", "body": {"data": {"title": title}}}


BACKENDS = [pytest.param("memory://", id="memory"), pytest.param(POSTGRESQL_URL, id="postgresql")]


@pytest.fixture(params=BACKENDS)
def storage_url(request):
    url = request.param
    if url.startswith("postgres") and not tcp_reachable("127.0.0.1", 5432):
        require_service("PostgreSQL", "127.0.0.1:5432 does not answer")
    return url


def test_writes_committed(storage_url):
    app, inner, registry = build(storage_url)
    responses = app.post_json("/v1/batch", {"requests": [create("a"), create("b"), {"path": "/items"}]}).json
    assert [r["status"] for r in responses["responses"]] == [201, 201, 200]
    assert responses["responses"][2]["body"] == {"data": ["a", "b"]}
    assert stored(registry, inner) == ["a", "b"]


def test_4xx_embedded_without_rollback(storage_url):
    app, inner, registry = build(storage_url)
    body = {"requests": [create("a"), {"method": "POST", "path": "/items/conflict"}, create("b")]}
    responses = app.post_json("/v1/batch", body).json["responses"]
    assert [r["status"] for r in responses] == [201, 409, 201]
    assert responses[1]["body"] == {"code": 409, "errno": 122, "error": "Conflict", "message": "Conflict"}
    assert stored(registry, inner) == ["/items/conflict", "a", "b"]


def test_raised_500_rolls_back_everything(storage_url, caplog):
    # RELIABILITY S6 for a batch sub-request: generic body, traceback in the log.
    app, inner, registry = build(storage_url)
    body = {"requests": [create("a"), {"method": "POST", "path": "/items/fail"}, create("b")]}
    with caplog.at_level(logging.ERROR):
        response = app.post_json("/v1/batch", body, status=500)
    assert response.json == {"code": 500, "errno": 999, "error": "Internal Server Error",
                             "message": "A programmatic error occured, developers have been informed."}
    assert "/secret/path.py" not in response.text
    assert "RuntimeError: bug in the view" in caplog.text  # the traceback is logged, not returned
    assert stored(registry, inner) == []
    assert inner.calls == 2


def test_backend_error_503_rolls_back(storage_url):
    app, inner, registry = build(storage_url, retry_after_seconds=7)
    body = {"requests": [create("a"), {"method": "POST", "path": "/items/unavailable"}]}
    response = app.post_json("/v1/batch", body, status=503)
    assert response.headers["Retry-After"] == "7"
    assert response.json["errno"] == 201
    assert stored(registry, inner) == []


def test_without_transaction_per_request_earlier_writes_stay(storage_url):
    app, inner, registry = build(storage_url, transaction_per_request=False)
    body = {"requests": [create("a"), {"method": "POST", "path": "/items/fail"}]}
    app.post_json("/v1/batch", body, status=500)
    assert stored(registry, inner) == ["/items/fail", "a"]


def test_atomic_batch_rolls_back_on_any_error(storage_url):
    app, inner, registry = build(storage_url)
    body = {"atomic": True, "requests": [create("a"), {"path": "/nowhere"}, create("b")]}
    response = app.post_json("/v1/batch", body, status=404)
    error = response.json
    assert (error["code"], error["errno"], error["error"]) == (404, 111, "Not Found")
    assert error["message"] == "Atomic batch rolled back: request 1 failed with status 404."
    assert error["details"]["failed"] == 1
    assert [r["status"] for r in error["details"]["responses"]] == [201, 404]
    assert stored(registry, inner) == []
    assert inner.calls == 2


def test_atomic_batch_commits_when_all_succeed(storage_url):
    app, inner, registry = build(storage_url)
    response = app.post_json("/v1/batch", {"atomic": True, "requests": [create("a"), create("b")]})
    assert [r["status"] for r in response.json["responses"]] == [201, 201]
    assert stored(registry, inner) == ["a", "b"]


def test_atomic_needs_storage():
    registry = Registry(load_settings({}, environ={}))
    app = webtest.TestApp(VersionShim(BatchMiddleware(validator(ItemsApp(registry, "x")), registry=registry)))
    response = app.post_json("/v1/batch", {"atomic": True, "requests": [OK]}, status=400)
    assert response.json["message"] == "atomic batches need a storage backend with transactions"
    # Non-atomic batches work without storage.
    assert app.post_json("/v1/batch", {"requests": [OK]}).json["responses"][0]["status"] == 200


def test_atomic_batch_raised_error_answers_that_error(storage_url):
    app, inner, registry = build(storage_url)
    body = {"atomic": True, "requests": [create("a"), {"method": "POST", "path": "/items/unavailable"}]}
    response = app.post_json("/v1/batch", body, status=503)
    assert response.json["errno"] == 201
    assert stored(registry, inner) == []


def test_utf8_path_decoded_and_reported():
    app, _, _ = build()
    (sub,) = app.post_json("/v1/batch", {"requests": [{"path": "/caf%C3%A9"}, ]}).json["responses"]
    assert (sub["status"], sub["path"]) == (404, "/v1/caf\u00e9")


# -- authentication below batch --------------------------------------------------------------------


def test_each_subrequest_authenticated_on_its_own(storage_url):
    app, inner, registry = build(storage_url, auth=True)
    alice = "basicauth:" + basicauth_user_id(SECRET, "alice", "pw")
    bob = "basicauth:" + basicauth_user_id(SECRET, "bob", "pw")
    body = {"requests": [
        create("from-alice"),
        {**create("from-bob"), "headers": {"Authorization": basic("bob:pw")}},
        {"path": "/echo", "headers": {"Authorization": "Basic !!"}},
    ]}
    responses = app.post_json("/v1/batch", body, headers={"Authorization": basic("alice:pw")}).json["responses"]
    assert [r["status"] for r in responses] == [201, 201, 200]
    assert responses[2]["body"]["user_id"] is None
    assert stored(registry, inner, alice) == ["from-alice"]
    assert stored(registry, inner, bob) == ["from-bob"]


def test_trusted_proxy_user_header_cannot_be_forged_in_a_subrequest():
    registry = Registry(load_settings({}, environ={}))
    settings = {"multiauth.policy.remoteuser.trusted_proxies": "10.0.0.1"}
    app = AuthMiddleware(validator(ItemsApp(registry, "x")), registry=registry, multiauth_policies=["remoteuser"],
                         settings=settings)
    app = webtest.TestApp(VersionShim(BatchMiddleware(app, registry=registry)))
    body = {"requests": [OK, {"path": "/echo", "headers": {"X-Remote-User": "admin"}}]}
    proxied = {"REMOTE_ADDR": "10.0.0.1"}
    responses = app.post_json("/v1/batch", body, headers={"X-Remote-User": "carol"}, extra_environ=proxied).json
    assert [r["body"]["user_id"] for r in responses["responses"]] == ["remoteuser:carol", None]
    responses = app.post_json("/v1/batch", body, extra_environ=proxied).json
    assert [r["body"]["user_id"] for r in responses["responses"]] == [None, None]


def verify(token):
    return {"tok-good": "gina"}.get(token)


def test_refused_token_in_a_subrequest_is_an_embedded_401():
    registry = Registry(load_settings({}, environ={}))
    settings = {"multiauth.policy.bearer.verifier": verify}
    app = AuthMiddleware(validator(ItemsApp(registry, "x")), registry=registry,
                         multiauth_policies=["basicauth", "bearer"], userid_hmac_secret=SECRET, settings=settings)
    app = webtest.TestApp(VersionShim(BatchMiddleware(app, registry=registry)))
    body = {"requests": [{"path": "/echo", "headers": {"Authorization": "Bearer tok-bad"}}, OK]}
    refused, accepted = app.post_json("/v1/batch", body, headers={"Authorization": "Bearer tok-good"}).json["responses"]
    assert refused["status"] == 401
    assert refused["headers"]["WWW-Authenticate"] == 'Basic realm="Realm", Bearer realm="Realm"'
    assert refused["body"]["errno"] == 104
    assert (accepted["status"], accepted["body"]["user_id"]) == (200, "bearer:gina")


def test_principals_looked_up_once_per_user_per_batch():
    app, _, registry = build(auth=True)

    class CountingPermission:
        calls: list = []

        def user_principals(self, user_id):
            self.calls.append(user_id)
            return set()

        def ping(self):
            return True

    permission = CountingPermission()
    registry.set_backend("permission", permission)
    body = {"requests": [OK, OK, {"path": "/echo", "headers": {"Authorization": basic("bob:pw")}}, OK]}
    app.post_json("/v1/batch", body, headers={"Authorization": basic("alice:pw")})
    assert len(permission.calls) == 2


def test_filter_factory():
    factory = batch_module.filter_factory({"registry_name": "test-batch-paste"}, batch_max_requests="3")
    registry = Registry(load_settings({}, environ={}))
    app = webtest.TestApp(VersionShim(factory(validator(ItemsApp(registry, "x")))))
    assert app.post_json("/v1/batch", {"requests": [OK] * 4}, status=400).json["message"] == (
        "Number of requests is limited to 3"
    )


# -- end to end: the default stack with the resources middleware ------------------------------------

ARTICLE_ID = "a1b2c3d4-0000-4000-8000-000000000001"


class NoteResource:
    """Factory of the per-user ``note`` resource whose hook fails on ``{"boom": true}``."""

    @staticmethod
    def build():
        from cliquet_wsgi.middlewares.resources import Resource

        class Note(Resource):
            name = "note"

            def process_record(self, new, old):
                if new.get("boom"):
                    raise RuntimeError("hook failure")
                return new

        return Note()


def not_found_app(environ, start_response):
    return reply(start_response, 404, {"app": "not found"})


def full_stack(storage_url="memory://"):
    from cliquet_wsgi.middlewares.resources import Resource
    from cliquet_wsgi.stack import wrap

    settings = {
        "userid_hmac_secret": SECRET,
        "storage_url": storage_url,
        "permission_url": "memory://",
        "article_create_principals": "system.Authenticated",
    }
    registry = Registry(load_settings(settings, environ={}))
    if storage_url.startswith("postgres"):
        registry.storage.initialize_schema()
    resources = [Resource("article", model="shareable"), NoteResource.build()]
    stack = wrap(not_found_app, resources, registry=registry, exclude=["request_log"], **settings)
    return webtest.TestApp(stack), registry


def user(name):
    """Credentials unique to this test run (fresh per-user partitions on a shared database)."""
    return basic(f"{name}:{RUN}")


RUN = uuid.uuid4().hex


# (method, path, body, user) — the S4 matrix on a shareable resource, in order.
MATRIX = [
    ("PUT", f"/articles/{ARTICLE_ID}", {"data": {"title": "t"}, "permissions": {"read": ["BOB"]}}, "alice"),
    ("GET", f"/articles/{ARTICLE_ID}", None, None),
    ("GET", f"/articles/{ARTICLE_ID}", None, "alice"),
    ("GET", f"/articles/{ARTICLE_ID}", None, "bob"),
    ("GET", f"/articles/{ARTICLE_ID}", None, "carol"),
    ("PATCH", f"/articles/{ARTICLE_ID}", {"data": {"title": "u"}}, "bob"),
    ("PATCH", f"/articles/{ARTICLE_ID}", {"data": {"title": "u"}}, "alice"),
    ("GET", "/articles", None, "bob"),
    ("GET", "/articles", None, "carol"),
    ("POST", "/articles", {"data": {"title": "anon"}}, None),
    ("DELETE", f"/articles/{ARTICLE_ID}", None, "carol"),
    ("DELETE", f"/articles/{ARTICLE_ID}", None, "alice"),
    ("GET", f"/articles/{ARTICLE_ID}", None, "bob"),
]


def matrix_requests():
    bob_id = "basicauth:" + basicauth_user_id(SECRET, "bob", RUN)
    for method, path, body, who in MATRIX:
        if body and "permissions" in body:
            body = {**body, "permissions": {"read": [bob_id]}}
        yield method, path, body, ({"Authorization": user(who)} if who else {})


def comparable(status, body):
    if isinstance(body, dict) and "data" in body:
        data = body["data"]
        strip = lambda r: {k: v for k, v in r.items() if k != "last_modified"}  # noqa: E731
        body = {**body, "data": [strip(r) for r in data] if isinstance(data, list) else strip(data)}
    return status, body


def test_permissions_identical_directly_and_through_batch():
    pytest.importorskip("cliquet_wsgi.middlewares.resources")
    direct_app, _ = full_stack()
    direct = []
    for method, path, body, headers in matrix_requests():
        response = direct_app.request(
            "/v1" + path, method=method, headers=headers, expect_errors=True,
            body=json.dumps(body).encode() if body else b"",
            content_type="application/json" if body else None,
        )
        direct.append(comparable(response.status_int, response.json))
    batch_app, _ = full_stack()
    requests = []
    for method, path, body, headers in matrix_requests():
        request = {"method": method, "path": path, "headers": headers}
        if body:
            request["body"] = body
        requests.append(request)
    # The batch request itself is anonymous: every sub-request carries its own credentials.
    responses = batch_app.post_json("/v1/batch", {"requests": requests}).json["responses"]
    via_batch = [comparable(r["status"], r["body"]) for r in responses]
    assert via_batch == direct
    statuses = [status for status, _ in direct]
    assert {200, 201, 401, 403} <= set(statuses), statuses


@pytest.fixture(params=BACKENDS)
def stack_storage_url(request):
    url = request.param
    if url.startswith("postgres") and not tcp_reachable("127.0.0.1", 5432):
        require_service("PostgreSQL", "127.0.0.1:5432 does not answer")
    return url


def notes(app, who):
    return sorted(r["n"] for r in app.get("/v1/notes", headers={"Authorization": user(who)}).json["data"])


def test_end_to_end_rollback_on_raised_error(stack_storage_url, caplog):
    pytest.importorskip("cliquet_wsgi.middlewares.resources")
    app, _ = full_stack(stack_storage_url)
    who = "dave-" + uuid.uuid4().hex[:8]
    body = {"defaults": {"method": "POST", "path": "/notes"},
            "requests": [{"body": {"data": {"n": 1}}}, {"body": {"data": {"n": 2}}},
                         {"body": {"data": {"n": 3, "boom": True}}}]}
    with caplog.at_level(logging.ERROR):
        response = app.post_json("/v1/batch", body, headers={"Authorization": user(who)}, status=500)
    assert response.json["errno"] == 999
    assert notes(app, who) == []
    body["requests"].pop()
    responses = app.post_json("/v1/batch", body, headers={"Authorization": user(who)}).json["responses"]
    assert [r["status"] for r in responses] == [201, 201]
    assert notes(app, who) == [1, 2]


def test_end_to_end_atomic_rolls_back_on_412(stack_storage_url):
    pytest.importorskip("cliquet_wsgi.middlewares.resources")
    app, _ = full_stack(stack_storage_url)
    who = "erin-" + uuid.uuid4().hex[:8]
    headers = {"Authorization": user(who)}
    existing = app.post_json("/v1/notes", {"data": {"n": 0}}, headers=headers).json["data"]
    body = {"atomic": True, "requests": [
        {"method": "POST", "path": "/notes", "body": {"data": {"n": 1}}},
        {"method": "PATCH", "path": f"/notes/{existing['id']}", "body": {"data": {"n": 9}},
         "headers": {"If-Match": '"1"'}},
    ]}
    response = app.post_json("/v1/batch", body, headers=headers, status=412)
    assert response.json["errno"] == 114
    assert [r["status"] for r in response.json["details"]["responses"]] == [201, 412]
    assert notes(app, who) == [0]
    # Without "atomic" the same batch keeps the create and embeds the 412.
    body["atomic"] = False
    responses = app.post_json("/v1/batch", body, headers=headers).json["responses"]
    assert [r["status"] for r in responses] == [201, 412]
    assert notes(app, who) == [0, 1]


def test_parsed_bodies_handed_over_both_ways():
    """Sub-requests get their body already parsed; a layer's response value is embedded unparsed."""
    registry = Registry(load_settings({}, environ={}))
    seen = {}

    def app(environ, start_response):
        seen["parsed"] = environ.get("cliquet.parsed_body")
        seen["input"] = environ["wsgi.input"].read()
        environ["cliquet.response_data"] = {"value": "as rendered"}
        start_response("200 OK", [("Content-Type", "application/json")])
        return [b'{"value": "as rendered"}']

    app_under_test = webtest.TestApp(BatchMiddleware(app, registry=registry))
    body = {"requests": [{"method": "POST", "path": "/things", "body": {"data": {"a": [1, {"b": 2}]}}}]}
    response = app_under_test.post_json("/v1/batch", body)
    assert seen == {"parsed": {"data": {"a": [1, {"b": 2}]}}, "input": b'{"data":{"a":[1,{"b":2}]}}'}
    assert response.json["responses"][0]["body"] == {"value": "as rendered"}


def test_parsed_body_is_a_copy_per_subrequest():
    registry = Registry(load_settings({}, environ={}))

    def mutating(environ, start_response):
        environ["cliquet.parsed_body"]["data"]["n"] += 1
        start_response("200 OK", [("Content-Type", "application/json")])
        return [json_dumps(environ["cliquet.parsed_body"]).encode()]

    app = webtest.TestApp(BatchMiddleware(mutating, registry=registry))
    body = {"defaults": {"method": "POST", "path": "/x", "body": {"data": {"n": 1}}}, "requests": [{}, {}]}
    responses = app.post_json("/v1/batch", body).json["responses"]
    assert [r["body"] for r in responses] == [{"data": {"n": 2}}, {"data": {"n": 2}}]


def test_legacy_error_pages_become_protocol_errors_as_outside_batch():
    app, _, _ = build()
    body = {"requests": [{"path": "/legacy/404"}, {"path": "/legacy/405"}, {"path": "/legacy/418"},
                         {"path": "/text"}]}
    missing, not_allowed, teapot, text = app.post_json("/v1/batch", body).json["responses"]
    error = {"code": 404, "errno": 111, "error": "Not Found",
             "message": "The resource you are looking for could not be found."}
    assert missing == {
        "status": 404, "path": "/v1/legacy/404",
        "headers": {"X-Kept": "1", "Content-Type": "application/json; charset=UTF-8",
                    "Content-Length": str(len(json_dumps(error)))},
        "body": error,
    }
    assert (not_allowed["status"], not_allowed["body"]) == (405, {
        "code": 405, "errno": 115, "error": "Method Not Allowed", "message": "Method not allowed on this endpoint."})
    assert (teapot["status"], teapot["body"]) == (418, {
        "code": 418, "errno": 999, "error": "I'm a Teapot", "message": "Legacy Reason"})
    assert (text["status"], text["body"]) == (200, "plain text")  # only error pages are replaced


def test_legacy_error_pages_kept_when_rewriting_is_off():
    app, _, _ = build(errors_rewrite_html=False)
    (sub,) = app.post_json("/v1/batch", {"requests": [{"path": "/legacy/404"}]}).json["responses"]
    assert (sub["status"], sub["body"], sub["headers"]["Content-Type"]) == (
        404, "<html><body>Error</body></html>", "text/html; charset=utf-8")


def test_hello_and_utility_endpoints_answer_inside_a_batch(tmp_path):
    """They are served above batch; the layers that serve them register them for batch."""
    from cliquet_wsgi.stack import wrap

    def legacy(environ, start_response):
        start_response("404 Not Found", [("Content-Type", "text/plain")])
        return [b"not here"]

    version_file = tmp_path / "version.json"
    version_file.write_text('{"version": "1.2.3"}')
    app = webtest.TestApp(wrap(legacy, userid_hmac_secret=SECRET, storage_url="memory://",
                               version_json_path=str(version_file)))
    headers = {"Authorization": basic("alice:pw")}
    requests = [{"path": "/"}, {"path": "/v1/"}, {"path": "/__heartbeat__"}, {"path": "/__lbheartbeat__"},
                {"path": "/__version__"}, {"path": "/", "method": "POST"}, {"path": "/__heartbeat__", "method": "PUT"}]
    responses = app.post_json("/v1/batch", {"requests": requests}, headers=headers).json["responses"]
    direct = app.get("/v1/", headers=headers)
    hello = {"status": 200, "path": "/v1/", "headers": {
        "Content-Type": "application/json; charset=UTF-8", "Content-Length": direct.headers["Content-Length"],
        "Vary": "Authorization"}, "body": direct.json}
    assert direct.json["user"]["id"].startswith("basicauth:")
    assert responses[0] == responses[1] == hello
    assert [(r["status"], r["path"], r["body"]) for r in responses[2:5]] == [
        (200, "/v1/__heartbeat__", {"storage": True}),
        (200, "/v1/__lbheartbeat__", {}),
        (200, "/v1/__version__", {"version": "1.2.3"}),
    ]
    method_error = {"code": 405, "errno": 115, "error": "Method Not Allowed",
                    "message": "Method not allowed on this endpoint."}
    assert [(r["status"], r["body"], r["headers"]["Allow"]) for r in responses[5:]] == [
        (405, method_error, "GET,HEAD"), (405, method_error, "GET,HEAD")]


def test_a_batch_of_reads_holds_no_write_lock(tmp_path):
    # A writer waiting for the lock would give up after 1 s and report it.
    app, _, _ = build(storage_url=f"sqlite:///{tmp_path}/reads.sqlite", storage_settings={"storage_pool_timeout": 1})
    responses = app.post_json("/v1/batch", {"requests": [{"path": "/items"}, {"path": "/write-elsewhere"}]}).json
    assert [(r["status"], r["body"]) for r in responses["responses"]] == [(200, {"data": []}), (200, {"written": True})]
