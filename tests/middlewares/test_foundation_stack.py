"""The five foundation middlewares together, in the STYLE order, around a three-line app.

cors -> backoff -> errors -> version -> heartbeat -> app: every response, errors,
redirects and 410 included, carries CORS and Backoff; bad input is never a 5xx.
"""
from __future__ import annotations

import datetime
import json
from urllib.parse import quote
from wsgiref.validate import validator

import pytest
import webob
import webtest
from hypothesis import HealthCheck, given, settings as hypothesis_settings, strategies as st

from cliquet_wsgi.errors import MESSAGES, BackendError
from cliquet_wsgi.middlewares.backoff import BackoffMiddleware
from cliquet_wsgi.middlewares.cors import CORSMiddleware
from cliquet_wsgi.middlewares.errors import ErrorsMiddleware
from cliquet_wsgi.middlewares.heartbeat import HeartbeatMiddleware
from cliquet_wsgi.middlewares.version import VersionMiddleware
from cliquet_wsgi.paste import middleware_kwargs
from cliquet_wsgi.registry import Registry
from cliquet_wsgi.settings import load_settings

ORIGIN = "https://app.example.org"
BASE = "Backoff, Retry-After, Alert, Content-Length, Vary, Content-Type"
LAYERS = [CORSMiddleware, BackoffMiddleware, ErrorsMiddleware, VersionMiddleware, HeartbeatMiddleware]


def app(environ, start_response):
    if environ["PATH_INFO"] == "/boom":
        raise RuntimeError("secret detail")
    if environ["PATH_INFO"] == "/backend":
        raise BackendError(ConnectionError("db down"))
    if environ["PATH_INFO"] == "/read":
        environ["wsgi.input"].read(1000)
    start_response("200 OK", [("Content-Type", "application/json")])
    return [json.dumps([environ["SCRIPT_NAME"], environ["PATH_INFO"]]).encode("latin-1")]


def stack(**settings):
    loaded = load_settings({"backoff": 10, "project_name": "demo", **settings}, environ={})
    registry = Registry(loaded)
    registry.register_heartbeat("storage", lambda: False)
    wrapped = validator(app)
    for cls in reversed(LAYERS):
        wrapped = validator(cls(wrapped, **middleware_kwargs(cls, loaded, registry)))
    return webtest.TestApp(wrapped)


def compact(value) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


def assert_decorated(response):
    assert response.headers["Access-Control-Allow-Origin"] == "*"
    assert response.headers["Access-Control-Expose-Headers"] == BASE
    assert response.headers["Backoff"] == "10"


@pytest.mark.parametrize(
    "method, url, status, errno, extra",
    [
        pytest.param("GET", "/v1/articles", 200, None, {}, id="success"),
        pytest.param("GET", "/v1/", 200, None, {"Vary": "Authorization"}, id="hello"),
        pytest.param("GET", "/articles?a=1", 307, None, {"Location": "http://localhost:80/v1/articles?a=1"},
                     id="redirect"),
        pytest.param("GET", "/v2/x", 404, 116, {}, id="unknown-version"),
        pytest.param("GET", "/v1/boom", 500, 999, {}, id="exception"),
        pytest.param("GET", "/v1/backend", 503, 201, {"Retry-After": "30"}, id="backend-error"),
        pytest.param("GET", "/v1/%ff", 400, 107, {}, id="bad-utf8-path"),
        pytest.param("GET", "/v1/x?q=%ff", 400, 107, {}, id="bad-utf8-query"),
        pytest.param("POST", "/v1/", 405, 115, {"Allow": "GET,HEAD"}, id="hello-post"),
        pytest.param("GET", "/v1/__heartbeat__", 503, None, {}, id="heartbeat-503"),
        pytest.param("GET", "/__lbheartbeat__", 200, None, {}, id="lbheartbeat-unprefixed"),
        pytest.param("GET", "/v1/__version__", 404, 111, {}, id="version-missing"),
    ],
)
def test_every_response_is_decorated(method, url, status, errno, extra):
    # RELIABILITY L3 and S5: Backoff and CORS on redirects, 4xx, 5xx and heartbeats.
    response = stack().request(url, method=method, headers={"Origin": ORIGIN}, expect_errors=True)
    assert response.status_int == status
    assert_decorated(response)
    for name, value in extra.items():
        assert response.headers[name] == value
    if errno is not None:
        assert response.json["errno"] == errno
    if status == 503 and errno is None:
        assert "Retry-After" not in response.headers  # heartbeat: a view's 503


def test_exception_body_is_generic():
    # RELIABILITY S6: the 500 body is generic.
    response = stack(error_info_link="https://x/issues").get("/v1/boom", expect_errors=True)
    assert response.body == compact({"code": 500, "errno": 999, "error": "Internal Server Error",
                                     "message": MESSAGES["undefined"], "info": "https://x/issues"})


def test_end_of_service_gets_cors_and_backoff():
    past = (datetime.date.today() - datetime.timedelta(days=1)).isoformat()
    response = stack(eos=past).get("/v1/articles", headers={"Origin": ORIGIN}, expect_errors=True)
    assert response.status_int == 410
    assert_decorated(response)
    assert json.loads(response.headers["Alert"])["code"] == "hard-eol"


def test_maintenance_spares_heartbeats():
    client = stack(maintenance=True)
    response = client.get("/v1/articles", headers={"Origin": ORIGIN}, expect_errors=True)
    assert (response.status_int, response.json["errno"], response.headers["Retry-After"]) == (503, 201, "30")
    assert_decorated(response)
    assert client.get("/__lbheartbeat__").status_int == 200


def test_preflight_on_unprefixed_url_is_not_redirected():
    response = stack().options("/articles", headers={"Origin": ORIGIN, "Access-Control-Request-Method": "GET"})
    assert (response.status_int, response.body) == (200, b"")
    # CORS answers preflights itself, above backoff: browsers consume them, clients never see them.
    assert "Backoff" not in response.headers


def test_body_over_limit_is_413_with_cors():
    request = webob.Request.blank("/v1/read", method="POST", headers={"Origin": ORIGIN},
                                  environ={"wsgi.input_terminated": True})
    request.body = b"x" * 100
    del request.environ["CONTENT_LENGTH"]
    response = request.get_response(stack(max_body_bytes=10).app)
    assert (response.status_int, response.json["errno"]) == (413, 113)
    assert response.headers["Access-Control-Allow-Origin"] == "*"


@pytest.mark.filterwarnings("ignore::wsgiref.validate.WSGIWarning", "ignore::webtest.lint.WSGIWarning")
@pytest.mark.parametrize("method", ["TRACE", "CONNECT", "FOO", "PROPFIND"])
@pytest.mark.parametrize("url", ["/v1/", "/v1/x", "/x", "/v2/"])
def test_odd_methods_never_5xx(method, url):
    response = stack().request(url, method=method, expect_errors=True)
    assert response.status_int < 500


@hypothesis_settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(path=st.binary(max_size=40), query=st.binary(max_size=20))
def test_arbitrary_bytes_never_5xx_nor_header_injection(path, query):
    # RELIABILITY I6: no path reaches a header as CR/LF, never a 5xx.
    client = stack()
    url = "/" + quote(path, safe="") + ("?" + quote(query, safe="=&") if query else "")
    for prefix in ("", "/v1"):
        response = client.get(prefix + url, headers={"Origin": ORIGIN}, expect_errors=True)
        assert response.status_int < 500
        for name, value in response.headerlist:
            assert "\r" not in value and "\n" not in value
        if response.status_int >= 400:
            assert set(response.json) >= {"code", "errno", "error", "message"}


@pytest.mark.parametrize(
    "url, method, status",
    [
        pytest.param("/v1/", "GET", 200, id="hello-get"),
        pytest.param("/v1/", "POST", 400, id="hello-post"),
        pytest.param("/v1/__heartbeat__", "HEAD", 200, id="heartbeat-head"),
        pytest.param("/__lbheartbeat__", "DELETE", 400, id="lbheartbeat-delete"),
        pytest.param("/v1/articles", "DELETE", 200, id="unknown-endpoint-default-methods"),
    ],
)
def test_preflight_knows_hello_and_heartbeat_methods(url, method, status):
    headers = {"Origin": ORIGIN, "Access-Control-Request-Method": method}
    response = stack().options(url, headers=headers, expect_errors=True)
    assert response.status_int == status
    if status == 200 and url != "/v1/articles":
        assert response.headers["Access-Control-Allow-Methods"] == "GET,HEAD"
