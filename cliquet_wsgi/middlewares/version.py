"""The ``/v1`` URL prefix, the hello page and end of service (PROTOCOL §1 and §5).

Requests under ``/v1`` reach the app with the prefix moved from ``PATH_INFO``
into ``SCRIPT_NAME``, so that Django, Flask or Bottle generate ``/v1/...``
URLs without knowing about it. Unprefixed paths are redirected (307), other
versions are 404/116, ``GET /v1/`` is the hello page and, once the ``eos``
date has passed, every request gets 410/202.

Place it below errors and above heartbeat, batch, auth and the app. Hello
shows the user through ``registry.authenticator`` (installed by the auth
middleware, which sits below). Not for apps that version their URLs themselves.
"""
from __future__ import annotations

import copy
import re
from datetime import date, datetime
from typing import Any, Callable, Iterable

from cliquet_wsgi import environ as keys
from cliquet_wsgi.errors import (
    ERRORS,
    MESSAGES,
    CliquetError,
    error_response,
    method_not_allowed,
    not_found,
)
from cliquet_wsgi.paste import make_filter_factory
from cliquet_wsgi.registry import Registry, default_registry
from cliquet_wsgi.rendering import JSON_CONTENT_TYPE, json_dumps, status_line
from cliquet_wsgi.settings import load_settings, version_prefix
from cliquet_wsgi.urls import check_http_host, quote_path, quote_raw, request_origin

#: Served unprefixed too: load balancers do not follow redirects.
UTILITY_PATHS = frozenset({"/__heartbeat__", "/__lbheartbeat__", "/__version__"})

CLIQUET_PROTOCOL_VERSION = "2"

_VERSION_SEGMENT = re.compile(r"/v\d+(/|$)")
# Printable ASCII except space: existing escapes in the querystring are kept.
_QUERY_SAFE = "".join(chr(c) for c in range(0x21, 0x7F))
_REDIRECT_HEADERS = [("Content-Type", "text/plain; charset=UTF-8"), ("Content-Length", "0")]
# Bounds of the per-middleware caches of base URLs and hello bodies: Host
# headers are chosen by clients, so past these sizes results are recomputed.
_BASE_URL_CACHE_SIZE = 256
_HELLO_CACHE_SIZE = 64


def _unknown_version() -> CliquetError:
    return not_found(ERRORS.VERSION_NOT_AVAILABLE, MESSAGES["unknown_version"])


def _hello_methods(path: str) -> list[str] | None:
    return ["GET", "HEAD"] if path == "/" else None


def _close(app_iter: Any) -> None:
    close = getattr(app_iter, "close", None)
    if close is not None:
        close()


def _call(app: Callable[..., Iterable[bytes]], environ: dict[str, Any]) -> tuple[str, list, Any, Iterable[bytes]]:
    """Run ``app`` without starting the response: ``(status, headers, exc_info, body)``."""
    captured: list[Any] = []
    written: list[bytes] = []

    def capture(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Callable:
        captured[:] = [status, headers, exc_info]
        return written.append

    app_iter = app(environ, capture)
    if captured and not written:
        return captured[0], captured[1], captured[2], app_iter
    # Generator apps call start_response on the first iteration and write()
    # users have sent part of the body already: buffer those (rare) bodies.
    try:
        body = written + list(app_iter)
    finally:
        _close(app_iter)
    if not captured:
        raise RuntimeError("The application returned without calling start_response")
    return captured[0], captured[1], captured[2], body


class VersionMiddleware:
    """Version prefix, redirects and 404s of unknown URLs, hello, end of service.

    Settings:
      * ``http_api_version`` -- ``MAJOR.MINOR``; the prefix is ``/vMAJOR`` (default: from ``project_version``).
      * ``project_name``, ``project_version``, ``project_docs`` -- shown in hello.
      * ``http_scheme``, ``http_host`` -- force the scheme/host of hello's ``url`` and of ``Location``.
      * ``version_prefix_redirect_enabled`` -- 307 unprefixed paths to ``/v1/...`` (else 404/116).
      * ``trailing_slash_redirect_enabled`` -- 307 ``/v1/x/`` to ``/v1/x`` when the app answers 404 to it.
      * ``eos``, ``eos_message``, ``eos_url`` -- end of service date, ``Alert`` message and URL.

    Environ: moves the prefix from ``PATH_INFO`` to ``SCRIPT_NAME`` after keeping both in
    ``cliquet.path_orig``; sets ``cliquet.version_prefix``, ``cliquet.route_name`` (hello),
    ``cliquet.errno`` on its errors and ``cliquet.registry`` if absent; hello reads
    ``cliquet.user_id`` and ``cliquet.principals`` or calls ``registry.authenticator``.

    Below errors, above heartbeat/batch/auth::

        app = VersionMiddleware(flask_app.wsgi_app, project_name="blog", project_version="1.3.0")
        # GET /articles -> 307 /v1/articles; flask sees SCRIPT_NAME=/v1, PATH_INFO=/articles
    """

    def __init__(
        self,
        app: Callable[..., Iterable[bytes]],
        *,
        registry: Registry | None = None,
        http_api_version: str = "",
        project_name: str = "",
        project_version: str = "1.0.0",
        project_docs: str = "",
        http_scheme: str | None = None,
        http_host: str | None = None,
        version_prefix_redirect_enabled: bool = True,
        trailing_slash_redirect_enabled: bool = True,
        eos: Any = None,
        eos_message: str | None = None,
        eos_url: str | None = None,
    ) -> None:
        self.app = app
        self.registry = registry if registry is not None else default_registry()
        # One loader for conversions, derivation of http_api_version and checks.
        settings = load_settings(
            {
                "http_api_version": http_api_version,
                "project_name": project_name,
                "project_version": project_version,
                "project_docs": project_docs,
                "http_scheme": http_scheme,
                "http_host": http_host,
                "version_prefix_redirect_enabled": version_prefix_redirect_enabled,
                "trailing_slash_redirect_enabled": trailing_slash_redirect_enabled,
                "eos": eos,
                "eos_message": eos_message,
                "eos_url": eos_url,
            },
            environ={},
        )
        self.prefix = version_prefix(settings)
        self._prefix_slash = self.prefix + "/"
        self.http_api_version = settings["http_api_version"]
        self.project = {
            "project_name": settings["project_name"],
            "project_version": settings["project_version"],
            "http_api_version": settings["http_api_version"],
            "project_docs": settings["project_docs"],
            "cliquet_protocol_version": CLIQUET_PROTOCOL_VERSION,
        }
        self.http_scheme = settings["http_scheme"]
        self.http_host = check_http_host(settings["http_host"])
        self.redirect_prefix = settings["version_prefix_redirect_enabled"]
        self.redirect_trailing_slash = settings["trailing_slash_redirect_enabled"]
        self.eos, self.eos_text = self._eos(settings["eos"])
        url = settings["eos_url"] or settings["project_docs"] or None
        message = settings["eos_message"]
        self.soft_alert = json_dumps({"code": "soft-eol", "message": message, "url": url})
        self.hard_alert = json_dumps({"code": "hard-eol", "message": message, "url": url})
        # PERF: base URLs per (scheme, Host, server, SCRIPT_NAME) and hello's JSON
        # (without "user") per URL, revalidated against the registry on every use.
        self._base_urls: dict[tuple, str] = {}
        self._hello_texts: dict[str, tuple[dict, dict, str, bytes]] = {}
        # CORS preflight (above) learns that hello only answers GET and HEAD.
        self.registry.register_endpoint_methods(_hello_methods)
        # Batch sits below this layer: its sub-requests to "/" are answered here too.
        self.registry.register_batch_endpoint("/", self._batch_hello)

    @staticmethod
    def _eos(value: date | None) -> tuple[datetime | None, str | None]:
        if value is None:
            return None, None
        if not isinstance(value, datetime):
            value = datetime(value.year, value.month, value.day)
        # Hello shows the date as configured: a plain date stays a plain date.
        if value.tzinfo is None and value.time() == datetime.min.time():
            return value, value.date().isoformat()
        return value, value.isoformat()

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        environ.setdefault(keys.REGISTRY, self.registry)
        if self.eos is not None:
            # §5: end of service wins over everything, routing included.
            if datetime.now(self.eos.tzinfo) >= self.eos:
                error = CliquetError(410, ERRORS.SERVICE_DEPRECATED, message=MESSAGES["eos"],
                                     headers=[("Alert", self.hard_alert)])
                return self._error(environ, start_response, error)
            start_response = self._with_alert(start_response)

        path = environ.get("PATH_INFO", "")
        prefix = self.prefix
        if path.startswith(self._prefix_slash):
            rest = path[len(prefix):]
            if rest == "/":
                return self._hello(environ, start_response)
            if rest[-1] != "/" or not self.redirect_trailing_slash:
                # PERF: the common case, inline: move the prefix and call the app.
                script_name = environ.get("SCRIPT_NAME", "")
                environ[keys.PATH_ORIG] = (script_name, path)
                environ[keys.VERSION_PREFIX] = prefix
                environ["SCRIPT_NAME"] = script_name + prefix
                environ["PATH_INFO"] = rest
                return self.app(environ, start_response)
            return self._call_app(environ, start_response, path, rest)
        if path == prefix:
            if self.redirect_trailing_slash:
                return self._redirect(environ, start_response, prefix + "/")
            return self._error(environ, start_response, not_found())
        if _VERSION_SEGMENT.match(path):
            # §1.2 rule 1, decision 21: exact segment, so /v10 is not /v1.
            return self._error(environ, start_response, _unknown_version())
        if path in UTILITY_PATHS:
            return self.app(environ, start_response)
        if self.redirect_prefix:
            return self._redirect(environ, start_response, prefix + (path or "/"))
        return self._error(environ, start_response, _unknown_version())

    def _with_alert(self, start_response: Callable[..., Any]) -> Callable[..., Any]:
        def alert_start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Callable:
            # An inner Alert (e.g. the deprecated _to parameter) is kept as is.
            if not any(k.lower() == "alert" for k, _ in headers):
                headers = [*headers, ("Alert", self.soft_alert)]
            if exc_info is not None:
                return start_response(status, headers, exc_info)
            return start_response(status, headers)

        return alert_start_response

    def _call_app(
        self, environ: dict[str, Any], start_response: Callable[..., Any], path: str, rest: str
    ) -> Iterable[bytes]:
        script_name = environ.get("SCRIPT_NAME", "")
        environ[keys.PATH_ORIG] = (script_name, path)
        environ[keys.VERSION_PREFIX] = self.prefix
        environ["SCRIPT_NAME"] = script_name + self.prefix
        environ["PATH_INFO"] = rest
        if not (self.redirect_trailing_slash and rest.endswith("/")):
            return self.app(environ, start_response)
        # §1.2 rule 2: the slashed URL is tried first; only its 404 redirects.
        status, headers, exc_info, body = _call(self.app, environ)
        if status.startswith("404"):
            _close(body)
            return self._redirect(environ, start_response, self.prefix + rest.rstrip("/"), script_name)
        if exc_info is not None:
            start_response(status, headers, exc_info)
        else:
            start_response(status, headers)
        return body

    def _base_url(self, environ: dict[str, Any], script_name: str | None = None) -> str:
        if script_name is None:
            script_name = environ.get("SCRIPT_NAME", "")
        key = (environ.get("wsgi.url_scheme"), environ.get("HTTP_HOST"), environ.get("SERVER_NAME"),
               environ.get("SERVER_PORT"), script_name)
        url = self._base_urls.get(key)
        if url is None:
            url = self._build_base_url(environ, script_name)
            if len(self._base_urls) < _BASE_URL_CACHE_SIZE:
                self._base_urls[key] = url
        return url

    def _build_base_url(self, environ: dict[str, Any], script_name: str) -> str:
        return request_origin(environ, self.http_scheme, self.http_host) + quote_path(script_name)

    def _redirect(
        self, environ: dict[str, Any], start_response: Callable[..., Any], path: str, script_name: str | None = None
    ) -> list[bytes]:
        location = self._base_url(environ, script_name) + quote_path(path)
        query = environ.get("QUERY_STRING", "")
        if query:
            location += "?" + quote_raw(query, _QUERY_SAFE)
        start_response(status_line(307), [*_REDIRECT_HEADERS, ("Location", location)])
        return [b""]

    @staticmethod
    def _error(environ: dict[str, Any], start_response: Callable[..., Any], error: CliquetError) -> list[bytes]:
        environ[keys.ERRNO] = error.errno
        return error_response(error, start_response)

    def _batch_hello(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        """Hello for a batch sub-request (``cliquet.path_orig`` holds the SCRIPT_NAME before the prefix)."""
        script_name = environ.get(keys.PATH_ORIG, (environ.get("SCRIPT_NAME", ""),))[0]
        return self._hello(environ, start_response, script_name)

    def _hello(
        self, environ: dict[str, Any], start_response: Callable[..., Any], script_name: str | None = None
    ) -> list[bytes]:
        environ[keys.ROUTE_NAME] = "hello"
        method = environ.get("REQUEST_METHOD", "GET")
        if method not in ("GET", "HEAD"):
            return self._error(environ, start_response, method_not_allowed(["GET", "HEAD"]))
        text, payload = self._hello_text(self._base_url(environ, script_name) + self.prefix + "/")
        user = self._user(environ)
        if user is not None:
            # "user" is the last key: splicing it in gives the text json_dumps would.
            payload = f'{text[:-1]},"user":{json_dumps(user)}}}'.encode("utf-8")
        start_response(
            status_line(200),
            [("Content-Type", JSON_CONTENT_TYPE), ("Content-Length", str(len(payload))), ("Vary", "Authorization")],
        )
        return [b""] if method == "HEAD" else [payload]

    def _hello_text(self, url: str) -> tuple[str, bytes]:
        """Hello's JSON without ``user``, as text and UTF-8; cached while the registry's content is unchanged.

        NOTE(version): "unchanged" is ``==`` on deep copies, so replacing a value by an
        equal one of another JSON type (``1`` by ``True``) is not seen until another change.
        """
        registry = self.registry
        settings, capabilities = registry.public_settings, registry.capabilities
        cached = self._hello_texts.get(url)
        if cached is not None and cached[0] == settings and cached[1] == capabilities:
            return cached[2], cached[3]
        body: dict[str, Any] = dict(self.project)
        body["url"] = url
        if self.eos_text is not None:
            body["eos"] = self.eos_text
        body["settings"] = dict(settings)
        body["capabilities"] = dict(capabilities)
        text = json_dumps(body)
        payload = text.encode("utf-8")
        if len(self._hello_texts) < _HELLO_CACHE_SIZE or url in self._hello_texts:
            # Deep copies: the registry's entries may be changed in place later.
            self._hello_texts[url] = (copy.deepcopy(settings), copy.deepcopy(capabilities), text, payload)
        return text, payload

    def _user(self, environ: dict[str, Any]) -> dict[str, Any] | None:
        user_id = environ.get(keys.USER_ID)
        principals = environ.get(keys.PRINCIPALS)
        authenticator = self.registry.authenticator
        if not user_id and authenticator is not None:
            try:
                found = authenticator(environ)
            except CliquetError:
                found = None  # §1.3: bad credentials just omit "user"
            if not found:
                return None
            user_id, principals = found
        if not user_id:
            return None
        user: dict[str, Any] = {"id": user_id}
        if principals is not None:
            user["principals"] = list(principals)
        return user


filter_factory = make_filter_factory(VersionMiddleware)
