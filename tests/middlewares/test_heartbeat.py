"""HeartbeatMiddleware alone around a three-line app: heartbeat, lbheartbeat, __version__."""
from __future__ import annotations

import json
import logging
import threading
from wsgiref.validate import validator

import pytest
import webtest

from cliquet_wsgi import environ as keys
from cliquet_wsgi.errors import MESSAGES, ConfigurationError
from cliquet_wsgi.middlewares.heartbeat import HeartbeatMiddleware, filter_factory
from cliquet_wsgi.middlewares.version import VersionMiddleware
from cliquet_wsgi.registry import Registry
from cliquet_wsgi.settings import load_settings

JSON = "application/json; charset=UTF-8"


def app(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"app"]


def registry(**checks):
    reg = Registry(load_settings(environ={}))
    for name, check in checks.items():
        reg.register_heartbeat(name, check)
    return reg


def make(reg=None, **settings):
    middleware = HeartbeatMiddleware(validator(app), registry=reg or registry(), **settings)
    return webtest.TestApp(validator(middleware))


def compact(value) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


def boom():
    raise ConnectionError("cache at 10.0.0.1 unreachable")


@pytest.mark.parametrize(
    "checks, status, report",
    [
        pytest.param({}, 200, {}, id="no-checks"),
        pytest.param({"storage": lambda: True, "plugin": lambda: None}, 200, {"storage": True, "plugin": None},
                     id="healthy-and-not-applicable"),
        pytest.param({"storage": lambda: True, "cache": lambda: False}, 503, {"storage": True, "cache": False},
                     id="one-unhealthy"),
        pytest.param({"storage": lambda: True, "cache": boom}, 503, {"storage": True, "cache": False},
                     id="raising-check"),
        pytest.param({"odd": lambda: 0, "truthy": lambda: "yes"}, 503, {"odd": False, "truthy": True},
                     id="values-coerced-to-bool"),
    ],
)
def test_heartbeat(checks, status, report, caplog):
    caplog.set_level(logging.DEBUG)
    response = make(registry(**checks)).get("/__heartbeat__", expect_errors=True)
    assert response.status_int == status
    # A plain status map: no error object, no Retry-After (§6).
    assert response.headerlist == [("Content-Type", JSON), ("Content-Length", str(len(compact(report))))]
    assert response.body == compact(report)
    failures = [r for r in caplog.records if r.name == "cliquet_wsgi.middlewares.heartbeat"]
    assert [r.exc_info[0] for r in failures] == ([ConnectionError] if boom in checks.values() else [])


def test_checks_run_concurrently_under_the_global_timeout(caplog):
    caplog.set_level(logging.DEBUG)
    release = threading.Event()
    # "a", "b" and "c" can only pass the barrier together: run one after the
    # other, each would wait until the barrier breaks (5 s) and report false.
    together = threading.Barrier(3, timeout=5)

    def concurrent():
        together.wait()
        return True

    def hung():
        release.wait(30)
        return True

    reg = registry(a=concurrent, b=concurrent, c=concurrent, d=hung)
    # "d" answers "true" only once released, after the response: false means it was cut at the deadline.
    response = make(reg, heartbeat_timeout_seconds=1).get("/__heartbeat__", expect_errors=True)
    release.set()
    assert response.status_int == 503
    assert response.json == {"a": True, "b": True, "c": True, "d": False}
    assert any("'d' did not finish" in r.getMessage() for r in caplog.records)


def test_backend_pings_are_checks():
    class Backend:
        def __init__(self, healthy):
            self.healthy = healthy

        def ping(self):
            return self.healthy

    reg = registry()
    reg.set_backend("storage", Backend(True))
    reg.set_backend("cache", Backend(False))
    response = make(reg).get("/__heartbeat__", expect_errors=True)
    assert (response.status_int, response.json) == (503, {"storage": True, "cache": False})


@pytest.mark.parametrize("method", ["GET", "HEAD"])
def test_lbheartbeat(method):
    response = make(registry(cache=lambda: False)).request("/__lbheartbeat__", method=method)
    assert response.headerlist == [("Content-Type", JSON), ("Content-Length", "2")]
    assert response.body == (b"{}" if method == "GET" else b"")


@pytest.mark.filterwarnings("ignore::wsgiref.validate.WSGIWarning", "ignore::webtest.lint.WSGIWarning")
@pytest.mark.parametrize("path", ["/__heartbeat__", "/__lbheartbeat__", "/__version__"])
@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "FOO"])
def test_other_methods(path, method):
    # RELIABILITY I8 on the utility endpoints.
    response = make().request(path, method=method, expect_errors=True)
    assert response.status_int == 405
    assert response.headers["Allow"] == "GET,HEAD"
    assert response.json["errno"] == 115


@pytest.mark.parametrize(
    "path, route",
    [
        pytest.param("/__heartbeat__", "heartbeat", id="heartbeat"),
        pytest.param("/__lbheartbeat__", "lbheartbeat", id="lbheartbeat"),
        pytest.param("/__version__", "version", id="version"),
        pytest.param("/__heartbeat__/", None, id="trailing-slash-is-not-it"),
        pytest.param("/v1/__heartbeat__", None, id="prefix-not-stripped-alone"),
        pytest.param("/articles", None, id="other"),
    ],
)
def test_route_names_and_pass_through(path, route, tmp_path):
    seen = {}

    def outer(environ, start_response):
        result = middleware(environ, start_response)
        seen["route"] = environ.get(keys.ROUTE_NAME)
        return result

    version = tmp_path / "version.json"
    version.write_text('{"version": "1.0"}')
    middleware = HeartbeatMiddleware(app, registry=registry(), version_json_path=str(version))
    response = webtest.TestApp(validator(outer)).get(path)
    assert seen == {"route": route}
    if route is None:
        assert response.body == b"app"


def test_version_file_read_once(tmp_path):
    version = tmp_path / "version.json"
    version.write_text('{"name": "myapp", "version": "1.3.0", "commit": "abc", "source": "https://x/y"}')
    client = make(version_json_path=str(version))
    expected = compact({"name": "myapp", "version": "1.3.0", "commit": "abc", "source": "https://x/y"})
    response = client.get("/__version__")
    assert response.headerlist == [("Content-Type", JSON), ("Content-Length", str(len(expected)))]
    assert response.body == expected
    version.write_text('{"version": "changed"}')
    assert client.get("/__version__").body == expected
    assert client.head("/__version__").body == b""


@pytest.mark.parametrize(
    "content",
    [
        pytest.param(None, id="missing"),
        pytest.param("{not json", id="invalid-json"),
        pytest.param('{"a": NaN}', id="nan"),
    ],
)
def test_version_file_unavailable(content, tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    version = tmp_path / "version.json"
    if content is not None:
        version.write_text(content)
    client = make(version_json_path=str(version))
    response = client.get("/__version__", expect_errors=True)
    payload = compact({"code": 404, "errno": 111, "error": "Not Found", "message": MESSAGES["unknown_url"]})
    assert response.headerlist == [("Content-Type", JSON), ("Content-Length", str(len(payload)))]
    assert response.body == payload
    # A failure is not cached: the file of the next deployment is served.
    version.write_text('{"version": "2.0"}')
    assert client.get("/__version__").json == {"version": "2.0"}


@pytest.mark.parametrize("path", ["/v1/__heartbeat__", "/__heartbeat__"])
def test_behind_version_layer(path):
    inner = HeartbeatMiddleware(app, registry=registry(storage=lambda: True))
    client = webtest.TestApp(validator(VersionMiddleware(inner, registry=registry())))
    assert client.get(path).json == {"storage": True}


@pytest.mark.parametrize(
    "settings",
    [
        pytest.param({"heartbeat_timeout_seconds": 0}, id="zero-timeout"),
        pytest.param({"heartbeat_timeout_seconds": -1}, id="negative-timeout"),
        pytest.param({"heartbeat_timeout_seconds": "soon"}, id="timeout-not-a-number"),
        pytest.param({"heartbeat_timeout_seconds": float("nan")}, id="nan-timeout"),
        pytest.param({"version_json_path": ""}, id="empty-path"),
    ],
)
def test_bad_settings_fail_at_construction(settings):
    with pytest.raises(ConfigurationError):
        HeartbeatMiddleware(app, **settings)


def test_filter_factory():
    middleware = filter_factory({}, heartbeat_timeout_seconds="2.5", registry_name="test-heartbeat")(app)
    assert middleware.timeout == 2.5
    assert webtest.TestApp(middleware).get("/__lbheartbeat__").json == {}
