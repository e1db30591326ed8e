"""``wrap()``: the default stack around any WSGI application, in code.

Outer to inner (each layer says in its docstring why it sits there)::

    request ──► profiler        (only if profiler_enabled)
                request_log     (one summary line per request, request id)
                metrics         (only if statsd_url)
                prometheus      (only if prometheus_enabled)
                sentry          (only if sentry_dsn)
                cors            (outermost protocol layer: errors carry CORS)
                backoff         (Backoff on every response, errors included)
                errors          (exceptions below -> protocol JSON errors)
                version         (/v1 prefix, redirects, 404s, hello, end of service)
                heartbeat       (/__heartbeat__, /__lbheartbeat__, /__version__)
                batch           (above auth: each sub-request is authenticated)
                auth            (only if multiauth_policies is not empty)
                resources       (only if there are resources)
                app             (your Django / Flask / Bottle / WSGI app)

The same order is used in the demo ``paste.ini``.
"""
from __future__ import annotations

from typing import Any, Callable, Iterable, Mapping

from cliquet_wsgi.paste import middleware_kwargs
from cliquet_wsgi.registry import Registry, import_dotted
from cliquet_wsgi.settings import load_settings

_M = "cliquet_wsgi.middlewares."

#: (name, class path, condition on settings), outer to inner.
STACK: list[tuple[str, str, Callable[[Mapping[str, Any]], bool]]] = [
    ("profiler", _M + "profiler.ProfilerMiddleware", lambda s: s["profiler_enabled"]),
    ("request_log", _M + "request_log.RequestLogMiddleware", lambda s: True),
    ("metrics", _M + "metrics.MetricsMiddleware", lambda s: bool(s["statsd_url"])),
    ("prometheus", _M + "prometheus.PrometheusMiddleware", lambda s: s["prometheus_enabled"]),
    ("sentry", _M + "sentry.SentryMiddleware", lambda s: bool(s["sentry_dsn"])),
    ("cors", _M + "cors.CORSMiddleware", lambda s: True),
    ("backoff", _M + "backoff.BackoffMiddleware", lambda s: True),
    ("errors", _M + "errors.ErrorsMiddleware", lambda s: True),
    ("version", _M + "version.VersionMiddleware", lambda s: True),
    ("heartbeat", _M + "heartbeat.HeartbeatMiddleware", lambda s: True),
    ("batch", _M + "batch.BatchMiddleware", lambda s: True),
    ("auth", _M + "auth.AuthMiddleware", lambda s: bool(s["multiauth_policies"])),
    ("resources", _M + "resources.ResourcesMiddleware", lambda s: bool(s["resources"])),
]


def wrap(
    app: Any,
    resources: Iterable[Any] = (),
    *,
    exclude: Iterable[str] = (),
    registry: Registry | None = None,
    **settings: Any,
) -> Any:
    """Wrap ``app`` in the default stack and return the new WSGI application.

    ``resources``: resource definitions (or dotted paths to them) served by
    the resources middleware. ``exclude``: names of layers to leave out
    (``exclude=["auth"]``). ``settings``: any setting of
    :mod:`cliquet_wsgi.settings`, typed or as strings; ``CLIQUET_*``
    environment variables override them.
    """
    resources = list(resources)
    loaded = load_settings(settings)
    if resources:
        loaded["resources"] = list(loaded["resources"]) + resources
    registry = registry or Registry(loaded)
    if registry.settings is not loaded:
        registry.configure(loaded)
    excluded = set(exclude)
    unknown = excluded - {name for name, _, _ in STACK}
    if unknown:
        raise ValueError(f"Unknown layers in exclude: {', '.join(sorted(unknown))}")
    for name, path, enabled in reversed(STACK):
        if name in excluded or not enabled(loaded):
            continue
        cls = import_dotted(path)
        app = cls(app, **middleware_kwargs(cls, loaded, registry))
    return app
