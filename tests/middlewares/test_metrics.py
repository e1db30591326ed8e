"""MetricsMiddleware against a real UDP socket on loopback (no mocked StatsD)."""
from __future__ import annotations

import os
import re
import socket
import sys
from wsgiref.validate import validator

import pytest
import webtest

from cliquet_wsgi import environ as keys
from cliquet_wsgi.errors import ConfigurationError
from cliquet_wsgi.middlewares.metrics import MetricsMiddleware, filter_factory, statsd_prefix_for
from cliquet_wsgi.registry import Registry
from cliquet_wsgi.stack import wrap

TIMER = re.compile(r"^(?P<name>[A-Za-z0-9_.\-]+):(?P<ms>\d+\.\d{6})\|ms$")


class StatsdServer:
    """A UDP socket standing in for the StatsD agent: records the lines it receives."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.url = f"udp://127.0.0.1:{self.port}"

    def datagrams(self, count: int) -> list[list[str]]:
        """Exactly ``count`` datagrams (each a list of lines); fails on fewer or more."""
        received = []
        self.sock.settimeout(2.0)
        for _ in range(count):
            received.append(self.sock.recv(65535).decode("ascii").split("\n"))
        self.sock.settimeout(0.05)
        with pytest.raises(socket.timeout):
            extra = self.sock.recv(65535)
            pytest.fail(f"unexpected datagram {extra!r}")
        return received

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def statsd_server():
    server = StatsdServer()
    yield server
    server.close()


class MemoryStorage:
    def get_all(self, parent_id: str) -> list:
        return []

    def ping(self) -> bool:
        return True


def make_app(extra: dict | None = None, status: str = "200 OK"):
    """Three-line app: copies ``extra`` into the environ the way inner layers do."""

    def app(environ, start_response):
        environ.update(extra or {})
        if environ["PATH_INFO"] == "/v1/records":
            environ[keys.REGISTRY].storage.get_all("")
        start_response(status, [("Content-Type", "text/plain")])
        return [b"ok"]

    return app


def build(server, app, registry=None, lint=True, **settings):
    registry = registry or Registry()
    # Most tests read each request's datagram as it leaves.
    settings.setdefault("statsd_flush_interval_seconds", 0.0)
    # Both linters warn on non-standard methods, which the unknown-method case sends on purpose.
    middleware = MetricsMiddleware(validator(app) if lint else app, registry=registry, statsd_url=server.url,
                                   **settings)
    return webtest.TestApp(middleware, lint=lint), middleware


def split_timer(lines: list[str]) -> tuple[str, list[str]]:
    timers = [line for line in lines if line.endswith("|ms")]
    assert len(timers) == 1, lines
    match = TIMER.match(timers[0])
    assert match, timers[0]
    assert float(match["ms"]) < 1000
    return match["name"], [line for line in lines if not line.endswith("|ms")]


@pytest.mark.parametrize(
    "extra, method, status, expected_timer, expected_lines",
    [
        pytest.param(
            {keys.ROUTE_NAME: "hello"}, "GET", "200 OK",
            "cliquet.request.hello.GET",
            ["cliquet.view.hello.GET:1|c", "cliquet.status.200:1|c"],
            id="hello",
        ),
        pytest.param(
            {}, "GET", "404 Not Found",
            "cliquet.request.unmatched.GET",
            ["cliquet.view.unmatched.GET:1|c", "cliquet.status.404:1|c"],
            id="unmatched-never-raw-path",
        ),
        pytest.param(
            {keys.ROUTE_NAME: "article-record", keys.ERRNO: 110}, "DELETE", "404 Not Found",
            "cliquet.request.article-record.DELETE",
            ["cliquet.view.article-record.DELETE:1|c", "cliquet.status.404:1|c", "cliquet.errno.110:1|c"],
            id="errno",
        ),
        pytest.param(
            {keys.ROUTE_NAME: "article-collection", keys.AUTHN_TYPE: "basicauth",
             keys.USER_ID: "basicauth:9f2d"}, "POST", "201 Created",
            "cliquet.request.article-collection.POST",
            ["cliquet.view.article-collection.POST:1|c", "cliquet.status.201:1|c",
             "cliquet.authn_type.basicauth:1|c", "cliquet.users:basicauth_9f2d|s"],
            id="authenticated",
        ),
        pytest.param(
            {keys.ROUTE_NAME: "batch"}, "FOO", "405 Method Not Allowed",
            "cliquet.request.batch.OTHER",
            ["cliquet.view.batch.OTHER:1|c", "cliquet.status.405:1|c"],
            id="unknown-method-bounded",
        ),
        pytest.param(
            {keys.ROUTE_NAME: "articlé-record", keys.AUTHN_TYPE: "fxa\u00e9",
             keys.USER_ID: "fxa:j\u00fcrgen|x\n"}, "GET", "200 OK",
            "cliquet.request.articl_-record.GET",
            ["cliquet.view.articl_-record.GET:1|c", "cliquet.status.200:1|c",
             "cliquet.authn_type.fxa_:1|c", "cliquet.users:fxa_j_rgen_x_|s"],
            id="unicode-sanitised-F8",
        ),
    ],
)
def test_request_metrics_lines(statsd_server, extra, method, status, expected_timer, expected_lines):
    app, _ = build(statsd_server, make_app(extra, status), lint=method != "FOO")
    response = app.request("/v1/some/raw/path?x=1", method=method, expect_errors=True)
    assert response.status == status
    [lines] = statsd_server.datagrams(1)
    timer, others = split_timer(lines)
    assert timer == expected_timer
    assert others == expected_lines


def test_backend_timers_through_registry_hook(statsd_server):
    registry = Registry()
    registry.set_backend("storage", MemoryStorage())
    app, _ = build(statsd_server, make_app({keys.ROUTE_NAME: "record-collection"}), registry=registry)
    app.get("/v1/records", status=200)
    backend, request = statsd_server.datagrams(2)
    assert TIMER.match(backend[0])["name"] == "cliquet.storage.memorystorage.get_all"
    assert len(backend) == 1
    assert split_timer(request)[0] == "cliquet.request.record-collection.GET"


def test_backend_built_after_middleware_is_timed(statsd_server):
    registry = Registry()
    app, _ = build(statsd_server, make_app({keys.ROUTE_NAME: "record-collection"}), registry=registry)
    registry.set_backend("storage", MemoryStorage())
    app.get("/v1/records", status=200)
    backend, _ = statsd_server.datagrams(2)
    assert TIMER.match(backend[0])["name"] == "cliquet.storage.memorystorage.get_all"


@pytest.mark.parametrize(
    "statsd_prefix, project_name, expected",
    [
        pytest.param("cliquet", "", "cliquet", id="default"),
        pytest.param("cliquet", "myapp", "myapp", id="project-name-when-prefix-not-given"),
        pytest.param("shop.api", "myapp", "shop.api", id="explicit-prefix-wins-15-28"),
        pytest.param("my app/é", "", "my_app__", id="sanitised"),
    ],
)
def test_prefix(statsd_prefix, project_name, expected):
    assert statsd_prefix_for(statsd_prefix, project_name) == expected


def test_prefix_used_on_the_wire(statsd_server):
    app, _ = build(statsd_server, make_app({keys.ROUTE_NAME: "hello"}), statsd_prefix="shop", project_name="x")
    app.get("/v1/")
    [lines] = statsd_server.datagrams(1)
    assert "shop.view.hello.GET:1|c" in lines


def test_unreachable_statsd_costs_nothing(statsd_server):
    # F8: a port nobody listens on; sends must neither raise nor block.
    port = statsd_server.port
    statsd_server.close()
    middleware = MetricsMiddleware(validator(make_app({keys.ROUTE_NAME: "hello"})), registry=Registry(),
                                   statsd_url=f"udp://127.0.0.1:{port}")
    app = webtest.TestApp(middleware)
    for _ in range(50):
        assert app.get("/v1/").body == b"ok"


def test_exception_counts_500_and_propagates(statsd_server):
    def failing(environ, start_response):
        environ[keys.ROUTE_NAME] = "hello"
        raise ZeroDivisionError("boom")

    middleware = MetricsMiddleware(failing, registry=Registry(), statsd_url=statsd_server.url)
    with pytest.raises(ZeroDivisionError):
        middleware({"REQUEST_METHOD": "GET", "PATH_INFO": "/v1/"}, lambda *a: None)
    [lines] = statsd_server.datagrams(1)
    assert split_timer(lines)[1] == ["cliquet.view.hello.GET:1|c", "cliquet.status.500:1|c"]


def test_lazy_response_measured_when_closed(statsd_server):
    closed = []

    class Body:
        def __init__(self, start_response):
            self.start_response = start_response

        def __iter__(self):
            self.start_response("200 OK", [("Content-Type", "text/plain")])
            yield b"late"

        def close(self):
            closed.append(True)

    def lazy(environ, start_response):
        environ[keys.ROUTE_NAME] = "hello"
        return Body(start_response)

    app = webtest.TestApp(MetricsMiddleware(validator(lazy), registry=Registry(), statsd_url=statsd_server.url))
    assert app.get("/v1/").body == b"late"
    assert closed == [True]
    [lines] = statsd_server.datagrams(1)
    assert split_timer(lines)[1] == ["cliquet.view.hello.GET:1|c", "cliquet.status.200:1|c"]


@pytest.mark.parametrize(
    "url",
    [
        pytest.param("", id="empty"),
        pytest.param("tcp://localhost:8125", id="wrong-scheme"),
        pytest.param("udp://:8125", id="no-host"),
        pytest.param("udp://localhost:99999", id="bad-port"),
        pytest.param("localhost:8125", id="no-scheme"),
    ],
)
def test_bad_url_fails_at_startup(url):
    with pytest.raises(ConfigurationError, match="statsd_url"):
        MetricsMiddleware(make_app(), registry=Registry(), statsd_url=url)


def test_missing_statsd_package_is_a_configuration_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "statsd", None)
    with pytest.raises(ConfigurationError, match="pip install"):
        MetricsMiddleware(make_app(), registry=Registry(), statsd_url="udp://127.0.0.1:8125")


def test_filter_factory_from_ini_strings(statsd_server):
    make = filter_factory({"__file__": "/tmp/metrics-test.ini"}, statsd_url=statsd_server.url,
                          statsd_prefix="ini", registry_name="metrics-test")
    app = webtest.TestApp(make(validator(make_app({keys.ROUTE_NAME: "heartbeat"}))))
    app.get("/__heartbeat__")
    [lines] = statsd_server.datagrams(1)
    assert "ini.view.heartbeat.GET:1|c" in lines


def test_whole_stack_with_every_monitoring_layer(statsd_server, tmp_path):
    """The monitoring layers as wrap() stacks them (names of stack.STACK), around the protocol layers."""

    def view(environ, start_response):
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"ok"]

    app = webtest.TestApp(wrap(view, statsd_url=statsd_server.url, statsd_prefix="stack", prometheus_enabled=True,
                               profiler_enabled=True, profiler_dir=str(tmp_path), userid_hmac_secret="x" * 16))
    response = app.get("/v1/__lbheartbeat__", headers={"X-Request-Id": "stack-1"})
    assert response.headers["X-Request-Id"] == "stack-1"
    [lines] = statsd_server.datagrams(1)
    assert split_timer(lines) == ("stack.request.lbheartbeat.GET", ["stack.view.lbheartbeat.GET:1|c",
                                                                    "stack.status.200:1|c"])
    assert 'cliquet_requests_total{endpoint="lbheartbeat",method="GET",status="200"} 1.0' in app.get(
        "/__metrics__").text
    assert sorted(name.split(".")[1] for name in os.listdir(tmp_path)) == ["__metrics__", "v1"]


# -- packed datagrams (statsd_flush_interval_seconds > 0) ------------------------------------------


def test_packed_lines_leave_together_when_requests_stop(statsd_server):
    """Two requests' lines wait, then the flusher sends them in one datagram within the interval."""
    app, _ = build(statsd_server, make_app({keys.ROUTE_NAME: "hello"}), statsd_flush_interval_seconds=1)
    app.get("/v1/")
    app.get("/v1/")
    [lines] = statsd_server.datagrams(1)
    assert [line for line in lines if not line.endswith("|ms")] == [
        "cliquet.view.hello.GET:1|c", "cliquet.status.200:1|c"] * 2
    assert [TIMER.match(line)["name"] for line in lines if line.endswith("|ms")] == ["cliquet.request.hello.GET"] * 2


def test_packed_datagrams_never_exceed_the_mtu(statsd_server):
    long_route = "r" * 180
    app, middleware = build(statsd_server, make_app({keys.ROUTE_NAME: long_route}),
                            statsd_flush_interval_seconds=60)
    for _ in range(12):
        app.get("/v1/")
    middleware._datagrams.flush()
    datagrams = []
    statsd_server.sock.settimeout(2.0)
    while sum(len(d) for d in datagrams) < 12 * 3:
        datagrams.append(statsd_server.sock.recv(65535).decode("ascii").split("\n"))
    assert len(datagrams) > 1
    assert all(len("\n".join(d).encode()) <= 1432 for d in datagrams)
    assert sum(len(d) for d in datagrams) == 12 * 3


def test_lines_are_packed_by_default(statsd_server):
    """Default 0.5 s: two requests' lines leave together from the flusher, not one datagram per request."""
    middleware = MetricsMiddleware(validator(make_app({keys.ROUTE_NAME: "hello"})), registry=Registry(),
                                   statsd_url=statsd_server.url)
    app = webtest.TestApp(middleware)
    app.get("/v1/")
    app.get("/v1/")
    statsd_server.sock.settimeout(0.1)
    with pytest.raises(socket.timeout):
        statsd_server.sock.recv(65535)
    [lines] = statsd_server.datagrams(1)
    assert [line for line in lines if not line.endswith("|ms")] == [
        "cliquet.view.hello.GET:1|c", "cliquet.status.200:1|c"] * 2


@pytest.mark.parametrize("interval", [-1, float("nan"), float("inf"), "soon", True])
def test_bad_flush_interval_fails_at_startup(statsd_server, interval):
    with pytest.raises(ConfigurationError, match="statsd_flush_interval_seconds"):
        MetricsMiddleware(make_app(), registry=Registry(), statsd_url=statsd_server.url,
                          statsd_flush_interval_seconds=interval)


def test_zero_interval_sends_each_request_at_once(statsd_server):
    app, middleware = build(statsd_server, make_app({keys.ROUTE_NAME: "hello"}), statsd_flush_interval_seconds=0)
    app.get("/v1/")
    assert len(statsd_server.datagrams(1)) == 1
    assert middleware._datagrams._waiting == []


def test_authentication_policy_timers(statsd_server):
    """PROTOCOL §12: authentication.<policy>.<method> timers, then the request's own lines."""
    import hmac

    from cliquet_wsgi.middlewares.auth import AuthMiddleware
    from tests.secrets import basic_header

    registry = Registry()
    inner = AuthMiddleware(make_app({keys.ROUTE_NAME: "hello"}), registry=registry,
                           userid_hmac_secret="hmac-secret-4c1e7b", settings={})
    app, _ = build(statsd_server, inner, registry=registry)
    app.get("/v1/", headers={"Authorization": basic_header("alice", "alice-pa55word-9f2")})
    policy, request = statsd_server.datagrams(2)
    assert [TIMER.match(line)["name"] for line in policy] == ["cliquet.authentication.basicauth.authenticate"]
    assert split_timer(request)[1] == [
        "cliquet.view.hello.GET:1|c", "cliquet.status.200:1|c", "cliquet.authn_type.basicauth:1|c",
        f"cliquet.users:basicauth_{hmac.new(b'hmac-secret-4c1e7b', b'alice:alice-pa55word-9f2', 'sha256').hexdigest()}|s"]


def test_forked_worker_sends_only_its_own_packed_lines(statsd_server):
    """gunicorn forks workers from a master that may have served requests: the child starts empty."""
    import os

    route = {keys.ROUTE_NAME: "parent"}
    app, middleware = build(statsd_server, make_app(route), statsd_flush_interval_seconds=60)
    app.get("/v1/")
    pid = os.fork()
    if pid == 0:  # the worker
        code = 1
        try:
            route[keys.ROUTE_NAME] = "child"
            app.get("/v1/")
            middleware._datagrams.flush()
            code = 0
        finally:
            os._exit(code)
    assert os.waitpid(pid, 0)[1] == 0
    middleware._datagrams.flush()
    child, parent = statsd_server.datagrams(2)
    assert split_timer(child)[1] == ["cliquet.view.child.GET:1|c", "cliquet.status.200:1|c"]
    assert split_timer(parent)[1] == ["cliquet.view.parent.GET:1|c", "cliquet.status.200:1|c"]
