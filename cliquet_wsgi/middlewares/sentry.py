"""Report unhandled errors to Sentry, once each, with the request they broke.

Use it when you run a Sentry (or compatible: GlitchTip…) project; it needs
the ``sentry`` extra (``pip install cliquet-wsgi[sentry]``). Without
``sentry_dsn`` :func:`cliquet_wsgi.stack.wrap` leaves it out.

How events arrive: the errors middleware below logs every unhandled
exception at ERROR with its traceback (backend failures at CRITICAL); the SDK's
logging integration turns that record into an event. An exception that
escapes the stack (no errors middleware) is captured here. The SDK's dedupe
integration drops the second report of the same exception (the server logging
it again), so one failure gives one event.

Privacy: ``send_default_pii`` is off, no user, cookies, querystring or body
is attached, and ``before_send`` strips credential headers (``Authorization``,
``Cookie``…) from every event, including events other code creates.
Breadcrumbs are made from log records at INFO and above.
"""
from __future__ import annotations

import logging
import re
from typing import Any, Callable, Iterable

from cliquet_wsgi import environ as keys
from cliquet_wsgi.errors import ConfigurationError
from cliquet_wsgi.paste import make_filter_factory
from cliquet_wsgi.registry import Registry, default_registry

#: Request headers never sent to Sentry (case-insensitive, matched anywhere in the name).
SENSITIVE_HEADER = re.compile(r"authorization|cookie|token|secret|password|api-?key|signature", re.IGNORECASE)

_WSGI_HEADERS = {"CONTENT_TYPE": "Content-Type", "CONTENT_LENGTH": "Content-Length"}


def strip_sensitive_headers(event: dict, hint: Any = None) -> dict:
    """``before_send``: remove credential headers, cookies and querystrings from ``event``."""
    request = event.get("request")
    if isinstance(request, dict):
        headers = request.get("headers")
        if isinstance(headers, dict):
            request["headers"] = {k: v for k, v in headers.items() if not SENSITIVE_HEADER.search(str(k))}
        elif isinstance(headers, list):
            request["headers"] = [h for h in headers if not SENSITIVE_HEADER.search(str(h[0]))]
        request.pop("cookies", None)
        request.pop("query_string", None)
    return event


def request_headers(environ: dict) -> dict[str, str]:
    """The request headers worth attaching to an event (credentials excluded)."""
    headers = {}
    for key, value in environ.items():
        if key.startswith("HTTP_"):
            name = key[5:].replace("_", "-").title()
        elif key in _WSGI_HEADERS:
            name = _WSGI_HEADERS[key]
        else:
            continue
        if not SENSITIVE_HEADER.search(name):
            headers[name] = value
    return headers


def _request_processor(environ: dict) -> Callable[[dict, Any], dict]:
    def process(event: dict, hint: Any) -> dict:
        host = environ.get("HTTP_HOST") or environ.get("SERVER_NAME", "")
        path = environ.get(keys.PATH_ORIG)
        path = "".join(path) if isinstance(path, tuple) else environ.get("SCRIPT_NAME", "") + environ.get(
            "PATH_INFO", "")
        request = event.setdefault("request", {})
        request.setdefault("method", environ.get("REQUEST_METHOD"))
        request.setdefault("url", f"{environ.get('wsgi.url_scheme', 'http')}://{host}{path}")
        request.setdefault("headers", request_headers(environ))
        tags = event.setdefault("tags", {})
        for tag, key in (("request_id", keys.REQUEST_ID), ("route", keys.ROUTE_NAME),
                         ("authn_type", keys.AUTHN_TYPE)):
            if environ.get(key):
                tags.setdefault(tag, environ[key])
        return event

    return process


def init_sentry(sentry_dsn: str, sentry_env: str | None, release: str | None) -> None:
    """Initialise the SDK for this process, unless it already sends to ``sentry_dsn``."""
    import sentry_sdk
    from sentry_sdk.integrations.dedupe import DedupeIntegration
    from sentry_sdk.integrations.logging import LoggingIntegration

    client = sentry_sdk.get_client()
    if client.is_active() and client.dsn == sentry_dsn:
        return
    from sentry_sdk.consts import DEFAULT_OPTIONS

    # NOTE: recent SDKs deprecate send_default_pii (a DeprecationWarning) in
    # favour of data_collection, whose default is the same "no PII".
    privacy = {} if "data_collection" in DEFAULT_OPTIONS else {"send_default_pii": False}
    sentry_sdk.init(
        dsn=sentry_dsn,
        environment=sentry_env,
        release=release,
        **privacy,
        # Frame locals hold the environ, hence the Authorization header.
        include_local_variables=False,
        default_integrations=False,
        auto_enabling_integrations=False,
        integrations=[
            LoggingIntegration(level=logging.INFO, event_level=logging.ERROR, sentry_logs_level=None),
            DedupeIntegration(),
        ],
        before_send=strip_sensitive_headers,
    )


class SentryMiddleware:
    """Attach the request to Sentry events; capture exceptions that escape the stack.

    Settings:
        ``sentry_dsn``: the project DSN (required here; a secret, never logged).
        ``sentry_env``: the ``environment`` of events (``prod``, ``stage``…).
        ``project_name``, ``project_version``: the ``release`` (``name@version``).

    Environ read when an event is sent: the request, ``cliquet.request_id``,
    ``cliquet.route_name``, ``cliquet.authn_type`` (as tags). Sits above
    cors and errors (so the errors middleware's ERROR records happen inside
    the request's Sentry scope) and below request_log (so the request id is
    known).

    Example::

        app = SentryMiddleware(app, sentry_dsn="https://key@o1.ingest.sentry.io/2", sentry_env="prod")
    """

    def __init__(
        self,
        app: Callable[..., Iterable[bytes]],
        *,
        registry: Registry | None = None,
        sentry_dsn: str | None = None,
        sentry_env: str | None = None,
        project_name: str = "",
        project_version: str = "",
    ) -> None:
        if not sentry_dsn:
            raise ConfigurationError("Setting 'sentry_dsn' is required by the Sentry middleware")
        try:
            import sentry_sdk
            from sentry_sdk.utils import BadDsn, Dsn
        except ImportError:
            raise ConfigurationError(
                "Setting 'sentry_dsn' needs the 'sentry-sdk' package: pip install cliquet-wsgi[sentry]"
            ) from None
        try:
            Dsn(sentry_dsn)
        except BadDsn as exc:
            # NOTE: the DSN holds the project key: the message does not repeat it.
            raise ConfigurationError(f"Setting 'sentry_dsn' is not a valid Sentry DSN: {exc.__class__.__name__}") \
                from None
        release = f"{project_name or 'cliquet'}@{project_version}" if project_version else None
        init_sentry(sentry_dsn, sentry_env, release)
        self._sdk = sentry_sdk
        self.app = app
        self.registry = registry if registry is not None else default_registry()

    def __call__(self, environ: dict, start_response: Callable[..., Any]) -> Iterable[bytes]:
        if keys.REGISTRY not in environ:
            environ[keys.REGISTRY] = self.registry
        with self._sdk.isolation_scope() as scope:
            # The fork inherits breadcrumbs logged outside any request (such as
            # the previous request's summary): keep only this request's.
            scope.clear_breadcrumbs()
            scope.add_event_processor(_request_processor(environ))
            try:
                return self.app(environ, start_response)
            except Exception as exc:
                self._sdk.capture_exception(exc)
                raise


filter_factory = make_filter_factory(SentryMiddleware)
