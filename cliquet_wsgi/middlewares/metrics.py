"""StatsD metrics: request timers and counters, backend timers, users (PROTOCOL §12).

Use it when a StatsD agent (statsd, Telegraf, Datadog agent…) collects your
metrics. Without ``statsd_url`` :func:`cliquet_wsgi.stack.wrap` leaves it out;
for a pull-based setup use the Prometheus middleware instead.

Metrics sent per request, in one UDP datagram (names under the prefix)::

    request.<endpoint>.<METHOD>   timer (ms, until the inner app returned)
    view.<endpoint>.<METHOD>      counter
    status.<code>                 counter
    errno.<n>                     counter, error responses only
    authn_type.<policy>           counter, authenticated requests only
    users                         set of prefixed user ids

and one datagram per backend call: ``storage.<class>.<method>`` (also
``cache.``, ``permission.``), timers, via the registry's backend hook.
``<endpoint>`` is the stable route name set by inner layers (``hello``,
``batch``, ``article-collection``…) or ``unmatched``: never the raw path, so
the number of metric names stays bounded. (Cliquet skipped ``view.*`` when no
route matched; counting them as ``unmatched`` shows 404 floods.) Anything may
report more timers through the registry's listeners with
:func:`cliquet_wsgi.instrumentation.notify`, e.g. an authentication policy:
``notify(registry.backend_listeners, "authentication", "basicauth",
"authenticate", ms)`` gives ``authentication.basicauth.authenticate``.

Methods outside the HTTP set are counted as ``OTHER``. Every name and set
value is reduced to ``[A-Za-z0-9_.-]`` (the client raises on non-ASCII
names, RELIABILITY F8; a ``:`` or ``|`` in a value would corrupt the line), so
``users`` receives ``basicauth_9f2d…`` for ``basicauth:9f2d…``.

Sending never raises nor blocks: the socket is non-blocking, so an absent or
overloaded agent costs one dropped datagram.

``statsd_flush_interval_seconds`` (default 0.5) packs lines into datagrams
of at most :data:`MAX_DATAGRAM_BYTES` that leave when the next line would
not fit, or from a daemon thread that sends what waits every interval (and
at exit). It saves a system call per request and per backend call (about 4
µs of CPU per request, most of the metrics layer's cost) at the price of
that delay, well within a StatsD agent's own flush interval (10 s by
default), and of losing what waits if the process is killed. 0 sends one
datagram per request and per backend call, at once.
"""
from __future__ import annotations

import atexit
import os
import re
import threading
import time
import weakref
from typing import Any, Callable, Iterable
from urllib.parse import urlsplit

from cliquet_wsgi import environ as keys
from cliquet_wsgi.errors import ConfigurationError
from cliquet_wsgi.instrumentation import observe
from cliquet_wsgi.paste import make_filter_factory
from cliquet_wsgi.registry import Registry, default_registry
from cliquet_wsgi.settings import DEFAULTS, as_float

#: Methods counted under their own name; anything else is ``OTHER``.
HTTP_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})

_UNSAFE = re.compile(r"[^A-Za-z0-9_.\-]")
_MAX_NAME = 200
_perf_counter = time.perf_counter


def sanitise(name: str) -> str:
    """``name`` reduced to ``[A-Za-z0-9_.-]`` (other characters become ``_``), at most 200 chars."""
    return _UNSAFE.sub("_", name[:_MAX_NAME])


class _SanitisedNames(dict):
    """Memo of sanitised names; bounded so that hostile input cannot grow it."""

    def __missing__(self, name: str) -> str:
        value = sanitise(name)
        if len(self) < 4096:
            self[name] = value
        return value


class _CounterLines(dict):
    """Memo: counter name -> the full ``<prefix>.<sanitised name>:1|c`` line."""

    def __init__(self, prefix: str) -> None:
        super().__init__()
        self.prefix = prefix

    def __missing__(self, name: str) -> str:
        line = f"{self.prefix}.{sanitise(name)}:1|c"
        if len(self) < 4096:
            self[name] = line
        return line


class _StatusLines(dict):
    """Memo: status line (``"200 OK"``) -> a newline and its ``status.<code>`` counter line; bounded like the others."""

    def __init__(self, counters: _CounterLines) -> None:
        super().__init__()
        self.counters = counters

    def __missing__(self, status: str) -> str:
        line = "\n" + self.counters[f"status.{status[:3]}"]
        if len(self) < 4096:
            self[status] = line
        return line


#: Largest datagram when lines are packed: fits a 1500-byte Ethernet MTU with IP and UDP headers.
MAX_DATAGRAM_BYTES = 1432


class _Datagrams:
    """StatsD payloads, sent at once (``interval`` 0) or packed (see the module docstring)."""

    def __init__(self, send: Callable[[str], None], interval: float) -> None:
        self._send = send
        self._interval = interval
        self._lock = threading.Lock()
        self._waiting: list[str] = []
        self._size = 0
        #: Whether this process has a flusher thread; a forked child has none (see _after_fork).
        self._flushing = False
        _ALL_DATAGRAMS.add(self)

    def add(self, payload: str) -> None:
        if not self._interval:
            self._send(payload)
            return
        if not self._flushing:
            self._start_flusher()
        size = len(payload) + 1
        with self._lock:
            if self._size + size > MAX_DATAGRAM_BYTES and self._waiting:
                self._send_waiting()
            self._waiting.append(payload)
            self._size += size

    def flush(self) -> None:
        with self._lock:
            self._send_waiting()

    def _send_waiting(self) -> None:
        if self._waiting:
            payload = "\n".join(self._waiting)
            self._waiting, self._size = [], 0
            self._send(payload)

    def _start_flusher(self) -> None:
        with self._lock:
            if self._flushing:
                return
            self._flushing = True
        this = weakref.ref(self)
        # NOTE: the flusher sends what waits every interval, so no line waits longer.
        threading.Thread(target=_flush_periodically, args=(this, self._interval), daemon=True,
                         name="statsd-flush").start()
        atexit.register(_flush_at_exit, this)

    def _after_fork(self) -> None:
        # The parent's waiting lines are the parent's to send; its flusher thread did not survive the fork.
        self._lock = threading.Lock()
        self._waiting, self._size, self._flushing = [], 0, False


#: Every packing buffer of this process, so that a forked child can reset them.
_ALL_DATAGRAMS: "weakref.WeakSet[_Datagrams]" = weakref.WeakSet()


def _after_fork_in_child() -> None:
    for datagrams in list(_ALL_DATAGRAMS):
        datagrams._after_fork()


os.register_at_fork(after_in_child=_after_fork_in_child)


def _flush_periodically(reference: "weakref.ref[_Datagrams]", interval: float) -> None:
    # The thread ends with the middleware that owns the buffer.
    while True:
        time.sleep(interval)
        datagrams = reference()
        if datagrams is None:
            return
        datagrams.flush()
        del datagrams


def _flush_at_exit(reference: "weakref.ref[_Datagrams]") -> None:
    datagrams = reference()
    if datagrams is not None:
        datagrams.flush()


def parse_statsd_url(url: str) -> tuple[str, int]:
    """``udp://host:port`` -> ``(host, port)``; :class:`ConfigurationError` otherwise."""
    try:
        parts = urlsplit(url)
        port = parts.port or 8125
    except ValueError as exc:
        raise ConfigurationError(f"Setting 'statsd_url' is not a valid URL ({exc}): {url!r}") from None
    if parts.scheme != "udp" or not parts.hostname:
        raise ConfigurationError(f"Setting 'statsd_url' must look like udp://host:8125, got {url!r}")
    return parts.hostname, port


def statsd_prefix_for(statsd_prefix: str, project_name: str) -> str:
    """The metric prefix: an explicit ``statsd_prefix`` wins over ``project_name`` (PROTOCOL §15 #28).

    ``statsd_prefix`` counts as explicit when it differs from its default (``cliquet``).
    """
    default = DEFAULTS["statsd_prefix"][0]
    prefix = statsd_prefix if statsd_prefix != default else (project_name or default)
    return sanitise(prefix).strip(".")


class MetricsMiddleware:
    """Send request and backend metrics to StatsD.

    Settings:
        ``statsd_url``: ``udp://host:port`` of the agent (required here).
        ``statsd_prefix``: prefix of every name; when left at ``cliquet``,
        ``project_name`` is used if set.
        ``project_name``: see ``statsd_prefix``.
        ``statsd_flush_interval_seconds`` (default 0.5): lines are packed
        into datagrams sent at most that late; 0 sends each request's
        datagram at once.

    Environ read after the inner app returned: ``cliquet.route_name``,
    ``cliquet.errno``, ``cliquet.authn_type``, ``cliquet.user_id``; sets
    ``cliquet.registry`` if absent. Registers a backend listener on the
    registry. Sits above cors and errors so that every response is counted.

    Example::

        app = MetricsMiddleware(app, statsd_url="udp://127.0.0.1:8125", statsd_prefix="myapp")
    """

    def __init__(
        self,
        app: Callable[..., Iterable[bytes]],
        *,
        registry: Registry | None = None,
        statsd_url: str | None = None,
        statsd_prefix: str = DEFAULTS["statsd_prefix"][0],
        project_name: str = "",
        statsd_flush_interval_seconds: float = DEFAULTS["statsd_flush_interval_seconds"][0],
    ) -> None:
        if not statsd_url:
            raise ConfigurationError("Setting 'statsd_url' is required by the metrics middleware")
        try:
            interval = as_float(statsd_flush_interval_seconds)
        except ValueError as exc:
            raise ConfigurationError(f"Setting 'statsd_flush_interval_seconds': {exc}") from None
        host, port = parse_statsd_url(statsd_url)
        try:
            import statsd
        except ImportError:
            raise ConfigurationError(
                "Setting 'statsd_url' needs the 'statsd' package: pip install cliquet-wsgi[monitoring]"
            ) from None
        self.prefix = statsd_prefix_for(statsd_prefix, project_name)
        try:
            self.client = statsd.StatsClient(host, port, prefix=self.prefix)
        except OSError as exc:
            raise ConfigurationError(f"Setting 'statsd_url': cannot resolve {host!r}: {exc}") from None
        # NOTE: a blocking sendto() could stall a request when the socket buffer
        # is full; the client swallows the resulting socket errors.
        self.client._sock.setblocking(False)
        self.app = app
        self.registry = registry if registry is not None else default_registry()
        self._request_lines: dict[tuple[str, str], tuple[str, str]] = {}
        self._counter_lines = _CounterLines(self.prefix)
        # PERF: the counter line of each status line seen, without slicing and formatting a name per request.
        self._status_lines = _StatusLines(self._counter_lines)
        self._backend_names = _SanitisedNames()
        # NOTE: _send() is the client's own sending method (ASCII, socket errors swallowed).
        self._datagrams = _Datagrams(self.client._send, interval)
        self.registry.add_backend_listener(self._on_backend_call)

    def __call__(self, environ: dict, start_response: Callable[..., Any]) -> Iterable[bytes]:
        if keys.REGISTRY not in environ:
            environ[keys.REGISTRY] = self.registry
        start = _perf_counter()

        def done(status: str | None, exc: BaseException | None) -> None:
            # observe() logs (never raises) whatever this may raise.
            self._send(environ, status, exc, (_perf_counter() - start) * 1000.0)

        return observe(self.app, environ, start_response, done)

    def _send(self, environ: dict, status: str | None, exc: BaseException | None, duration_ms: float) -> None:
        method = environ.get("REQUEST_METHOD", "")
        if method not in HTTP_METHODS:
            method = "OTHER"
        route = environ.get(keys.ROUTE_NAME) or "unmatched"
        timer, view = self._request_lines.get((route, method)) or self._cache_request_lines(route, method)
        counters = self._counter_lines
        if status is not None:
            status_line = self._status_lines[status]
        elif exc is not None:
            # The server answers 500 to an exception nobody rendered.
            status_line = "\n" + counters["status.500"]
        else:
            status_line = ""
        # PERF: one payload per request, built from memoised lines; the
        # client's pipeline costs more than the rest of the middleware.
        # Names are capped at 200 characters, so the payload stays under a
        # typical MTU.
        payload = f"{timer}{duration_ms:0.6f}|ms\n{view}{status_line}"
        errno = environ.get(keys.ERRNO)
        if errno is not None:
            payload += "\n" + counters[f"errno.{int(errno) if isinstance(errno, int) else errno}"]
        authn_type = environ.get(keys.AUTHN_TYPE)
        if authn_type:
            payload += "\n" + counters[f"authn_type.{authn_type}"]
        user_id = environ.get(keys.USER_ID)
        if user_id:
            payload += f"\n{self.prefix}.users:{sanitise(user_id)}|s"
        self._datagrams.add(payload)

    def _cache_request_lines(self, route: str, method: str) -> tuple[str, str]:
        endpoint = sanitise(route)
        lines = (f"{self.prefix}.request.{endpoint}.{method}:", f"{self.prefix}.view.{endpoint}.{method}:1|c")
        if len(self._request_lines) < 4096:
            self._request_lines[(route, method)] = lines
        return lines

    def _on_backend_call(self, kind: str, name: str, method: str, duration_ms: float) -> None:
        # PROTOCOL §12: storage.<backend class lower>.<method>
        name = self._backend_names[f"{kind}.{name.lower()}.{method}"]
        self._datagrams.add(f"{self.prefix}.{name}:{duration_ms:0.6f}|ms")


filter_factory = make_filter_factory(MetricsMiddleware)
