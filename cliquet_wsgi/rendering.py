"""JSON in and out, exactly as the protocol wants it.

Output: ``application/json; charset=UTF-8``, compact, UTF-8, ``/`` never escaped
(the stdlib encoder does not escape it). Input: strict JSON only (no ``NaN``,
no ``Infinity``, no lone surrogates, bounded nesting) so that what we store can
always be rendered again.
"""
from __future__ import annotations

import copy
import functools
import http
import json
import math
import re
from typing import Any, Iterable

JSON_CONTENT_TYPE = "application/json; charset=UTF-8"

#: Deepest nesting accepted in a request body. The stdlib parser hits
#: RecursionError near 1,000 levels; stored data never needs more than this.
MAX_JSON_DEPTH = 64

_encoder = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def json_dumps(value: Any) -> str:
    """Compact JSON text (no ``/`` escaping, non-ASCII kept)."""
    return _encoder.encode(value)


try:
    import orjson as _orjson
except ImportError:  # the ``speedups`` extra is not installed
    _orjson = None


def json_dumps_bytes(value: Any) -> bytes:
    """:func:`json_dumps` as UTF-8 bytes, for response bodies.

    PERF: with the ``speedups`` extra (orjson) encoding runs several times
    faster; values orjson refuses (integers beyond 64 bits) fall back to the
    standard encoder, so the result never depends on which one ran.
    """
    if _orjson is not None:
        try:
            return _orjson.dumps(value)
        except TypeError:
            pass
    return _encoder.encode(value).encode("utf-8")


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

    Refuses ``NaN``/``Infinity`` (and numbers that overflow to them), lone
    surrogates, a UTF-8 BOM, invalid UTF-8 and nesting deeper than
    :data:`MAX_JSON_DEPTH`, raising :class:`JSONDecodeError` with a
    client-safe message.
    """
    if isinstance(text, (bytes, bytearray)):
        try:
            text = bytes(text).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise JSONDecodeError(f"invalid UTF-8 at byte {exc.start}") from None
    else:
        _check_string(text)
    if text.startswith("\ufeff"):
        raise JSONDecodeError("unexpected byte order mark")
    try:
        value = json.loads(text, parse_constant=_refuse_constant, parse_float=_finite_float)
    except JSONDecodeError:
        raise
    except RecursionError:
        # The C scanner gives up near 1,000 levels, quickly: nothing is built.
        raise JSONDecodeError("nesting too deep") from None
    except ValueError as exc:
        raise JSONDecodeError(str(exc)) from None
    # PERF: both checks walk the parsed value in Python; C-speed scans of the
    # text rule them out for almost every body.
    if text.count("[") + text.count("{") > MAX_JSON_DEPTH:
        _check_depth(value, 1)
    if _ESCAPED_SURROGATE.search(text):
        _check_surrogates(value)
    return value


_ESCAPED_SURROGATE = re.compile(r"\\u[dD][89a-fA-F]")

#: Every digit as ``0``: 19 zeros in a row then mean 19 digits in a row, possibly
#: an integer beyond 64 bits, which orjson reads as a float.
_DIGITS_AS_ZERO = str.maketrans("123456789", "000000000")
_LONG_DIGITS = "0" * 19


def json_loads_stored(text: str) -> Any:
    """Parse JSON that a backend stored after :func:`json_loads` accepted it.

    For backends decoding their own columns: none of the request checks run
    again. PERF: with the ``speedups`` extra orjson parses it (a listing of
    100 records several times faster); text where orjson would not give the
    standard parser's value (integers beyond 64 bits, which it reads as
    floats) goes to the standard parser, so the value never depends on
    which one ran.
    """
    # PERF: translate() then find() scan the text in C about ten times faster
    # than the regular expression [0-9]{19}.
    if _orjson is not None and _LONG_DIGITS not in text.translate(_DIGITS_AS_ZERO):
        try:
            return _orjson.loads(text)
        except _orjson.JSONDecodeError:
            pass
    return json.loads(text)


def _check_depth(value: Any, depth: int) -> None:
    if depth > MAX_JSON_DEPTH:
        raise JSONDecodeError(f"nesting deeper than {MAX_JSON_DEPTH} levels")
    for item in value.values() if type(value) is dict else value:
        kind = type(item)
        if kind is dict or kind is list:
            _check_depth(item, depth + 1)


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


#: Types of JSON scalars: immutable, shared rather than copied.
JSON_SCALAR_TYPES = frozenset({str, int, float, bool, type(None)})


def json_copy(value: Any) -> Any:
    """An independent copy of a JSON-model value (dicts, lists and scalars).

    PERF: several times cheaper than :func:`copy.deepcopy` (no memo, no
    dispatch table); scalars are shared since they are immutable. Any other
    type (a tuple or set a caller stored) falls back to ``deepcopy``.
    """
    kind = type(value)
    if kind is dict:
        return {k: v if type(v) in JSON_SCALAR_TYPES else json_copy(v) for k, v in value.items()}
    if kind is list:
        return [v if type(v) in JSON_SCALAR_TYPES else json_copy(v) for v in value]
    if kind in JSON_SCALAR_TYPES:
        return value
    return copy.deepcopy(value)


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
    payload = json_dumps_bytes(body)
    start_response(
        status_line(status),
        [("Content-Type", JSON_CONTENT_TYPE), ("Content-Length", str(len(payload))), *headers],
    )
    return [payload]
