"""The timing proxy of backends and the response observer (cliquet_wsgi.instrumentation)."""
from __future__ import annotations

import pytest

from cliquet_wsgi.instrumentation import InstrumentedBackend, instrument, is_instrumented, observe, unwrap
from cliquet_wsgi.registry import Registry


class Storage:
    kind = "storage"

    def __init__(self) -> None:
        self.pings = 0

    def get(self, key: str, *, default: int = 0) -> tuple[str, int]:
        return key, default

    def fail(self) -> None:
        raise KeyError("missing")

    def ping(self) -> bool:
        self.pings += 1
        return True

    def _private(self) -> str:
        return "private"


@pytest.fixture
def calls():
    return []


@pytest.fixture
def registry(calls):
    registry = Registry()
    registry.set_backend("storage", Storage())
    registry.add_backend_listener(lambda *args: calls.append(args))
    return registry


def test_public_calls_are_timed(registry, calls):
    assert registry.storage.get("a", default=3) == ("a", 3)
    [(kind, name, method, duration_ms)] = calls
    assert (kind, name, method) == ("storage", "Storage", "get")
    assert 0 <= duration_ms < 1000


def test_failing_call_is_timed_and_raises(registry, calls):
    with pytest.raises(KeyError):
        registry.storage.fail()
    assert [c[:3] for c in calls] == [("storage", "Storage", "fail")]


def test_proxy_is_transparent(registry, calls):
    storage = registry.storage
    assert isinstance(storage, Storage)
    assert is_instrumented(storage)
    assert storage.kind == "storage"
    assert storage._private() == "private"
    storage.kind = "changed"
    assert unwrap(storage).kind == "changed"
    assert calls == []


def test_heartbeat_ping_is_not_timed(registry, calls):
    assert registry.all_heartbeat_checks()["storage"]() is True
    assert calls == []


def test_no_listener_means_raw_backends():
    registry = Registry()
    backend = Storage()
    registry.set_backend("storage", backend)
    assert registry.storage is backend
    assert instrument("storage", backend, []) is backend
    assert instrument("storage", None, [print]) is None


def test_listener_added_later_is_notified(registry, calls):
    later = []
    registry.add_backend_listener(lambda *args: later.append(args[2]))
    registry.storage.get("x")
    assert [c[2] for c in calls] == ["get"] and later == ["get"]


def test_failing_listener_does_not_break_the_call(calls):
    def broken(*args):
        raise RuntimeError("listener bug")

    proxy = InstrumentedBackend("cache", Storage(), [broken, lambda *args: calls.append(args)])
    assert proxy.get("k") == ("k", 0)
    assert [c[:3] for c in calls] == [("cache", "Storage", "get")]
    assert instrument("cache", proxy, [broken]) is proxy  # never wrapped twice


# -- observe -----------------------------------------------------------------------------


class Body:
    def __init__(self, chunks, start_response=None, fail=False):
        self.chunks, self.start_response, self.fail, self.closed = chunks, start_response, fail, False

    def __iter__(self):
        if self.start_response is not None:
            self.start_response("201 Created", [("A", "1")])
        yield from self.chunks
        if self.fail:
            raise ValueError("mid-body")

    def close(self):
        self.closed = True


def run(app, extra_headers=()):
    seen, done = [], []
    result = observe(app, {}, lambda status, headers, exc_info=None: seen.append((status, headers)),
                     lambda status, exc: done.append((status, exc)), extra_headers)
    return result, seen, done


def test_eager_app_done_at_return_body_untouched():
    body = [b"x"]

    def app(environ, start_response):
        start_response("200 OK", [("A", "1")])
        return body

    result, seen, done = run(app, (("X-Request-Id", "r"),))
    assert result is body
    assert seen == [("200 OK", [("A", "1"), ("X-Request-Id", "r")])]
    assert done == [("200 OK", None)]


def test_lazy_app_done_when_closed():
    holder = {}

    def app(environ, start_response):
        holder["body"] = Body([b"a", b"b"], start_response)
        return holder["body"]

    result, seen, done = run(app)
    assert done == []
    assert list(result) == [b"a", b"b"]
    result.close()
    result.close()
    assert holder["body"].closed
    assert seen == [("201 Created", [("A", "1")])]
    assert done == [("201 Created", None)]


def test_lazy_app_failing_mid_body():
    def app(environ, start_response):
        return Body([b"a"], start_response, fail=True)

    result, _, done = run(app)
    with pytest.raises(ValueError):
        list(result)
    result.close()
    [(status, exc)] = done
    assert status == "201 Created" and isinstance(exc, ValueError)


def test_raising_app():
    def app(environ, start_response):
        raise ZeroDivisionError

    done = []
    with pytest.raises(ZeroDivisionError):
        observe(app, {}, lambda *a: None, lambda status, exc: done.append((status, type(exc))))
    assert done == [(None, ZeroDivisionError)]


def test_failing_observer_never_breaks_the_response(caplog):
    def app(environ, start_response):
        start_response("200 OK", [])
        return [b"ok"]

    def broken(status, exc):
        raise KeyError("observer bug")

    assert observe(app, {}, lambda *a: None, broken) == [b"ok"]
    assert [r.getMessage().split(" ")[0] for r in caplog.records if r.levelname == "ERROR"] == ["Response"]
