"""Content negotiation and body codecs of resource endpoints: JSON and msgpack.

``Accept`` picks the response codec (406 when neither is acceptable),
``Content-Type`` the request codec (415 when unsupported, RELIABILITY I7), and
a body that does not decode is a 400 (errno 107) — never a 500 (I1, I3).

Both decoders produce only the JSON data model (objects with string keys,
arrays, strings, finite numbers, booleans, null) nested at most
:data:`~cliquet_wsgi.rendering.MAX_JSON_DEPTH` deep, so anything stored can be
rendered again as JSON whatever codec wrote it.

Not for other endpoints: batch and utility views speak JSON only.
"""
from __future__ import annotations

import functools
import math
from typing import Any

import msgpack

from cliquet_wsgi.errors import CliquetError, invalid_parameter
from cliquet_wsgi.rendering import JSON_CONTENT_TYPE, MAX_JSON_DEPTH, JSONDecodeError, json_dumps_bytes, json_loads

__all__ = [
    "JSON", "MSGPACK", "MERGE_PATCH", "JSON_PATCH", "MSGPACK_CONTENT_TYPE",
    "negotiate_response_type", "body_kind", "decode_body", "encode_body",
]

#: Codec / body kinds.
JSON = "json"
MSGPACK = "msgpack"
MERGE_PATCH = "merge-patch"
JSON_PATCH = "json-patch"

MSGPACK_CONTENT_TYPE = "application/msgpack"
_MSGPACK_TYPES = ("application/msgpack", "application/x-msgpack", "application/vnd.msgpack")
_CONTENT_TYPES = {
    "application/json": JSON,
    "application/merge-patch+json": MERGE_PATCH,
    "application/json-patch+json": JSON_PATCH,
    **{name: MSGPACK for name in _MSGPACK_TYPES},
}
# Charsets meaning UTF-8; JSON has no other encoding (RFC 8259 §8.1).
_UTF8 = frozenset({"utf-8", "utf8"})


def _media_type(header: str) -> tuple[str, dict[str, str]]:
    """``("type/subtype", {param: value})``, lower-cased (values unquoted)."""
    main, *raw_params = header.split(";")
    params = {}
    for raw in raw_params:
        key, sep, value = raw.partition("=")
        if sep:
            params[key.strip().lower()] = value.strip().strip('"').lower()
    return main.strip().lower(), params


def _accept_ranges(header: str) -> list[tuple[str, float]]:
    ranges = []
    for item in header.split(","):
        media, params = _media_type(item)
        if media.count("/") != 1:
            continue  # unparsable entry: ignored like an absent one
        try:
            quality = float(params.get("q", "1"))
        except ValueError:
            continue
        if not 0 <= quality <= 1:  # also rejects NaN
            continue
        ranges.append((media, quality))
    return ranges


def _preference(media: str, ranges: list[tuple[str, float]]) -> tuple[float, int]:
    """``(q, specificity)`` of ``media``: the most specific matching range decides (RFC 9110 §12.5.1)."""
    kind = media.split("/")[0]
    best = (-1, 0.0)
    for candidate, quality in ranges:
        if candidate == media:
            specificity = 3
        elif candidate == f"{kind}/*":
            specificity = 2
        elif candidate == "*/*":
            specificity = 1
        else:
            continue
        if specificity > best[0]:
            best = (specificity, quality)
    return best[1], best[0]


def _offered(allow_msgpack: bool) -> list[str]:
    return ["application/json", MSGPACK_CONTENT_TYPE] if allow_msgpack else ["application/json"]


# PERF: both header parsers below are pure functions of a few distinct header
# values per client; results are cached (errors are raised anew, never cached).
@functools.lru_cache(maxsize=256)
def negotiate_response_type(accept_header: str | None, *, allow_msgpack: bool = True) -> str:
    """``"json"`` or ``"msgpack"`` for this ``Accept`` header, else 406/107.

    No header, an empty or an unparsable one means JSON. At equal quality the
    more specific range wins (``application/msgpack, */*`` is msgpack), then JSON.
    """
    if not accept_header or not accept_header.strip():
        return JSON
    ranges = _accept_ranges(accept_header)
    if not ranges:
        return JSON
    json_q, json_specificity = _preference("application/json", ranges)
    choice, best = JSON, (json_q, json_specificity, 1)
    if allow_msgpack:
        for media in _MSGPACK_TYPES:
            quality, specificity = _preference(media, ranges)
            if (quality, specificity, 0) > best:
                choice, best = MSGPACK, (quality, specificity, 0)
    if best[0] <= 0:
        message = f"Accept header should be one of {_offered(allow_msgpack)}"
        raise invalid_parameter("header", "Accept", message, status=406)
    return choice


@functools.lru_cache(maxsize=256)
def body_kind(content_type: str | None, *, patch: bool = False, allow_msgpack: bool = True) -> str:
    """Kind of a request body from its ``Content-Type``, else 415/107.

    ``json`` (``application/json``, parameters allowed but a charset must be
    UTF-8), ``msgpack`` (three spellings), and with ``patch=True`` also
    ``merge-patch`` and ``json-patch`` (both JSON-encoded).
    """
    media, params = _media_type(content_type or "")
    kind = _CONTENT_TYPES.get(media)
    charset = params.get("charset")
    acceptable = (
        kind is not None
        and (allow_msgpack or kind != MSGPACK)
        and (patch or kind not in (MERGE_PATCH, JSON_PATCH))
        and (charset is None or kind == MSGPACK or charset in _UTF8)
    )
    if not acceptable:
        offered = _offered(allow_msgpack)
        if patch:
            offered += ["application/merge-patch+json", "application/json-patch+json"]
        message = f"Content-Type header should be one of {offered}"
        raise invalid_parameter("header", "Content-Type", message, status=415)
    return kind


def _invalid_body(description: str) -> CliquetError:
    return invalid_parameter("body", None, description)


def decode_body(
    content_type: str | None, body: bytes, *, patch: bool = False, allow_msgpack: bool = True
) -> Any:
    """The request body's value: 415 for an unsupported type, 400 if it does not decode.

    An empty body is ``{}`` (a POST with the right type and no body creates a
    record with defaults). Use :func:`body_kind` to learn which patch format
    a PATCH body is in.
    """
    kind = body_kind(content_type, patch=patch, allow_msgpack=allow_msgpack)
    if not body:
        return {}
    if kind == MSGPACK:
        try:
            return _msgpack_loads(body)
        except (ValueError, msgpack.UnpackException) as exc:
            raise _invalid_body(f"Invalid msgpack request body: {_safe_message(exc)}") from None
    try:
        return json_loads(body)
    except JSONDecodeError as exc:
        raise _invalid_body(f"Invalid JSON request body: {exc}") from None


def _safe_message(exc: BaseException) -> str:
    # Driver messages may echo input; keep them short and on one line.
    return str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__


class _NotJSONModel(ValueError):
    pass


def _refuse_ext(code: int, data: bytes) -> Any:
    raise _NotJSONModel(f"extension type {code} is not allowed")


def _msgpack_loads(body: bytes) -> Any:
    value = msgpack.unpackb(
        body,
        raw=False,
        strict_map_key=True,
        use_list=True,
        ext_hook=_refuse_ext,
        max_bin_len=0,
        max_ext_len=0,
        # NOTE: the timestamp extension (-1) is decoded without ext_hook;
        # timestamp=0 makes it a msgpack.Timestamp that the model check refuses.
        timestamp=0,
    )
    _check_json_model(value)
    return value


def _check_json_model(value: Any) -> None:
    """Refuse what JSON cannot render: bytes, extensions, NaN/Infinity, deep nesting."""
    stack = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, (dict, list)):
            if depth >= MAX_JSON_DEPTH:
                raise _NotJSONModel(f"nesting deeper than {MAX_JSON_DEPTH} levels")
            if isinstance(item, dict):
                for key, sub in item.items():
                    if not isinstance(key, str):
                        raise _NotJSONModel("map keys must be strings")
                    stack.append((sub, depth + 1))
            else:
                stack.extend((sub, depth + 1) for sub in item)
        elif isinstance(item, float):
            if not math.isfinite(item):
                raise _NotJSONModel("NaN and Infinity are not allowed")
        elif item is not None and not isinstance(item, (str, int)):
            raise _NotJSONModel(f"{type(item).__name__} values are not allowed")


def encode_body(kind: str, value: Any) -> tuple[str, bytes]:
    """``(Content-Type, bytes)`` of a response body in the negotiated codec."""
    if kind == MSGPACK:
        return MSGPACK_CONTENT_TYPE, msgpack.packb(value, use_bin_type=True)
    return JSON_CONTENT_TYPE, json_dumps_bytes(value)
