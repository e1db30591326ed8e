"""Prometheus metrics at ``/__metrics__``: the StatsD figures, for pull-based monitoring.

Off by default (``prometheus_enabled``); needs ``prometheus_client``
(``pip install cliquet-wsgi[monitoring]``). Metrics, under the namespace
``project_name`` (default ``cliquet``)::

    <ns>_requests_total{endpoint, method, status}            counter
    <ns>_request_duration_seconds{endpoint, method}          histogram
    <ns>_errors_total{errno}                                 counter
    <ns>_authentications_total{policy}                       counter (authn_type)
    <ns>_backend_duration_seconds{kind, backend, method}     histogram

``endpoint`` is the route name (``hello``, ``article-record``…) or
``unmatched``, and methods outside the HTTP set are ``OTHER``: every label
has a bounded set of values. The StatsD ``users`` set has no Prometheus
equivalent (one series per user would be unbounded) and is left out.

Each middleware instance has its own ``CollectorRegistry``. ``/__metrics__``
is public: restrict it at the proxy if the figures are sensitive to you.

Multi-process servers (gunicorn with several workers): each worker counts
alone, so a scrape would see one worker at random. Use the client's
multiprocess mode: export ``PROMETHEUS_MULTIPROC_DIR=/path/to/empty/dir`` in
the environment gunicorn starts with (the client reads it when imported),
set ``prometheus_multiproc_dir`` to the same directory so that scrapes
aggregate every worker's files with ``MultiProcessCollector``, wipe the
directory before each start, and in ``gunicorn.conf.py``::

    from prometheus_client import multiprocess

    def child_exit(server, worker):
        multiprocess.mark_process_dead(worker.pid)
"""
from __future__ import annotations

import os
import re
import time
from typing import Any, Callable, Iterable

from cliquet_wsgi import environ as keys
from cliquet_wsgi.errors import ConfigurationError, error_response, method_not_allowed
from cliquet_wsgi.instrumentation import observe
from cliquet_wsgi.paste import make_filter_factory
from cliquet_wsgi.registry import Registry, default_registry

#: Path of the exposition endpoint (not under the version prefix).
METRICS_PATH = "/__metrics__"

HTTP_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
_perf_counter = time.perf_counter


def _namespace(project_name: str) -> str:
    name = re.sub(r"[^A-Za-z0-9_]", "_", project_name or "cliquet")
    return name if re.match(r"[A-Za-z_]", name) else "_" + name


class PrometheusMiddleware:
    """Count requests and backend calls; serve them at ``/__metrics__``.

    Settings:
        ``prometheus_enabled``: off -> the layer only passes requests through.
        ``prometheus_multiproc_dir``: when set, scrapes aggregate the files
        of every process there (see the module docstring).
        ``project_name``: metric namespace (default ``cliquet``).

    Environ read after the inner app returned: ``cliquet.route_name``,
    ``cliquet.errno``, ``cliquet.authn_type``; sets ``cliquet.registry`` if
    absent. Registers a backend listener on the registry. Sits above cors
    and errors so that every response is counted.

    Example::

        app = PrometheusMiddleware(app, prometheus_enabled=True, project_name="myapp")
    """

    def __init__(
        self,
        app: Callable[..., Iterable[bytes]],
        *,
        registry: Registry | None = None,
        prometheus_enabled: bool = False,
        prometheus_multiproc_dir: str = "",
        project_name: str = "",
    ) -> None:
        self.app = app
        self.registry = registry if registry is not None else default_registry()
        self.enabled = bool(prometheus_enabled)
        if not self.enabled:
            return
        try:
            import prometheus_client
            from prometheus_client import CollectorRegistry, Counter, Histogram
        except ImportError:
            raise ConfigurationError(
                "Setting 'prometheus_enabled' needs the 'prometheus_client' package: "
                "pip install cliquet-wsgi[monitoring]"
            ) from None
        if prometheus_multiproc_dir and not os.path.isdir(prometheus_multiproc_dir):
            raise ConfigurationError(
                f"Setting 'prometheus_multiproc_dir': {prometheus_multiproc_dir!r} is not a directory"
            )
        self._client = prometheus_client
        self.multiproc_dir = prometheus_multiproc_dir
        self.collector_registry = CollectorRegistry(auto_describe=True)
        options = {"namespace": _namespace(project_name), "registry": self.collector_registry}
        self.requests = Counter("requests", "HTTP requests by endpoint, method and status.",
                                ["endpoint", "method", "status"], **options)
        self.durations = Histogram("request_duration_seconds", "Time until the inner app returned.",
                                   ["endpoint", "method"], **options)
        self.errors = Counter("errors", "Error responses by errno.", ["errno"], **options)
        self.authentications = Counter("authentications", "Authenticated requests by policy.", ["policy"],
                                       **options)
        self.backend_durations = Histogram("backend_duration_seconds", "Backend method calls.",
                                           ["kind", "backend", "method"], **options)
        self.registry.add_backend_listener(self._on_backend_call)

    def __call__(self, environ: dict, start_response: Callable[..., Any]) -> Iterable[bytes]:
        if not self.enabled:
            return self.app(environ, start_response)
        if keys.REGISTRY not in environ:
            environ[keys.REGISTRY] = self.registry
        if environ.get("PATH_INFO") == METRICS_PATH:
            return self._expose(environ, start_response)
        start = _perf_counter()

        def done(status: str | None, exc: BaseException | None) -> None:
            self._count(environ, status, _perf_counter() - start)

        return observe(self.app, environ, start_response, done)

    def _count(self, environ: dict, status: str | None, seconds: float) -> None:
        method = environ.get("REQUEST_METHOD", "")
        if method not in HTTP_METHODS:
            method = "OTHER"
        endpoint = environ.get(keys.ROUTE_NAME) or "unmatched"
        # No status: the exception propagates and the server answers 500.
        self.requests.labels(endpoint, method, status[:3] if status else "500").inc()
        self.durations.labels(endpoint, method).observe(seconds)
        errno = environ.get(keys.ERRNO)
        if errno is not None:
            self.errors.labels(str(int(errno)) if isinstance(errno, int) else str(errno)).inc()
        authn_type = environ.get(keys.AUTHN_TYPE)
        if authn_type:
            self.authentications.labels(authn_type).inc()

    def _on_backend_call(self, kind: str, name: str, method: str, duration_ms: float) -> None:
        self.backend_durations.labels(kind, name.lower(), method).observe(duration_ms / 1000.0)

    def _expose(self, environ: dict, start_response: Callable[..., Any]) -> Iterable[bytes]:
        method = environ.get("REQUEST_METHOD")
        if method not in ("GET", "HEAD"):
            return error_response(method_not_allowed(["GET", "HEAD"]), start_response)
        if self.multiproc_dir:
            from prometheus_client import CollectorRegistry
            from prometheus_client.multiprocess import MultiProcessCollector

            scraped = CollectorRegistry()
            MultiProcessCollector(scraped, path=self.multiproc_dir)
        else:
            scraped = self.collector_registry
        body = self._client.generate_latest(scraped)
        start_response("200 OK", [("Content-Type", self._client.CONTENT_TYPE_LATEST),
                                  ("Content-Length", str(len(body)))])
        return [] if method == "HEAD" else [body]


filter_factory = make_filter_factory(PrometheusMiddleware)
