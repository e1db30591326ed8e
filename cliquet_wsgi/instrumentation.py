"""Hooks that let monitoring observe backends and responses without coupling.

Two small tools shared by the monitoring middlewares (metrics, prometheus,
request log), so that neither backends nor protocol layers know about them:

* :class:`InstrumentedBackend`: a proxy that times every public method call of
  a backend and reports ``(kind, backend class name, method, duration_ms)`` to
  listeners. :meth:`cliquet_wsgi.registry.Registry.add_backend_listener`
  installs it; a registry without listeners hands out the raw backends, so the
  cost is zero unless monitoring is on. Authentication policies or event
  listeners may report their own timings with :func:`notify` and a kind of
  ``"authentication"`` or ``"listeners"``.
* :func:`observe`: calls a WSGI app and tells a callback, exactly once, the
  final status line (or the exception) when the response is known.
"""
from __future__ import annotations

import logging
import os
import time
from typing import Any, Callable, Iterable, Iterator, Sequence

logger = logging.getLogger(__name__)

#: ``listener(kind, backend_class_name, method, duration_ms)``. Must not raise.
BackendListener = Callable[[str, str, str, float], None]

#: ``done(status_line_or_None, exception_or_None)``, called once per response.
DoneCallback = Callable[["str | None", "BaseException | None"], None]

_perf_counter = time.perf_counter

#: This process's id. PERF: os.getpid() is a system call; the id only
#: changes in a forked child, which the hook below updates.
_pid = os.getpid()


def _after_fork() -> None:
    global _pid
    _pid = os.getpid()


os.register_at_fork(after_in_child=_after_fork)


def process_id() -> int:
    """``os.getpid()`` without a system call per use (monitoring layers call it per request)."""
    return _pid


def notify(listeners: Sequence[BackendListener], kind: str, name: str, method: str, duration_ms: float) -> None:
    """Tell every listener about one timed call; a failing listener is only logged."""
    for listener in listeners:
        try:
            listener(kind, name, method, duration_ms)
        except Exception:
            # NOTE: monitoring must never break the call it observes.
            logger.debug("Backend listener %r failed", listener, exc_info=True)


class InstrumentedBackend:
    """Proxy timing the public methods of ``backend``; everything else passes through.

    ``isinstance(proxy, StorageClass)`` still holds (``__class__`` is
    forwarded). ``listeners`` is the registry's live list: listeners added
    later are notified too. Use :func:`unwrap` to get the raw backend.
    """

    def __init__(self, kind: str, backend: Any, listeners: Sequence[BackendListener]) -> None:
        object.__setattr__(self, "_cliquet_kind", kind)
        object.__setattr__(self, "_cliquet_target", backend)
        object.__setattr__(self, "_cliquet_name", type(backend).__name__)
        object.__setattr__(self, "_cliquet_listeners", listeners)

    @property  # type: ignore[misc]
    def __class__(self) -> type:  # noqa: D401 - forwarded so isinstance() works
        return type(object.__getattribute__(self, "_cliquet_target"))

    def __getattr__(self, name: str) -> Any:
        target = object.__getattribute__(self, "_cliquet_target")
        value = getattr(target, name)
        if name.startswith("_") or not callable(value) or isinstance(value, type):
            return value
        timed = _timed(value, self._cliquet_kind, self._cliquet_name, name, self._cliquet_listeners)
        # PERF: cached in the instance dict, so later lookups skip __getattr__.
        object.__getattribute__(self, "__dict__")[name] = timed
        return timed

    def __setattr__(self, name: str, value: Any) -> None:
        self.__dict__.pop(name, None)
        setattr(self._cliquet_target, name, value)

    def __repr__(self) -> str:
        return f"<InstrumentedBackend {self._cliquet_target!r}>"


def _timed(method: Callable[..., Any], kind: str, name: str, method_name: str,
           listeners: Sequence[BackendListener]) -> Callable[..., Any]:
    def timed(*args: Any, **kwargs: Any) -> Any:
        start = _perf_counter()
        try:
            return method(*args, **kwargs)
        finally:
            notify(listeners, kind, name, method_name, (_perf_counter() - start) * 1000.0)

    timed.__name__ = method_name
    timed.__doc__ = method.__doc__
    timed.__wrapped__ = method  # type: ignore[attr-defined]
    return timed


def instrument(kind: str, backend: Any, listeners: Sequence[BackendListener]) -> Any:
    """``backend`` wrapped in a timing proxy, or as is when there is nothing to do."""
    if backend is None or not listeners or is_instrumented(backend):
        return backend
    return InstrumentedBackend(kind, backend, listeners)


def is_instrumented(backend: Any) -> bool:
    return type(backend) is InstrumentedBackend


def unwrap(backend: Any) -> Any:
    """The raw backend behind a timing proxy (or ``backend`` itself)."""
    if type(backend) is InstrumentedBackend:
        return object.__getattribute__(backend, "_cliquet_target")
    return backend


# -- responses --------------------------------------------------------------------------


def observe(
    app: Callable[..., Iterable[bytes]],
    environ: dict,
    start_response: Callable[..., Any],
    done: DoneCallback,
    extra_headers: Sequence[tuple[str, str]] = (),
) -> Iterable[bytes]:
    """Call ``app`` and call ``done(status, exc)`` once the outcome is known.

    Usually that is when ``app`` returns (it has called ``start_response``):
    the body iterable is then returned untouched. An app that starts the
    response lazily (a generator) gets its iterable wrapped, and ``done`` runs
    when the server closes it. If ``app`` raises, ``done(None or status, exc)``
    runs and the exception propagates. ``extra_headers`` are appended to the
    response headers. An exception raised by ``done`` is logged, never
    propagated.
    """
    statuses: list[str] = []

    def observing_start_response(status: str, headers: list, exc_info: Any = None) -> Any:
        statuses.append(status)
        if extra_headers:
            headers = [*headers, *extra_headers]
        if exc_info is None:
            return start_response(status, headers)
        return start_response(status, headers, exc_info)

    try:
        result = app(environ, observing_start_response)
    except BaseException as exc:
        _call_done(done, statuses[-1] if statuses else None, exc)
        raise
    if statuses:
        # PERF: _call_done() inlined: this runs for every request, in each monitoring layer.
        try:
            done(statuses[-1], None)
        except Exception:
            logger.exception("Response observer %r failed", done)
        return result
    return _ObservedIterable(result, statuses, done)


def _call_done(done: DoneCallback, status: "str | None", exc: "BaseException | None") -> None:
    try:
        done(status, exc)
    except Exception:
        # NOTE: a monitoring bug must not turn a good response into an error.
        logger.exception("Response observer %r failed", done)


class _ObservedIterable:
    """Body of a lazily started response: reports when closed (PEP 3333 ``close``)."""

    def __init__(self, result: Iterable[bytes], statuses: list[str], done: DoneCallback) -> None:
        self._result = result
        self._iterator: Iterator[bytes] | None = None
        self._statuses = statuses
        self._done: DoneCallback | None = done
        self._error: BaseException | None = None

    def __iter__(self) -> Iterator[bytes]:
        return self

    def __next__(self) -> bytes:
        if self._iterator is None:
            self._iterator = iter(self._result)
        try:
            return next(self._iterator)
        except StopIteration:
            raise
        except BaseException as exc:
            self._error = exc
            raise

    def close(self) -> None:
        try:
            close = getattr(self._result, "close", None)
            if close is not None:
                close()
        finally:
            done, self._done = self._done, None
            if done is not None:
                _call_done(done, self._statuses[-1] if self._statuses else None, self._error)
