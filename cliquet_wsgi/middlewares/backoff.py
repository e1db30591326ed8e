"""Tell clients to slow down or come back later (PROTOCOL §4).

``Backoff: N`` goes on every response while the ``backoff`` setting is set,
errors and 304 included (decision 10); ``Retry-After`` goes on every 503 of the
error channel (errno 201) that lacks one (decision 9). ``maintenance = true``
answers 503/201 to everything but the heartbeats, so that load balancers keep
seeing the node as alive while clients back off.

Place it above the errors middleware, so that rendered errors get the headers.
Not needed when a proxy in front already sets these headers.
"""
from __future__ import annotations

import re
from typing import Any, Callable, Iterable

from cliquet_wsgi import environ as keys
from cliquet_wsgi.errors import ERRORS, ConfigurationError, error_response, service_unavailable
from cliquet_wsgi.paste import make_filter_factory
from cliquet_wsgi.registry import Registry, default_registry
from cliquet_wsgi.settings import converter_for

#: Paths served even in maintenance, with or without the version prefix.
_HEARTBEATS = re.compile(r"(/v\d+)?/__(lb)?heartbeat__")


def _checked(name: str, value: Any) -> Any:
    try:
        return converter_for(name)(value)
    except ValueError as exc:
        raise ConfigurationError(f"Invalid value for setting {name!r}: {exc}") from None


class BackoffMiddleware:
    """Add ``Backoff`` and ``Retry-After``; answer 503 while in maintenance.

    Settings:
      * ``backoff`` -- seconds sent as ``Backoff`` on every response (unset: no header).
      * ``retry_after_seconds`` -- ``Retry-After`` added to 503/201 responses lacking one.
      * ``maintenance`` -- answer 503/201 to every request except the heartbeats.

    Environ: reads ``cliquet.errno`` (set by whoever rendered an error below)
    when the response starts; sets ``cliquet.registry`` if absent and
    ``cliquet.errno`` on its maintenance responses.

    Above errors, below CORS::

        app = BackoffMiddleware(ErrorsMiddleware(app), backoff=10)
        # every response now carries "Backoff: 10"
    """

    def __init__(
        self,
        app: Callable[..., Iterable[bytes]],
        *,
        registry: Registry | None = None,
        backoff: int | None = None,
        retry_after_seconds: int = 30,
        maintenance: bool = False,
    ) -> None:
        self.app = app
        self.registry = registry if registry is not None else default_registry()
        backoff = _checked("backoff", backoff)
        self.backoff = None if backoff is None else str(backoff)
        self.backoff_header = None if backoff is None else ("Backoff", self.backoff)
        self.retry_after = str(_checked("retry_after_seconds", retry_after_seconds))
        self.maintenance = _checked("maintenance", maintenance)

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        environ.setdefault(keys.REGISTRY, self.registry)
        backoff = self.backoff_header
        retry_after = self.retry_after

        def backoff_start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Callable:
            if backoff is not None:
                # PERF: a plain loop beats map() on a handful of headers; an inner Backoff is rare.
                for name, _ in headers:
                    if name.lower() == "backoff":
                        headers = [(k, v) for k, v in headers if k.lower() != "backoff"]
                        break
                headers = [*headers, backoff]
            # A 503 from a view (heartbeat) is not an error of the channel: no Retry-After (§4).
            if status[:3] == "503" and environ.get(keys.ERRNO) == ERRORS.BACKEND:
                if not any(k.lower() == "retry-after" for k, _ in headers):
                    headers = [*headers, ("Retry-After", retry_after)]
            if exc_info is not None:
                return start_response(status, headers, exc_info)
            return start_response(status, headers)

        if self.maintenance and not _HEARTBEATS.fullmatch(environ.get("PATH_INFO", "")):
            error = service_unavailable(int(self.retry_after))
            environ[keys.ERRNO] = error.errno
            return error_response(error, backoff_start_response)
        return self.app(environ, backoff_start_response)


filter_factory = make_filter_factory(BackoffMiddleware)
