"""Serve REST resources (PROTOCOL §9, §10) in front of any WSGI application.

Use it to get synchronisable collections (``/articles``, ``/articles/{id}``)
with filtering, pagination, ETags, preconditions and permissions, stored in
the stack's storage backend. Every request that does not match a resource
path goes to the application untouched. Not for endpoints whose semantics
differ from §10: write those as ordinary views of your application.
"""
from __future__ import annotations

import logging
from typing import Any, Iterable, Mapping

from webob import Request

from cliquet_wsgi import environ as keys
from cliquet_wsgi.errors import (
    BackendError,
    CliquetError,
    ConfigurationError,
    error_from_exception,
    invalid_parameter,
    method_not_allowed,
    render_error,
)
from cliquet_wsgi.middlewares.resources import codecs, preconditions
from cliquet_wsgi.middlewares.resources import views
from cliquet_wsgi.middlewares.resources.definition import CompiledResource, Resource, resource_from_settings
from cliquet_wsgi.middlewares.resources.permissions import Authorizer
from cliquet_wsgi.middlewares.resources.routing import COLLECTION, Match, Router
from cliquet_wsgi.registry import Registry, default_registry, import_dotted
from cliquet_wsgi.rendering import status_line
from cliquet_wsgi.urls import check_http_host, quote_path, request_origin

logger = logging.getLogger(__name__)

_READ_METHODS = ("GET", "HEAD")
_BODY_METHODS = ("POST", "PUT", "PATCH")

#: §3: headers CORS must expose on resource responses, beyond the base set.
EXPOSE_COLLECTION = ("Next-Page", "Total-Records", "Total-Objects", "Last-Modified", "ETag",
                     "Cache-Control", "Expires", "Pragma")
EXPOSE_RECORD = ("Last-Modified", "ETag", "Cache-Control", "Expires", "Pragma")


def load_resources(entries: Iterable[Any], settings: Mapping[str, Any]) -> list[Resource]:
    """Resource objects from objects, classes, dotted paths, bare names and ``resource.<name>.*`` settings."""
    found: dict[str, Resource] = {}
    for entry in entries:
        if isinstance(entry, str):
            text = entry.strip()
            if not text:
                continue
            if "." not in text and ":" not in text:
                entry = Resource(text)
            else:
                try:
                    entry = import_dotted(text)
                except (ImportError, AttributeError) as exc:
                    raise ConfigurationError(f"Setting 'resources': cannot import {text!r}: {exc}") from None
        if isinstance(entry, type) and issubclass(entry, Resource):
            entry = entry()
        if not isinstance(entry, Resource):
            raise ConfigurationError(f"Setting 'resources': {entry!r} is not a Resource")
        if entry.name in found:
            raise ConfigurationError(f"Setting 'resources': resource {entry.name!r} is defined twice")
        found[entry.name] = entry
    declared = {key.split(".")[1] for key in settings if key.startswith("resource.") and key.count(".") >= 2}
    for name in sorted(declared):
        found[name] = resource_from_settings(name, settings, found.get(name))
    return list(found.values())


def read_body(environ: Mapping[str, Any]) -> bytes:
    """The request body (its size is bounded by the errors middleware above)."""
    stream = environ.get("wsgi.input")
    if stream is None:
        return b""
    try:
        length = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        raise invalid_parameter("header", "Content-Length", "Invalid Content-Length") from None
    if length > 0:
        return stream.read(length)
    if environ.get("wsgi.input_terminated"):
        # Chunked upload: the server ends the stream itself.
        return stream.read()
    return b""


def query_params(environ: dict[str, Any]) -> list[tuple[str, str]]:
    """The querystring's ``(name, value)`` pairs, decoded as WebOb does; 400 on invalid UTF-8."""
    if not environ.get("QUERY_STRING"):
        # PERF: most requests have no querystring; skip building a WebOb request.
        return []
    try:
        return [(k, v) for k, v in Request(environ).GET.items()]
    except UnicodeDecodeError:
        raise invalid_parameter("querystring", None, "Invalid UTF-8 in querystring") from None


class ResourcesMiddleware:
    """REST endpoints for the given resources (PROTOCOL §10).

    Settings:

    * ``resources``: Resource objects, classes or dotted paths (plus ``resource.<name>.*`` declarations).
    * ``readonly``: every method but GET/HEAD/OPTIONS answers 405.
    * ``paginate_by``: default page size; ``storage_max_fetch_size``: maximum page size (in a
      batch of N requests, of all its pages together: each page holds at most 1/N of it).
    * ``strict_preconditions``: ETag equality instead of Cliquet's order comparison.
    * ``id_generator``: ``uuid4`` or dotted path of a callable making record ids.
    * ``retry_after_seconds``: ``Retry-After`` of 503 backend errors rendered here.
    * ``http_scheme`` / ``http_host``: force the origin of ``Next-Page`` URLs.
    * dynamic: ``<res>_{read,write,create}_principals``, ``<res>_cache_expires_seconds``,
      ``{collection,record}_<res>_<method>_enabled``.

    Reads ``cliquet.user_id`` and ``cliquet.principals`` (set by the auth
    middleware above: without it every request is anonymous). Sets
    ``cliquet.route_name``, ``cliquet.route_pattern``, ``cliquet.errno``,
    appends to ``cliquet.expose_headers`` and ``cliquet.log_context``. Needs a
    storage backend (``storage_url``) and, for shareable resources, a
    permission backend (``permission_url``). Sits below auth and version.

        app = ResourcesMiddleware(app, resources=[Resource("article")],
                                  registry=Registry(load_settings({"storage_url": "memory://"})))
    """

    def __init__(
        self,
        app: Any,
        *,
        registry: Registry | None = None,
        resources: Iterable[Any] = (),
        readonly: bool = False,
        paginate_by: int | None = None,
        storage_max_fetch_size: int = 10000,
        strict_preconditions: bool = False,
        id_generator: str = "uuid4",
        retry_after_seconds: int = 30,
        http_scheme: str | None = None,
        http_host: str | None = None,
        settings: Mapping[str, Any] | None = None,
    ) -> None:
        self.app = app
        self.registry = registry if registry is not None else default_registry()
        settings = dict(settings) if settings is not None else dict(self.registry.settings)
        if paginate_by is not None and paginate_by < 1:
            raise ConfigurationError("Setting 'paginate_by' must be >= 1")
        if storage_max_fetch_size < 1:
            raise ConfigurationError("Setting 'storage_max_fetch_size' must be >= 1")
        self.readonly = bool(readonly)
        self.paginate_by = paginate_by
        self.max_fetch_size = storage_max_fetch_size
        self.strict_preconditions = bool(strict_preconditions)
        self.retry_after_seconds = retry_after_seconds
        self.http_scheme = http_scheme
        self.http_host = check_http_host(http_host)
        self.resources = [
            CompiledResource(r, default_id_generator=id_generator) for r in load_resources(resources, settings)
        ]
        if not self.resources:
            raise ConfigurationError("Setting 'resources': no resource to serve")
        try:
            self.router = Router(self.resources)
        except ValueError as exc:
            raise ConfigurationError(f"Setting 'resources': {exc}") from None
        configured = {**self.registry.settings, **settings}
        if not (configured.get("storage_url") or configured.get("storage_backend")):
            raise ConfigurationError("The resources middleware needs a storage backend (setting 'storage_url')")
        if any(r.shareable for r in self.resources) and not (
            configured.get("permission_url") or configured.get("permission_backend")
        ):
            raise ConfigurationError("Shareable resources need a permission backend (setting 'permission_url')")
        self.methods: dict[tuple[str, str], tuple[str, ...]] = {}
        self.cache_expires: dict[str, int | None] = {}
        self.authorizers: dict[str, Authorizer] = {}
        for resource in self.resources:
            for endpoint, defined in (("collection", resource.collection_methods), ("record", resource.record_methods)):
                enabled = tuple(
                    m for m in defined
                    if settings.get(f"{endpoint}_{resource.name}_{m.lower()}_enabled", True)
                    and (not self.readonly or m in _READ_METHODS)
                )
                self.methods[(resource.name, endpoint)] = enabled
            self.cache_expires[resource.name] = settings.get(f"{resource.name}_cache_expires_seconds")
            if resource.shareable:
                self.authorizers[resource.name] = Authorizer(resource, settings, lambda: self.registry.permission)
        self.registry.register_endpoint_methods(self._endpoint_methods)

    # -- shared with outer layers ------------------------------------------------------

    def _endpoint_methods(self, path: str) -> list[str] | None:
        match = self.router.match(path)
        if match is None:
            return None
        return [*self.methods[(match.resource.name, match.endpoint)], "OPTIONS"]

    # -- WSGI ------------------------------------------------------------------------------

    def __call__(self, environ: dict[str, Any], start_response):
        environ.setdefault(keys.REGISTRY, self.registry)
        match = self.router.match(environ.get("PATH_INFO", ""))
        if match is None:
            return self.app(environ, start_response)
        environ[keys.ROUTE_NAME] = match.route_name
        environ[keys.ROUTE_PATTERN] = match.pattern
        method = environ.get("REQUEST_METHOD", "GET").upper()
        if method in _READ_METHODS:
            exposed = EXPOSE_COLLECTION if match.endpoint == COLLECTION else EXPOSE_RECORD
            environ.setdefault(keys.EXPOSE_HEADERS, []).extend(exposed)
        vary = "Authorization, Accept"
        try:
            kind, reply = self.handle(environ, match, method)
        except (CliquetError, BackendError) as exc:
            if isinstance(exc, BackendError):
                if keys.BATCH in environ:
                    # PROTOCOL §7.4: the batch aborts, rolls back (and may retry) on a raised 5xx.
                    raise
                logger.critical("Backend error on %s %s", method, match.pattern, exc_info=exc)
            error = error_from_exception(exc, retry_after_seconds=self.retry_after_seconds)
            environ[keys.ERRNO] = error.errno
            status, headers, body = render_error(error)
            start_response(status, [*headers, ("Vary", vary)])
            return [body] if method != "HEAD" else [b""]
        headers = [*reply.headers, ("Vary", vary)]
        if reply.body is None:
            payload = b""
            if reply.status != 304:
                headers.append(("Content-Type", "application/json; charset=UTF-8"))
            headers.append(("Content-Length", "0"))
        else:
            content_type, payload = codecs.encode_body(kind, reply.body)
            headers += [("Content-Type", content_type), ("Content-Length", str(len(payload)))]
            if kind == codecs.JSON and keys.BATCH in environ:
                environ[keys.RESPONSE_DATA] = reply.body
        start_response(status_line(reply.status), headers)
        return [payload] if method != "HEAD" else [b""]

    def handle(self, environ: dict[str, Any], match: Match, method: str) -> tuple[str, views.Reply]:
        """§0 steps 2–6 for one matched request: ``(response codec, reply)``."""
        resource = match.resource
        allowed = self.methods[(resource.name, match.endpoint)]
        if method == "OPTIONS":
            return "json", views.Reply(200, [("Allow", ",".join([*allowed, "OPTIONS"]))])
        if method not in allowed:
            raise method_not_allowed([*allowed, "OPTIONS"])
        kind = codecs.negotiate_response_type(environ.get("HTTP_ACCEPT"))
        payload: Any = None
        body_kind = views.JSON
        body_error: CliquetError | None = None
        if method in _BODY_METHODS:
            content_type = environ.get("CONTENT_TYPE", "")
            is_patch = method == "PATCH"
            body_kind = codecs.body_kind(content_type, patch=is_patch)  # 415 before authorization (§0)
            try:
                if keys.PARSED_BODY in environ and body_kind != codecs.MSGPACK:
                    # A batch sub-request: the batch layer parsed (strictly) and copied it.
                    payload = environ[keys.PARSED_BODY]
                else:
                    payload = codecs.decode_body(content_type, read_body(environ), patch=is_patch)
            except CliquetError as exc:
                if exc.status == 415:
                    raise
                # §0: a malformed body is a 400 *after* authorization.
                body_error = exc
        user_id = environ.get(keys.USER_ID) or None
        principals = list(environ.get(keys.PRINCIPALS) or ["system.Everyone"])
        for slot in resource.parent_slots:
            if not resource.valid_parent_slot(match.slots[slot]):
                raise invalid_parameter("path", None, f"Invalid {slot}")
        params = query_params(environ)
        ctx = views.Context(
            resource=resource,
            endpoint=match.endpoint,
            method=method,
            slots=match.slots,
            user_id=user_id,
            principals=principals,
            storage=self.registry.storage,
            permission=self.registry.permission if resource.shareable else None,
            authorizer=self.authorizers.get(resource.name),
            preconditions=preconditions.Preconditions(None, None, self.strict_preconditions),
            params=params,
            payload=payload,
            body_kind=body_kind,
            body_error=body_error,
            challenges=self._challenges(),
            paginate_by=self.paginate_by,
            max_fetch_size=self._max_page_size(environ),
            cache_expires_seconds=self.cache_expires.get(resource.name),
            response_behavior=(environ.get("HTTP_RESPONSE_BEHAVIOR") or "full").strip().lower(),
            next_page_base=lambda: self._endpoint_url(environ),
        )
        views.authorize(ctx)
        ctx.preconditions = preconditions.parse(
            environ.get("HTTP_IF_MATCH"), environ.get("HTTP_IF_NONE_MATCH"), strict=self.strict_preconditions
        )
        reply = views.VIEWS[(match.endpoint, method)](ctx)
        log = environ.get(keys.LOG_CONTEXT)
        if isinstance(log, dict):
            log.update(collection_id=resource.name, **ctx.log)
        return kind, reply

    # -- helpers -----------------------------------------------------------------------

    def _max_page_size(self, environ: dict[str, Any]) -> int:
        """``storage_max_fetch_size``, shared out among the sub-requests of a batch.

        RELIABILITY S11: a batch of 25 listings with ``_limit`` at the maximum
        would otherwise hold 25 maximum pages in memory at once. Each of its
        pages is capped at the maximum divided by the batch size (at least
        1), and ends with ``Next-Page`` like any capped page.
        """
        batch = environ.get(keys.BATCH)
        size = batch.get("size") if isinstance(batch, dict) else None
        if type(size) is int and size > 1:
            return max(1, self.max_fetch_size // size)
        return self.max_fetch_size

    def _challenges(self) -> list[str] | None:
        challenges = getattr(self.registry, "challenges", None)
        if challenges is None:
            owner = getattr(self.registry.authenticator, "__self__", None)
            challenges = getattr(owner, "challenges", None)
        return list(challenges) if challenges else None

    def _endpoint_url(self, environ: Mapping[str, Any]) -> str:
        """Absolute URL of the requested endpoint, without querystring (Next-Page base)."""
        path = environ.get("SCRIPT_NAME", "") + environ.get("PATH_INFO", "")
        return request_origin(environ, self.http_scheme, self.http_host) + quote_path(path)
