"""JSON in and out, exactly as the protocol wants it.

Output: ``application/json; charset=UTF-8``, compact, UTF-8, ``/`` never escaped
(the stdlib encoder does not escape it). Input: strict JSON only (no ``NaN``,
no ``Infinity``, no lone surrogates, bounded nesting) so that what we store can
always be rendered again.
"""
from __future__ import annotations

import functools
import http
import json
import math
from typing import Any, Iterable

JSON_CONTENT_TYPE = "application/json; charset=UTF-8"

#: Deepest nesting accepted in a request body. The stdlib parser hits
#: RecursionError near 1,000 levels; stored data never needs more than this.
MAX_JSON_DEPTH = 64

_encoder = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def json_dumps(value: Any) -> str:
    """Compact JSON text (no ``/`` escaping, non-ASCII kept)."""
    return _encoder.encode(value)


class JSONDecodeError(ValueError):
    """Request JSON that the protocol refuses; ``str()`` is safe to show to clients."""


def _refuse_constant(name: str) -> Any:
    raise JSONDecodeError(f"{name} is not valid JSON")


def _finite_float(text: str) -> float:
    # NOTE: ``1e999`` parses to ``inf`` without reaching parse_constant, and
    # could then never be rendered again (allow_nan=False).
    value = float(text)
    if not math.isfinite(value):
        raise JSONDecodeError("number out of range")
    return value


def json_loads(text: str | bytes) -> Any:
    """Parse request JSON strictly.

    Refuses ``NaN``/``Infinity``, lone surrogates, a UTF-8 BOM, invalid UTF-8
    and nesting deeper than :data:`MAX_JSON_DEPTH`, raising
    :class:`JSONDecodeError` with a client-safe message.
    """
    if isinstance(text, (bytes, bytearray)):
        try:
            text = bytes(text).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise JSONDecodeError(f"invalid UTF-8 at byte {exc.start}") from None
    if text.startswith("\ufeff"):
        raise JSONDecodeError("unexpected byte order mark")
    _check_depth(text)
    try:
        value = json.loads(text, parse_constant=_refuse_constant, parse_float=_finite_float)
    except JSONDecodeError:
        raise
    except RecursionError:
        raise JSONDecodeError("nesting too deep") from None
    except ValueError as exc:
        raise JSONDecodeError(str(exc)) from None
    _check_surrogates(value)
    return value


def _check_depth(text: str) -> None:
    # PERF: a scan in C (str.count) rules out the common case before walking.
    if text.count("[") + text.count("{") <= MAX_JSON_DEPTH:
        return
    depth = 0
    in_string = escaped = False
    for char in text:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            if depth > MAX_JSON_DEPTH:
                raise JSONDecodeError(f"nesting deeper than {MAX_JSON_DEPTH} levels")
        elif char in "]}":
            depth -= 1


def _check_surrogates(value: Any) -> None:
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            _check_string(item)
        elif isinstance(item, dict):
            for key, sub in item.items():
                _check_string(key)
                stack.append(sub)
        elif isinstance(item, list):
            stack.extend(item)


def _check_string(text: str) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise JSONDecodeError("lone surrogate in string") from None


@functools.lru_cache(maxsize=None)
def status_line(code: int) -> str:
    """``"404 Not Found"`` for ``404``."""
    try:
        return f"{code} {http.HTTPStatus(code).phrase}"
    except ValueError:
        return f"{code} Unknown"


def json_response(
    start_response,
    status: int,
    body: Any,
    headers: Iterable[tuple[str, str]] = (),
) -> list[bytes]:
    """Start a JSON response and return its WSGI body iterable."""
    payload = json_dumps(body).encode("utf-8")
    start_response(
        status_line(status),
        [("Content-Type", JSON_CONTENT_TYPE), ("Content-Length", str(len(payload))), *headers],
    )
    return [payload]
