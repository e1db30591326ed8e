"""VersionMiddleware alone (three-line app and real frameworks): prefix, redirects, hello, end of service."""
from __future__ import annotations

import datetime
import json
from wsgiref.validate import validator

import pytest
import webtest

from cliquet_wsgi import environ as keys
from cliquet_wsgi.errors import MESSAGES, ConfigurationError, unauthorized
from cliquet_wsgi.middlewares.version import VersionMiddleware, filter_factory
from cliquet_wsgi.registry import Registry
from cliquet_wsgi.settings import load_settings

JSON = "application/json; charset=UTF-8"
REDIRECT = [("Content-Type", "text/plain; charset=UTF-8"), ("Content-Length", "0")]


def app(environ, start_response):
    start_response("200 OK", [("Content-Type", "application/json")])
    return [json.dumps([environ["SCRIPT_NAME"], environ["PATH_INFO"]]).encode("latin-1")]


def registry():
    return Registry(load_settings(environ={}))


def make(inner=app, reg=None, **settings):
    return webtest.TestApp(validator(VersionMiddleware(validator(inner), registry=reg or registry(), **settings)))


def error(status, errno, message, phrase):
    return {"code": status, "errno": errno, "error": phrase, "message": message}


UNKNOWN_VERSION = error(404, 116, MESSAGES["unknown_version"], "Not Found")
UNKNOWN_URL = error(404, 111, MESSAGES["unknown_url"], "Not Found")


# -- routing ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "method, url, settings, location",
    [
        pytest.param("GET", "/articles?_since=42", {}, "http://localhost:80/v1/articles?_since=42", id="get"),
        pytest.param("GET", "/", {}, "http://localhost:80/v1/", id="root"),
        pytest.param("POST", "/articles", {}, "http://localhost:80/v1/articles", id="post"),
        pytest.param("OPTIONS", "/articles", {}, "http://localhost:80/v1/articles", id="options"),
        pytest.param("GET", "/v1", {}, "http://localhost:80/v1/", id="bare-prefix"),
        pytest.param("GET", "/v1x/y", {}, "http://localhost:80/v1/v1x/y", id="not-a-version-segment"),
        pytest.param("GET", "/a?b=1&c=%20d", {"http_scheme": "https", "http_host": "api.example.com"},
                     "https://api.example.com/v1/a?b=1&c=%20d", id="configured-host"),
        pytest.param("GET", "/x", {"http_api_version": "2.3"}, "http://localhost:80/v2/x", id="other-major"),
        pytest.param("GET", "/%0d%0aSet-Cookie:x", {}, "http://localhost:80/v1/%0D%0ASet-Cookie:x", id="crlf-path"),
        pytest.param("GET", "/%ff?a=%ff", {}, "http://localhost:80/v1/%FF?a=%ff", id="bad-utf8-kept-encoded"),
        pytest.param("GET", "/a%3Fb%25c", {}, "http://localhost:80/v1/a%3Fb%25c", id="escapes-survive"),
    ],
)
def test_redirects(method, url, settings, location):
    # RELIABILITY S8 (configured-host) and I6 (crlf-path): Location is built from settings and escaped.
    response = make(**settings).request(url, method=method)
    assert response.status == "307 Temporary Redirect"
    assert response.headerlist == [*REDIRECT, ("Location", location)]
    assert response.body == b""


@pytest.mark.parametrize(
    "url, settings, payload",
    [
        pytest.param("/v2/articles", {}, UNKNOWN_VERSION, id="other-version"),
        pytest.param("/v0/", {}, UNKNOWN_VERSION, id="v0"),
        pytest.param("/v10/x", {}, UNKNOWN_VERSION, id="v10-is-not-v1"),
        pytest.param("/v2", {}, UNKNOWN_VERSION, id="v2-bare"),
        pytest.param("/articles", {"version_prefix_redirect_enabled": False}, UNKNOWN_VERSION, id="redirect-disabled"),
        pytest.param("/v1", {"trailing_slash_redirect_enabled": False}, UNKNOWN_URL, id="bare-prefix-no-redirect"),
    ],
)
def test_not_found(url, settings, payload):
    seen = {}

    def outer(environ, start_response):
        result = middleware(environ, start_response)
        seen["errno"] = environ.get(keys.ERRNO)
        return result

    middleware = VersionMiddleware(app, registry=registry(), **settings)
    response = webtest.TestApp(validator(outer)).get(url, expect_errors=True)
    body = json.dumps(payload, separators=(",", ":")).encode()
    assert response.headerlist == [("Content-Type", JSON), ("Content-Length", str(len(body)))]
    assert response.body == body
    assert seen == {"errno": payload["errno"]}


def test_prefix_moved_into_script_name():
    seen = {}

    def inner(environ, start_response):
        seen.update({k: environ[k] for k in ("SCRIPT_NAME", "PATH_INFO", keys.PATH_ORIG, keys.VERSION_PREFIX)})
        return app(environ, start_response)

    response = make(inner).get("/v1/articles/42", extra_environ={"SCRIPT_NAME": "/api"})
    assert response.json == ["/api/v1", "/articles/42"]
    assert seen == {"SCRIPT_NAME": "/api/v1", "PATH_INFO": "/articles/42",
                    keys.PATH_ORIG: ("/api", "/v1/articles/42"), keys.VERSION_PREFIX: "/v1"}


def test_redirect_keeps_mount_point():
    response = make().get("/articles", extra_environ={"SCRIPT_NAME": "/api"})
    assert response.headers["Location"] == "http://localhost:80/api/v1/articles"


@pytest.mark.parametrize("path", ["/__heartbeat__", "/__lbheartbeat__", "/__version__"])
def test_utility_paths_pass_unprefixed(path):
    assert make().get(path).json == ["", path]


@pytest.mark.parametrize(
    "host, settings, location",
    [
        pytest.param("evil.example\r\nX: y", {}, "http://localhost/v1/x", id="crlf-host-ignored"),
        pytest.param("evil.example/path", {}, "http://localhost/v1/x", id="slash-host-ignored"),
        pytest.param("evil.example", {"http_host": "api.example.com"}, "http://api.example.com/v1/x",
                     id="configured-host-wins"),
        pytest.param("[::1]:8888", {}, "http://[::1]:8888/v1/x", id="ipv6-host"),
    ],
)
def test_location_host(host, settings, location):
    # RELIABILITY S8: a forged Host never reaches Location; http_host wins.
    middleware = VersionMiddleware(app, registry=registry(), **settings)
    environ = webtest.TestRequest.blank("/x").environ
    environ.update({"HTTP_HOST": host, "SERVER_NAME": "localhost", "SERVER_PORT": "80"})
    started = []
    middleware(environ, lambda status, headers, exc_info=None: started.append(dict(headers)))
    assert started[0]["Location"] == location


def test_crlf_in_querystring_is_encoded():
    middleware = VersionMiddleware(app, registry=registry())
    environ = webtest.TestRequest.blank("/x").environ
    environ["QUERY_STRING"] = "a=1\r\nSet-Cookie: x=1"
    started = []
    middleware(environ, lambda status, headers, exc_info=None: started.append(dict(headers)))
    assert started[0]["Location"] == "http://localhost:80/v1/x?a=1%0D%0ASet-Cookie:%20x=1"


# -- trailing slash ----------------------------------------------------------------------------


class NotFoundApp:
    """404 for every path ending with a slash; records whether its body was closed."""

    def __init__(self):
        self.closed = 0

    def __call__(self, environ, start_response):
        if environ["PATH_INFO"].endswith("/"):
            start_response("404 Not Found", [("Content-Type", "text/html")])
        else:
            start_response("200 OK", [("Content-Type", "application/json")])
        return self.Body(self)

    class Body:
        def __init__(self, owner):
            self.owner = owner

        def __iter__(self):
            yield b"{}"

        def close(self):
            self.owner.closed += 1


@pytest.mark.parametrize(
    "url, location",
    [
        pytest.param("/v1/articles/?a=1", "http://localhost:80/v1/articles?a=1", id="with-query"),
        pytest.param("/v1/articles//", "http://localhost:80/v1/articles", id="several-slashes"),
        pytest.param("/v1//", "http://localhost:80/v1", id="only-slashes"),
        pytest.param("/v1/a%0d%0a/", "http://localhost:80/v1/a%0D%0A", id="crlf"),
    ],
)
def test_trailing_slash_redirect_after_app_404(url, location):
    inner = NotFoundApp()
    response = make(inner).get(url)
    assert response.status_int == 307
    assert response.headerlist == [*REDIRECT, ("Location", location)]
    assert inner.closed == 1


def test_trailing_slash_served_by_app_is_kept():
    assert make().get("/v1/articles/").json == ["/v1", "/articles/"]


def test_trailing_slash_redirect_disabled():
    inner = NotFoundApp()
    response = make(inner, trailing_slash_redirect_enabled=False).get("/v1/articles/", expect_errors=True)
    assert (response.status_int, response.body) == (404, b"{}")
    assert inner.closed == 1


def test_trailing_slash_with_generator_app():
    def generator_app(environ, start_response):
        start_response("200 OK", [("Content-Type", "application/json")])
        yield b"[1]"

    assert make(generator_app).get("/v1/x/").body == b"[1]"


# -- real frameworks ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["flask", "bottle", "django"])
def test_frameworks_generate_prefixed_urls(name):
    module = __import__(f"tests.apps.{name}_app", fromlist=["application"])
    client = make(module.application)
    assert client.get("/v1/whoami").json == {"url": "/v1/whoami"}
    assert client.get("/v1/hello").json == {"hello": name}
    assert client.get("/hello").headers["Location"] == "http://localhost:80/v1/hello"
    # The framework's 404 for the slashed URL triggers the trailing-slash redirect.
    assert client.get("/v1/hello/").headers["Location"] == "http://localhost:80/v1/hello"


# -- hello ---------------------------------------------------------------------------------------

PROJECT = {"project_name": "myapp", "project_version": "1.3.0", "project_docs": "https://myapp.example/docs"}


def hello_body(**extra):
    body = {"project_name": "myapp", "project_version": "1.3.0", "http_api_version": "1.3",
            "project_docs": "https://myapp.example/docs", "cliquet_protocol_version": "2",
            "url": "https://api.example.com/v1/", "settings": {"batch_max_requests": 25, "readonly": False},
            "capabilities": {}}
    body.update(extra)
    return body


def hello_app(reg=None, **settings):
    return make(reg=reg, http_scheme="https", http_host="api.example.com", **PROJECT, **settings)


def test_hello():
    seen = {}

    def outer(environ, start_response):
        result = middleware(environ, start_response)
        seen["route"] = environ.get(keys.ROUTE_NAME)
        return result

    middleware = VersionMiddleware(app, registry=registry(), http_scheme="https", http_host="api.example.com",
                                   **PROJECT)
    response = webtest.TestApp(validator(outer)).get("/v1/")
    payload = json.dumps(hello_body(), separators=(",", ":")).encode()
    assert response.headerlist == [("Content-Type", JSON), ("Content-Length", str(len(payload))),
                                   ("Vary", "Authorization")]
    assert response.body == payload
    assert seen == {"route": "hello"}


def test_hello_url_from_request():
    assert make(**PROJECT).get("/v1/", extra_environ={"SCRIPT_NAME": "/api"}).json["url"] == (
        "http://localhost:80/api/v1/"
    )


def test_hello_head():
    response = hello_app().head("/v1/")
    assert response.body == b""
    assert response.headers["Content-Length"] == str(len(json.dumps(hello_body(), separators=(",", ":"))))


@pytest.mark.filterwarnings("ignore::wsgiref.validate.WSGIWarning", "ignore::webtest.lint.WSGIWarning")
@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "OPTIONS", "FOO"])
def test_hello_other_methods(method):
    # RELIABILITY I8 on hello.
    response = hello_app().request("/v1/", method=method, expect_errors=True)
    assert response.status_int == 405
    assert response.headers["Allow"] == "GET,HEAD"
    assert response.json == error(405, 115, MESSAGES["method_not_allowed"], "Method Not Allowed")


def test_hello_registry_content():
    reg = registry()
    reg.register_capability("history", "Track changes", "https://example.com/history", version="1.0")
    reg.register_public_setting("paginate_by", 20)
    body = hello_app(reg).get("/v1/").json
    assert body["capabilities"] == {
        "history": {"description": "Track changes", "url": "https://example.com/history", "version": "1.0"}
    }
    assert body["settings"] == {"batch_max_requests": 25, "readonly": False, "paginate_by": 20}


def test_hello_follows_registry_changes_after_first_use():
    reg = registry()
    client = hello_app(reg)
    assert client.get("/v1/").json == hello_body()
    reg.register_public_setting("paginate_by", 20)
    assert client.get("/v1/").json["settings"] == {"batch_max_requests": 25, "readonly": False, "paginate_by": 20}
    reg.register_capability("history", "Track changes", "https://example.com/history")
    capability = {"description": "Track changes", "url": "https://example.com/history"}
    assert client.get("/v1/").json["capabilities"] == {"history": capability}
    # Changed in place, behind the registry's back: still seen.
    reg.capabilities["history"]["url"] = "https://example.com/v2/history"
    assert client.get("/v1/").json["capabilities"]["history"]["url"] == "https://example.com/v2/history"


@pytest.mark.parametrize(
    "environ, url",
    [
        pytest.param({"HTTP_HOST": "a.example:8080"}, "http://a.example:8080/v1/", id="host"),
        pytest.param({"HTTP_HOST": "b.example"}, "http://b.example/v1/", id="other-host"),
        pytest.param({"HTTP_HOST": "evil\r\nx", "SERVER_NAME": "srv", "SERVER_PORT": "81"}, "http://srv:81/v1/",
                     id="forged-host-uses-server"),
        pytest.param({"HTTP_HOST": "a.example", "wsgi.url_scheme": "https"}, "https://a.example/v1/", id="scheme"),
        pytest.param({"HTTP_HOST": "a.example", "SCRIPT_NAME": "/api"}, "http://a.example/api/v1/", id="script"),
    ],
)
def test_hello_url_per_request_with_one_middleware(environ, url):
    # One middleware (hence one cache) serves all the cases, in both orders.
    client = make(**PROJECT)
    for _ in range(2):
        assert client.get("/v1/", extra_environ=environ).json["url"] == url
        assert client.get("/v1/", extra_environ={"HTTP_HOST": "c.example"}).json["url"] == "http://c.example/v1/"


def test_hello_user_from_environ():
    response = hello_app().get("/v1/", extra_environ={keys.USER_ID: "basicauth:abc",
                                                      keys.PRINCIPALS: ["system.Everyone", "basicauth:abc"]})
    assert response.json == hello_body(user={"id": "basicauth:abc", "principals": ["system.Everyone", "basicauth:abc"]})


def fail_auth(environ):
    raise unauthorized()


@pytest.mark.parametrize(
    "authenticator, user",
    [
        pytest.param(lambda environ: ("basicauth:xyz", ["system.Everyone", "system.Authenticated"]),
                     {"id": "basicauth:xyz", "principals": ["system.Everyone", "system.Authenticated"]},
                     id="authenticated"),
        pytest.param(lambda environ: None, None, id="anonymous"),
        pytest.param(fail_auth, None, id="bad-credentials"),
    ],
)
def test_hello_user_from_authenticator(authenticator, user):
    reg = registry()
    reg.authenticator = authenticator
    body = hello_app(reg).get("/v1/", headers={"Authorization": "Basic bWF0OjE="}).json
    assert body == (hello_body(user=user) if user else hello_body())


# -- end of service ----------------------------------------------------------------------------

FUTURE = (datetime.date.today() + datetime.timedelta(days=30)).isoformat()
PAST = (datetime.date.today() - datetime.timedelta(days=1)).isoformat()


@pytest.mark.parametrize(
    "settings, alert",
    [
        pytest.param({"eos": FUTURE}, {"code": "soft-eol", "message": None, "url": "https://myapp.example/docs"},
                     id="docs-url"),
        pytest.param({"eos": FUTURE, "eos_message": "Client is too old", "eos_url": "https://x/eol"},
                     {"code": "soft-eol", "message": "Client is too old", "url": "https://x/eol"}, id="message-url"),
    ],
)
@pytest.mark.parametrize("url", ["/v1/articles", "/articles", "/v2/x", "/v1/"])
def test_soft_eol_alert_on_every_response(settings, alert, url):
    response = make(**PROJECT, **settings).get(url, expect_errors=True)
    assert response.headers["Alert"] == json.dumps(alert, separators=(",", ":"))
    if url == "/v1/":
        assert response.json["eos"] == FUTURE


def test_inner_alert_is_kept():
    def inner(environ, start_response):
        start_response("200 OK", [("Content-Type", "application/json"), ("Alert", '{"code":"soft-eol"}')])
        return [b"{}"]

    assert make(inner, eos=FUTURE).get("/v1/x").headers.getall("Alert") == ['{"code":"soft-eol"}']


@pytest.mark.parametrize("url", ["/v1/articles", "/articles", "/v1/", "/__heartbeat__"])
def test_hard_eol(url):
    def never_called(environ, start_response):
        raise AssertionError("nothing is processed after end of service")

    response = make(never_called, eos=PAST, eos_message="Client is too old", eos_url="https://x/eol").get(
        url, expect_errors=True
    )
    payload = json.dumps(error(410, 202, MESSAGES["eos"], "Gone"), separators=(",", ":")).encode()
    assert response.headerlist == [
        ("Content-Type", JSON), ("Content-Length", str(len(payload))),
        ("Alert", '{"code":"hard-eol","message":"Client is too old","url":"https://x/eol"}'),
    ]
    assert response.body == payload


@pytest.mark.parametrize(
    "eos, shown",
    [
        pytest.param("2099-01-22", "2099-01-22", id="date"),
        pytest.param("2099-01-22T10:30:00", "2099-01-22T10:30:00", id="datetime"),
        pytest.param("2099-01-22T10:30:00+02:00", "2099-01-22T10:30:00+02:00", id="aware-datetime"),
        pytest.param(datetime.date(2099, 1, 22), "2099-01-22", id="date-object"),
    ],
)
def test_hello_shows_eos(eos, shown):
    assert make(eos=eos).get("/v1/").json["eos"] == shown


def test_eos_just_passed_with_time():
    past = (datetime.datetime.now() - datetime.timedelta(seconds=2)).isoformat()
    assert make(eos=past).get("/v1/", expect_errors=True).status_int == 410


# -- settings ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "settings",
    [
        pytest.param({"http_api_version": "1"}, id="api-version-no-minor"),
        pytest.param({"http_api_version": "v1.0"}, id="api-version-letters"),
        pytest.param({"project_version": "latest"}, id="project-version"),
        pytest.param({"http_scheme": "ftp"}, id="scheme"),
        pytest.param({"http_host": "evil.example\r\nX: y"}, id="host-crlf"),
        pytest.param({"http_host": "api.example.com/path"}, id="host-path"),
        pytest.param({"eos": "next tuesday"}, id="eos-not-a-date"),
        pytest.param({"eos_message": "bye"}, id="eos-message-without-eos"),
        pytest.param({"trailing_slash_redirect_enabled": "maybe"}, id="bad-boolean"),
    ],
)
def test_bad_settings_fail_at_construction(settings):
    with pytest.raises(ConfigurationError):
        VersionMiddleware(app, **settings)


def test_filter_factory():
    middleware = filter_factory({}, project_version="2.5.1", http_host="h.example",
                                version_prefix_redirect_enabled="no", registry_name="test-version")(app)
    client = webtest.TestApp(middleware)
    assert client.get("/x", expect_errors=True).status_int == 404
    assert client.get("/v2/").json["url"] == "http://h.example/v2/"
