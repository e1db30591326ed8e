"""CORSMiddleware alone around a three-line app: actual requests, preflight, policy, settings.

RELIABILITY S5 is covered here: an origin outside the list gets no ACAO
(``test_actual_requests``: not-allowed-no-acao, case-sensitive, crlf-origin-refused);
credentials are never advertised, an inner ``Access-Control-Allow-Credentials`` or
ACAO is replaced (``test_inner_cors_headers_are_replaced_never_credentials``);
``null`` is never allowed (null-origin-never, preflight both-wrong, settings
null-origin); ``Vary: Origin`` whenever ACAO is not ``*``
(``test_vary_origin_whenever_acao_is_not_star``); preflight is answered without
the app, hence without auth, and with an empty body
(``test_preflight_answered_without_the_app``); CORS on 4xx/5xx
(``test_cors_on_every_status``, and tests/middlewares/test_foundation_stack.py).
"""
from __future__ import annotations

from wsgiref.validate import validator

import pytest
import webtest

from cliquet_wsgi import environ as keys
from cliquet_wsgi.errors import ConfigurationError
from cliquet_wsgi.middlewares.cors import CORSMiddleware, filter_factory
from cliquet_wsgi.registry import Registry
from cliquet_wsgi.settings import load_settings

BASE = "Backoff, Retry-After, Alert, Content-Length, Vary, Content-Type"
JSON = "application/json; charset=UTF-8"


def app(environ, start_response):
    start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", "2")])
    return [b"{}"]


def make(inner=app, registry=None, **settings):
    registry = registry or Registry(load_settings(environ={}))
    return webtest.TestApp(validator(CORSMiddleware(validator(inner), registry=registry, **settings)))


def status_app(status, headers=()):
    def inner(environ, start_response):
        start_response(status, list(headers))
        return [b""]

    return inner


# -- actual requests --------------------------------------------------------------------


def call_directly(inner, origins: str, origin: str | None) -> tuple[list, bytes]:
    """``([(status, headers)], body)`` of a GET through CORS, without webtest's linter (it refuses CR/LF origins)."""
    middleware = CORSMiddleware(inner, registry=Registry(load_settings(environ={})), cors_origins=origins)
    environ = webtest.TestRequest.blank("/v1/x").environ
    if origin is not None:
        environ["HTTP_ORIGIN"] = origin
    started = []
    body = middleware(environ, lambda status, headerlist, exc_info=None: started.append((status, headerlist)))
    return started, b"".join(body)


@pytest.mark.parametrize(
    "origins, origin, expected",
    [
        pytest.param("*", None, [("Vary", "Origin")], id="no-origin"),
        pytest.param("*", "https://a.example", [("Access-Control-Allow-Origin", "*"),
                                                ("Access-Control-Expose-Headers", BASE)], id="star"),
        pytest.param("https://*.example", "https://a.example",
                     [("Vary", "Origin"), ("Access-Control-Allow-Origin", "https://a.example"),
                      ("Access-Control-Expose-Headers", BASE)], id="glob-echoes-origin"),
        pytest.param("https://*.example", "https://evil.test",
                     [("Vary", "Origin"), ("Access-Control-Expose-Headers", BASE)], id="not-allowed-no-acao"),
        pytest.param("https://*.example", None, [("Vary", "Origin")], id="vary-without-origin"),
        pytest.param("https://a.example", "https://A.example",
                     [("Vary", "Origin"), ("Access-Control-Expose-Headers", BASE)], id="case-sensitive"),
        pytest.param("*", "null", [("Vary", "Origin"), ("Access-Control-Expose-Headers", BASE)],
                     id="null-origin-never"),
        pytest.param("https://*", "https://x\r\nSet-Cookie: a=1",
                     [("Vary", "Origin"), ("Access-Control-Expose-Headers", BASE)], id="crlf-origin-refused"),
        pytest.param("https://a.example http://b.example", "http://b.example",
                     [("Vary", "Origin"), ("Access-Control-Allow-Origin", "http://b.example"),
                      ("Access-Control-Expose-Headers", BASE)], id="second-of-list"),
    ],
)
def test_actual_requests(origins, origin, expected):
    headers = {"Origin": origin} if origin is not None else {}
    started, body = call_directly(app, origins, origin)
    assert body == b"{}"
    assert started == [("200 OK", [("Content-Type", "application/json"), ("Content-Length", "2"), *expected])]
    if "\r" not in (origin or ""):
        response = make(cors_origins=origins).get("/v1/x", headers=headers)
        assert response.headerlist == started[0][1]


@pytest.mark.parametrize(
    "inner",
    [
        pytest.param(status_app("404 Not Found", [("Content-Type", JSON)]), id="404"),
        pytest.param(status_app("500 Internal Server Error", [("Content-Type", JSON)]), id="500"),
        pytest.param(status_app("307 Temporary Redirect", [("Content-Type", "text/plain"), ("Location", "/v1/")]),
                     id="redirect"),
        pytest.param(status_app("304 Not Modified"), id="304"),
        pytest.param(status_app("410 Gone", [("Content-Type", JSON)]), id="410"),
        pytest.param(status_app("503 Service Unavailable", [("Content-Type", JSON)]), id="503"),
    ],
)
def test_cors_on_every_status(inner):
    response = make(inner).get("/anything", headers={"Origin": "https://a.example"}, expect_errors=True)
    assert response.headers["Access-Control-Allow-Origin"] == "*"
    assert response.headers["Access-Control-Expose-Headers"] == BASE


@pytest.mark.parametrize(
    "origins, origin, expected",
    [
        pytest.param("*", "https://a.example", [("Access-Control-Allow-Origin", "*"),
                                                ("Access-Control-Expose-Headers", BASE)], id="star"),
        pytest.param("https://*.example", "https://a.example",
                     [("Vary", "Origin"), ("Access-Control-Allow-Origin", "https://a.example"),
                      ("Access-Control-Expose-Headers", BASE)], id="glob"),
        pytest.param("https://*.example", "https://evil.test",
                     [("Vary", "Origin"), ("Access-Control-Expose-Headers", BASE)], id="refused"),
        pytest.param("*", "null", [("Vary", "Origin"), ("Access-Control-Expose-Headers", BASE)], id="null"),
    ],
)
def test_origin_answers_stay_right_beyond_the_origin_cache(origins, origin, expected):
    # 1,500 distinct forged origins fill the per-middleware cache; answers must not change after it is full.
    client = make(cors_origins=origins)
    if origins == "*":
        forged_headers = [("Access-Control-Allow-Origin", "*"), ("Access-Control-Expose-Headers", BASE)]
    else:
        forged_headers = [("Vary", "Origin"), ("Access-Control-Expose-Headers", BASE)]
    for number in range(1500):
        response = client.get("/", headers={"Origin": f"https://forged-{number}.test"})
        assert response.headerlist[2:] == forged_headers
    for _ in range(2):  # cached or not, the same answer
        response = client.get("/", headers={"Origin": origin})
        assert response.headerlist[2:] == expected


@pytest.mark.parametrize(
    "origins, origin, expected",
    [
        pytest.param("*", None, [("Vary", "Accept, Origin")], id="star-no-origin"),
        pytest.param("*", "https://a.example", [("Vary", "Accept"), ("Access-Control-Allow-Origin", "*"),
                                                ("Access-Control-Expose-Headers", BASE)], id="star-allowed"),
        pytest.param("*", "null", [("Vary", "Accept, Origin"), ("Access-Control-Expose-Headers", BASE)],
                     id="star-null"),
        pytest.param("*", "https://a.example\x7f", [("Vary", "Accept, Origin"),
                                                    ("Access-Control-Expose-Headers", BASE)], id="star-malformed"),
        pytest.param("https://a.example", None, [("Vary", "Accept, Origin")], id="list-no-origin"),
        pytest.param("https://a.example", "https://a.example",
                     [("Vary", "Accept, Origin"), ("Access-Control-Allow-Origin", "https://a.example"),
                      ("Access-Control-Expose-Headers", BASE)], id="list-echoed"),
        pytest.param("https://a.example", "https://evil.example",
                     [("Vary", "Accept, Origin"), ("Access-Control-Expose-Headers", BASE)], id="list-refused"),
    ],
)
@pytest.mark.parametrize("status", ["200 OK", "304 Not Modified", "404 Not Found", "500 Internal Server Error"])
def test_vary_origin_whenever_acao_is_not_star(origins, origin, expected, status):
    """S5: a response a cache may not give to another origin says so, whatever its status.

    With ``*``, a request without Origin (or with a refused one) gets no ACAO:
    served from a cache to a cross-origin request, the browser would refuse
    it, unless ``Vary: Origin`` keeps the cache from doing so.
    """
    started, body = call_directly(status_app(status, [("Content-Length", "0"), ("Vary", "Accept")]), origins, origin)
    assert body == b""
    assert started == [(status, [("Content-Length", "0"), *expected])]


def test_inner_layers_extend_exposed_headers():
    def inner(environ, start_response):
        environ[keys.EXPOSE_HEADERS].extend(["Next-Page", "ETag", "Vary", "Bad Header\r\n"])
        start_response("200 OK", [("Content-Type", "application/json")])
        return [b"{}"]

    response = make(inner).get("/", headers={"Origin": "https://a.example"})
    assert response.headers["Access-Control-Expose-Headers"] == BASE + ", Next-Page, ETag"


def test_inner_cors_headers_are_replaced_never_credentials():
    inner = status_app("200 OK", [("Content-Type", JSON), ("Access-Control-Allow-Origin", "https://evil.test"),
                                  ("Access-Control-Allow-Credentials", "true"), ("Vary", "Accept"),
                                  ("Content-Length", "0")])
    response = make(inner, cors_origins="https://a.example").get("/", headers={"Origin": "https://a.example"})
    assert response.headerlist == [
        ("Content-Type", JSON), ("Vary", "Accept, Origin"), ("Content-Length", "0"),
        ("Access-Control-Allow-Origin", "https://a.example"), ("Access-Control-Expose-Headers", BASE),
    ]


def test_plain_options_reaches_the_app():
    response = make().options("/v1/x")
    assert (response.status_int, response.body) == (200, b"{}")


# -- preflight ----------------------------------------------------------------------------


def preflight_headers(origin="https://a.example", method="POST", headers=None):
    result = {}
    if origin is not None:
        result["Origin"] = origin
    if method is not None:
        result["Access-Control-Request-Method"] = method
    if headers is not None:
        result["Access-Control-Request-Headers"] = headers
    return result


def never_called(environ, start_response):
    raise AssertionError("the app must not see a preflight")


def test_preflight_answered_without_the_app():
    response = make(never_called).options("/v1/articles", headers=preflight_headers(headers="authorization, content-type"))
    assert response.status_int == 200
    assert response.body == b""
    assert response.headerlist == [
        ("Content-Type", "text/plain; charset=UTF-8"), ("Content-Length", "0"),
        ("Access-Control-Allow-Origin", "*"), ("Access-Control-Expose-Headers", BASE),
        ("Access-Control-Allow-Methods", "GET,HEAD,POST,PUT,PATCH,DELETE"),
        ("Access-Control-Allow-Headers", "authorization, content-type"),
        ("Access-Control-Max-Age", "3600"),
    ]


def test_preflight_uses_endpoint_methods_without_version_prefix():
    registry = Registry(load_settings(environ={}))
    seen = []

    def resolver(path):
        seen.append(path)
        return ["GET", "HEAD", "OPTIONS"] if path == "/articles" else None

    registry.register_endpoint_methods(resolver)
    app_ = make(never_called, registry=registry, cors_origins="https://a.example", cors_max_age_seconds=0)
    response = app_.options("/v1/articles", headers=preflight_headers(method="GET"))
    assert response.headerlist == [
        ("Content-Type", "text/plain; charset=UTF-8"), ("Content-Length", "0"), ("Vary", "Origin"),
        ("Access-Control-Allow-Origin", "https://a.example"), ("Access-Control-Expose-Headers", BASE),
        ("Access-Control-Allow-Methods", "GET,HEAD,OPTIONS"),
    ]
    refused = app_.options("/v1/articles", headers=preflight_headers(method="POST"), expect_errors=True)
    assert refused.status_int == 400
    assert refused.json["message"] == "Access-Control-Request-Method in header: Method not allowed"
    # Unknown endpoints fall back to the default set; v10 is a different segment than v1.
    assert app_.options("/v10/x", headers=preflight_headers(method="PATCH")).status_int == 200
    assert seen == ["/articles", "/articles", "/x"]


def error(details):
    entries = sorted(details, key=lambda d: str(d["name"]))
    first = entries[0]
    message = (first["description"] if first["name"] in first["description"]
               else f"{first['name']} in {first['location']}: {first['description']}")
    return {"code": 400, "errno": 107, "error": "Invalid parameters", "message": message, "details": entries}


def entry(name, description):
    return {"location": "header", "name": name, "description": description}


@pytest.mark.parametrize(
    "headers, origins, details, acao",
    [
        pytest.param(preflight_headers(origin=None), "*",
                     [entry("Origin", "this header is mandatory")], None, id="missing-origin"),
        pytest.param(preflight_headers(method=None), "*",
                     [entry("Access-Control-Request-Method", "this header is mandatory")], "*", id="missing-method"),
        pytest.param(preflight_headers(origin="https://evil.test"), "https://a.example",
                     [entry("Origin", "https://evil.test not allowed")], None, id="origin-not-allowed"),
        pytest.param(preflight_headers(method="TRACE"), "*",
                     [entry("Access-Control-Request-Method", "Method not allowed")], "*", id="method-not-allowed"),
        pytest.param(preflight_headers(origin="null", method="FOO"), "*",
                     [entry("Origin", "null not allowed"), entry("Access-Control-Request-Method", "Method not allowed")],
                     None, id="both-wrong"),
    ],
)
def test_preflight_errors(headers, origins, details, acao):
    seen = {}

    def outer(environ, start_response):
        result = middleware(environ, start_response)
        seen["errno"] = environ.get(keys.ERRNO)
        return result

    middleware = CORSMiddleware(never_called, registry=Registry(load_settings(environ={})), cors_origins=origins)
    response = webtest.TestApp(validator(outer)).options("/v1/x", headers=headers, expect_errors=True)
    assert response.status_int == 400
    assert response.json == error(details)
    assert response.headers.get("Access-Control-Allow-Origin") == acao
    assert seen == {"errno": 107}


def test_preflight_allow_headers_keeps_only_header_names():
    response = make(never_called).options(
        "/", headers=preflight_headers(headers="x-ok, bad header, , x:colon,Authorization")
    )
    assert response.headers["Access-Control-Allow-Headers"] == "x-ok, Authorization"


def test_preflight_on_unprefixed_path_is_answered():  # decision 26
    assert make(never_called).options("/articles", headers=preflight_headers()).status_int == 200


# -- settings ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "settings",
    [
        pytest.param({"cors_origins": "null"}, id="null-origin"),
        pytest.param({"cors_origins": ["https://a.example", "null"]}, id="null-in-list"),
        pytest.param({"cors_origins": ["https://a\r\n.example"]}, id="control-chars"),
        pytest.param({"cors_max_age_seconds": -1}, id="negative-max-age"),
        pytest.param({"cors_max_age_seconds": "an hour"}, id="max-age-not-a-number"),
    ],
)
def test_bad_settings_fail_at_construction(settings):
    with pytest.raises(ConfigurationError):
        CORSMiddleware(app, **settings)


def test_filter_factory():
    middleware = filter_factory({}, cors_origins="https://a.example https://b.example",
                                cors_max_age_seconds="", registry_name="test-cors")(app)
    response = webtest.TestApp(middleware).options("/", headers=preflight_headers(origin="https://b.example"))
    assert response.headers["Access-Control-Allow-Origin"] == "https://b.example"
    assert "Access-Control-Max-Age" not in response.headers
