"""ErrorsMiddleware: exceptions, legacy error pages of real frameworks, body limit, bad encodings."""
from __future__ import annotations

import http
import io
import json
import logging
from wsgiref.validate import validator

import pytest
import webob
import webtest

from cliquet_wsgi import environ as keys
from cliquet_wsgi.errors import MESSAGES, BackendError, CliquetError, ConfigurationError, invalid_parameter
from cliquet_wsgi.middlewares.errors import ErrorsMiddleware, filter_factory
from cliquet_wsgi.registry import Registry
from cliquet_wsgi.settings import load_settings

JSON = "application/json; charset=UTF-8"
LINK = "https://issues.example.com/"


def ok_app(environ, start_response):
    start_response("200 OK", [("Content-Type", "application/json")])
    return [b'{"ok": true}']


def make(app, **settings):
    registry = Registry(load_settings(environ={}))
    return webtest.TestApp(validator(ErrorsMiddleware(validator(app), registry=registry, **settings)))


def body(error: dict) -> bytes:
    return json.dumps(error, separators=(",", ":")).encode()


def error_headers(payload: bytes, *extra):
    return [("Content-Type", JSON), ("Content-Length", str(len(payload))), *extra]


# -- apps that fail in every way a WSGI app can -------------------------------------


def raise_at_call(environ, start_response):
    raise RuntimeError("boom /etc/secret")


def raise_after_start(environ, start_response):
    start_response("200 OK", [("Content-Type", "application/json")])
    raise RuntimeError("boom /etc/secret")


def raise_in_generator(environ, start_response):
    start_response("200 OK", [("Content-Type", "application/json")])
    raise RuntimeError("boom /etc/secret")
    yield b"never"  # pragma: no cover


def raise_after_empty_chunk(environ, start_response):
    start_response("200 OK", [("Content-Type", "application/json")])
    yield b""
    raise RuntimeError("boom /etc/secret")


def raise_backend(environ, start_response):
    try:
        raise ConnectionError("db down at 10.0.0.1")
    except ConnectionError as exc:
        raise BackendError(exc) from exc


def raise_cliquet(environ, start_response):
    raise CliquetError(402)


def raise_validation(environ, start_response):
    raise invalid_parameter("querystring", "_limit", "_limit should be an integer")


INTERNAL = body({"code": 500, "errno": 999, "error": "Internal Server Error",
                 "message": MESSAGES["undefined"], "info": LINK})
BACKEND = body({"code": 503, "errno": 201, "error": "Service Unavailable", "message": MESSAGES["backend"]})


@pytest.mark.parametrize(
    "app, status, payload, extra",
    [
        pytest.param(raise_at_call, 500, INTERNAL, [], id="raise-at-call"),
        pytest.param(raise_after_start, 500, INTERNAL, [], id="raise-after-start_response"),
        pytest.param(raise_in_generator, 500, INTERNAL, [], id="raise-in-generator"),
        pytest.param(raise_after_empty_chunk, 500, INTERNAL, [], id="raise-after-empty-chunk"),
        pytest.param(raise_backend, 503, BACKEND, [("Retry-After", "7")], id="backend-error"),
        pytest.param(raise_cliquet, 402, body({"code": 402, "errno": 999, "error": "Payment Required"}), [],
                     id="cliquet-error-no-errno"),
        pytest.param(
            raise_validation, 400,
            body({"code": 400, "errno": 107, "error": "Invalid parameters", "message": "_limit should be an integer",
                  "details": [{"location": "querystring", "name": "_limit",
                               "description": "_limit should be an integer"}]}),
            [], id="cliquet-validation-error",
        ),
    ],
)
def test_exceptions_become_protocol_errors(app, status, payload, extra, caplog):
    caplog.set_level(logging.DEBUG)
    response = make(app, error_info_link=LINK, retry_after_seconds=7).get("/", expect_errors=True)
    assert response.status_int == status
    assert response.headerlist == error_headers(payload, *extra)
    assert response.body == payload


def test_unhandled_exception_is_logged_once_with_traceback_never_shown(caplog):
    # RELIABILITY S6 (in a resource, a filter and /batch: resources/test_stack.py).
    caplog.set_level(logging.DEBUG)
    response = make(raise_after_start).get("/", expect_errors=True)
    text = response.body.decode()
    for leak in ("Traceback", "RuntimeError", "/etc/secret", "boom", "File "):
        assert leak not in text
    records = [r for r in caplog.records if r.name == "cliquet_wsgi.errors"]
    assert [(r.levelno, r.exc_info[0]) for r in records] == [(logging.ERROR, RuntimeError)]
    assert "Traceback" in caplog.text and "/etc/secret" in caplog.text
    # No info link configured: no "info" key rather than an empty one.
    assert json.loads(response.body) == {"code": 500, "errno": 999, "error": "Internal Server Error",
                                         "message": MESSAGES["undefined"]}


def test_backend_error_logged_critical_with_original(caplog):
    caplog.set_level(logging.DEBUG)
    response = make(raise_backend).get("/", expect_errors=True)
    assert "10.0.0.1" not in response.text
    records = [r for r in caplog.records if r.name == "cliquet_wsgi.errors"]
    assert [(r.levelno, r.exc_info[0]) for r in records] == [(logging.CRITICAL, ConnectionError)]


def test_cliquet_errors_are_not_logged(caplog):
    caplog.set_level(logging.DEBUG)
    make(raise_cliquet).get("/", expect_errors=True)
    assert [r for r in caplog.records if r.name == "cliquet_wsgi.errors"] == []


def test_errno_is_set_in_environ():
    seen = {}

    def outer(environ, start_response):
        result = middleware(environ, start_response)
        seen["errno"] = environ.get(keys.ERRNO)
        return result

    middleware = ErrorsMiddleware(raise_backend, registry=Registry(load_settings(environ={})))
    webtest.TestApp(outer).get("/", expect_errors=True)
    assert seen == {"errno": 201}


def test_error_after_first_chunk_is_logged_and_propagates(caplog):
    caplog.set_level(logging.DEBUG)

    def streaming(environ, start_response):
        start_response("200 OK", [("Content-Type", "application/json")])
        yield b"["
        raise RuntimeError("late")

    middleware = ErrorsMiddleware(streaming, registry=Registry(load_settings(environ={})))
    request = webob.Request.blank("/")
    started = []
    iterable = middleware(request.environ, lambda status, headers, exc_info=None: started.append(status))
    assert started == ["200 OK"]
    chunks = iter(iterable)
    assert next(chunks) == b"["
    with pytest.raises(RuntimeError, match="late"):
        next(chunks)
    iterable.close()
    assert [r.levelno for r in caplog.records if r.name == "cliquet_wsgi.errors"] == [logging.ERROR]


def test_start_response_reraises_when_headers_already_sent_by_write():
    def legacy(environ, start_response):
        write = start_response("200 OK", [("Content-Type", "application/json")])
        write(b"[")
        raise RuntimeError("after write")

    middleware = ErrorsMiddleware(legacy, registry=Registry(load_settings(environ={})))
    sent = []

    def start_response(status, headers, exc_info=None):
        if exc_info is not None and sent:
            raise exc_info[1].with_traceback(exc_info[2])
        sent.append(status)
        return lambda data: sent.append(data)

    with pytest.raises(RuntimeError, match="after write"):
        middleware(webob.Request.blank("/").environ, start_response)
    assert sent == ["200 OK", b"["]


def test_write_callable_apps_still_work():
    def legacy(environ, start_response):
        write = start_response("200 OK", [("Content-Type", "application/json")])
        write(b'{"a":')
        return [b"1}"]

    response = make(legacy).get("/")
    assert response.body == b'{"a":1}'


class ClosingBody:
    def __init__(self, chunks, status="200 OK", content_type="application/json", fail=False):
        self.chunks, self.status, self.content_type, self.fail = chunks, status, content_type, fail
        self.closed = False

    def app(self, environ, start_response):
        start_response(self.status, [("Content-Type", self.content_type)])
        return self

    def __iter__(self):
        for chunk in self.chunks:
            yield chunk
        if self.fail:
            raise RuntimeError("in body")

    def close(self):
        self.closed = True


@pytest.mark.parametrize(
    "body_kwargs, status",
    [
        pytest.param({"chunks": [b"{}"]}, 200, id="success"),
        pytest.param({"chunks": [b"<h1>gone</h1>"], "status": "404 Not Found", "content_type": "text/html"}, 404,
                     id="rewritten-html"),
        pytest.param({"chunks": [], "fail": True}, 500, id="failing-body"),
    ],
)
def test_close_is_forwarded(body_kwargs, status):
    # RELIABILITY F11: close() reaches the app's body (over real sockets: tests/test_servers.py).
    inner = ClosingBody(**body_kwargs)
    response = make(inner.app).get("/", expect_errors=True)
    assert response.status_int == status
    assert inner.closed


# -- legacy error pages of real frameworks ---------------------------------------------

NOT_FOUND = {"code": 404, "errno": 111, "error": "Not Found", "message": MESSAGES["unknown_url"]}
NOT_ALLOWED = {"code": 405, "errno": 115, "error": "Method Not Allowed", "message": MESSAGES["method_not_allowed"]}
CRASHED = {"code": 500, "errno": 999, "error": "Internal Server Error", "message": MESSAGES["undefined"]}


def framework(name):
    module = __import__(f"tests.apps.{name}_app", fromlist=["application"])
    return module.application


@pytest.mark.parametrize(
    "name, method, path, status, payload, allow",
    [
        pytest.param("flask", "GET", "/nope", 404, NOT_FOUND, None, id="flask-404"),
        pytest.param("flask", "POST", "/only-get", 405, NOT_ALLOWED, "HEAD, GET, OPTIONS", id="flask-405"),
        pytest.param("flask", "GET", "/boom", 500, CRASHED, None, id="flask-500"),
        pytest.param("bottle", "GET", "/nope", 404, NOT_FOUND, None, id="bottle-404"),
        pytest.param("bottle", "POST", "/only-get", 405, NOT_ALLOWED, "GET", id="bottle-405"),
        pytest.param("bottle", "GET", "/boom", 500, CRASHED, None, id="bottle-500"),
        pytest.param("django", "GET", "/nope", 404, NOT_FOUND, None, id="django-404"),
        pytest.param("django", "POST", "/only-get", 405, NOT_ALLOWED, "GET", id="django-405"),
        pytest.param("django", "GET", "/boom", 500, CRASHED, None, id="django-500"),
    ],
)
def test_framework_error_pages_are_rewritten(name, method, path, status, payload, allow, caplog):
    caplog.set_level(logging.CRITICAL + 1)  # the frameworks log their own 500s
    response = make(framework(name)).request(path, method=method, expect_errors=True)
    assert response.status_int == status
    assert response.body == body(payload)
    assert response.headers["Content-Type"] == JSON
    assert response.headers["Content-Length"] == str(len(response.body))
    # Flask builds Allow from a set: compare the methods, not their order.
    assert sorted((response.headers.get("Allow") or "").split(", ")) == sorted((allow or "").split(", "))
    assert "Traceback" not in response.text and "exploded" not in response.text


@pytest.mark.parametrize("name", ["flask", "bottle", "django"])
def test_framework_success_passes_through(name):
    response = make(framework(name)).get("/hello")
    assert response.status_int == 200
    assert response.json == {"hello": name}


def static_app(status, headers, payload=b"<p>x</p>"):
    def app(environ, start_response):
        start_response(status, list(headers))
        return [payload]

    return app


@pytest.mark.parametrize(
    "status, headers, expected_status, payload, expected_extra",
    [
        pytest.param("401 Unauthorized", [("Content-Type", "text/html"), ("WWW-Authenticate", 'Basic realm="x"')],
                     401, {"code": 401, "errno": 104, "error": "Unauthorized", "message": MESSAGES["unauthorized"]},
                     [("WWW-Authenticate", 'Basic realm="x"')], id="401-keeps-www-authenticate"),
        pytest.param("403 Forbidden", [("Content-Type", "text/plain")],
                     403, {"code": 403, "errno": 121, "error": "Forbidden", "message": MESSAGES["forbidden"]},
                     [], id="403"),
        pytest.param("418 I'm a Teapot", [("Content-Type", "text/plain"), ("X-Kept", "1"),
                                          ("Content-Encoding", "identity")],
                     418, {"code": 418, "errno": 999, "error": "I'm a Teapot", "message": "I'm a Teapot"},
                     [("X-Kept", "1")], id="other-status-reason-phrase"),
        pytest.param("500 Internal Server Error", [("Content-Type", "text/html")],
                     500, {**CRASHED, "info": LINK}, [], id="500-info-link"),
        pytest.param("400 Bad Request", [], 400,
                     {"code": 400, "errno": 999, "error": "Bad Request", "message": "Bad Request"}, [],
                     id="no-content-type"),
    ],
)
def test_non_json_errors_are_rewritten(status, headers, expected_status, payload, expected_extra):
    if not headers:
        headers = [("Content-Type", "text/plain")]
        payload_app = static_app(status, headers, b"")
    else:
        payload_app = static_app(status, headers)
    response = make(payload_app, error_info_link=LINK).get("/", expect_errors=True)
    assert response.status_int == expected_status
    assert response.headerlist == error_headers(body(payload), *expected_extra)
    assert response.body == body(payload)


@pytest.mark.parametrize(
    "status, content_type, settings",
    [
        pytest.param("404 Not Found", "application/json", {}, id="json-kept"),
        pytest.param("409 Conflict", "application/problem+json", {}, id="problem-json-kept"),
        pytest.param("404 Not Found", "text/html", {"errors_rewrite_html": False}, id="rewrite-disabled"),
        pytest.param("404 Not Found", "text/html", {"errors_rewrite_html": "false"}, id="rewrite-disabled-string"),
        pytest.param("302 Found", "text/html", {}, id="redirect-kept"),
    ],
)
def test_responses_left_alone(status, content_type, settings):
    response = make(static_app(status, [("Content-Type", content_type)]), **settings).get("/", expect_errors=True)
    assert response.status == status
    assert response.headerlist == [("Content-Type", content_type), ("Content-Length", "8")]
    assert response.body == b"<p>x</p>"


# -- request body limit ----------------------------------------------------------------

TOO_LARGE = body({"code": 413, "errno": 113, "error": http.HTTPStatus(413).phrase, "message": MESSAGES["too_large"]})


def echo_app(environ, start_response):
    length = environ.get("CONTENT_LENGTH")
    data = environ["wsgi.input"].read(int(length)) if length else b""
    start_response("200 OK", [("Content-Type", "application/octet-stream")])
    return [data]


class ExplodingInput:
    """A wsgi.input that must not be touched."""

    def read(self, *args):
        raise AssertionError("the body was read")

    readline = readlines = read

    def __iter__(self):
        raise AssertionError("the body was read")


def test_content_length_over_limit_refused_without_reading():
    middleware = ErrorsMiddleware(echo_app, max_body_bytes=10, registry=Registry(load_settings(environ={})))
    request = webob.Request.blank("/", method="POST", environ={"CONTENT_LENGTH": "11", "wsgi.input": ExplodingInput()})
    response = request.get_response(validator(middleware))
    assert response.status_int == 413
    assert response.body == TOO_LARGE


@pytest.mark.parametrize(
    "length, status",
    [
        pytest.param("10", 200, id="at-limit"),
        pytest.param("99999999999999999999999", 413, id="huge"),
        pytest.param("abc", 400, id="not-a-number"),
        pytest.param("-1", 400, id="negative"),
    ],
)
def test_content_length_values(length, status):
    middleware = ErrorsMiddleware(echo_app, max_body_bytes=10, registry=Registry(load_settings(environ={})))
    request = webob.Request.blank("/", method="POST", body=b"0123456789")
    request.environ["CONTENT_LENGTH"] = length
    response = request.get_response(middleware)
    assert response.status_int == status
    assert response.body == (b"0123456789" if status == 200 else response.body)
    if status == 400:
        assert response.json["details"] == [
            {"location": "header", "name": "Content-Length", "description": "Invalid Content-Length header"}
        ]


class CountingInput(io.BytesIO):
    def __init__(self, data):
        super().__init__(data)
        self.consumed = 0

    def read(self, size=-1):
        chunk = super().read(size)
        self.consumed += len(chunk)
        return chunk


def chunked_request(data: bytes) -> webob.Request:
    stream = CountingInput(data)
    request = webob.Request.blank("/", method="POST", environ={"wsgi.input": stream, "wsgi.input_terminated": True})
    request.environ.pop("CONTENT_LENGTH", None)
    return request


@pytest.mark.parametrize(
    "reader",
    [
        pytest.param(lambda stream: stream.read(), id="read-all"),
        pytest.param(lambda stream: b"".join(iter(lambda: stream.read(3), b"")), id="read-chunks"),
        pytest.param(lambda stream: b"".join(stream), id="iterate-lines"),
        pytest.param(lambda stream: b"".join(stream.readlines()), id="readlines"),
    ],
)
def test_chunked_body_over_limit(reader):
    def app(environ, start_response):
        data = reader(environ["wsgi.input"])
        start_response("200 OK", [("Content-Type", "application/octet-stream")])
        return [data]

    middleware = ErrorsMiddleware(app, max_body_bytes=10, registry=Registry(load_settings(environ={})))
    request = chunked_request(b"line\n" * 1000)
    response = request.get_response(middleware)
    assert response.status_int == 413
    assert response.body == TOO_LARGE
    assert request.environ["wsgi.input"]._stream.consumed <= 11  # limit + 1 (RELIABILITY I4)


def test_chunked_body_under_limit_is_readable():
    def app(environ, start_response):
        data = environ["wsgi.input"].read()
        start_response("200 OK", [("Content-Type", "application/octet-stream")])
        return [data]

    middleware = ErrorsMiddleware(app, max_body_bytes=10, registry=Registry(load_settings(environ={})))
    response = chunked_request(b"0123456789").get_response(middleware)
    assert (response.status_int, response.body) == (200, b"0123456789")


def swallowing_app(environ, start_response):
    # Like Django: any exception of a view becomes the framework's 500 page.
    try:
        environ["wsgi.input"].read()
    except Exception:
        start_response("500 Internal Server Error", [("Content-Type", "text/html")])
        return [b"<h1>Server Error</h1>"]
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"ok"]


def test_swallowed_limit_error_still_413(caplog):
    middleware = ErrorsMiddleware(swallowing_app, max_body_bytes=10, registry=Registry(load_settings(environ={})))
    response = chunked_request(b"x" * 100).get_response(middleware)
    assert (response.status_int, response.body) == (413, TOO_LARGE)


INCOMPLETE = body({
    "code": 400, "errno": 107, "error": "Invalid parameters",
    "message": "body: Request body incomplete: the connection was lost while reading it",
    "details": [{"location": "body", "name": None,
                 "description": "Request body incomplete: the connection was lost while reading it"}],
})


class LostConnectionInput(io.BytesIO):
    """A server's wsgi.input whose client goes away after ``keep`` bytes (as gunicorn's reader fails)."""

    def __init__(self, data: bytes, keep: int, error: OSError) -> None:
        super().__init__(data[:keep])
        self.error = error

    def read(self, size=-1):
        chunk = super().read(size)
        if size is None or size < 0 or len(chunk) < size:
            raise self.error  # the rest never comes
        return chunk

    def readline(self, size=-1):
        line = super().readline(size)
        if not line:
            raise self.error
        return line


def reading_app(environ, start_response):
    data = environ["wsgi.input"].read()
    start_response("200 OK", [("Content-Type", "application/octet-stream")])
    return [data]


@pytest.mark.parametrize("chunked, app", [
    pytest.param(False, echo_app, id="content-length-read-length"),
    pytest.param(False, reading_app, id="content-length-read-all"),
    pytest.param(False, swallowing_app, id="content-length-swallowed"),
    pytest.param(True, reading_app, id="chunked-read-all"),
    pytest.param(True, swallowing_app, id="chunked-swallowed"),
])
@pytest.mark.parametrize("error", [
    pytest.param(ConnectionResetError(104, "Connection reset by peer"), id="reset"),
    pytest.param(TimeoutError("timed out"), id="timeout"),
    pytest.param(OSError("gunicorn NoMoreData is an IOError"), id="oserror"),
])
def test_client_lost_mid_upload_is_400_logged_at_info(chunked, app, error, caplog):
    caplog.set_level(logging.DEBUG)
    stream = LostConnectionInput(b"x" * 100, 10, error)
    environ = {"wsgi.input": stream}
    if chunked:
        environ["wsgi.input_terminated"] = True
    request = webob.Request.blank("/", method="POST", environ=environ)
    if chunked:
        request.environ.pop("CONTENT_LENGTH", None)
    else:
        request.environ["CONTENT_LENGTH"] = "100"
    middleware = ErrorsMiddleware(app, max_body_bytes=1000, registry=Registry(load_settings(environ={})))
    response = request.get_response(middleware)
    assert (response.status_int, response.headerlist, response.body) == (
        400, error_headers(INCOMPLETE), INCOMPLETE)
    # Nobody is there to read the answer: one INFO line, no error and no traceback (no Sentry event).
    records = [r for r in caplog.records if r.name == "cliquet_wsgi.errors"]
    assert [(r.levelno, r.getMessage(), r.exc_info) for r in records] == [
        (logging.INFO, f"Connection lost while reading the request body: {error!r}", None)]


def test_request_without_body_keeps_the_servers_input():
    seen = []

    def app(environ, start_response):
        seen.append(environ["wsgi.input"])
        return ok_app(environ, start_response)

    stream = io.BytesIO(b"")
    for length in ("", "0"):
        request = webob.Request.blank("/", environ={"wsgi.input": stream})
        request.environ["CONTENT_LENGTH"] = length
        # No limit: nothing to count, and no body to lose.
        request.get_response(ErrorsMiddleware(app, max_body_bytes=0, registry=Registry(load_settings(environ={}))))
    assert seen == [stream, stream]


def test_zero_means_no_limit():
    middleware = ErrorsMiddleware(echo_app, max_body_bytes=0, registry=Registry(load_settings(environ={})))
    response = webtest.TestApp(validator(middleware)).post("/", b"x" * 3_000_000)
    assert len(response.body) == 3_000_000


def test_default_limit_is_one_mebibyte():
    app = make(echo_app)
    assert app.post("/", b"x" * 1048576).status_int == 200
    response = app.post("/", b"x" * 1048577, expect_errors=True)
    assert (response.status_int, response.body) == (413, TOO_LARGE)


# -- encodings ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url, status, location",
    [
        pytest.param("/v1/%ff", 400, "path", id="path-ff"),
        pytest.param("/v1/buckets/%c0%af", 400, "path", id="path-overlong"),
        pytest.param("/v1/%e9t%e9", 400, "path", id="path-latin1"),
        pytest.param("/v1/?a=%ff", 400, "querystring", id="query-ff"),
        pytest.param("/v1/?a=%C3%28", 400, "querystring", id="query-bad-continuation"),
        pytest.param("/v1/?a=%e9%", 400, "querystring", id="query-truncated-escape"),
        pytest.param("/v1/caf%C3%A9?q=%C3%A9", 200, None, id="valid-utf8"),
        pytest.param("/v1/?a=%zz&b=%", 200, None, id="invalid-escapes-kept-literal"),
        pytest.param("/v1/%0d%0aSet-Cookie:x", 200, None, id="crlf-is-valid-utf8"),
    ],
)
def test_invalid_utf8_is_400(url, status, location):
    response = make(ok_app).get(url, expect_errors=True)
    assert response.status_int == status
    if location is not None:
        payload = body({"code": 400, "errno": 107, "error": "Invalid parameters",
                        "message": f"{location}: Invalid UTF-8 sequence",
                        "details": [{"location": location, "name": None, "description": "Invalid UTF-8 sequence"}]})
        assert response.headerlist == error_headers(payload)
        assert response.body == payload


# Both linters warn about methods they do not know; passing them on is the point here.
@pytest.mark.filterwarnings("ignore::wsgiref.validate.WSGIWarning", "ignore::webtest.lint.WSGIWarning")
@pytest.mark.parametrize("method", ["FOO", "TRACE", "CONNECT", "PROPFIND"])
def test_odd_methods_pass_through(method):
    response = make(ok_app).request("/", method=method)
    assert response.status_int == 200


# -- settings ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "settings",
    [
        pytest.param({"max_body_bytes": -1}, id="negative-limit"),
        pytest.param({"max_body_bytes": "1MB"}, id="limit-with-unit"),
        pytest.param({"retry_after_seconds": -5}, id="negative-retry-after"),
        pytest.param({"errors_rewrite_html": "maybe"}, id="bad-boolean"),
    ],
)
def test_bad_settings_fail_at_construction(settings):
    with pytest.raises(ConfigurationError):
        ErrorsMiddleware(ok_app, **settings)


def test_filter_factory_converts_strings():
    make_middleware = filter_factory({}, max_body_bytes="4", error_info_link=LINK, registry_name="test-errors")
    middleware = make_middleware(echo_app)
    assert isinstance(middleware, ErrorsMiddleware)
    assert (middleware.max_body_bytes, middleware.error_info_link) == (4, LINK)
    assert webtest.TestApp(middleware).post("/", b"12345", expect_errors=True).status_int == 413


@pytest.mark.parametrize(
    "inner, errno",
    [
        pytest.param(static_app("404 Not Found", [("Content-Type", "text/html")]), 111, id="rewrite"),
        pytest.param(raise_at_call, 999, id="exception"),
        pytest.param(ok_app, None, id="success"),
    ],
)
def test_errno_set_for_rewrites_and_exceptions(inner, errno):
    seen = {}

    def outer(environ, start_response):
        result = middleware(environ, start_response)
        seen["errno"] = environ.get(keys.ERRNO)
        return result

    middleware = ErrorsMiddleware(inner, registry=Registry(load_settings(environ={})))
    webtest.TestApp(validator(outer)).get("/", expect_errors=True)
    assert seen == {"errno": errno}


def test_body_without_start_response_is_500(caplog):
    caplog.set_level(logging.CRITICAL + 1)

    def broken(environ, start_response):
        return [b"no headers"]

    middleware = ErrorsMiddleware(broken, registry=Registry(load_settings(environ={})))
    response = webtest.TestApp(validator(middleware)).get("/", expect_errors=True)
    assert (response.status_int, response.json["errno"]) == (500, 999)
