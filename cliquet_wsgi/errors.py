"""The protocol's error channel: one exception type, the errno table, one renderer.

Every error response of the stack, whoever raises it, is built by
:func:`render_error` so that bodies are identical everywhere (PROTOCOL §2):
``{"code", "errno", "error"[, "message"][, "info"][, "details"]}``.
"""
from __future__ import annotations

import enum
import http
from typing import Any, Iterable

from cliquet_wsgi.rendering import JSON_CONTENT_TYPE, json_dumps_bytes, status_line


class ERRORS(enum.IntEnum):
    """Errno table (PROTOCOL §2.1).

    ======  =====  ===========================================================
    errno   HTTP   meaning
    ======  =====  ===========================================================
    104     401    missing or unusable authorization
    105     401    invalid token (reserved for token policies)
    106     400    body not JSON (reserved: invalid JSON gives 107)
    107     400    invalid parameter (body, querystring, path, headers),
                   also 406 and 415
    108     400    missing parameter (reserved)
    109     400    invalid posted data (reserved)
    110     404    unknown record id
    111     404    unknown URL
    112     411    no Content-Length
    113     413    request body too large
    114     412    modified meanwhile
    115     405    method not allowed
    116     404    API version not available
    117     429    too many requests
    121     403    forbidden
    122     409    constraint violated
    201     503    service unavailable (backend failure, maintenance)
    202     410    service deprecated (end of service)
    999     any    undefined
    ======  =====  ===========================================================
    """

    MISSING_AUTH_TOKEN = 104
    INVALID_AUTH_TOKEN = 105
    BADJSON = 106
    INVALID_PARAMETERS = 107
    MISSING_PARAMETERS = 108
    INVALID_POSTED_DATA = 109
    INVALID_RESOURCE_ID = 110
    MISSING_RESOURCE = 111
    MISSING_CONTENT_LENGTH = 112
    REQUEST_TOO_LARGE = 113
    MODIFIED_MEANWHILE = 114
    METHOD_NOT_ALLOWED = 115
    VERSION_NOT_AVAILABLE = 116
    CLIENT_REACHED_CAPACITY = 117
    FORBIDDEN = 121
    CONSTRAINT_VIOLATED = 122
    BACKEND = 201
    SERVICE_DEPRECATED = 202
    UNDEFINED = 999


# Canonical messages (PROTOCOL §2.2), kept verbatim including the "occured" typo.
MESSAGES = {
    "unknown_url": "The resource you are looking for could not be found.",
    "unknown_version": "The requested protocol version is not available on this server.",
    "method_not_allowed": "Method not allowed on this endpoint.",
    "unauthorized": "Please authenticate yourself to use this endpoint.",
    "forbidden": "This user cannot access this resource.",
    "modified_meanwhile": "Resource was modified meanwhile",
    "backend": (
        "Service temporary unavailable due to overloading or maintenance, "
        "please retry later."
    ),
    "eos": "The service you are trying to connect no longer exists at this location.",
    "undefined": "A programmatic error occured, developers have been informed.",
    "too_large": "Request body is too large.",
}


class CliquetError(Exception):
    """An HTTP error of the protocol, raised anywhere and rendered in one place.

    It holds data only; :func:`render_error` turns it into a response.
    ``error`` defaults to the HTTP reason phrase (``"Invalid parameters"``
    for validation errors); ``headers`` are added to the response as is.
    """

    def __init__(
        self,
        status: int,
        errno: int = ERRORS.UNDEFINED,
        message: str | None = None,
        details: Any = None,
        headers: Iterable[tuple[str, str]] | None = None,
        error: str | None = None,
        info: str | None = None,
    ) -> None:
        self.status = int(status)
        self.errno = int(errno)
        self.message = message
        self.details = details
        self.headers = list(headers or ())
        self.error = error or _reason(self.status)
        self.info = info
        super().__init__(f"{self.status} {self.errno} {message or self.error}")

    def to_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {"code": self.status, "errno": self.errno, "error": self.error}
        if self.message is not None:
            body["message"] = self.message
        if self.info is not None:
            body["info"] = self.info
        if self.details is not None:
            body["details"] = self.details
        return body


class BackendError(Exception):
    """A storage, cache or permission backend failed (driver error, timeout, outage).

    Rendered as 503 errno 201 with ``Retry-After``. ``original`` keeps the
    driver's exception for the logs; it never reaches the response body.
    ``retryable`` is set by a backend when running the whole transaction
    again may succeed (a deadlock or serialisation failure was rolled back):
    the batch layer then re-runs the batch instead of answering 503.
    """

    def __init__(
        self, original: BaseException | None = None, message: str | None = None, *, retryable: bool = False
    ) -> None:
        self.original = original
        self.retryable = retryable
        text = message or (f"{type(original).__name__}: {original}" if original else "backend error")
        super().__init__(text)


class ConfigurationError(ValueError):
    """Settings that cannot work: raised at startup, naming the setting."""


def _reason(status: int) -> str:
    try:
        return http.HTTPStatus(status).phrase
    except ValueError:
        return "Unknown Error"


# -- constructors for the canonical errors -------------------------------------------


def invalid_parameters(details: list[dict[str, Any]], status: int = 400) -> CliquetError:
    """400/107 (or 406/415) with the ``details`` list and the derived message (§2.3).

    ``details`` entries are ``{"location", "name", "description"}``; they are
    sorted by ``str(name)`` and the message derives from the first one.
    """
    entries = sorted(details, key=lambda d: str(d.get("name")))
    first = entries[0]
    name, location, description = first.get("name"), first["location"], first["description"]
    if name is not None and str(name) in description:
        message = description
    elif name is not None:
        message = f"{name} in {location}: {description}"
    else:
        message = f"{location}: {description}"
    return CliquetError(
        status,
        ERRORS.INVALID_PARAMETERS,
        message=message,
        details=entries,
        error="Invalid parameters",
    )


def invalid_parameter(location: str, name: str | None, description: str, status: int = 400) -> CliquetError:
    """Shortcut for a single validation entry."""
    return invalid_parameters([{"location": location, "name": name, "description": description}], status)


def not_found(errno: int = ERRORS.MISSING_RESOURCE, message: str | None = None) -> CliquetError:
    if message is None and errno == ERRORS.MISSING_RESOURCE:
        message = MESSAGES["unknown_url"]
    return CliquetError(404, errno, message=message)


def method_not_allowed(allowed: Iterable[str]) -> CliquetError:
    return CliquetError(
        405,
        ERRORS.METHOD_NOT_ALLOWED,
        message=MESSAGES["method_not_allowed"],
        headers=[("Allow", ",".join(allowed))],
    )


def unauthorized(challenges: Iterable[str] = ('Basic realm="Realm"',)) -> CliquetError:
    return CliquetError(
        401,
        ERRORS.MISSING_AUTH_TOKEN,
        message=MESSAGES["unauthorized"],
        headers=[("WWW-Authenticate", c) for c in challenges],
    )


def forbidden() -> CliquetError:
    return CliquetError(403, ERRORS.FORBIDDEN, message=MESSAGES["forbidden"])


def service_unavailable(retry_after_seconds: int | None) -> CliquetError:
    headers = [] if retry_after_seconds is None else [("Retry-After", str(retry_after_seconds))]
    return CliquetError(503, ERRORS.BACKEND, message=MESSAGES["backend"], headers=headers)


def internal_error(info: str | None = None) -> CliquetError:
    return CliquetError(500, ERRORS.UNDEFINED, message=MESSAGES["undefined"], info=info or None)


def error_from_exception(
    exc: BaseException, *, retry_after_seconds: int | None = None, error_info_link: str | None = None
) -> CliquetError:
    """Map any exception to the :class:`CliquetError` the client sees.

    ``CliquetError`` is kept; ``BackendError`` becomes 503/201 with
    ``Retry-After``; anything else is a 500/999 with a generic message.
    Callers log the traceback of the last case (the renderer never does).
    """
    if isinstance(exc, CliquetError):
        return exc
    if isinstance(exc, BackendError):
        return service_unavailable(retry_after_seconds)
    return internal_error(error_info_link)


# Legacy (HTML or text) error pages of frameworks -> errno and canonical message.
_LEGACY_ERRORS: dict[int, tuple[int, str]] = {
    401: (ERRORS.MISSING_AUTH_TOKEN, MESSAGES["unauthorized"]),
    403: (ERRORS.FORBIDDEN, MESSAGES["forbidden"]),
    404: (ERRORS.MISSING_RESOURCE, MESSAGES["unknown_url"]),
    405: (ERRORS.METHOD_NOT_ALLOWED, MESSAGES["method_not_allowed"]),
    500: (ERRORS.UNDEFINED, MESSAGES["undefined"]),
}

# Headers that describe the replaced body and must not survive the rewrite.
_BODY_HEADERS = frozenset({"content-type", "content-length", "content-encoding"})


def is_json_media_type(content_type: str | None) -> bool:
    """``application/json`` or any ``application/*+json``, parameters ignored."""
    media = (content_type or "").split(";", 1)[0].strip().lower()
    return media == "application/json" or (media.startswith("application/") and media.endswith("+json"))


def legacy_error(
    status: str, headers: Iterable[tuple[str, str]], error_info_link: str | None = None
) -> CliquetError | None:
    """The protocol error replacing an error response whose body is not JSON, or None.

    For views of the application below (a framework's HTML or text 404, 405,
    500…): the errno and message follow the status, the body is dropped and
    the other headers kept. Used by the errors layer and by batch, whose
    sub-requests do not pass through the errors layer.
    """
    code = int(status[:3])
    headers = list(headers)
    content_type = next((value for key, value in headers if key.lower() == "content-type"), None)
    if code < 400 or is_json_media_type(content_type):
        return None
    errno, message = _LEGACY_ERRORS.get(code, (ERRORS.UNDEFINED, status[4:].strip() or None))
    kept = [(k, v) for k, v in headers if k.lower() not in _BODY_HEADERS]
    return CliquetError(code, errno, message=message, headers=kept, info=error_info_link if code == 500 else None)


def render_error(error: CliquetError) -> tuple[str, list[tuple[str, str]], bytes]:
    """The one renderer: ``(status line, headers, body)`` of an error response."""
    body = json_dumps_bytes(error.to_dict())
    headers = [
        ("Content-Type", JSON_CONTENT_TYPE),
        ("Content-Length", str(len(body))),
        *error.headers,
    ]
    return status_line(error.status), headers, body


def error_response(error: CliquetError, start_response, exc_info=None) -> list[bytes]:
    """Render ``error`` through a WSGI ``start_response`` and return the body iterable."""
    status, headers, body = render_error(error)
    if exc_info is not None:
        start_response(status, headers, exc_info)
    else:
        start_response(status, headers)
    return [body]
