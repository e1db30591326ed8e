"""PostgreSQL storage: records as JSONB, BIGINT epoch-ms timestamps.

Use it when several processes or hosts serve one dataset. Field names from
filters and sorts are only ever sent as bound parameters (``data #> %s`` with
a ``text[]`` path), never written into SQL text.

Every write takes a transaction-scoped advisory lock on its partition
``(collection_id, parent_id)`` before computing ``T = max(now_ms, previous +
1)``, and keeps it until COMMIT: writers of one partition commit in timestamp
order, so a ``_since`` poller never misses a record.
"""
from __future__ import annotations

import contextlib
import re
import uuid
from operator import itemgetter
from typing import Any, Callable, Mapping, Sequence

from cliquet_wsgi.backends.postgresql.base import PostgreSQLBackend, dumps, kind_setting
from cliquet_wsgi.backends.postgresql.pool import Pool, is_database_error, sqlstate
from cliquet_wsgi.filtering import as_list
from cliquet_wsgi.storage import (
    COMPARISON,
    Filter,
    RecordNotFoundError,
    Sort,
    Storage,
    UnicityError,
)

ID = "id"
MODIFIED = "last_modified"
DELETED = "deleted"

#: SQLSTATE read_only_sql_transaction.
_READ_ONLY = "25006"

_NOW_MS = "floor(extract(epoch FROM clock_timestamp()) * 1000)::bigint"

_COLUMNS = "r.id, r.last_modified, r.deleted, r.data"

_JSON_TYPES = {
    bool: "boolean", int: "number", float: "number", str: "string", list: "array", tuple: "array", dict: "object",
}

_SQL_OPERATORS = {
    COMPARISON.LT: "<",
    COMPARISON.GT: ">",
    COMPARISON.MIN: ">=",
    COMPARISON.MAX: "<=",
}


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    for python_type, name in _JSON_TYPES.items():
        if isinstance(value, python_type):
            return name
    raise TypeError(f"not a JSON value: {type(value).__name__}")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _has_nul(value: Any) -> bool:
    """PostgreSQL text and JSONB cannot hold U+0000: such a value matches nothing stored."""
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, list):
        return any(_has_nul(v) for v in value)
    if isinstance(value, dict):
        return any(_has_nul(k) or _has_nul(v) for k, v in value.items())
    return False


def _text_array(parts: Sequence[str]) -> str:
    """A ``text[]`` literal with every element quoted (sent as a parameter, never inlined)."""
    quoted = ('"' + p.replace("\\", "\\\\").replace('"', '\\"') + '"' for p in parts)
    return "{" + ",".join(quoted) + "}"


def _like_pattern(value: str) -> str:
    escaped = value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return "%" + escaped.replace("*", "%") + "%"


def _to_record(row: Sequence[Any]) -> dict[str, Any]:
    object_id, last_modified, deleted, data = row
    if deleted:
        return {ID: object_id, MODIFIED: last_modified, DELETED: True}
    record = dict(data)
    record[ID] = object_id
    record[MODIFIED] = last_modified
    return record


#: Path steps that PostgreSQL may read as an array index.
_INDEX_LIKE = re.compile(r"^\s*[-+]?[0-9]+\s*$")

_MARKER = re.compile("\x01([0-9]+)\x01")


class _SQL:
    """Builds SQL text with parameter markers, rendered to ``%s`` + values at the end.

    A marker may appear several times in the text (an expression used in a
    CASE and in a comparison): each occurrence becomes its own ``%s``.
    """

    def __init__(self) -> None:
        self.values: list[Any] = []

    def param(self, value: Any, cast: str = "") -> str:
        self.values.append(value)
        return f"\x01{len(self.values) - 1}\x01{cast}"

    def render(self, text: str) -> tuple[str, list[Any]]:
        params: list[Any] = []

        def substitute(match: re.Match[str]) -> str:
            params.append(self.values[int(match.group(1))])
            return "%s"

        return _MARKER.sub(substitute, text), params

    def json(self, value: Any) -> str:
        return self.param(dumps(value), "::jsonb")

    # -- expressions ---------------------------------------------------------------

    def field(self, name: str) -> str | None:
        """JSONB expression of a field of ``r`` (None: a field that cannot exist)."""
        if name == ID:
            return "to_jsonb(r.id)"
        if name == MODIFIED:
            return "to_jsonb(r.last_modified)"
        if name == DELETED:
            # Tombstones are stored without data but read as {"deleted": true}.
            return "(CASE WHEN r.deleted THEN 'true'::jsonb ELSE r.data -> 'deleted' END)"
        if "\x00" in name:
            return None
        parts = name.split(".")
        # NOTE(S7): the path is a bound text[] parameter, never SQL text.
        expr = "(r.data #> " + self.param(_text_array(parts), "::text[]") + ")"
        # `#>` would index into an array with a numeric step ("tags.0"); the
        # reference walks through objects only, so each such step needs an object.
        guards = [
            "jsonb_typeof(r.data #> " + self.param(_text_array(parts[:i]), "::text[]") + ") = 'object'"
            for i in range(1, len(parts))
            if _INDEX_LIKE.match(parts[i])
        ]
        if guards:
            return f"(CASE WHEN {' AND '.join(guards)} THEN {expr} END)"
        return expr

    def condition(self, flt: Filter) -> str:
        name, value, op = flt.field, flt.value, COMPARISON(flt.operator)
        if name == MODIFIED:
            column = self._column_condition("r.last_modified", value, op, "::bigint", _is_int)
            if column is not None:
                return column
        if name == ID:
            if op in (COMPARISON.IN, COMPARISON.EXCLUDE):
                # PERF: one text[] parameter, served by the primary key, whatever the
                # number of ids (a shareable listing may name thousands); ids are
                # strings, so nothing else can match.
                ids = [v for v in as_list(value) if isinstance(v, str) and "\x00" not in v]
                array = self.param(_text_array(ids), "::text[]")
                return f"r.id = ANY({array})" if op == COMPARISON.IN else f"r.id <> ALL({array})"
            column = self._column_condition("r.id", value, op, "::text", lambda v: isinstance(v, str))
            if column is not None:
                return column
        expr = self.field(name)
        if expr is None:
            # A field whose name PostgreSQL cannot store is absent everywhere.
            return "TRUE" if op in (COMPARISON.NOT, COMPARISON.EXCLUDE) or (
                op == COMPARISON.HAS and not value
            ) else "FALSE"
        return self._json_condition(expr, value, op)

    def _column_condition(
        self, column: str, value: Any, op: COMPARISON, cast: str, fits: Callable[[Any], bool]
    ) -> str | None:
        # PERF: a comparison on a real column uses the primary key or the
        # last_modified index; only values of the column's JSON type qualify.
        if op in _SQL_OPERATORS and fits(value) and not _has_nul(value):
            return f"{column} {_SQL_OPERATORS[op]} {self.param(value, cast)}"
        if op == COMPARISON.EQ and fits(value) and not _has_nul(value):
            return f"{column} = {self.param(value, cast)}"
        if op == COMPARISON.NOT and fits(value) and not _has_nul(value):
            return f"{column} <> {self.param(value, cast)}"
        return None

    def _json_condition(self, expr: str, value: Any, op: COMPARISON) -> str:
        if op in (COMPARISON.EQ, COMPARISON.NOT):
            if _has_nul(value):
                return "FALSE" if op == COMPARISON.EQ else "TRUE"
            if op == COMPARISON.EQ:
                return f"{expr} = {self.json(value)}"
            return f"({expr} IS NULL OR {expr} <> {self.json(value)})"
        if op in (COMPARISON.IN, COMPARISON.EXCLUDE):
            values = [v for v in as_list(value) if not _has_nul(v)]
            if not values:
                return "FALSE" if op == COMPARISON.IN else "TRUE"
            # One jsonb array parameter: the statement text (and so its prepared
            # statement) does not depend on the number of values.
            listed = f"SELECT jsonb_array_elements({self.json(values)})"
            if op == COMPARISON.IN:
                return f"{expr} IN ({listed})"
            return f"({expr} IS NULL OR {expr} NOT IN ({listed}))"
        if op in _SQL_OPERATORS:
            if _has_nul(value):
                return "FALSE"
            sql_op = _SQL_OPERATORS[op]
            kind = _json_type(value)
            if kind == "null":
                return "FALSE"  # null is not ordered by filters
            if kind in ("array", "object"):
                # The order of sorting (order_by): canonical text, computed by the same function.
                return (
                    f"(jsonb_typeof({expr}) = '{kind}' AND cliquet_canonical_json({expr}) COLLATE \"C\" "
                    f"{sql_op} cliquet_canonical_json({self.json(value)}) COLLATE \"C\")"
                )
            if kind == "string":
                # Codepoint order, as Python compares strings.
                return (
                    f"(jsonb_typeof({expr}) = 'string' AND "
                    f"({expr} #>> '{{}}') COLLATE \"C\" {sql_op} {self.param(value, '::text')})"
                )
            # Same JSON type only: 2 is not compared with "abc" nor with true.
            return f"(jsonb_typeof({expr}) = {self.param(kind, '::text')} AND {expr} {sql_op} {self.json(value)})"
        if op == COMPARISON.LIKE:
            if not isinstance(value, str):
                value = dumps(value)
            if "\x00" in value:
                return "FALSE"
            return (
                f"(jsonb_typeof({expr}) = 'string' AND "
                f"({expr} #>> '{{}}') ILIKE {self.param(_like_pattern(value), '::text')} ESCAPE '\\')"
            )
        if op == COMPARISON.HAS:
            if value:
                return f"({expr} IS NOT NULL AND {expr} <> 'null'::jsonb)"
            return f"({expr} IS NULL OR {expr} = 'null'::jsonb)"
        if op in (COMPARISON.CONTAINS, COMPARISON.CONTAINS_ANY):
            values = value if isinstance(value, (list, tuple)) else [value]
            values = list(values)
            if any(_has_nul(v) for v in values):
                if op == COMPARISON.CONTAINS:
                    return "FALSE"
                values = [v for v in values if not _has_nul(v)]
            needle = self.json(values)
            if op == COMPARISON.CONTAINS:
                return (
                    f"(jsonb_typeof({expr}) = 'array' AND NOT EXISTS ("
                    f"SELECT 1 FROM jsonb_array_elements({needle}) AS wanted(v) WHERE NOT EXISTS ("
                    f"SELECT 1 FROM jsonb_array_elements({expr}) AS present(v) WHERE present.v = wanted.v)))"
                )
            return (
                f"(jsonb_typeof({expr}) = 'array' AND EXISTS ("
                f"SELECT 1 FROM jsonb_array_elements({expr}) AS present(v), "
                f"jsonb_array_elements({needle}) AS wanted(v) WHERE present.v = wanted.v))"
            )
        raise ValueError(f"Unknown filter operator {op!r}")

    def where(self, filters: Sequence[Filter]) -> str:
        return " AND ".join(self.condition(f) for f in filters) or "TRUE"

    def any_of(self, rules: Sequence[Sequence[Filter]]) -> str:
        return " OR ".join(f"({self.where(rule)})" for rule in rules) or "TRUE"

    def order_by(self, sorting: Sequence[Sort]) -> str:
        terms: list[str] = []
        seen: set[str] = set()
        for sort in sorting:
            if sort.field in seen:
                continue
            seen.add(sort.field)
            direction = "DESC" if sort.direction < 0 else "ASC"
            if sort.field == MODIFIED:
                terms.append(f"r.last_modified {direction}")
                continue
            if sort.field == ID:
                terms.append(f"r.id {direction}")
                continue
            expr = self.field(sort.field)
            if expr is None:
                continue
            # JSON-type-aware order: null < bool < number < string < array <
            # object < missing (ascending); within a type, its natural order.
            terms.append(
                f"CASE jsonb_typeof({expr}) WHEN 'null' THEN 0 WHEN 'boolean' THEN 1 WHEN 'number' THEN 2 "
                f"WHEN 'string' THEN 3 WHEN 'array' THEN 4 WHEN 'object' THEN 5 ELSE 6 END {direction}"
            )
            terms.append(f"CASE WHEN jsonb_typeof({expr}) = 'number' THEN ({expr})::numeric END {direction}")
            terms.append(
                f"CASE WHEN jsonb_typeof({expr}) = 'string' THEN ({expr} #>> '{{}}') END COLLATE \"C\" {direction}"
            )
            terms.append(
                f"CASE WHEN jsonb_typeof({expr}) IN ('array', 'object') THEN cliquet_canonical_json({expr}) END "
                f"COLLATE \"C\" {direction}"
            )
            terms.append(f"{expr} {direction}")
        if not sorting:
            terms.append("r.last_modified DESC")
        if ID not in seen:
            terms.append("r.id ASC")
        return ", ".join(terms)


def _keyset_bound(rules: Sequence[Sequence[Filter]]) -> Filter | None:
    """The range every rule implies on the first sort key, if there is one.

    PERF: keyset rules ``k < v OR (k = v AND id > w)`` are an OR, which the
    planner cannot turn into an index range; the implied ``k <= v``, AND-ed
    on top, can, so page N costs what page 1 costs (RELIABILITY L2).
    """
    firsts = [rule[0] for rule in rules if rule]
    if not rules or len(firsts) != len(rules):
        return None
    field, value = firsts[0].field, firsts[0].value
    if not isinstance(value, (bool, int, float, str)):
        return None  # EQ matches null/arrays/objects, which range filters never do
    if any(f.field != field or f.value != value or type(f.value) is not type(value) for f in firsts):
        return None
    operators = {COMPARISON(f.operator) for f in firsts}
    if operators <= {COMPARISON.EQ, COMPARISON.LT} and COMPARISON.LT in operators:
        return Filter(field, value, COMPARISON.MAX)
    if operators <= {COMPARISON.EQ, COMPARISON.GT} and COMPARISON.GT in operators:
        return Filter(field, value, COMPARISON.MIN)
    return None


class PostgreSQLStorage(PostgreSQLBackend, Storage):
    """Storage in PostgreSQL ≥ 12 through pg8000.

    Settings: ``storage_url`` (``postgresql://user[:password]@host[:port]/db``),
    ``storage_pool_size``, ``storage_maxoverflow``, ``storage_pool_timeout``,
    ``storage_pool_recycle``, ``storage_connect_timeout_seconds``,
    ``storage_statement_timeout_seconds``, ``storage_max_fetch_size``.
    """

    kind = "storage"

    def __init__(self, pool: Pool, settings: Mapping[str, Any] | None = None) -> None:
        super().__init__(pool)
        self.max_fetch_size = int(kind_setting(settings or {}, "storage", "max_fetch_size"))

    def read_transaction(self) -> contextlib.AbstractContextManager[None]:
        # PERF: one checkout (ping), BEGIN and COMMIT for the reads of a request
        # instead of one per call; a plain transaction (no READ ONLY): a first
        # collection_timestamp persists the partition's timestamp.
        return self._joined()

    def flush(self) -> None:
        with self.pool.transaction() as cursor:
            cursor.execute("DELETE FROM records")
            cursor.execute("DELETE FROM timestamps")

    # -- timestamps ----------------------------------------------------------------

    @staticmethod
    def _lock_partition(cursor: Any, collection_id: str, parent_id: str) -> None:
        # Held until COMMIT/ROLLBACK: writers of a partition are serialised and
        # commit in timestamp order (RELIABILITY C2).
        cursor.execute(
            "SELECT pg_advisory_xact_lock(hashtextextended(%s::text, 0))",
            (dumps([collection_id, parent_id]),),
        )

    @staticmethod
    def _bump(cursor: Any, collection_id: str, parent_id: str, forced: int | None = None) -> int:
        """New partition timestamp (§10.3); the caller holds the partition lock."""
        cursor.execute(
            "INSERT INTO timestamps AS t (collection_id, parent_id, last_modified) "
            f"VALUES (%s, %s, COALESCE(%s::bigint, {_NOW_MS})) "
            "ON CONFLICT (collection_id, parent_id) DO UPDATE SET last_modified = "
            "CASE WHEN t.last_modified >= EXCLUDED.last_modified THEN t.last_modified + 1 "
            "ELSE EXCLUDED.last_modified END "
            "RETURNING last_modified",
            (collection_id, parent_id, forced),
        )
        return cursor.fetchone()[0]

    def collection_timestamp(self, collection_id: str, parent_id: str) -> int:
        with self.pool.transaction() as cursor:
            cursor.execute(
                "SELECT last_modified FROM timestamps WHERE collection_id = %s AND parent_id = %s",
                (collection_id, parent_id),
            )
            row = cursor.fetchone()
            if row is not None:
                return row[0]
            # A savepoint, so that a read-only database (RELIABILITY F10) still
            # answers reads of a never-written partition, just without persisting.
            cursor.execute("SAVEPOINT cliquet_collection_timestamp")
            try:
                cursor.execute(
                    "INSERT INTO timestamps (collection_id, parent_id, last_modified) "
                    f"VALUES (%s, %s, {_NOW_MS}) ON CONFLICT (collection_id, parent_id) DO NOTHING",
                    (collection_id, parent_id),
                )
            except Exception as exc:
                if not is_database_error(exc) or sqlstate(exc) != _READ_ONLY:
                    raise
                cursor.execute("ROLLBACK TO SAVEPOINT cliquet_collection_timestamp")
                cursor.execute(f"SELECT {_NOW_MS}")
                return cursor.fetchone()[0]
            cursor.execute("RELEASE SAVEPOINT cliquet_collection_timestamp")
            cursor.execute(
                "SELECT last_modified FROM timestamps WHERE collection_id = %s AND parent_id = %s",
                (collection_id, parent_id),
            )
            return cursor.fetchone()[0]

    # -- helpers -------------------------------------------------------------------

    @staticmethod
    def _fetch(cursor: Any, collection_id: str, parent_id: str, object_id: str, lock: bool = False) -> tuple | None:
        cursor.execute(
            f"SELECT {_COLUMNS} FROM records r "
            "WHERE r.collection_id = %s AND r.parent_id = %s AND r.id = %s" + (" FOR UPDATE" if lock else ""),
            (collection_id, parent_id, object_id),
        )
        return cursor.fetchone()

    @classmethod
    def _raise_if_live(cls, cursor: Any, collection_id: str, parent_id: str, object_id: str) -> None:
        existing = cls._fetch(cursor, collection_id, parent_id, object_id)
        if existing is not None and not existing[2]:
            raise UnicityError(ID, _to_record(existing))

    @staticmethod
    def _check_unicity(
        cursor: Any,
        collection_id: str,
        parent_id: str,
        record: Mapping[str, Any],
        unique_fields: Sequence[str],
        exclude_id: str | None,
    ) -> None:
        for name in unique_fields or ():
            if name in (ID, MODIFIED):
                continue
            value = record.get(name)
            if value is None or _has_nul(value) or "\x00" in name:
                continue
            cursor.execute(
                f"SELECT {_COLUMNS} FROM records r WHERE r.collection_id = %s AND r.parent_id = %s "
                "AND NOT r.deleted AND r.data #> %s::text[] = %s::jsonb "
                "AND (%s::text IS NULL OR r.id <> %s::text) ORDER BY r.last_modified LIMIT 1",
                (collection_id, parent_id, _text_array(name.split(".")), dumps(value), exclude_id, exclude_id),
            )
            row = cursor.fetchone()
            if row is not None:
                raise UnicityError(name, _to_record(row))

    @staticmethod
    def _forced(value: Any) -> int | None:
        return value if _is_int(value) else None

    @staticmethod
    def _bump_and_store(
        cursor: Any,
        collection_id: str,
        parent_id: str,
        object_id: str,
        forced: int | None,
        data: Mapping[str, Any],
        unless_live: bool = False,
    ) -> int | None:
        """:meth:`_bump` then :meth:`_store` in one statement (PERF: one round trip less per write).

        The record gets ``forced`` when given, else the bumped partition
        timestamp; returns the record's ``last_modified``. With
        ``unless_live``, nothing is written (not even the bump) when a live
        record has this id, and None is returned. The caller holds the
        partition lock, so this statement's snapshot sees every earlier
        writer of the partition.
        """
        guard = (
            "WHERE NOT EXISTS (SELECT 1 FROM records WHERE collection_id = %s AND parent_id = %s AND id = %s "
            "AND NOT deleted) "
            if unless_live else ""
        )
        cursor.execute(
            "WITH bumped AS ("
            "INSERT INTO timestamps AS t (collection_id, parent_id, last_modified) "
            f"SELECT %s, %s, COALESCE(%s::bigint, {_NOW_MS}) {guard}"
            "ON CONFLICT (collection_id, parent_id) DO UPDATE SET last_modified = "
            "CASE WHEN t.last_modified >= EXCLUDED.last_modified THEN t.last_modified + 1 "
            "ELSE EXCLUDED.last_modified END "
            "RETURNING last_modified) "
            "INSERT INTO records (collection_id, parent_id, id, last_modified, deleted, data) "
            "SELECT %s, %s, %s, COALESCE(%s::bigint, bumped.last_modified), FALSE, %s::jsonb FROM bumped "
            "ON CONFLICT (collection_id, parent_id, id) DO UPDATE SET "
            "last_modified = EXCLUDED.last_modified, deleted = FALSE, data = EXCLUDED.data "
            "RETURNING last_modified",
            (collection_id, parent_id, forced)
            + ((collection_id, parent_id, object_id) if unless_live else ())
            + (collection_id, parent_id, object_id, forced, dumps(data)),
        )
        row = cursor.fetchone()
        return row[0] if row is not None else None

    # -- contract ------------------------------------------------------------------

    def create(
        self,
        collection_id: str,
        parent_id: str,
        record: dict[str, Any],
        id_generator: Callable[[], str] | None = None,
        unique_fields: Sequence[str] = (),
    ) -> dict[str, Any]:
        object_id = record.get(ID)
        if object_id is None:
            object_id = id_generator() if id_generator else str(uuid.uuid4())
        data = {k: v for k, v in record.items() if k not in (ID, MODIFIED)}
        with self.pool.transaction() as cursor:
            self._lock_partition(cursor, collection_id, parent_id)
            if unique_fields:
                # The id is checked before the other unique fields, as by every backend.
                self._raise_if_live(cursor, collection_id, parent_id, object_id)
                self._check_unicity(cursor, collection_id, parent_id, data, unique_fields, None)
            forced = self._forced(record.get(MODIFIED))
            # PERF: otherwise the id check rides in the write (no read of its own).
            last_modified = self._bump_and_store(
                cursor, collection_id, parent_id, object_id, forced, data, unless_live=True
            )
            if last_modified is None:
                self._raise_if_live(cursor, collection_id, parent_id, object_id)
        return {**data, ID: object_id, MODIFIED: last_modified}

    def get(
        self, collection_id: str, parent_id: str, object_id: str, for_update: bool = False
    ) -> dict[str, Any]:
        with self.pool.transaction() as cursor:
            if for_update:
                # NOTE: partition lock first, as every writer does: a locking
                # read followed by a write can then never deadlock with a writer.
                self._lock_partition(cursor, collection_id, parent_id)
            row = self._fetch(cursor, collection_id, parent_id, object_id, lock=for_update)
        if row is None or row[2]:
            raise RecordNotFoundError(object_id)
        return _to_record(row)

    def update(
        self,
        collection_id: str,
        parent_id: str,
        object_id: str,
        record: dict[str, Any],
        unique_fields: Sequence[str] = (),
    ) -> dict[str, Any]:
        data = {k: v for k, v in record.items() if k not in (ID, MODIFIED)}
        with self.pool.transaction() as cursor:
            self._lock_partition(cursor, collection_id, parent_id)
            existing = self._fetch(cursor, collection_id, parent_id, object_id)
            self._check_unicity(cursor, collection_id, parent_id, data, unique_fields, object_id)
            forced = self._forced(record.get(MODIFIED))
            if forced is not None and existing is not None and not existing[2] and forced <= existing[1]:
                forced = None  # §10.3: honoured only when strictly greater
            last_modified = self._bump_and_store(cursor, collection_id, parent_id, object_id, forced, data)
        return {**data, ID: object_id, MODIFIED: last_modified}

    def delete(
        self,
        collection_id: str,
        parent_id: str,
        object_id: str,
        with_deleted: bool = True,
        last_modified: int | None = None,
    ) -> dict[str, Any]:
        with self.pool.transaction() as cursor:
            self._lock_partition(cursor, collection_id, parent_id)
            existing = self._fetch(cursor, collection_id, parent_id, object_id)
            if existing is None or existing[2]:
                raise RecordNotFoundError(object_id)
            forced = self._forced(last_modified)
            if forced is not None and forced <= existing[1]:
                forced = None
            bumped = self._bump(cursor, collection_id, parent_id, forced)
            stamp = forced if forced is not None else bumped
            if with_deleted:
                cursor.execute(
                    "UPDATE records SET deleted = TRUE, last_modified = %s::bigint, data = '{}'::jsonb "
                    "WHERE collection_id = %s AND parent_id = %s AND id = %s",
                    (stamp, collection_id, parent_id, object_id),
                )
            else:
                cursor.execute(
                    "DELETE FROM records WHERE collection_id = %s AND parent_id = %s AND id = %s",
                    (collection_id, parent_id, object_id),
                )
        return {ID: object_id, MODIFIED: stamp, DELETED: True}

    def delete_all(
        self,
        collection_id: str,
        parent_id: str,
        filters: Sequence[Filter] = (),
        with_deleted: bool = True,
    ) -> list[dict[str, Any]]:
        query = _SQL()
        select = query.render(
            f"SELECT r.id FROM records r WHERE r.collection_id = {query.param(collection_id)} "
            f"AND r.parent_id = {query.param(parent_id)} "
            f"AND NOT r.deleted AND {query.where(filters)} ORDER BY r.last_modified, r.id"
        )
        with self.pool.transaction() as cursor:
            self._lock_partition(cursor, collection_id, parent_id)
            cursor.execute(*select)
            ids = [row[0] for row in cursor.fetchall()]
            if not ids:
                return []
            # One timestamp per record, increasing: bump once, then take the
            # next len(ids)-1 values and move the partition timestamp past them.
            first = self._bump(cursor, collection_id, parent_id)
            last = first + len(ids) - 1
            cursor.execute(
                "UPDATE timestamps SET last_modified = %s::bigint WHERE collection_id = %s AND parent_id = %s",
                (last, collection_id, parent_id),
            )
            stamped = [{"id": object_id, "lm": first + i} for i, object_id in enumerate(ids)]
            if with_deleted:
                cursor.execute(
                    "UPDATE records r SET deleted = TRUE, last_modified = s.lm, data = '{}'::jsonb "
                    "FROM jsonb_to_recordset(%s::jsonb) AS s(id text, lm bigint) "
                    "WHERE r.collection_id = %s AND r.parent_id = %s AND r.id = s.id",
                    (dumps(stamped), collection_id, parent_id),
                )
            else:
                cursor.execute(
                    "DELETE FROM records r USING jsonb_to_recordset(%s::jsonb) AS s(id text, lm bigint) "
                    "WHERE r.collection_id = %s AND r.parent_id = %s AND r.id = s.id",
                    (dumps(stamped), collection_id, parent_id),
                )
        return [{ID: s["id"], MODIFIED: s["lm"], DELETED: True} for s in stamped]

    def purge_deleted(self, collection_id: str, parent_id: str, before: int | None = None) -> int:
        with self.pool.transaction() as cursor:
            cursor.execute(
                "DELETE FROM records WHERE collection_id = %s AND parent_id = %s AND deleted "
                "AND (%s::bigint IS NULL OR last_modified < %s::bigint)",
                (collection_id, parent_id, before, before),
            )
            return max(cursor.rowcount, 0)

    def get_all(
        self,
        collection_id: str,
        parent_id: str,
        filters: Sequence[Filter] = (),
        sorting: Sequence[Sort] = (),
        pagination_rules: Sequence[Sequence[Filter]] = (),
        limit: int | None = None,
        include_deleted: bool = False,
        count: bool = False,
    ) -> tuple[list[dict[str, Any]], int | None]:
        limit = self.max_fetch_size if limit is None else max(0, min(limit, self.max_fetch_size))
        if limit == 0 and not count:
            return [], None
        query = _SQL()
        partition = (
            f"r.collection_id = {query.param(collection_id)} AND r.parent_id = {query.param(parent_id)}"
        )
        where = query.where(filters)
        if filters:
            count_sql = f"SELECT count(*) FROM records r WHERE {partition} AND NOT r.deleted AND {where}"
        else:
            # PERF: kept by triggers (schema migration 2); a partition never written has no row.
            count_sql = (
                "SELECT coalesce((SELECT t.live_records FROM timestamps t WHERE "
                f"t.collection_id = {query.param(collection_id)} AND t.parent_id = {query.param(parent_id)}), 0)"
            )
        rules = query.any_of(pagination_rules) if pagination_rules else "TRUE"
        bound = _keyset_bound(pagination_rules)
        if bound is not None:
            rules = f"{query.condition(bound)} AND ({rules})"
        live = "" if include_deleted else "AND NOT r.deleted "
        order = query.order_by(sorting)
        # PERF: the page comes back as one JSON array in one row (decoded by
        # orjson when installed) instead of a row per record, each costing
        # pg8000 a Python-level parse. SQL does not promise that an aggregate
        # reads its subquery in order, and an ORDER BY inside the aggregate
        # costs a sort of the whole page: each element carries its position
        # instead, checked below. The count rides along as an uncorrelated
        # scalar subquery (evaluated once, same snapshot): one statement in all.
        total_column = f", ({count_sql})" if count else ""
        listing = query.render(
            "SELECT coalesce(json_agg(json_build_array(page.n, page.id, page.last_modified, page.deleted, page.data)),"
            " '[]')" + total_column + " FROM ("
            f"SELECT row_number() OVER (ORDER BY {order}) AS n, {_COLUMNS} "
            f"FROM records r WHERE {partition} {live}AND {where} AND ({rules}) "
            f"ORDER BY {order} LIMIT {query.param(limit, '::bigint')}) page"
        )
        with self.pool.transaction() as cursor:
            cursor.execute(*listing)
            page, total = cursor.fetchone() if count else (cursor.fetchone()[0], None)
        if any(element[0] != position for position, element in enumerate(page, 1)):
            page.sort(key=itemgetter(0))
        return [_to_record(element[1:]) for element in page], total
