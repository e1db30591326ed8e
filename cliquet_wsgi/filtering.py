"""The reference semantics of storage filters and sorting, in pure Python.

This module *is* the meaning of :class:`~cliquet_wsgi.storage.Filter`,
:class:`~cliquet_wsgi.storage.Sort` and ``pagination_rules``: the memory
backend uses it directly, the SQLite backend falls back to it for what SQL
cannot express, and property-based tests compare other backends with it.
Keep it small and obviously correct rather than fast.

Values are JSON values. Rules (PROTOCOL §10.5, the docstring of
:class:`~cliquet_wsgi.storage.COMPARISON`):

* a field is a dotted path (``author.name``) walking through objects only;
  anything else on the way (missing key, array, scalar) means *missing*;
* JSON types are ranked ``null < bool < number < string < array < object``
  and values of different ranks are never equal (``1`` vs ``"1"``, ``1`` vs
  ``true``); ``LT GT MIN MAX`` only match values of the same rank, arrays
  and objects ordered by their canonical JSON text as in sorting (so that
  keyset pagination can resume after any value);
* ``NOT``, ``EXCLUDE`` and ``HAS false`` match records lacking the field;
  ``HAS`` treats ``null`` as lacking; every other operator needs the field;
* sorting is total: by rank, then value (arrays and objects by their
  canonical JSON text), records lacking the field after all others when
  ascending (before them when descending); ``id`` ascending breaks ties.
"""
from __future__ import annotations

import functools
import json
import operator
import re
from typing import Any, Callable, Iterable, Sequence

from cliquet_wsgi.storage import COMPARISON, Filter, Sort

__all__ = ["MISSING", "resolve", "rank", "json_equal", "canonical_json", "as_list", "like", "match", "sort_key",
           "sort_records", "apply", "DEFAULT_SORT", "object_id_glob"]

#: Returned by :func:`resolve` for a field the record lacks.
MISSING: Any = type("Missing", (), {"__repr__": lambda self: "MISSING"})()

#: Order used when no sorting is given (newest first).
DEFAULT_SORT = (Sort("last_modified", -1),)

_NULL, _BOOL, _NUMBER, _STRING, _ARRAY, _OBJECT = range(6)


def resolve(record: dict[str, Any], field: str) -> Any:
    """The value at dotted ``field`` in ``record``, or :data:`MISSING`."""
    value: Any = record
    for part in field.split("."):
        if not isinstance(value, dict) or part not in value:
            return MISSING
        value = value[part]
    return value


def rank(value: Any) -> int:
    """Rank of a JSON value's type (``bool`` checked before ``int``: ``True`` is an int in Python)."""
    if value is None:
        return _NULL
    if isinstance(value, bool):
        return _BOOL
    if isinstance(value, (int, float)):
        return _NUMBER
    if isinstance(value, str):
        return _STRING
    if isinstance(value, (list, tuple)):
        return _ARRAY
    return _OBJECT


def json_equal(a: Any, b: Any) -> bool:
    """Equality of JSON values, type-aware all the way down (``[1] != [true]``, ``1 == 1.0``)."""
    kind = rank(a)
    if kind != rank(b):
        return False
    if kind == _ARRAY:
        return len(a) == len(b) and all(json_equal(x, y) for x, y in zip(a, b))
    if kind == _OBJECT:
        return a.keys() == b.keys() and all(json_equal(a[k], b[k]) for k in a)
    return a == b


def canonical_json(value: Any) -> str:
    """The JSON text that orders arrays and objects (keys sorted, no spaces, no escaping of non-ASCII)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _comparable(value: Any) -> tuple[int, Any]:
    kind = rank(value)
    if kind == _NULL:
        return (kind, 0)
    if kind in (_ARRAY, _OBJECT):
        return (kind, canonical_json(value))
    return (kind, value)


@functools.lru_cache(maxsize=256)
def _like_regex(needle: str) -> re.Pattern[str]:
    return re.compile(".*".join(re.escape(part) for part in needle.lower().split("*")), re.DOTALL)


def like(value: Any, needle: Any) -> bool:
    """Case-insensitive substring match of a string ``value``; ``*`` in ``needle`` is a wildcard.

    ``%`` and ``_`` are literal. A non-string ``needle`` is matched by its JSON text.
    """
    if not isinstance(value, str):
        return False
    if not isinstance(needle, str):
        needle = canonical_json(needle)
    return _like_regex(needle).search(value.lower()) is not None


def as_list(value: Any) -> list[Any]:
    """The values of an ``IN``/``EXCLUDE``/``CONTAINS`` filter: a list, or one value alone."""
    return list(value) if isinstance(value, (list, tuple, set, frozenset)) else [value]


def _ordered(field_value: Any, value: Any) -> int | None:
    """-1/0/1 comparing two values of the same orderable rank (all but null), else ``None``."""
    kind = rank(field_value)
    if kind != rank(value) or kind == _NULL:
        return None
    if kind in (_ARRAY, _OBJECT):
        field_value, value = canonical_json(field_value), canonical_json(value)
    return (field_value > value) - (field_value < value)


def match_filter(record: dict[str, Any], flt: Filter) -> bool:
    """Whether ``record`` satisfies one filter."""
    field_value = resolve(record, flt.field)
    op, value = COMPARISON(flt.operator), flt.value
    if op is COMPARISON.HAS:
        present = field_value is not MISSING and field_value is not None
        return present if value else not present
    if op is COMPARISON.NOT:
        return field_value is MISSING or not json_equal(field_value, value)
    if op is COMPARISON.EXCLUDE:
        return field_value is MISSING or not any(json_equal(field_value, v) for v in as_list(value))
    if field_value is MISSING:
        return False
    if op is COMPARISON.EQ:
        return json_equal(field_value, value)
    if op is COMPARISON.IN:
        return any(json_equal(field_value, v) for v in as_list(value))
    if op is COMPARISON.LIKE:
        return like(field_value, value)
    if op in (COMPARISON.CONTAINS, COMPARISON.CONTAINS_ANY):
        if not isinstance(field_value, (list, tuple)):
            return False
        found = (any(json_equal(item, v) for item in field_value) for v in as_list(value))
        return all(found) if op is COMPARISON.CONTAINS else any(found)
    order = _ordered(field_value, value)
    if order is None:
        return False
    return {
        COMPARISON.LT: order < 0,
        COMPARISON.GT: order > 0,
        COMPARISON.MIN: order >= 0,
        COMPARISON.MAX: order <= 0,
    }[op]


def match(record: dict[str, Any], filters: Iterable[Filter]) -> bool:
    """Whether ``record`` satisfies every filter (AND)."""
    return all(match_filter(record, flt) for flt in filters)


def match_rules(record: dict[str, Any], pagination_rules: Sequence[Sequence[Filter]]) -> bool:
    """Whether ``record`` satisfies any rule (OR of ANDs); no rules at all means yes."""
    return not pagination_rules or any(match(record, rule) for rule in pagination_rules)


def _value_key(value: Any) -> tuple:
    """Ascending sort key of one field value: values by rank then value, missing after all."""
    # PERF: the common JSON types first, without the generic rank() dispatch.
    kind = type(value)
    if kind is str:
        return (0, _STRING, value)
    if kind is int or kind is float:
        return (0, _NUMBER, value)
    if value is MISSING:
        return (1,)
    return (0, *_comparable(value))


def _field_key(field: str) -> Callable[[dict[str, Any]], tuple]:
    if "." not in field:
        return lambda record: _value_key(record.get(field, MISSING))
    return lambda record: _value_key(resolve(record, field))


def _fields(sorting: Sequence[Sort]) -> list[Sort]:
    fields = list(sorting)
    if not any(sort.field == "id" for sort in fields):
        fields.append(Sort("id", 1))
    return fields


def sort_key(sorting: Sequence[Sort]) -> Callable[[dict[str, Any]], Any]:
    """A ``key=`` for :func:`sorted` ordering records by ``sorting`` then ``id`` ascending.

    This comparison is the definition of the order; :func:`sort_records` is
    the fast equivalent used by :func:`apply` (tests check they agree).
    """
    fields = _fields(sorting)

    def compare(a: dict[str, Any], b: dict[str, Any]) -> int:
        for field, direction in fields:
            va, vb = resolve(a, field), resolve(b, field)
            # Missing sorts after every value ascending.
            ka = (1,) if va is MISSING else (0,) + _comparable(va)
            kb = (1,) if vb is MISSING else (0,) + _comparable(vb)
            if ka != kb:
                return (1 if ka > kb else -1) * (1 if direction >= 0 else -1)
        return 0

    return functools.cmp_to_key(compare)


def sort_records(records: list[dict[str, Any]], sorting: Sequence[Sort]) -> None:
    """Sort ``records`` in place exactly as ``sort_key(sorting)`` would.

    PERF: keys are computed once per record and field instead of a Python
    comparison per pair. When the non-numeric fields all go the same way, one
    sort on a composite key does it (strings as they are, other values by
    :func:`_value_key`, numbers negated when going the other way), with
    ``reverse=True`` when that way is descending (a stable sort keeps ties in
    input order either way). Otherwise: stable passes from the last field to
    the first, each ascending or ``reverse=True``; a key tuple orders
    like the comparison's ``ka``/``kb``, so each pass orders like one field of
    ``compare``, and stability makes earlier fields win, later ones break ties.
    """
    fields = _fields(sorting)
    first, direction = fields[0]
    if "." not in first:
        try:
            values = list(map(operator.itemgetter(first), records))
        except KeyError:
            values = None
        if values is not None and set(map(type, values)) <= _NUMBER_TYPES and len(set(values)) == len(values):
            # PERF: distinct plain numbers in the first field (last_modified, as
            # by default) decide the whole order: one sort on them.
            records.sort(key=operator.itemgetter(first), reverse=direction < 0)
            return
    columns = []
    for field, direction in fields:
        if "." in field:
            values = [resolve(record, field) for record in records]
        else:
            try:
                values = list(map(operator.itemgetter(field), records))  # C speed when none lacks it
            except KeyError:
                values = [record.get(field, MISSING) for record in records]
        kinds = set(map(type, values))
        columns.append((values, direction < 0, bool(kinds) and kinds <= _NUMBER_TYPES, kinds))
    # One sort, descending (reverse=True, stable too) if the non-numeric columns all are.
    descending = next((desc for _, desc, numeric, _ in columns if not numeric), False)
    keys = []
    for values, desc, numeric, kinds in columns:
        if numeric:
            # One rank only: plain numbers order alike, negation reverses exactly.
            keys.append(values if desc == descending else [-value for value in values])
        elif desc != descending:
            break
        elif kinds == _STR_TYPE:
            keys.append(values)
        else:
            keys.append(list(map(_value_key, values)))
    else:
        composite = keys[0] if len(keys) == 1 else list(zip(*keys))
        order = sorted(range(len(records)), key=composite.__getitem__, reverse=descending)
        records[:] = [records[index] for index in order]
        return
    for field, direction in reversed(fields):
        records.sort(key=_field_key(field), reverse=direction < 0)


_NUMBER_TYPES = frozenset({int, float})
_STR_TYPE = {str}


def apply(
    records: Iterable[dict[str, Any]],
    filters: Sequence[Filter] = (),
    sorting: Sequence[Sort] = (),
    pagination_rules: Sequence[Sequence[Filter]] = (),
    limit: int | None = None,
) -> list[dict[str, Any]]:
    """Filter, keep those matching a pagination rule, sort (default newest first), then limit."""
    if filters or pagination_rules:
        kept = [r for r in records if match(r, filters) and match_rules(r, pagination_rules)]
    else:
        kept = list(records)
    sort_records(kept, sorting or DEFAULT_SORT)
    return kept if limit is None else kept[:limit]


@functools.lru_cache(maxsize=256)
def object_id_glob(pattern: str) -> re.Pattern[str]:
    """Regex for a permission object-id glob: ``*`` matches any characters but ``/``; the rest is literal."""
    return re.compile("[^/]*".join(re.escape(part) for part in pattern.split("*")), re.DOTALL)
