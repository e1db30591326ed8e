"""Health and version endpoints for load balancers and operators (PROTOCOL §6).

``/__heartbeat__`` runs every registered check (backends' ``ping()`` and the
app's ``heartbeat_checks``) concurrently under one global timeout and answers
200 or 503 with ``{name: true|false|null}``; ``/__lbheartbeat__`` always
answers 200 ``{}`` (the process is up); ``/__version__`` serves the JSON file at
``version_json_path``. Paths match ``PATH_INFO`` with or without the version
layer above (it moves ``/v1`` to ``SCRIPT_NAME``).

Place it below version and above batch and auth (no authentication needed).
Skip it if the platform probes something else; nothing else depends on it.

NOTE(heartbeat): a check that outlives the timeout keeps its (daemon) thread
until it returns; backends must therefore have their own network timeouts.
"""
from __future__ import annotations

import logging
import threading
import time
from typing import Any, Callable, Iterable

from cliquet_wsgi import environ as keys
from cliquet_wsgi.errors import ConfigurationError, error_response, method_not_allowed, not_found
from cliquet_wsgi.paste import make_filter_factory
from cliquet_wsgi.registry import Registry, default_registry
from cliquet_wsgi.rendering import JSON_CONTENT_TYPE, JSONDecodeError, json_dumps, json_loads, status_line
from cliquet_wsgi.settings import converter_for

logger = logging.getLogger(__name__)

#: PATH_INFO -> route name (PROTOCOL §12 endpoint names).
ROUTES = {"/__heartbeat__": "heartbeat", "/__lbheartbeat__": "lbheartbeat", "/__version__": "version"}


def _utility_methods(path: str) -> list[str] | None:
    return ["GET", "HEAD"] if path in ROUTES else None


def _checked(name: str, value: Any) -> Any:
    try:
        return converter_for(name)(value)
    except ValueError as exc:
        raise ConfigurationError(f"Invalid value for setting {name!r}: {exc}") from None


class HeartbeatMiddleware:
    """Serve ``__heartbeat__``, ``__lbheartbeat__`` and ``__version__``; pass everything else.

    Settings:
      * ``heartbeat_timeout_seconds`` -- global deadline of all checks; unfinished = ``false``.
      * ``version_json_path`` -- JSON file served by ``__version__`` (read once, then cached).

    Environ: sets ``cliquet.route_name`` (``heartbeat``, ``lbheartbeat``, ``version``),
    ``cliquet.errno`` on its errors and ``cliquet.registry`` if absent. Checks come
    from ``registry.all_heartbeat_checks()``.

    Below version, above batch/auth::

        app = HeartbeatMiddleware(app, heartbeat_timeout_seconds=2, registry=registry)
        # GET /__heartbeat__ -> 200 {"storage": true, "cache": true, "permission": true}
    """

    def __init__(
        self,
        app: Callable[..., Iterable[bytes]],
        *,
        registry: Registry | None = None,
        heartbeat_timeout_seconds: float = 10.0,
        version_json_path: str = "./version.json",
    ) -> None:
        self.app = app
        self.registry = registry if registry is not None else default_registry()
        self.timeout = _checked("heartbeat_timeout_seconds", heartbeat_timeout_seconds)
        if self.timeout <= 0:
            raise ConfigurationError("Setting 'heartbeat_timeout_seconds' must be > 0")
        self.version_json_path = _checked("version_json_path", version_json_path)
        if not self.version_json_path:
            raise ConfigurationError("Setting 'version_json_path' cannot be empty")
        self._version_lock = threading.Lock()
        self._version_payload: bytes | None = None
        # CORS preflight (above) learns which methods these endpoints answer.
        self.registry.register_endpoint_methods(_utility_methods)
        # Batch sits below this layer: its sub-requests to these paths are answered here too.
        for path in ROUTES:
            self.registry.register_batch_endpoint(path, self)

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        environ.setdefault(keys.REGISTRY, self.registry)
        route = ROUTES.get(environ.get("PATH_INFO", ""))
        if route is None:
            return self.app(environ, start_response)
        environ[keys.ROUTE_NAME] = route
        method = environ.get("REQUEST_METHOD")
        if method not in ("GET", "HEAD"):
            error = method_not_allowed(["GET", "HEAD"])
            environ[keys.ERRNO] = error.errno
            return error_response(error, start_response)
        if route == "heartbeat":
            report = self.run_checks()
            healthy = all(value is not False for value in report.values())
            # A plain status map, not an error: no errno, hence no Retry-After (§6).
            return self._json(start_response, method, 200 if healthy else 503, json_dumps(report).encode("utf-8"))
        if route == "lbheartbeat":
            return self._json(start_response, method, 200, b"{}")
        payload = self._version()
        if payload is None:
            error = not_found()
            environ[keys.ERRNO] = error.errno
            return error_response(error, start_response)
        return self._json(start_response, method, 200, payload)

    def run_checks(self) -> dict[str, bool | None]:
        """Run every check concurrently; ``{name: True/False/None}`` within the timeout."""
        checks = self.registry.all_heartbeat_checks()
        results: dict[str, bool | None] = {}

        def run(name: str, check: Callable[[], Any]) -> None:
            try:
                value = check()
            except Exception:
                logger.exception("Heartbeat check %r failed", name)
                value = False
            results[name] = None if value is None else bool(value)

        threads = [
            threading.Thread(target=run, args=(name, check), name=f"heartbeat-{name}", daemon=True)
            for name, check in checks.items()
        ]
        deadline = time.monotonic() + self.timeout
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        finished = dict(results)
        report: dict[str, bool | None] = {}
        for name in checks:
            if name in finished:
                report[name] = finished[name]
            else:
                logger.warning("Heartbeat check %r did not finish within %ss", name, self.timeout)
                report[name] = False
        return report

    def _version(self) -> bytes | None:
        if self._version_payload is None:
            with self._version_lock:
                if self._version_payload is None:
                    try:
                        with open(self.version_json_path, "rb") as file:
                            data = json_loads(file.read())
                    except (OSError, JSONDecodeError) as exc:
                        # Not cached: the file may appear with the next deployment.
                        logger.warning("Cannot serve %s: %s", self.version_json_path, exc)
                        return None
                    self._version_payload = json_dumps(data).encode("utf-8")
        return self._version_payload

    @staticmethod
    def _json(start_response: Callable[..., Any], method: str, status: int, payload: bytes) -> list[bytes]:
        start_response(
            status_line(status), [("Content-Type", JSON_CONTENT_TYPE), ("Content-Length", str(len(payload)))]
        )
        return [b""] if method == "HEAD" else [payload]


filter_factory = make_filter_factory(HeartbeatMiddleware)
