"""Cross-origin resource sharing for the whole stack (PROTOCOL §3, decisions 26 and 27).

Put it outermost among the protocol layers so that every response, errors,
redirects, 304 and 410 included, carries the CORS headers. Preflight requests
are answered here without reaching the application. Do not use it behind a
proxy that already handles CORS: two layers would send conflicting headers.

Policy on actual (non-preflight) requests whose ``Origin`` is not allowed:
the request passes through untouched and the response carries no
``Access-Control-Allow-Origin``, so the browser refuses to share it. Refusing
with a 400 would add nothing (the browser hides the response either way) and
would break same-origin clients behind proxies that add ``Origin`` headers.

Credentials are never advertised, and the ``null`` origin is never allowed.
"""
from __future__ import annotations

import fnmatch
import re
from typing import Any, Callable, Iterable

from cliquet_wsgi import environ as keys
from cliquet_wsgi.errors import ConfigurationError, error_response, invalid_parameters
from cliquet_wsgi.paste import make_filter_factory
from cliquet_wsgi.registry import Registry, default_registry
from cliquet_wsgi.settings import converter_for

#: Exposed on every response with an ``Origin`` (PROTOCOL §3 + decision 27).
BASE_EXPOSED = ("Backoff", "Retry-After", "Alert", "Content-Length", "Vary", "Content-Type")

#: Methods accepted in preflight when no resolver knows the endpoint.
DEFAULT_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE")

# Headers an inner app may set that would contradict our policy.
_OWNED_HEADERS = frozenset({
    "access-control-allow-origin",
    "access-control-allow-credentials",
    "access-control-expose-headers",
})
_VERSION_PREFIX = re.compile(r"/v\d+(?=/|$)")
_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
# Control characters, spaces and non-ASCII never appear in a real origin; refusing
# them keeps CR/LF out of the echoed header (RELIABILITY I6).
_BAD_ORIGIN = re.compile(r"[\x00-\x20\x7f-\U0010ffff]")
# Origins remembered by one middleware; beyond that (forged origins) they are recomputed.
_ALLOWED_CACHE_SIZE = 1024


def _checked(name: str, value: Any) -> Any:
    try:
        return converter_for(name)(value)
    except ValueError as exc:
        raise ConfigurationError(f"Invalid value for setting {name!r}: {exc}") from None


class CORSMiddleware:
    """CORS headers on every response; preflight answered here.

    Settings:
      * ``cors_origins`` -- fnmatch globs matched case-sensitively against the whole
        ``Origin`` (default ``*``); ``null`` is refused at startup.
      * ``cors_max_age_seconds`` -- ``Access-Control-Max-Age`` of preflights (``0``/empty: none).

    Environ: reads ``cliquet.expose_headers`` (a list inner layers append
    header names to; created empty if absent) when the response starts; sets
    ``cliquet.registry`` if absent and ``cliquet.errno`` on the errors it renders.
    Uses ``registry.endpoint_methods(path)`` for the methods allowed in preflight.

    Outermost of the protocol layers (above backoff and errors)::

        app = CORSMiddleware(app, cors_origins=["https://*.example.com"])
        # OPTIONS with Origin + Access-Control-Request-Method -> 200 here
    """

    def __init__(
        self,
        app: Callable[..., Iterable[bytes]],
        *,
        registry: Registry | None = None,
        cors_origins: Any = ("*",),
        cors_max_age_seconds: int | None = 3600,
    ) -> None:
        self.app = app
        self.registry = registry if registry is not None else default_registry()
        origins = _checked("cors_origins", cors_origins)
        for origin in origins:
            if origin == "null":
                raise ConfigurationError("Setting 'cors_origins' cannot allow the 'null' origin")
            if _BAD_ORIGIN.search(origin):
                raise ConfigurationError(f"Setting 'cors_origins' has an invalid origin pattern {origin!r}")
        self.allow_all = "*" in origins
        self.patterns = [re.compile(fnmatch.translate(origin)) for origin in origins]
        max_age = _checked("cors_max_age_seconds", cors_max_age_seconds)
        self.max_age = str(max_age) if max_age else None
        # PERF: the answer for a given origin never changes; most clients send a handful.
        self._allowed: dict[str, bool] = {}
        self._base_exposed = ", ".join(BASE_EXPOSED)
        self._allow_all_tail = (
            ("Access-Control-Allow-Origin", "*"),
            ("Access-Control-Expose-Headers", self._base_exposed),
        )

    def allowed(self, origin: str) -> bool:
        known = self._allowed.get(origin)
        if known is not None:
            return known
        if origin == "null" or _BAD_ORIGIN.search(origin):
            answer = False
        else:
            answer = self.allow_all or any(pattern.match(origin) for pattern in self.patterns)
        if len(self._allowed) < _ALLOWED_CACHE_SIZE:
            self._allowed[origin] = answer
        return answer

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        environ.setdefault(keys.REGISTRY, self.registry)
        exposed = environ.setdefault(keys.EXPOSE_HEADERS, [])
        origin = environ.get("HTTP_ORIGIN")
        if environ.get("REQUEST_METHOD") == "OPTIONS":
            requested = environ.get("HTTP_ACCESS_CONTROL_REQUEST_METHOD")
            if origin is not None or requested is not None:
                return self._preflight(environ, start_response, origin, requested)
        decorate = self._decorate
        # PERF: with "*" and an allowed origin, the headers to add are always the
        # same; they are appended directly unless an inner layer exposes more or
        # set its own. Every other answer needs "Vary: Origin" merged in.
        tail = self._allow_all_tail if self.allow_all and origin is not None and self.allowed(origin) else None

        def cors_start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Callable:
            extra = environ.get(keys.EXPOSE_HEADERS, exposed)
            if tail is None or extra:
                headers = decorate(headers, origin, extra)
            else:
                for name, _ in headers:
                    if name.lower() in _OWNED_HEADERS:
                        headers = decorate(headers, origin, extra)
                        break
                else:
                    headers = [*headers, *tail]
            if exc_info is not None:
                return start_response(status, headers, exc_info)
            return start_response(status, headers)

        return self.app(environ, cors_start_response)

    def _decorate(
        self, headers: list[tuple[str, str]], origin: str | None, extra: Iterable[str]
    ) -> list[tuple[str, str]]:
        result = [(k, v) for k, v in headers if k.lower() not in _OWNED_HEADERS]
        allowed = origin is not None and self.allowed(origin)
        if not (allowed and self.allow_all):
            # S5, and the Fetch standard's "CORS protocol and HTTP caches": a response
            # without "Access-Control-Allow-Origin: *" (another origin, a refused one, or
            # none sent) must not be served from a cache to a request with another Origin.
            _add_vary(result, "Origin")
        if origin is None:
            return result
        if allowed:
            result.append(("Access-Control-Allow-Origin", "*" if self.allow_all else origin))
        if not extra:
            result.append(("Access-Control-Expose-Headers", self._base_exposed))
            return result
        names = list(BASE_EXPOSED)
        for name in extra:
            if name not in names and _TOKEN.fullmatch(name):
                names.append(name)
        result.append(("Access-Control-Expose-Headers", ", ".join(names)))
        return result

    def _preflight(
        self, environ: dict[str, Any], start_response: Callable[..., Any], origin: str | None, requested: str | None
    ) -> list[bytes]:
        problems = []
        if origin is None:
            problems.append(("Origin", "this header is mandatory"))
        elif not self.allowed(origin):
            problems.append(("Origin", f"{origin} not allowed"))
        if requested is None:
            problems.append(("Access-Control-Request-Method", "this header is mandatory"))
            methods: list[str] = []
        else:
            methods = self._methods(environ.get("PATH_INFO", ""))
            if requested not in methods:
                problems.append(("Access-Control-Request-Method", "Method not allowed"))
        if problems:
            error = invalid_parameters(
                [{"location": "header", "name": name, "description": text} for name, text in problems]
            )
            environ[keys.ERRNO] = error.errno

            def decorating(status: str, headers: list[tuple[str, str]]) -> Callable:
                # Errors carry CORS too, so that the browser lets the client read them.
                return start_response(status, self._decorate(headers, origin, ()))

            return error_response(error, decorating)

        headers = [("Content-Type", "text/plain; charset=UTF-8"), ("Content-Length", "0")]
        headers = self._decorate(headers, origin, ())
        headers.append(("Access-Control-Allow-Methods", ",".join(methods)))
        asked = environ.get("HTTP_ACCESS_CONTROL_REQUEST_HEADERS", "")
        # Any requested header is accepted (§3); only well-formed names are echoed.
        names = [name for name in (part.strip() for part in asked.split(",")) if _TOKEN.fullmatch(name)]
        if names:
            headers.append(("Access-Control-Allow-Headers", ", ".join(names)))
        if self.max_age is not None:
            headers.append(("Access-Control-Max-Age", self.max_age))
        start_response("200 OK", headers)
        return [b""]

    def _methods(self, path: str) -> list[str]:
        path = _VERSION_PREFIX.sub("", path, count=1) if _VERSION_PREFIX.match(path) else path
        methods = self.registry.endpoint_methods(path or "/")
        return list(methods) if methods is not None else list(DEFAULT_METHODS)


def _add_vary(headers: list[tuple[str, str]], name: str) -> None:
    for index, (key, value) in enumerate(headers):
        if key.lower() == "vary":
            present = [part.strip().lower() for part in value.split(",")]
            if name.lower() not in present and "*" not in present:
                headers[index] = (key, f"{value}, {name}")
            return
    headers.append(("Vary", name))


filter_factory = make_filter_factory(CORSMiddleware)
