"""The querystring language of collection endpoints (PROTOCOL §10.5, §2.3, §15).

Turns decoded querystring pairs into storage arguments — filters, sorting,
limit, keyset pagination rules from a ``_token`` — and mints the tokens and
``Next-Page`` URLs of the following pages. Also the ``_fields`` partial
response. Everything a client can send ends as a :class:`CliquetError` 400
(errno 107) with the §2.3 details, never as another exception.

Field names are checked against a strict grammar (ASCII word segments joined
by dots, at most :data:`MAX_NAME_LENGTH` characters) so that backends only
ever see tame names; they must still bind them as data (RELIABILITY S7).

Not for record endpoints' bodies (see ``codecs.py``), nor for authorization:
a token only says where the previous page ended, it grants nothing.
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import math
import re
from dataclasses import dataclass, field
from typing import Any, Iterable, Sequence
from urllib.parse import quote_plus

from cliquet_wsgi import filtering
from cliquet_wsgi.errors import CliquetError, invalid_parameter
from cliquet_wsgi.rendering import JSONDecodeError, json_dumps, json_loads
from cliquet_wsgi.storage import COMPARISON, Filter, Sort

__all__ = [
    "ListQuery", "parse_list_query", "next_page_token", "decode_token", "next_page_url",
    "parse_filter_value", "apply_fields", "parse_timestamp_param", "build_pagination_rules",
    "MAX_NAME_LENGTH", "MAX_LIST_VALUES", "RESERVED_FIELDS",
]

#: Longest accepted parameter or field name (longer names -> 400).
MAX_NAME_LENGTH = 256
#: Most values accepted in one comma-split list (``in_``, ``exclude_``, ``contains_``...)
#: and in all filters of a request together (RELIABILITY I5: ``&a=1`` × 10,000).
#: NOTE: keeps a query far below the 65535 bind parameters of PostgreSQL.
MAX_LIST_VALUES = 1000
#: Longest ``_token`` accepted (characters); a token carries one record's sort values.
MAX_TOKEN_LENGTH = 64 * 1024
#: Fields every record has, filterable and sortable even with a strict schema.
RESERVED_FIELDS = frozenset({"id", "last_modified", "deleted"})

_INT64_MAX = 2**63 - 1
_INT64_MIN = -(2**63)

# One dotted name: ASCII word segments, no empty segment (``a..b``), no quotes,
# no NUL, nothing a SQL or JSON-path syntax could interpret.
_NAME_RE = re.compile(r"[A-Za-z0-9_]+(?:\.[A-Za-z0-9_]+)*\Z")
_SORT_ENTRY_RE = re.compile(r"([-+]?)([A-Za-z0-9_]+(?:\.[A-Za-z0-9_]+)*)\Z")
_INT_RE = re.compile(r"-?(?:0|[1-9][0-9]*)\Z")
_FLOAT_RE = re.compile(r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][-+]?[0-9]+)?\Z")
_TIMESTAMP_RE = re.compile(r"-?[0-9]{1,19}\Z")
_TOKEN_RE = re.compile(r"[A-Za-z0-9_-]+={0,2}\Z")

# Longest prefixes first: ``contains_any_f`` must not read as ``contains_`` on ``any_f``.
_OPERATOR_PREFIXES = (
    ("contains_any_", COMPARISON.CONTAINS_ANY),
    ("contains_", COMPARISON.CONTAINS),
    ("exclude_", COMPARISON.EXCLUDE),
    ("like_", COMPARISON.LIKE),
    ("min_", COMPARISON.MIN),
    ("max_", COMPARISON.MAX),
    ("not_", COMPARISON.NOT),
    ("has_", COMPARISON.HAS),
    ("in_", COMPARISON.IN),
    ("lt_", COMPARISON.LT),
    ("gt_", COMPARISON.GT),
)
_LIST_OPERATORS = frozenset({
    COMPARISON.IN, COMPARISON.EXCLUDE, COMPARISON.CONTAINS, COMPARISON.CONTAINS_ANY,
})

_TRUE = frozenset({"true", "yes", "on"})
_FALSE = frozenset({"false", "no", "off"})

_TO_ALERT = {"code": "soft-eol", "message": "_to is now deprecated, you should use _before instead"}
_TOKEN_KEYS = frozenset({"last_record", "offset", "scope"})


@dataclass
class ListQuery:
    """What a collection request asks for, ready for ``Storage.get_all``.

    ``sorting`` always ends with ``last_modified`` then ``id`` as tie-breakers
    (unless listed by the client) so that the order is total and keyset
    pagination exact even when forced timestamps collide.
    """

    filters: list[Filter] = field(default_factory=list)
    sorting: list[Sort] = field(default_factory=lambda: [Sort("last_modified", -1), Sort("id", -1)])
    limit: int | None = None
    pagination_rules: list[list[Filter]] = field(default_factory=list)
    offset: int = 0
    fields: list[str] | None = None
    include_deleted: bool = False
    alerts: list[dict[str, Any]] = field(default_factory=list)


def _querystring_error(name: str | None, description: str) -> CliquetError:
    return invalid_parameter("querystring", name, description)


def _invalid_value(name: str) -> CliquetError:
    return _querystring_error(name, f"Invalid value for {name}")


def _invalid_token() -> CliquetError:
    return _querystring_error(None, "_token has invalid content")


def _valid_name(name: str) -> bool:
    return len(name) <= MAX_NAME_LENGTH and _NAME_RE.match(name) is not None


def _field_allowed(name: str, known_fields: set[str] | frozenset[str] | None) -> bool:
    root, _, rest = name.partition(".")
    if root in RESERVED_FIELDS:
        # ``last_modified.x`` is never a thing: these fields are scalars.
        return not rest
    return known_fields is None or root in known_fields


# -- values ------------------------------------------------------------------------------


def parse_filter_value(text: str) -> Any:
    """Native value of a querystring value (PROTOCOL §10.5, §15 #19), without ``eval``.

    ``true/yes/on`` and ``false/no/off`` (any case) are booleans, ``null`` is
    ``None``, JSON-style integers and finite floats are numbers, ``'abc'`` and
    ``"abc"`` are the string inside the quotes, a JSON array or object is
    parsed; anything else (``1.2.3``, ``007``, ``1e999``) stays the raw string.
    """
    lowered = text.lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    if text == "null":
        return None
    if _INT_RE.match(text):
        try:
            return int(text)
        except ValueError:  # NOTE: more digits than Python converts; keep the text.
            return text
    if _FLOAT_RE.match(text):
        number = float(text)
        return number if math.isfinite(number) else text
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        return text[1:-1]
    if text[:1] in ("[", "{"):
        try:
            return json_loads(text)
        except JSONDecodeError:
            return text
    return text


def parse_timestamp_param(name: str, text: str) -> int:
    """Integer epoch-ms value of ``_since``/``_before``/``_to``/``last_modified``.

    The quoted ETag form (``"1430222877724"``) is accepted. Anything that is
    not an integer of at most 64 bits -> 400 ``Invalid value for <name>``.
    """
    if len(text) >= 2 and text[0] == text[-1] == '"':
        text = text[1:-1]
    if not _TIMESTAMP_RE.match(text):
        raise _invalid_value(name)
    value = int(text)
    if not _INT64_MIN <= value <= _INT64_MAX:
        raise _invalid_value(name)
    return value


def _is_storable(value: Any) -> bool:
    # NUL and lone surrogates cannot reach a backend (PostgreSQL text refuses
    # both): they would surface as driver errors, i.e. 5xx.
    if isinstance(value, str):
        if "\x00" in value:
            return False
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return False
    return True


def _split_list(param: str, text: str) -> list[str]:
    parts = text.split(",")
    if len(parts) > MAX_LIST_VALUES:
        raise _invalid_value(param)
    return parts


def _filter_value(param: str, field_name: str, operator: COMPARISON, text: str) -> Any:
    """Typed value of one filter, or 400 ``Invalid value for <param>``."""
    if not _is_storable(text):
        raise _invalid_value(param)
    if operator is COMPARISON.HAS:
        value = parse_filter_value(text)
        if not isinstance(value, bool):
            raise _invalid_value(param)
        return value
    if field_name == "last_modified":
        if operator in (COMPARISON.IN, COMPARISON.EXCLUDE):
            return [parse_timestamp_param(param, part) for part in _split_list(param, text)]
        if operator in (COMPARISON.LIKE, COMPARISON.CONTAINS, COMPARISON.CONTAINS_ANY):
            raise _invalid_value(param)
        return parse_timestamp_param(param, text)
    if operator is COMPARISON.LIKE:
        # A substring pattern is text: ``like_title=42`` looks for "42".
        return text
    if operator in (COMPARISON.CONTAINS, COMPARISON.CONTAINS_ANY):
        if text.startswith("["):
            try:
                parsed = json_loads(text)
            except JSONDecodeError:
                parsed = None
            if isinstance(parsed, list):
                if len(parsed) > MAX_LIST_VALUES:
                    raise _invalid_value(param)
                return parsed
        return [parse_filter_value(part) for part in _split_list(param, text)]
    if operator in (COMPARISON.IN, COMPARISON.EXCLUDE):
        values = [parse_filter_value(part) for part in _split_list(param, text)]
        if field_name == "id" and not all(isinstance(v, str) for v in values):
            raise _invalid_value(param)
        return values
    if field_name == "id":
        # Ids are strings by definition: ``id=123`` means the id "123".
        value = parse_filter_value(text)
        return value if isinstance(value, str) else text
    return parse_filter_value(text)


def _parse_filter(param: str, text: str, known_fields: set[str] | None) -> Filter:
    if not _valid_name(param):
        raise _querystring_error(param, f"Invalid filter field '{param}'")
    operator, field_name = COMPARISON.EQ, param
    for prefix, candidate in _OPERATOR_PREFIXES:
        if param.startswith(prefix) and len(param) > len(prefix):
            operator, field_name = candidate, param[len(prefix):]
            break
    if not _valid_name(field_name):
        raise _querystring_error(param, f"Invalid filter field '{param}'")
    if not _field_allowed(field_name, known_fields):
        raise _querystring_error(param, f"Unknown filter field '{param}'")
    return Filter(field_name, _filter_value(param, field_name, operator, text), operator)


# -- sorting, limit, fields ----------------------------------------------------------------


def _parse_sort(text: str, known_fields: set[str] | None) -> list[Sort]:
    sorting: list[Sort] = []
    seen: set[str] = set()
    for entry in text.split(","):
        match = _SORT_ENTRY_RE.match(entry)
        if match is None or len(match.group(2)) > MAX_NAME_LENGTH:
            continue  # §10.5: entries outside the grammar are ignored silently.
        sign, name = match.groups()
        if not _field_allowed(name, known_fields):
            raise _querystring_error(None, f"Unknown sort field '{name}'")
        if name in seen:
            continue  # a repeated field adds nothing to the order
        seen.add(name)
        sorting.append(Sort(name, -1 if sign == "-" else 1))
    return _with_tie_breakers(sorting)


def _with_tie_breakers(sorting: list[Sort]) -> list[Sort]:
    names = {sort.field for sort in sorting}
    if "last_modified" not in names:
        sorting.append(Sort("last_modified", -1))
    if "id" not in names:
        # NOTE: ids are unique per partition (tombstones included), so the
        # order becomes total; follow last_modified's direction.
        direction = next(s.direction for s in sorting if s.field == "last_modified")
        sorting.append(Sort("id", direction))
    return sorting


def _parse_limit(text: str) -> int:
    if not text.isascii() or not text.isdigit():
        raise _querystring_error(None, "_limit should be an integer")
    digits = text.lstrip("0")
    if not digits:  # §15 #16: 0 no longer means "unlimited".
        raise _querystring_error(None, "_limit should be an integer")
    # Anything longer than 18 digits is above every cap anyway.
    return int(digits) if len(digits) <= 18 else _INT64_MAX


def _parse_fields(text: str, known_fields: set[str] | None) -> list[str]:
    fields: list[str] = []
    invalid: list[str] = []
    for entry in text.split(","):
        if not entry:
            continue
        if not _valid_name(entry) or not _field_allowed(entry, known_fields):
            invalid.append(entry)
        elif entry not in fields:
            fields.append(entry)
    if invalid:
        # §2.3 table with §15 #36 (location querystring instead of body).
        raise _querystring_error(
            "Invalid _fields parameter", f"Fields {','.join(invalid)} do not exist"
        )
    return fields


def apply_fields(record: dict[str, Any], fields: list[str] | None) -> dict[str, Any]:
    """Partial response (§10.5): ``fields`` plus ``id``, ``last_modified`` (and ``deleted``).

    Dotted names keep nested branches; a non-object intermediate keeps its
    whole value; missing fields are omitted. ``None`` returns ``record`` as is.
    """
    if fields is None:
        return record
    result = {key: record[key] for key in ("id", "last_modified", "deleted") if key in record}
    for name in fields:
        # Resolve first: a missing leaf must not leave an empty branch behind.
        path, value = [], record
        for key in name.split("."):
            if not isinstance(value, dict):
                break  # non-object intermediate: its whole value is kept
            if key not in value:
                path = []
                break
            path.append(key)
            value = value[key]
        if not path:
            continue
        source, target = record, result
        for key in path[:-1]:
            source = source[key]
            branch = target.get(key)
            if branch is source:
                break  # the whole branch was already requested
            if not isinstance(branch, dict):
                branch = target[key] = {}
            target = branch
        else:
            target[path[-1]] = value
    return result


# -- tokens ---------------------------------------------------------------------------------


def _scope_digest(token_scope: str, filters: Sequence[Filter], sorting: Sequence[Sort]) -> str:
    # The digest binds a token to its endpoint, partition, filters and order:
    # replayed elsewhere, or with other filters, its keyset would be meaningless.
    canonical_filters = sorted(
        json_dumps([f.field, COMPARISON(f.operator).value, f.value]) for f in filters
    )
    payload = json_dumps([token_scope, canonical_filters, [[s.field, s.direction] for s in sorting]])
    return hashlib.sha256(payload.encode("utf-8", "surrogatepass")).hexdigest()[:32]


def _b64encode(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode("utf-8")).decode("ascii")


def next_page_token(query: ListQuery, last_record: dict[str, Any], returned: int, token_scope: str) -> str:
    """Token for the page after the one that ended with ``last_record``.

    ``returned`` is the number of records of that page; the token's offset is
    ``query.offset + returned``. Sort fields the record lacks are left out of
    ``last_record`` (they sort last ascending, §10.5).
    """
    values = {}
    for sort in query.sorting:
        found, value = _lookup(last_record, sort.field)
        if found:
            values[sort.field] = value
    token = {
        "last_record": values,
        "offset": query.offset + returned,
        "scope": _scope_digest(token_scope, query.filters, query.sorting),
    }
    return _b64encode(json_dumps(token))


def decode_token(
    text: str, token_scope: str, filters: Sequence[Filter], sorting: Sequence[Sort]
) -> tuple[dict[str, Any], int]:
    """``(last_record, offset)`` of a token minted for this scope, filters and sorting.

    Anything else -> 400 ``_token has invalid content`` (RELIABILITY I9).
    """
    if len(text) > MAX_TOKEN_LENGTH or not _TOKEN_RE.match(text):
        raise _invalid_token()
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
        token = json_loads(raw)
    except (binascii.Error, ValueError):
        raise _invalid_token() from None
    if not isinstance(token, dict) or set(token) != _TOKEN_KEYS:
        raise _invalid_token()
    last_record, offset, scope = token["last_record"], token["offset"], token["scope"]
    if not isinstance(offset, int) or isinstance(offset, bool) or not 0 <= offset <= _INT64_MAX:
        raise _invalid_token()
    # NOTE: the digest is no secret (a forged token only moves the start of a
    # page the client may read anyway); compare_digest keeps S1's grep simple.
    expected = _scope_digest(token_scope, filters, sorting)
    if not isinstance(scope, str) or not scope.isascii() or not hmac.compare_digest(scope, expected):
        raise _invalid_token()
    if not isinstance(last_record, dict) or not set(last_record) <= {s.field for s in sorting}:
        raise _invalid_token()
    # Every record and tombstone has these two: a token without them is forged.
    modified, record_id = last_record.get("last_modified"), last_record.get("id")
    if not isinstance(modified, int) or isinstance(modified, bool) or not _INT64_MIN <= modified <= _INT64_MAX:
        raise _invalid_token()  # out of range would reach PostgreSQL's bigint as a driver error
    if not isinstance(record_id, str):
        raise _invalid_token()
    return last_record, offset


_MISSING = object()

# Ranks of JSON types in the storage order (``Sort`` docstring): records
# lacking the field come after every value ascending.
_NULL, _BOOL, _NUMBER, _STRING, _ARRAY, _OBJECT, _ABSENT = range(7)


def _rank(value: Any) -> int:
    """The storage's type order (:func:`cliquet_wsgi.filtering.rank`), missing values last."""
    return _ABSENT if value is _MISSING else filtering.rank(value)


def _type_class(name: str, rank: int) -> list[list[Filter]]:
    """Filter alternatives matching exactly the values of one type rank."""
    if rank == _NULL:
        return [[Filter(name, None, COMPARISON.EQ)]]
    if rank == _BOOL:
        return [[Filter(name, [False, True], COMPARISON.IN)]]
    if rank == _NUMBER:
        return [[Filter(name, 0, COMPARISON.MIN)], [Filter(name, 0, COMPARISON.LT)]]
    if rank == _STRING:
        return [[Filter(name, "", COMPARISON.MIN)]]
    if rank == _ARRAY:
        return [[Filter(name, [], COMPARISON.CONTAINS)]]
    if rank == _OBJECT:
        # Every object sorts either before {} or from it on (canonical text).
        return [[Filter(name, {}, COMPARISON.MIN)], [Filter(name, {}, COMPARISON.LT)]]
    if rank == _ABSENT:
        # HAS false = absent or null; NOT null = absent or not null.
        return [[Filter(name, False, COMPARISON.HAS), Filter(name, None, COMPARISON.NOT)]]
    raise AssertionError(f"no type rank {rank}")


def _equal_to(name: str, value: Any) -> list[Filter]:
    if value is _MISSING:
        return _type_class(name, _ABSENT)[0]
    return [Filter(name, value, COMPARISON.EQ)]


def _after(name: str, direction: int, value: Any) -> list[list[Filter]]:
    """Alternatives for "strictly after ``value`` in this direction"."""
    operator = COMPARISON.GT if direction > 0 else COMPARISON.LT
    if name in ("last_modified", "id"):
        # Always present, always int / string (checked in the token): a single
        # comparison, which backends can serve from an index.
        return [[Filter(name, value, operator)]]
    rank = _rank(value)
    alternatives: list[list[Filter]] = []
    if direction > 0:
        if rank in (_NULL, _BOOL):
            # Finitely many values sort before: exclude them, and everything
            # after (objects and missing fields included) matches exactly.
            before = [None] if rank == _NULL else [None, False] + ([True] if value else [])
            return [[Filter(name, before, COMPARISON.EXCLUDE)]]
        if rank in (_NUMBER, _STRING, _ARRAY, _OBJECT):
            alternatives.append([Filter(name, value, COMPARISON.GT)])
        for higher in range(rank + 1, _ABSENT + 1):
            alternatives.extend(_type_class(name, higher))
    else:
        if rank == _ABSENT:
            return [[Filter(name, True, COMPARISON.HAS)], [Filter(name, None, COMPARISON.EQ)]]
        if rank in (_BOOL, _NUMBER, _STRING, _ARRAY, _OBJECT):
            alternatives.append([Filter(name, value, COMPARISON.LT)])
        for lower in range(_NULL, rank):
            alternatives.extend(_type_class(name, lower))
    return alternatives


def build_pagination_rules(sorting: Sequence[Sort], last_record: dict[str, Any]) -> list[list[Filter]]:
    """Keyset rules for the records strictly after ``last_record`` (§10.5 "Next page").

    ``OR_k (s1 = v1 ∧ … ∧ s(k-1) = v(k-1) ∧ sk ⋄ vk)``, where a sort field
    absent from ``last_record`` is a missing value and "after" follows the
    cross-type order of :class:`~cliquet_wsgi.storage.Sort`: exact for every
    JSON value and for missing fields (arrays and objects are ordered by
    their canonical JSON text, by sorting and by ``LT``/``GT`` alike).
    """
    rules: list[list[Filter]] = []
    for index, sort in enumerate(sorting):
        prefix: list[Filter] = []
        for previous in sorting[:index]:
            prefix.extend(_equal_to(previous.field, last_record.get(previous.field, _MISSING)))
        for alternative in _after(sort.field, sort.direction, last_record.get(sort.field, _MISSING)):
            rules.append(prefix + alternative)
    return rules


def _lookup(record: dict[str, Any], name: str) -> tuple[bool, Any]:
    value: Any = record
    for part in name.split("."):
        if not isinstance(value, dict) or part not in value:
            return False, None
        value = value[part]
    return True, value


# -- the whole querystring ------------------------------------------------------------------


def parse_list_query(
    params: Iterable[tuple[str, str]],
    *,
    known_fields: set[str] | frozenset[str] | None,
    paginate_by: int | None,
    max_fetch_size: int,
    token_scope: str,
    for_delete: bool = False,
) -> ListQuery:
    """Parse a collection request's querystring (decoded pairs, in order).

    ``known_fields=None`` is a schemaless resource: any well-formed field can
    be filtered and sorted (§15 #20). ``token_scope`` names the endpoint and
    partition a token must have been minted for. With ``for_delete`` only the
    filters count (collection DELETE is not paginated). ``limit`` is the
    smallest of ``_limit``, ``paginate_by`` and ``max_fetch_size`` (§15 #17),
    ``None`` only with ``for_delete``.
    """
    query = ListQuery()
    special: dict[str, str] = {}
    values_count = 0
    for name, value in params:
        if name.startswith("_"):
            if name in ("_since", "_before", "_to"):
                timestamp = parse_timestamp_param(name, value)
                operator = COMPARISON.GT if name == "_since" else COMPARISON.LT
                query.filters.append(Filter("last_modified", timestamp, operator))
                if name == "_to" and _TO_ALERT not in query.alerts:
                    query.alerts.append(dict(_TO_ALERT))
            elif name in ("_sort", "_limit", "_token", "_fields"):
                special[name] = value  # the last occurrence wins, as with WebOb's GET[...]
            # Other ``_`` parameters are ignored (§10.5).
            continue
        flt = _parse_filter(name, value, known_fields)
        values_count += len(flt.value) if isinstance(flt.value, list) else 1
        if values_count > MAX_LIST_VALUES:
            raise _querystring_error(None, f"Too many filter values (at most {MAX_LIST_VALUES})")
        query.filters.append(flt)
    query.include_deleted = any(f.field == "last_modified" for f in query.filters)
    if for_delete:
        query.sorting = _with_tie_breakers([])
        return query

    if "_sort" in special:
        query.sorting = _parse_sort(special["_sort"], known_fields)
    limits = [max_fetch_size]
    if paginate_by is not None:
        limits.append(paginate_by)
    if "_limit" in special:
        limits.append(_parse_limit(special["_limit"]))
    query.limit = min(limits)
    if "_fields" in special:
        query.fields = _parse_fields(special["_fields"], known_fields)
    token = special.get("_token")
    if token:  # an empty ``_token=`` is the first page, as in Cliquet
        last_record, query.offset = decode_token(token, token_scope, query.filters, query.sorting)
        query.pagination_rules = build_pagination_rules(query.sorting, last_record)
    return query


def _quote(text: str) -> str:
    try:
        return quote_plus(text, safe="", encoding="utf-8", errors="surrogateescape")
    except UnicodeEncodeError:
        return quote_plus(text, safe="", encoding="utf-8", errors="replace")


def next_page_url(base_url: str, params: Iterable[tuple[str, str]], limit: int, token: str) -> str:
    """``Next-Page`` value: ``base_url`` (absolute, without query) with every
    parameter of the request except ``_limit``/``_token``, then ``_limit`` and
    ``_token``, URL-encoded.
    """
    pairs = [(k, v) for k, v in params if k not in ("_limit", "_token")]
    pairs += [("_limit", str(limit)), ("_token", token)]
    return base_url + "?" + "&".join(f"{_quote(k)}={_quote(v)}" for k, v in pairs)
