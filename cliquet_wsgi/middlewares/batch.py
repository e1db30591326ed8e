"""``POST /v1/batch``: run many protocol requests in one HTTP round-trip (PROTOCOL §7).

Use it above the layers that serve the sub-requests (auth, resources, app):
each sub-request goes through them like a direct request, so it is
authenticated and authorized on its own. Do not use it above anything that
must see every request separately with its own transaction or end-of-service
check: those belong above batch (version, errors, CORS).

Decisions (PROTOCOL §15):

* Strict body (#12, Kinto's behaviour): an unknown attribute at the top level,
  in ``defaults`` or in a request is a 400 whose ``details`` name it, e.g.
  ``requests.3.bdoy``. Any request ``Content-Type`` is accepted.
* Recursion (#13): only a sub-path naming the batch route itself is refused.
* Everything is validated before the first sub-request runs (RELIABILITY I11).
* Header names must be HTTP tokens of letters, digits and ``-``: an
  underscore spelling (``X_Remote_User``) would map to the same WSGI key as
  the dash one and could smuggle a header a trusted proxy strips.
* Transaction: one ``registry.storage.transaction()`` around all sub-requests
  (``transaction_per_request``). A sub-request that *raises* an error rendered
  with status >= 500 rolls back everything and the batch answers that error;
  4xx (raised or returned) are embedded and nothing is rolled back.
* ``"atomic": true`` (capability ``batch_atomic``): the first sub-response
  with status >= 400 rolls back everything; the batch answers **that
  sub-response's status** (errno from its body, else 999) so that clients can
  react as to a direct request (412: refetch, 401: authenticate), with
  ``details = {"failed": <index>, "responses": [...so far, failing one last]}``.
  It needs a storage backend (else 400).
"""
from __future__ import annotations

import io
import json
import logging
import re
import time
import urllib.parse
from contextlib import nullcontext
from typing import Any, Callable, Iterable

from cliquet_wsgi import environ as keys
from cliquet_wsgi.errors import (
    ERRORS,
    MESSAGES,
    BackendError,
    CliquetError,
    ConfigurationError,
    error_from_exception,
    error_response,
    invalid_parameter,
    invalid_parameters,
    legacy_error,
    method_not_allowed,
    render_error,
)
from cliquet_wsgi.paste import make_filter_factory
from cliquet_wsgi.registry import Registry, default_registry
from cliquet_wsgi.rendering import JSONDecodeError, json_copy, json_dumps_bytes, json_loads, json_response

logger = logging.getLogger(__name__)
#: NOTE: the request log layer's logger name (not imported: middlewares stay independent),
#: so that sub-request summaries share its handlers and formatters.
summary_logger = logging.getLogger("cliquet_wsgi.request.summary")

BATCH_PATH = "/batch"
METHODS = ("GET", "HEAD", "DELETE", "TRACE", "POST", "PUT", "PATCH")
_REQUEST_KEYS = {"method", "path", "headers", "body"}
_TOP_KEYS = {"requests", "defaults", "atomic"}
_HEADER_NAME = re.compile(r"[A-Za-z0-9-]+")
_REDIRECTS = {301, 302, 303, 307, 308}
_QUERY_SAFE = "".join(chr(c) for c in range(0x21, 0x7F))
#: Environ keys of the parent that describe the parent only (set by inner layers or
#: cached parsings of its body and query) and must not leak into sub-requests.
_PARENT_ONLY = {
    "CONTENT_LENGTH",
    "wsgi.input_terminated",
    "wsgiorg.routing_args",
    keys.USER_ID,
    keys.AUTHN_TYPE,
    keys.PRINCIPALS,
    keys.REMOTE_USER_ORIG,
    keys.ROUTE_NAME,
    keys.ROUTE_PATTERN,
    keys.ERRNO,
    keys.EXPOSE_HEADERS,
}


class _Abort(Exception):
    """Leave the transaction block (rolling back) with the error the batch answers.

    ``retryable``: the backend rolled back a deadlock or serialisation failure;
    running the whole batch again may succeed.
    """

    def __init__(self, error: CliquetError, retryable: bool = False) -> None:
        super().__init__(error.status)
        self.error = error
        self.retryable = retryable


#: How many times a batch runs when its transaction hits a deadlock (RELIABILITY C5).
_ATTEMPTS = 3


class BatchMiddleware:
    """Serve ``POST /v1/batch`` by dispatching sub-requests in-process to the app below.

    Settings:
      * ``batch_max_requests``: most sub-requests per batch (25; 0 = unlimited);
      * ``transaction_per_request``: one storage transaction around the whole batch (true;
        a batch of GET/HEAD only runs in the storage's ``read_transaction()``, which
        takes no write lock);
      * ``http_api_version``: gives the version prefix (``1.0`` -> ``/v1``);
      * ``max_body_bytes``: largest batch body read (413 above; 0 = no limit);
      * ``retry_after_seconds``, ``error_info_link``: for rendering 503/500 of sub-requests;
      * ``errors_rewrite_html``: sub-responses of the app's non-JSON error pages become
        protocol errors, as the errors layer does for direct requests (true).
    Sub-requests to ``/`` (hello) and the utility endpoints reach the layers above that
    registered them (:meth:`~cliquet_wsgi.registry.Registry.register_batch_endpoint`).
    Environ: reads ``PATH_INFO``/``SCRIPT_NAME`` (after the version layer, or ``/v1/batch`` alone),
    the request headers; sets in each sub-request ``cliquet.batch`` (shared dict: ``size``,
    ``atomic``, ``parent_headers`` = the batch request's ``HTTP_*`` keys), ``cliquet.memo``
    (shared with the parent), ``cliquet.log_context`` (its own); sets ``batch_size`` in the
    parent's ``cliquet.log_context``. Logs one ``subrequest.summary`` per sub-request.
    Needs: below version/errors/CORS (one EOS check, one CORS decoration); above auth and resources.

    Example::

        app = BatchMiddleware(AuthMiddleware(app, userid_hmac_secret="s"), batch_max_requests=25)
    """

    def __init__(
        self,
        app: Any,
        *,
        registry: Registry | None = None,
        batch_max_requests: int = 25,
        transaction_per_request: bool = True,
        http_api_version: str = "1.0",
        max_body_bytes: int = 1048576,
        retry_after_seconds: int = 30,
        error_info_link: str = "",
        errors_rewrite_html: bool = True,
    ) -> None:
        self.app = app
        self.registry = registry if registry is not None else default_registry()
        if batch_max_requests is None or batch_max_requests < 0:
            batch_max_requests = 0
        self.max_requests = int(batch_max_requests)
        self.transaction_per_request = bool(transaction_per_request)
        major = (http_api_version or "1").split(".")[0]
        if not major.isdigit():
            raise ConfigurationError(f"Setting 'http_api_version' must be MAJOR.MINOR, got {http_api_version!r}")
        self.prefix = f"/v{major}"
        self.max_body_bytes = int(max_body_bytes)
        self.retry_after_seconds = retry_after_seconds
        self.error_info_link = error_info_link or None
        self.rewrite_legacy_errors = bool(errors_rewrite_html)
        self.registry.register_public_setting("batch_max_requests", self.max_requests)
        self.registry.register_capability(
            "batch_atomic",
            'All-or-nothing batches: with "atomic": true any failing sub-request rolls back the whole batch.',
            "https://cliquet.readthedocs.io/en/latest/api/batch.html",
        )
        self.registry.register_endpoint_methods(lambda path: ["POST"] if path == BATCH_PATH else None)

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        mode = self._mode(environ)
        if mode is None:
            return self.app(environ, start_response)
        environ.setdefault(keys.REGISTRY, self.registry)
        environ[keys.ROUTE_NAME] = "batch"
        environ[keys.ROUTE_PATTERN] = BATCH_PATH
        if environ.get("REQUEST_METHOD") != "POST":
            return self._error(environ, method_not_allowed(["POST"]), start_response)
        try:
            return self._batch(environ, start_response, inline=mode == "inline")
        except CliquetError as error:
            return self._error(environ, error, start_response)
        except Exception as exc:
            error = error_from_exception(
                exc, retry_after_seconds=self.retry_after_seconds, error_info_link=self.error_info_link
            )
            _log_failure(exc, "batch")
            return self._error(environ, error, start_response)

    @staticmethod
    def _error(environ: dict[str, Any], error: CliquetError, start_response: Callable[..., Any]) -> Iterable[bytes]:
        environ[keys.ERRNO] = error.errno
        return error_response(error, start_response)

    def _mode(self, environ: dict[str, Any]) -> str | None:
        """``"script"`` below the version layer (prefix in SCRIPT_NAME), ``"inline"`` alone, else None."""
        path = environ.get("PATH_INFO", "")
        if path == BATCH_PATH and (
            environ.get(keys.VERSION_PREFIX) == self.prefix or environ.get("SCRIPT_NAME", "").endswith(self.prefix)
        ):
            return "script"
        if path == self.prefix + BATCH_PATH:
            return "inline"
        return None

    # -- body ----------------------------------------------------------------------------

    def _read_body(self, environ: dict[str, Any]) -> bytes:
        length_text = environ.get("CONTENT_LENGTH") or ""
        stream = environ["wsgi.input"]
        if length_text:
            try:
                length = int(length_text)
            except ValueError:
                raise invalid_parameter("headers", "Content-Length", "Invalid Content-Length") from None
            if self.max_body_bytes and length > self.max_body_bytes:
                raise CliquetError(413, ERRORS.REQUEST_TOO_LARGE, message=MESSAGES["too_large"])
            return stream.read(length) if length > 0 else b""
        if environ.get("wsgi.input_terminated"):
            data = stream.read(self.max_body_bytes + 1) if self.max_body_bytes else stream.read()
            if self.max_body_bytes and len(data) > self.max_body_bytes:
                raise CliquetError(413, ERRORS.REQUEST_TOO_LARGE, message=MESSAGES["too_large"])
            return data
        return b""

    def _parse(self, raw: bytes) -> tuple[list[dict[str, Any]], bool]:
        """Validated, defaults-merged requests and the atomic flag, or a 400."""
        try:
            body = json_loads(raw)
        except JSONDecodeError as exc:
            raise invalid_parameters(
                [
                    {"location": "body", "name": None, "description": f"Invalid JSON request body: {exc}"},
                    {"location": "body", "name": "requests", "description": "requests is missing"},
                ]
            ) from None
        if not isinstance(body, dict):
            raise invalid_parameter("body", None, "Invalid JSON request body: expected an object")
        errors: list[dict[str, Any]] = []

        def fail(name: str | None, description: str) -> None:
            errors.append({"location": "body", "name": name, "description": description})

        for key in sorted(set(body) - _TOP_KEYS):
            fail(key, f"{key} is not allowed")
        atomic = body.get("atomic", False)
        if not isinstance(atomic, bool):
            fail("atomic", "atomic should be a boolean")
        requests = body.get("requests")
        if "requests" not in body:
            fail("requests", "requests is missing")
        elif not isinstance(requests, list):
            fail("requests", "requests should be a list")
        elif self.max_requests and len(requests) > self.max_requests:
            # Checked before looking at any item: bounded work for oversized batches.
            raise invalid_parameter("body", "requests", f"Number of requests is limited to {self.max_requests}")
        defaults = body.get("defaults", {})
        if not isinstance(defaults, dict):
            fail("defaults", "defaults should be an object")
            defaults = {}
        else:
            self._check_request(defaults, "defaults", fail, partial=True)
        if errors or not isinstance(requests, list):
            raise invalid_parameters(errors)
        merged: list[dict[str, Any]] = []
        for index, request in enumerate(requests):
            name = f"requests.{index}"
            if not isinstance(request, dict):
                fail(name, f"{name} should be an object")
                continue
            request = _merge(defaults, request)
            self._check_request(request, name, fail, partial=False)
            merged.append(request)
        if errors:
            raise invalid_parameters(errors)
        for request in merged:
            request.setdefault("method", "GET")
            request["headers"] = dict(request.get("headers") or {})
            path, query = _split_path(request["path"])
            request["unprefixed"] = self._unprefix(path)
            request["query"] = query
            if request["unprefixed"].rstrip("/") == BATCH_PATH:
                raise invalid_parameter("body", "requests", "Recursive call on /batch endpoint is forbidden.")
        return merged, atomic

    def _check_request(self, request: dict[str, Any], name: str, fail: Callable[[str, str], None], partial: bool):
        for key in sorted(set(request) - _REQUEST_KEYS):
            fail(f"{name}.{key}", f"{key} is not allowed")
        if "method" in request:
            method = request["method"]
            if not isinstance(method, str) or method not in METHODS:
                fail(f"{name}.method", f"{json.dumps(method)} is not one of {', '.join(METHODS)}")
        if "path" not in request:
            if not partial:
                fail(f"{name}.path", "path is missing")
        else:
            path = request["path"]
            if not isinstance(path, str):
                fail(f"{name}.path", "path should be a string")
            elif not path.startswith("/") or path.startswith("//"):
                fail(f"{name}.path", "path should be an absolute path starting with / (no scheme or host)")
            elif not path.isprintable() or " " in path or "#" in path:
                fail(f"{name}.path", "path contains whitespace, control characters or a fragment")
        if "headers" in request:
            headers = request["headers"]
            if not isinstance(headers, dict):
                fail(f"{name}.headers", "headers should be an object")
            else:
                for header, value in headers.items():
                    if not _HEADER_NAME.fullmatch(header):
                        fail(f"{name}.headers.{header}", "invalid header name (letters, digits and - only)")
                    elif not isinstance(value, str):
                        fail(f"{name}.headers.{header}", "header values should be strings")
                    elif any(c in value for c in "\r\n\0"):
                        fail(f"{name}.headers.{header}", "header values cannot contain line breaks")
                    else:
                        try:
                            value.encode("latin-1")
                        except UnicodeEncodeError:
                            fail(f"{name}.headers.{header}", "header values should be ISO-8859-1 text")
        if "body" in request and not isinstance(request["body"], dict):
            fail(f"{name}.body", "body should be an object")

    def _unprefix(self, path: str) -> str:
        """Decoded sub-path without the version prefix (PROTOCOL §7.1: prefix is optional)."""
        decoded = urllib.parse.unquote_to_bytes(path).decode("latin-1")
        if decoded == self.prefix or decoded.startswith(self.prefix + "/"):
            return decoded[len(self.prefix):] or "/"
        return decoded

    # -- execution -----------------------------------------------------------------------

    def _batch(self, environ: dict[str, Any], start_response, inline: bool):
        requests, atomic = self._parse(self._read_body(environ))
        storage = self.registry.storage if (self.transaction_per_request or atomic) else None
        if atomic and storage is None:
            raise invalid_parameter("body", "atomic", "atomic batches need a storage backend with transactions")
        log_context = environ.get(keys.LOG_CONTEXT)
        if isinstance(log_context, dict):
            log_context["batch_size"] = len(requests)
        if environ.get(keys.MEMO) is None:
            environ[keys.MEMO] = {}
        # ``parent_headers``: the batch request's own headers, for layers below that must
        # not trust a header a sub-request can set (a trusted-proxy user header).
        parent_headers = {k: v for k, v in environ.items() if k.startswith("HTTP_")}
        shared = {"size": len(requests), "atomic": atomic, "parent_headers": parent_headers}
        context = _Context(self, environ, inline, shared)
        # NOTE: a deadlock between two batches writing the same collections in
        # opposite orders is resolved by the server rolling one back; that one
        # runs again (only with a transaction: nothing of it was committed).
        attempts = _ATTEMPTS if storage is not None else 1
        # Reads only: no write lock held across the batch (SQLite's BEGIN IMMEDIATE).
        read_only = all(request["method"] in ("GET", "HEAD") for request in requests)
        for attempt in range(1, attempts + 1):
            responses: list[dict[str, Any]] = []
            if storage is None:
                block: Any = nullcontext()
            else:
                block = storage.read_transaction() if read_only else storage.transaction()
            try:
                with block:
                    for index, request in enumerate(requests):
                        response = self._run(context, request)
                        responses.append(response)
                        if atomic and response["status"] >= 400:
                            raise _Abort(_atomic_error(index, response, responses))
            except _Abort as abort:
                if abort.retryable and attempt < attempts:
                    continue
                return error_response(abort.error, start_response)
            except BackendError as exc:
                if exc.retryable and attempt < attempts:
                    continue
                raise
            return json_response(start_response, 200, {"responses": responses})
        raise AssertionError("unreachable: the last attempt returns or raises")

    def _run(self, context: "_Context", request: dict[str, Any]) -> dict[str, Any]:
        started = time.monotonic()
        unprefixed = request["unprefixed"]
        query = request["query"]
        status, headers, body, errno = self._dispatch(context, request, unprefixed, query)
        # PROTOCOL §7.2: a redirect (or the trailing-slash 404 the version layer would
        # have redirected) is followed once, with the same method, headers and body.
        target = None
        if status in _REDIRECTS:
            target = self._redirect_target(context, headers)
        elif status == 404 and len(unprefixed) > 1 and unprefixed.endswith("/"):
            target = (unprefixed.rstrip("/") or "/", query)
        if target is not None:
            unprefixed, query = target
            status, headers, body, errno = self._dispatch(context, request, unprefixed, query)
        response = {
            "status": status,
            "path": _display_path(self.prefix + unprefixed),
            "headers": _headers_dict(headers),
            "body": "" if request["method"] == "HEAD" else body if type(body) is not bytes else _parse_body(body),
        }
        if summary_logger.isEnabledFor(logging.INFO):
            # Same record shape as the request log layer's summaries (PROTOCOL §7.4:
            # one subrequest.summary per item), under the parent's request id.
            request_id = context.request_id
            fields = {
                "path": response["path"],
                "method": request["method"],
                "code": status,
                "errno": errno,
                "t": int((time.monotonic() - started) * 1000),
                "rid": request_id,
            }
            summary_logger.info(
                "%s %s %s", request["method"], response["path"], status,
                extra={"mozlog_type": "subrequest.summary", "fields": fields, "request_id": request_id},
            )
        return response

    def _dispatch(self, context: "_Context", request: dict[str, Any], unprefixed: str, query: str):
        """Call the app below with one sub-request; ``(status, headers, body bytes, errno)``.

        Hello and the heartbeats, served above this layer, are reached
        through the registry (:meth:`Registry.register_batch_endpoint`).
        """
        endpoint = self.registry.batch_endpoint(unprefixed)
        app = endpoint if endpoint is not None else self.app
        environ = context.sub_environ(request, unprefixed, query, below_version=endpoint is not None)
        captured: list[Any] = []
        chunks: list[bytes] = []

        def start_response(status, headers, exc_info=None):
            if exc_info is not None and captured:
                raise exc_info[1].with_traceback(exc_info[2])
            captured[:] = [status, headers]
            return chunks.append

        try:
            result = app(environ, start_response)
            try:
                for chunk in result:
                    chunks.append(chunk)
            finally:
                close = getattr(result, "close", None)
                if close is not None:
                    close()
        except Exception as exc:
            error = error_from_exception(
                exc, retry_after_seconds=self.retry_after_seconds, error_info_link=self.error_info_link
            )
            if error.status >= 500:
                retryable = isinstance(exc, BackendError) and exc.retryable
                if not retryable:
                    _log_failure(exc, "batch sub-request")
                raise _Abort(error, retryable) from exc
            _, headers, body = render_error(error)
            return error.status, headers, body, error.errno
        if not captured:
            raise _Abort(error_from_exception(RuntimeError("sub-request did not start a response")))
        body = environ.get(keys.RESPONSE_DATA, _UNPARSED)
        if body is _UNPARSED:
            body = b"".join(chunks)
            if self.rewrite_legacy_errors:
                # The errors layer above would turn the app's HTML/text error pages
                # into protocol errors; sub-responses do not pass through it.
                error = legacy_error(captured[0], captured[1], self.error_info_link)
                if error is not None:
                    _, headers, body = render_error(error)
                    return error.status, headers, body, error.errno
        return int(captured[0][:3]), list(captured[1]), body, environ.get(keys.ERRNO)

    def _redirect_target(self, context: "_Context", headers) -> tuple[str, str] | None:
        location = next((v for k, v in headers if k.lower() == "location"), None)
        if not location:
            return None
        parts = urllib.parse.urlsplit(location)
        if parts.netloc and parts.netloc != context.host:
            return None  # another site: embed the redirect as is
        path = urllib.parse.unquote_to_bytes(parts.path).decode("latin-1")
        mount = context.base_script + self.prefix
        if not (path == mount or path.startswith(mount + "/")):
            return None
        return path[len(mount):] or "/", parts.query


class _Context:
    """What every sub-request of one batch derives from its parent, computed once."""

    __slots__ = ("prefix", "inline", "base_script", "host", "template", "request_id")

    def __init__(self, middleware: BatchMiddleware, parent: dict[str, Any], inline: bool, shared: dict) -> None:
        self.prefix = middleware.prefix
        self.inline = inline
        script_name = parent.get("SCRIPT_NAME", "")
        self.base_script = script_name if inline else script_name[: len(script_name) - len(self.prefix)]
        self.host = parent.get("HTTP_HOST")
        self.request_id = parent.get(keys.REQUEST_ID)
        template = {k: v for k, v in parent.items() if k not in _PARENT_ONLY and not k.startswith("webob.")}
        template[keys.BATCH] = shared
        template[keys.MEMO] = parent[keys.MEMO]
        self.template = template

    def sub_environ(
        self, request: dict[str, Any], unprefixed: str, query: str, below_version: bool = False
    ) -> dict[str, Any]:
        environ = dict(self.template)
        if self.inline and not below_version:
            environ["SCRIPT_NAME"] = self.base_script
            environ["PATH_INFO"] = self.prefix + unprefixed
        else:
            # As the version layer would have left a direct request (werkzeug dispatcher style).
            environ["SCRIPT_NAME"] = self.base_script + self.prefix
            environ["PATH_INFO"] = unprefixed
            environ[keys.VERSION_PREFIX] = self.prefix
            environ[keys.PATH_ORIG] = (self.base_script, self.prefix + unprefixed)
        environ["REQUEST_METHOD"] = request["method"]
        environ["QUERY_STRING"] = query
        for name, value in request["headers"].items():
            lowered = name.lower()
            if lowered == "content-length":
                continue  # recomputed below
            if lowered == "content-type":
                environ["CONTENT_TYPE"] = value
            else:
                environ["HTTP_" + name.upper().replace("-", "_")] = value
        if "body" in request:
            payload = json_dumps_bytes(request["body"])
            environ["CONTENT_TYPE"] = "application/json; charset=utf-8"
            # PERF: layers below may skip parsing what the batch body parse already gave.
            environ[keys.PARSED_BODY] = json_copy(request["body"])
        else:
            payload = b""
        environ["CONTENT_LENGTH"] = str(len(payload))
        environ["wsgi.input"] = io.BytesIO(payload)
        environ[keys.LOG_CONTEXT] = {}
        return environ


def _merge(defaults: dict[str, Any], request: dict[str, Any]) -> dict[str, Any]:
    """Request values win; nested objects merge recursively (PROTOCOL §7.1)."""
    # PERF: no deep copy: merged values are only read (bodies are serialised,
    # headers copied into a new dict), never mutated.
    merged = dict(request)
    for key, value in defaults.items():
        if key not in merged:
            merged[key] = value
        elif isinstance(value, dict) and isinstance(merged[key], dict):
            merged[key] = _merge(value, merged[key])
    return merged


def _split_path(path: str) -> tuple[str, str]:
    path, _, query = path.partition("?")
    if query.isascii():
        return path, query
    # Non-ASCII in a querystring is sent percent-encoded, as a client would.
    return path, urllib.parse.quote(query, safe=_QUERY_SAFE)


def _display_path(path: str) -> str:
    """PATH_INFO-style (latin-1 decoded bytes) -> readable text for the response."""
    return path.encode("latin-1").decode("utf-8", errors="replace")


def _headers_dict(headers: Iterable[tuple[str, str]]) -> dict[str, str]:
    result: dict[str, str] = {}
    for name, value in headers:
        result[name] = f"{result[name]}, {value}" if name in result else value
    return result


#: Marks a sub-response whose body no layer handed over as a value.
_UNPARSED = object()


def _parse_body(body: bytes) -> Any:
    text = body.decode("utf-8", errors="replace")
    try:
        return json.loads(text)
    except ValueError:
        return text


def _atomic_error(index: int, response: dict[str, Any], responses: list[dict[str, Any]]) -> CliquetError:
    body = response["body"]
    errno = body.get("errno") if isinstance(body, dict) else None
    if not isinstance(errno, int) or isinstance(errno, bool):
        errno = ERRORS.UNDEFINED
    return CliquetError(
        response["status"],
        errno,
        message=f"Atomic batch rolled back: request {index} failed with status {response['status']}.",
        details={"failed": index, "responses": list(responses)},
    )


def _log_failure(exc: BaseException, where: str) -> None:
    if isinstance(exc, CliquetError):
        return
    if isinstance(exc, BackendError):
        logger.error("Backend failure in %s: %s", where, exc)
    else:
        logger.exception("Unhandled exception in %s", where)


filter_factory = make_filter_factory(BatchMiddleware)
