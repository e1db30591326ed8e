"""BackoffMiddleware alone around a three-line app: Backoff, Retry-After, maintenance."""
from __future__ import annotations

import json
import sys
from wsgiref.validate import validator

import pytest
import webtest

from cliquet_wsgi import environ as keys
from cliquet_wsgi.errors import MESSAGES, ConfigurationError
from cliquet_wsgi.middlewares.backoff import BackoffMiddleware, filter_factory
from cliquet_wsgi.registry import Registry
from cliquet_wsgi.settings import load_settings

JSON = "application/json; charset=UTF-8"


def app(environ, start_response):
    start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", "2")])
    return [b"{}"]


def make(inner=app, **settings):
    registry = Registry(load_settings(environ={}))
    return webtest.TestApp(validator(BackoffMiddleware(validator(inner), registry=registry, **settings)))


def responding(status, headers=(("Content-Type", "application/json"), ("Content-Length", "0")), errno=None):
    def inner(environ, start_response):
        if errno is not None:
            environ[keys.ERRNO] = errno
        start_response(status, list(headers))
        return [b""]

    return inner


@pytest.mark.parametrize(
    "inner, settings, expected",
    [
        pytest.param(app, {}, [("Content-Type", "application/json"), ("Content-Length", "2")], id="nothing-by-default"),
        pytest.param(app, {"backoff": 10}, [("Content-Type", "application/json"), ("Content-Length", "2"),
                                            ("Backoff", "10")], id="backoff-on-success"),
        pytest.param(responding("304 Not Modified", ()), {"backoff": "10"}, [("Backoff", "10")], id="backoff-on-304"),
        pytest.param(responding("404 Not Found", errno=111), {"backoff": 0},
                     [("Content-Type", "application/json"), ("Content-Length", "0"), ("Backoff", "0")],
                     id="backoff-zero-on-error"),
        pytest.param(responding("200 OK", (("Content-Type", "text/plain"), ("Backoff", "99"))), {"backoff": 5},
                     [("Content-Type", "text/plain"), ("Backoff", "5")], id="backoff-replaces-inner"),
        pytest.param(responding("503 Service Unavailable", errno=201), {"retry_after_seconds": 12},
                     [("Content-Type", "application/json"), ("Content-Length", "0"), ("Retry-After", "12")],
                     id="retry-after-on-backend-503"),
        pytest.param(responding("503 Service Unavailable", (("Content-Type", "application/json"),
                                                            ("Retry-After", "3")), errno=201), {},
                     [("Content-Type", "application/json"), ("Retry-After", "3")], id="retry-after-kept"),
        pytest.param(responding("503 Service Unavailable"), {},
                     [("Content-Type", "application/json"), ("Content-Length", "0")], id="no-retry-after-view-503"),
        pytest.param(responding("500 Internal Server Error", errno=999), {},
                     [("Content-Type", "application/json"), ("Content-Length", "0")], id="no-retry-after-on-500"),
    ],
)
def test_headers(inner, settings, expected):
    # RELIABILITY L3: Backoff on success, 304 and errors (through the whole stack and /batch: resources/test_stack.py).
    response = make(inner, **settings).get("/v1/x", expect_errors=True)
    assert response.headerlist == expected


MAINTENANCE = json.dumps({"code": 503, "errno": 201, "error": "Service Unavailable", "message": MESSAGES["backend"]},
                         separators=(",", ":")).encode()


@pytest.mark.parametrize(
    "path, status",
    [
        pytest.param("/v1/articles", 503, id="api"),
        pytest.param("/", 503, id="root"),
        pytest.param("/v1/__heartbeat__", 200, id="heartbeat"),
        pytest.param("/__heartbeat__", 200, id="heartbeat-unprefixed"),
        pytest.param("/v2/__lbheartbeat__", 200, id="lbheartbeat-other-version"),
        pytest.param("/__lbheartbeat__", 200, id="lbheartbeat"),
        pytest.param("/v1/__heartbeat__x", 503, id="not-quite-heartbeat"),
        pytest.param("/v1/__version__", 503, id="version-not-exempt"),
    ],
)
def test_maintenance(path, status):
    seen = {}

    def outer(environ, start_response):
        result = middleware(environ, start_response)
        seen["errno"] = environ.get(keys.ERRNO)
        return result

    middleware = BackoffMiddleware(validator(app), registry=Registry(load_settings(environ={})),
                                   maintenance=True, backoff=60, retry_after_seconds=120)
    response = webtest.TestApp(validator(outer)).get(path, expect_errors=True)
    assert response.status_int == status
    if status == 503:
        assert response.headerlist == [("Content-Type", JSON), ("Content-Length", str(len(MAINTENANCE))),
                                       ("Retry-After", "120"), ("Backoff", "60")]
        assert response.body == MAINTENANCE
        assert seen == {"errno": 201}
    else:
        assert response.headerlist == [("Content-Type", "application/json"), ("Content-Length", "2"),
                                       ("Backoff", "60")]


@pytest.mark.filterwarnings("ignore::wsgiref.validate.WSGIWarning", "ignore::webtest.lint.WSGIWarning")
@pytest.mark.parametrize("method", ["FOO", "TRACE", "DELETE"])
def test_every_method_gets_backoff(method):
    # RELIABILITY L3: whatever the method.
    assert make(backoff=1).request("/", method=method).headers["Backoff"] == "1"


def test_exc_info_is_forwarded():
    def failing(environ, start_response):
        try:
            raise ValueError("x")
        except ValueError:
            start_response("500 Internal Server Error", [("Content-Type", "application/json")], sys.exc_info())
        return [b"{}"]

    calls = []
    middleware = BackoffMiddleware(failing, registry=Registry(load_settings(environ={})), backoff=3)
    middleware(webtest.TestRequest.blank("/").environ, lambda *args: calls.append(args))
    assert len(calls) == 1 and calls[0][1][-1] == ("Backoff", "3") and calls[0][2][0] is ValueError


@pytest.mark.parametrize(
    "settings",
    [
        pytest.param({"backoff": -1}, id="negative-backoff"),
        pytest.param({"backoff": "soon"}, id="backoff-not-a-number"),
        pytest.param({"retry_after_seconds": -30}, id="negative-retry-after"),
        pytest.param({"retry_after_seconds": None}, id="retry-after-none"),
        pytest.param({"maintenance": "perhaps"}, id="bad-boolean"),
    ],
)
def test_bad_settings_fail_at_construction(settings):
    with pytest.raises(ConfigurationError):
        BackoffMiddleware(app, **settings)


def test_filter_factory():
    middleware = filter_factory({}, backoff="7", maintenance="off", registry_name="test-backoff")(app)
    assert webtest.TestApp(middleware).get("/").headers["Backoff"] == "7"
