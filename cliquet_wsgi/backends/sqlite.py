"""SQLite backends (stdlib ``sqlite3``): the embedded default of the demo.

``sqlite:///relative/path.db`` or ``sqlite:////absolute/path.db``; storage,
cache and permission may share one file (their tables and schema versions
are distinct). ``sqlite:///:memory:`` is refused: every thread has its own
connection and would see its own empty database.

How it works:

* one database file in WAL mode: readers never block the writer nor each
  other; ``synchronous=NORMAL`` (a committed write survives an application
  crash; the last ones may be lost on power failure);
* one connection per thread (and per process: a forked child opens its own);
* every write runs in ``BEGIN IMMEDIATE``, which takes the database write
  lock up front. Writers are therefore **serialised across threads and
  processes**: timestamps are computed and committed in the same order, so
  they are strictly increasing and a ``_since`` poller never misses a
  record, and a ``get(for_update=True)`` inside :meth:`SQLiteStorage.transaction`
  cannot be interleaved with another writer. A waiting writer gives up after
  ``<kind>_pool_timeout`` seconds (SQLite's busy timeout) with a
  :class:`~cliquet_wsgi.errors.BackendError`;
* records are JSON text, timestamps integer milliseconds, rows keyed by
  ``(collection_id, parent_id, id)`` and indexed on ``(collection_id,
  parent_id, last_modified)`` so ``_since`` polls and keyset pages are index
  range scans. Filters and sorts become SQL over ``json_extract(data, ?)``
  and ``json_type(data, ?)`` with the JSON path as a bound parameter (field
  names are never interpolated); what SQL cannot express (field names with
  ``"``, ``\\`` or control characters, equality with arrays or objects) is
  filtered by :mod:`cliquet_wsgi.filtering` in Python, before the limit.

The schema is created on first use; :meth:`initialize_schema` does it
explicitly and reports what it did (``metadata`` holds one
``<kind>_schema_version`` row per kind).

Limits: one machine (the file must be on a local disk; network filesystems
break SQLite's locking and are unsupported); one writer at a time (measured
on a 2-core machine: about 6,000 small creates per second from one thread,
5,500 from eight); a :meth:`SQLiteStorage.transaction` takes the write lock
when it starts, even if it only reads, and blocks every other writer until
it ends, so keep transactions short and do not wrap read-only requests in
one. Use PostgreSQL beyond that. ``sqlite3.Error`` becomes ``BackendError``
at one boundary (``_Database._begin``), which every statement goes through.
"""
from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import threading
import time
import uuid
from typing import Any, Callable, Iterable, Iterator, Mapping, Sequence

import msgpack

from cliquet_wsgi import filtering
from cliquet_wsgi.cache import Cache
from cliquet_wsgi.errors import BackendError, ConfigurationError
from cliquet_wsgi.permission import BoundPermissions, Permission
from cliquet_wsgi.rendering import json_loads_stored
from cliquet_wsgi.storage import COMPARISON, Filter, RecordNotFoundError, Sort, Storage, UnicityError

__all__ = ["SQLiteStorage", "SQLiteCache", "SQLitePermission", "STORAGE", "CACHE", "PERMISSION"]

SCHEMA_VERSION = 1


def now_ms() -> int:
    return int(time.time() * 1000)


def database_path(url: str, setting: str) -> str:
    """The file of a ``sqlite:///path`` URL (SQLAlchemy's convention: four slashes for absolute paths)."""
    prefix = "sqlite:///"
    if not url.startswith(prefix) or not url[len(prefix):]:
        raise ConfigurationError(f"Setting {setting!r} must look like sqlite:///path/to/file.db, got {url!r}")
    path = url[len(prefix):].split("?", 1)[0]
    if path == ":memory:" or path.startswith("file::memory:"):
        raise ConfigurationError(
            f"Setting {setting!r}: sqlite:///:memory: is not supported (one connection per thread "
            "would each see a different empty database); use memory:// or a file"
        )
    return path


class _File:
    """Per-thread connections to one file, shared by every backend kind using that file.

    Sharing them is what lets storage, permission and cache on one file write
    in one transaction: a second connection would wait for the first one's
    write lock until the timeout.
    """

    def __init__(self) -> None:
        self.local = threading.local()
        self.lock = threading.Lock()
        self.generation = 0
        # thread ident -> (thread, pid, connection): closed by close() or when their thread is gone.
        self.connections: dict[int, tuple[threading.Thread, int, sqlite3.Connection]] = {}


_files: dict[str, _File] = {}
_files_lock = threading.Lock()


def _shared_file(path: str) -> _File:
    key = os.path.realpath(path)
    with _files_lock:
        found = _files.get(key)
        if found is None:
            found = _files[key] = _File()
        return found


class _Database:
    """One backend kind's view of a file: its schema, the transaction / error boundary."""

    def __init__(self, path: str, timeout_seconds: float, schema: Callable[[sqlite3.Connection], list[str]]) -> None:
        self.path = path
        self.timeout_seconds = timeout_seconds
        self._schema = schema
        self._schema_ready = False
        self._file = _shared_file(path)
        self._local = self._file.local
        self._lock = self._file.lock
        self._connections = self._file.connections

    def _connect(self) -> sqlite3.Connection:
        connection = sqlite3.connect(
            self.path, timeout=self.timeout_seconds, isolation_level=None, check_same_thread=False
        )
        try:
            connection.execute(f"PRAGMA busy_timeout = {int(self.timeout_seconds * 1000)}")
            if connection.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
                connection.execute("PRAGMA journal_mode = WAL")
            connection.execute("PRAGMA synchronous = NORMAL")
            connection.create_function("cliquet_like", 2, filtering.like, deterministic=True)
        except BaseException:
            connection.close()
            raise
        return connection

    def connection(self) -> sqlite3.Connection:
        local = self._local
        if getattr(local, "generation", None) != self._file.generation or local.pid != os.getpid():
            # NOTE: a forked child must not reuse its parent's connection (SQLite forbids it).
            connection = self._connect()
            with self._lock:
                self._prune()
                self._connections[threading.get_ident()] = (threading.current_thread(), os.getpid(), connection)
            local.connection, local.generation, local.pid = connection, self._file.generation, os.getpid()
            local.depth = 0
        if not self._schema_ready:
            self._ensure_schema()
        return local.connection

    def _prune(self) -> None:
        for ident, (thread, pid, connection) in list(self._connections.items()):
            if pid != os.getpid():
                del self._connections[ident]
            elif not thread.is_alive():
                del self._connections[ident]
                connection.close()

    def _ensure_schema(self) -> None:
        self._schema_ready = True
        try:
            with self.write() as cursor:
                self._schema(cursor.connection)
        except BaseException:
            self._schema_ready = False
            raise

    def initialize(self) -> list[str]:
        """Create or upgrade the schema now and say what was done (it also happens on first use)."""
        self._schema_ready = True
        with self.write() as cursor:
            return self._schema(cursor.connection)

    @property
    def in_transaction(self) -> bool:
        return getattr(self._local, "depth", 0) > 0

    @contextlib.contextmanager
    def _begin(self, statement: str) -> Iterator[sqlite3.Cursor]:
        try:
            connection = self.connection()
            local = self._local
            if local.depth > 0:
                # Nested: join the outer transaction.
                local.depth += 1
                try:
                    yield connection.cursor()
                finally:
                    local.depth -= 1
                return
            connection.execute(statement)
            local.depth = 1
            try:
                yield connection.cursor()
            except BaseException:
                local.depth = 0
                with contextlib.suppress(sqlite3.Error):
                    connection.execute("ROLLBACK")
                raise
            local.depth = 0
            try:
                connection.execute("COMMIT")
            except sqlite3.Error:
                with contextlib.suppress(sqlite3.Error):
                    connection.execute("ROLLBACK")
                raise
        except sqlite3.Error as exc:
            raise BackendError(exc) from exc

    def write(self) -> contextlib.AbstractContextManager[sqlite3.Cursor]:
        """A write transaction holding the database write lock (or the enclosing transaction)."""
        return self._begin("BEGIN IMMEDIATE")

    def read(self) -> contextlib.AbstractContextManager[sqlite3.Cursor]:
        """A consistent snapshot for several reads (or the enclosing transaction)."""
        return self._begin("BEGIN")

    def ping(self) -> bool:
        try:
            with self.read() as cursor:
                cursor.execute("SELECT 1").fetchone()
            return True
        except Exception:
            return False

    def close(self) -> None:
        with self._lock:
            self._file.generation += 1
            for _, pid, connection in self._connections.values():
                if pid == os.getpid():
                    with contextlib.suppress(sqlite3.Error):
                        connection.close()
            self._connections.clear()
            self._schema_ready = False


def _migrate(cursor: sqlite3.Connection, kind: str, statements: Sequence[str]) -> list[str]:
    cursor.execute("CREATE TABLE IF NOT EXISTS metadata (name TEXT PRIMARY KEY, value TEXT NOT NULL)")
    row = cursor.execute("SELECT value FROM metadata WHERE name = ?", (f"{kind}_schema_version",)).fetchone()
    if row is not None:
        version = int(row[0])
        if version > SCHEMA_VERSION:
            raise BackendError(message=f"{kind}: database schema version {version} is newer than this code's")
        return [f"{kind}: schema already at version {version}"]
    for statement in statements:
        cursor.execute(statement)
    cursor.execute("INSERT INTO metadata (name, value) VALUES (?, ?)", (f"{kind}_schema_version", str(SCHEMA_VERSION)))
    return [f"{kind}: created schema version {SCHEMA_VERSION}"]


# -- storage: filters and sorting as SQL --------------------------------------------

_STORAGE_SCHEMA = [
    """CREATE TABLE IF NOT EXISTS records (
        collection_id TEXT NOT NULL,
        parent_id TEXT NOT NULL,
        id TEXT NOT NULL,
        last_modified INTEGER NOT NULL,
        deleted INTEGER NOT NULL DEFAULT 0,
        data TEXT NOT NULL,
        PRIMARY KEY (collection_id, parent_id, id)
    )""",
    "CREATE INDEX IF NOT EXISTS records_last_modified ON records (collection_id, parent_id, last_modified)",
    """CREATE TABLE IF NOT EXISTS timestamps (
        collection_id TEXT NOT NULL,
        parent_id TEXT NOT NULL,
        last_modified INTEGER NOT NULL,
        PRIMARY KEY (collection_id, parent_id)
    )""",
]

_NUMBER_TYPES = "('integer', 'real')"
_RANK_SQL = (
    "CASE json_type(data, ?) WHEN 'null' THEN 0 WHEN 'true' THEN 1 WHEN 'false' THEN 1 "
    "WHEN 'integer' THEN 2 WHEN 'real' THEN 2 WHEN 'text' THEN 3 WHEN 'array' THEN 4 "
    "WHEN 'object' THEN 5 ELSE 6 END"
)
_SQL_INT_RANGE = range(-(2**63), 2**63)

SQL = tuple[str, list[Any]]


class _Unsupported(Exception):
    """This filter or sort cannot be expressed in SQL; use the Python reference."""


def json_path(field: str) -> str:
    """``author.name`` -> ``$."author"."name"``, to be bound as a parameter.

    Raises :class:`_Unsupported` for names SQLite's quoted path labels cannot
    hold (a ``"``, a backslash or a control character: they are escaped in
    the stored JSON text, which SQLite 3.40 compares against the raw label).
    """
    parts = field.split(".")
    for part in parts:
        if '"' in part or "\\" in part or any(ord(char) < 0x20 for char in part):
            raise _Unsupported(field)
    return "$" + "".join(f'."{part}"' for part in parts)


def _rank_of(value: Any) -> int:
    kind = filtering.rank(value)
    if kind == 2 and isinstance(value, int) and value not in _SQL_INT_RANGE:
        raise _Unsupported("integer too large for SQLite")
    return kind


class _Field:
    """SQL for the JSON type name and the SQL value of one field of a row."""

    def __init__(self, field: str) -> None:
        self.field = field
        if field in ("id", "last_modified"):
            # Columns: id is always a string, last_modified always an integer.
            self.type_sql, self.type_params = ("'text'" if field == "id" else "'integer'"), []
            self.value_sql, self.value_params = field, []
        else:
            path = json_path(field)
            self.type_sql, self.type_params = "json_type(data, ?)", [path]
            self.value_sql, self.value_params = "json_extract(data, ?)", [path]

    def typed(self, condition: str, params: list[Any], type_names: str) -> SQL:
        """``condition`` on the value, only for rows whose JSON type is in ``type_names``."""
        if self.field == "id":
            return (condition, params) if "'text'" in type_names else ("0", [])
        if self.field == "last_modified":
            return (condition, params) if "'integer'" in type_names else ("0", [])
        return f"({self.type_sql} IN {type_names} AND {condition})", self.type_params + params

    def values_in(self, values: list[Any]) -> SQL:
        """Type-aware membership in ``values`` (scalars only)."""
        groups: dict[int, list[Any]] = {}
        for value in values:
            kind = _rank_of(value)
            if kind > 3:
                raise _Unsupported("array or object value")
            groups.setdefault(kind, []).append(value)
        parts: list[SQL] = []
        if 0 in groups:
            parts.append(self.typed("1", [], "('null')"))
        for boolean in {bool(v) for v in groups.get(1, [])}:
            parts.append(self.typed("1", [], "('true')" if boolean else "('false')"))
        for kind, type_names in ((2, _NUMBER_TYPES), (3, "('text')")):
            if kind in groups:
                condition = f"{self.value_sql} IN (SELECT value FROM json_each(?))"
                parts.append(self.typed(condition, self.value_params + [json.dumps(groups[kind])], type_names))
        return _any_of(parts)


def _all_of(parts: Sequence[SQL]) -> SQL:
    if not parts:
        return "1", []
    return "(" + " AND ".join(sql for sql, _ in parts) + ")", [p for _, params in parts for p in params]


def _any_of(parts: Sequence[SQL]) -> SQL:
    if not parts:
        return "0", []
    return "(" + " OR ".join(sql for sql, _ in parts) + ")", [p for _, params in parts for p in params]


def _negate(part: SQL) -> SQL:
    # coalesce: a missing field makes the positive test NULL, and NOT NULL is NULL.
    return f"(NOT coalesce({part[0]}, 0))", part[1]


_ORDER_OPS = {COMPARISON.LT: "<", COMPARISON.GT: ">", COMPARISON.MIN: ">=", COMPARISON.MAX: "<="}


def compile_filter(flt: Filter) -> SQL:
    """One filter as SQL with the semantics of :func:`cliquet_wsgi.filtering.match_filter`."""
    field = _Field(flt.field)
    op, value = COMPARISON(flt.operator), flt.value
    if op is COMPARISON.EQ:
        return field.values_in([value])
    if op is COMPARISON.NOT:
        return _negate(field.values_in([value]))
    if op is COMPARISON.IN:
        return field.values_in(filtering.as_list(value))
    if op is COMPARISON.EXCLUDE:
        return _negate(field.values_in(filtering.as_list(value)))
    if op is COMPARISON.HAS:
        present = f"(coalesce({field.type_sql}, 'null') != 'null')", list(field.type_params)
        return present if value else _negate(present)
    if op is COMPARISON.LIKE:
        needle = value if isinstance(value, str) else filtering.canonical_json(value)
        return field.typed(f"cliquet_like({field.value_sql}, ?)", field.value_params + [needle], "('text')")
    if op in (COMPARISON.CONTAINS, COMPARISON.CONTAINS_ANY):
        if field.field in ("id", "last_modified"):
            return "0", []
        elements = []
        for element in filtering.as_list(value):
            kind = _rank_of(element)
            if kind > 3:
                raise _Unsupported("array or object element")
            elements.append(element)
        if not elements:
            return ("(json_type(data, ?) = 'array')", list(field.type_params)) if op is COMPARISON.CONTAINS else ("0", [])
        parts = []
        for element in elements:
            # json_each's "type" is the JSON type name, "value" the SQL value (bools as 1/0).
            kind = filtering.rank(element)
            if kind == 0:
                condition, params = "item.type = 'null'", []
            elif kind == 1:
                condition, params = "item.type = ?", ["true" if element else "false"]
            elif kind == 2:
                condition, params = f"item.type IN {_NUMBER_TYPES} AND item.value = ?", [element]
            else:
                condition, params = "item.type = 'text' AND item.value = ?", [element]
            parts.append((f"EXISTS (SELECT 1 FROM json_each(data, ?) AS item WHERE {condition})",
                          list(field.type_params) + params))
        combined = _all_of(parts) if op is COMPARISON.CONTAINS else _any_of(parts)
        return f"(json_type(data, ?) = 'array' AND {combined[0]})", list(field.type_params) + combined[1]
    # LT GT MIN MAX: same JSON type only; arrays and objects by the text
    # json_extract() gives (_encode() stored canonical JSON), which is also
    # what compile_sorting() orders by.
    kind = _rank_of(value)
    sql_op = _ORDER_OPS[op]
    condition = f"{field.value_sql} {sql_op} ?"
    if kind == 1:
        return field.typed(condition, field.value_params + [int(value)], "('true', 'false')")
    if kind == 2:
        return field.typed(condition, field.value_params + [value], _NUMBER_TYPES)
    if kind == 3:
        return field.typed(condition, field.value_params + [value], "('text')")
    if kind in (4, 5) and field.field not in ("id", "last_modified"):
        return field.typed(condition, field.value_params + [filtering.canonical_json(value)],
                           "('array')" if kind == 4 else "('object')")
    return "0", []


def compile_filters(filters: Sequence[Filter]) -> SQL:
    return _all_of([compile_filter(flt) for flt in filters])


def compile_rules(rules: Sequence[Sequence[Filter]]) -> SQL:
    if not rules:
        return "1", []
    return _any_of([compile_filters(rule) for rule in rules])


def compile_sorting(sorting: Sequence[Sort]) -> SQL:
    """ORDER BY terms: JSON type rank (missing last), value, then ``id`` ascending."""
    terms: list[str] = []
    params: list[Any] = []
    for field, direction in list(sorting):
        order = "ASC" if direction >= 0 else "DESC"
        if field in ("id", "last_modified"):
            terms.append(f"{field} {order}")
            continue
        path = json_path(field)
        terms.append(f"{_RANK_SQL} {order}")
        terms.append(f"json_extract(data, ?) {order}")
        params.extend([path, path])
    if not any(sort.field == "id" for sort in sorting):
        terms.append("id ASC")
    return ", ".join(terms), params


def _encode(record: Mapping[str, Any]) -> str:
    body = {key: value for key, value in record.items() if key not in ("id", "last_modified")}
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False, sort_keys=True, allow_nan=False)


def _decode(row: Sequence[Any]) -> dict[str, Any]:
    """``(id, last_modified, data)`` -> the record (or tombstone)."""
    record = json_loads_stored(row[2])
    record["id"] = row[0]
    record["last_modified"] = row[1]
    return record


def _forced(value: Any) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool) and value in _SQL_INT_RANGE:
        return value
    return None


_TOMBSTONE_DATA = '{"deleted":true}'


class _OnFile:
    """What the three SQLite backends do alike through their :class:`_Database`."""

    _db: _Database

    def ping(self) -> bool:
        return self._db.ping()

    def initialize_schema(self) -> list[str]:
        return self._db.initialize()

    def close(self) -> None:
        self._db.close()


class SQLiteStorage(_OnFile, Storage):
    """Records and tombstones in one ``records`` table; see the module docstring."""

    def __init__(self, path: str, timeout_seconds: float = 30.0, max_fetch_size: int = 10000) -> None:
        self.max_fetch_size = max_fetch_size
        self._db = _Database(path, timeout_seconds, lambda c: _migrate(c, "storage", _STORAGE_SCHEMA))

    @classmethod
    def from_settings(cls, settings: Mapping[str, Any]) -> "SQLiteStorage":
        return cls(
            database_path(settings["storage_url"], "storage_url"),
            timeout_seconds=settings.get("storage_pool_timeout", 30.0),
            max_fetch_size=settings.get("storage_max_fetch_size", 10000),
        )


    def flush(self) -> None:
        with self._db.write() as cursor:
            cursor.execute("DELETE FROM records")
            cursor.execute("DELETE FROM timestamps")

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        with self._db.write():
            yield

    # -- timestamps -----------------------------------------------------------------

    def _bump(self, cursor: sqlite3.Cursor, collection_id: str, parent_id: str, forced: int | None) -> int:
        """Advance the partition timestamp for one write (PROTOCOL §10.3); the write lock is held."""
        row = cursor.execute(
            "SELECT last_modified FROM timestamps WHERE collection_id = ? AND parent_id = ?",
            (collection_id, parent_id),
        ).fetchone()
        previous = None if row is None else row[0]
        current = now_ms() if previous is None else max(now_ms(), previous + 1)
        record_ts = current if forced is None else forced
        collection_ts = forced if forced is not None and (previous is None or forced > previous) else current
        cursor.execute(
            "INSERT INTO timestamps (collection_id, parent_id, last_modified) VALUES (?, ?, ?) "
            "ON CONFLICT (collection_id, parent_id) DO UPDATE SET last_modified = excluded.last_modified",
            (collection_id, parent_id, collection_ts),
        )
        return record_ts

    def collection_timestamp(self, collection_id: str, parent_id: str) -> int:
        query = "SELECT last_modified FROM timestamps WHERE collection_id = ? AND parent_id = ?"
        if not self._db.in_transaction:
            with self._db.read() as cursor:
                row = cursor.execute(query, (collection_id, parent_id)).fetchone()
            if row is not None:
                return row[0]
        with self._db.write() as cursor:
            row = cursor.execute(query, (collection_id, parent_id)).fetchone()
            if row is not None:
                return row[0]
            timestamp = now_ms()
            cursor.execute(
                "INSERT INTO timestamps (collection_id, parent_id, last_modified) VALUES (?, ?, ?)",
                (collection_id, parent_id, timestamp),
            )
            return timestamp

    # -- writes ---------------------------------------------------------------------

    def _row(self, cursor: sqlite3.Cursor, collection_id: str, parent_id: str, object_id: str) -> tuple | None:
        return cursor.execute(
            "SELECT id, last_modified, data, deleted FROM records "
            "WHERE collection_id = ? AND parent_id = ? AND id = ?",
            (collection_id, parent_id, object_id),
        ).fetchone()

    def _check_unicity(self, cursor: sqlite3.Cursor, collection_id: str, parent_id: str,
                       record: Mapping[str, Any], fields: Sequence[str], own_id: str) -> None:
        for field in fields:
            value = filtering.resolve(dict(record), field)
            if value is filtering.MISSING or value is None:
                continue
            flt = Filter(field, value, COMPARISON.EQ)
            base = "SELECT id, last_modified, data FROM records WHERE collection_id = ? AND parent_id = ? " \
                   "AND deleted = 0 AND id != ?"
            params: list[Any] = [collection_id, parent_id, own_id]
            try:
                sql, extra = compile_filter(flt)
                rows = cursor.execute(f"{base} AND {sql} LIMIT 1", params + extra).fetchall()
            except _Unsupported:
                rows = [row for row in cursor.execute(base, params) if filtering.match_filter(_decode(row), flt)]
            if rows:
                raise UnicityError(field, _decode(rows[0]))

    def _store(self, cursor: sqlite3.Cursor, collection_id: str, parent_id: str, object_id: str,
               record: Mapping[str, Any], timestamp: int) -> dict[str, Any]:
        data = _encode(record)
        cursor.execute(
            "INSERT INTO records (collection_id, parent_id, id, last_modified, deleted, data) "
            "VALUES (?, ?, ?, ?, 0, ?) ON CONFLICT (collection_id, parent_id, id) DO UPDATE SET "
            "last_modified = excluded.last_modified, deleted = 0, data = excluded.data",
            (collection_id, parent_id, object_id, timestamp, data),
        )
        return _decode((object_id, timestamp, data))

    def create(
        self,
        collection_id: str,
        parent_id: str,
        record: dict[str, Any],
        id_generator: Callable[[], str] | None = None,
        unique_fields: Sequence[str] = (),
    ) -> dict[str, Any]:
        object_id = record.get("id")
        if object_id is None:
            object_id = id_generator() if id_generator is not None else str(uuid.uuid4())
        with self._db.write() as cursor:
            row = self._row(cursor, collection_id, parent_id, object_id)
            if row is not None and not row[3]:
                raise UnicityError("id", _decode(row))
            self._check_unicity(cursor, collection_id, parent_id, record, unique_fields, object_id)
            timestamp = self._bump(cursor, collection_id, parent_id, _forced(record.get("last_modified")))
            return self._store(cursor, collection_id, parent_id, object_id, record, timestamp)

    def get(self, collection_id: str, parent_id: str, object_id: str, for_update: bool = False) -> dict[str, Any]:
        # NOTE: for_update needs no more: a transaction holds the write lock from BEGIN IMMEDIATE.
        with self._db.read() as cursor:
            row = self._row(cursor, collection_id, parent_id, object_id)
        if row is None or row[3]:
            raise RecordNotFoundError(object_id)
        return _decode(row)

    def update(
        self,
        collection_id: str,
        parent_id: str,
        object_id: str,
        record: dict[str, Any],
        unique_fields: Sequence[str] = (),
    ) -> dict[str, Any]:
        with self._db.write() as cursor:
            self._check_unicity(cursor, collection_id, parent_id, record, unique_fields, object_id)
            row = self._row(cursor, collection_id, parent_id, object_id)
            forced = _forced(record.get("last_modified"))
            if row is not None and not row[3] and forced is not None and forced <= row[1]:
                forced = None
            timestamp = self._bump(cursor, collection_id, parent_id, forced)
            return self._store(cursor, collection_id, parent_id, object_id, record, timestamp)

    def _delete(self, cursor: sqlite3.Cursor, collection_id: str, parent_id: str, object_id: str,
                current: int, with_deleted: bool, forced: int | None) -> dict[str, Any]:
        if forced is not None and forced <= current:
            forced = None
        timestamp = self._bump(cursor, collection_id, parent_id, forced)
        key = (collection_id, parent_id, object_id)
        if with_deleted:
            cursor.execute(
                "UPDATE records SET deleted = 1, last_modified = ?, data = ? "
                "WHERE collection_id = ? AND parent_id = ? AND id = ?",
                (timestamp, _TOMBSTONE_DATA, *key),
            )
        else:
            cursor.execute("DELETE FROM records WHERE collection_id = ? AND parent_id = ? AND id = ?", key)
        return {"id": object_id, "last_modified": timestamp, "deleted": True}

    def delete(
        self,
        collection_id: str,
        parent_id: str,
        object_id: str,
        with_deleted: bool = True,
        last_modified: int | None = None,
    ) -> dict[str, Any]:
        with self._db.write() as cursor:
            row = self._row(cursor, collection_id, parent_id, object_id)
            if row is None or row[3]:
                raise RecordNotFoundError(object_id)
            return self._delete(cursor, collection_id, parent_id, object_id, row[1], with_deleted,
                                _forced(last_modified))

    def delete_all(
        self,
        collection_id: str,
        parent_id: str,
        filters: Sequence[Filter] = (),
        with_deleted: bool = True,
    ) -> list[dict[str, Any]]:
        with self._db.write() as cursor:
            doomed = self._select(cursor, collection_id, parent_id, filters, [Sort("last_modified", 1)], (),
                                  None, include_deleted=False)
            return [
                self._delete(cursor, collection_id, parent_id, record["id"], record["last_modified"],
                             with_deleted, None)
                for record in doomed
            ]

    def purge_deleted(self, collection_id: str, parent_id: str, before: int | None = None) -> int:
        sql = "DELETE FROM records WHERE collection_id = ? AND parent_id = ? AND deleted = 1"
        params: list[Any] = [collection_id, parent_id]
        if before is not None:
            sql += " AND last_modified < ?"
            params.append(before)
        with self._db.write() as cursor:
            return cursor.execute(sql, params).rowcount

    # -- reads ----------------------------------------------------------------------

    def _select(self, cursor: sqlite3.Cursor, collection_id: str, parent_id: str, filters: Sequence[Filter],
                sorting: Sequence[Sort], rules: Sequence[Sequence[Filter]], limit: int | None,
                include_deleted: bool) -> list[dict[str, Any]]:
        base = "SELECT id, last_modified, data FROM records WHERE collection_id = ? AND parent_id = ?"
        params: list[Any] = [collection_id, parent_id]
        if not include_deleted:
            base += " AND deleted = 0"
        try:
            where, where_params = compile_filters(filters)
            rules_sql, rules_params = compile_rules(rules)
            order, order_params = compile_sorting(sorting or filtering.DEFAULT_SORT)
        except _Unsupported:
            # PERF: narrow with the filters SQL can express (a superset of the answer), finish in Python.
            expressible = []
            for flt in filters:
                with contextlib.suppress(_Unsupported):
                    expressible.append(compile_filter(flt))
            where, where_params = _all_of(expressible)
            rows = cursor.execute(f"{base} AND {where}", params + where_params).fetchall()
            return filtering.apply([_decode(row) for row in rows], filters, sorting, rules, limit)
        sql = f"{base} AND {where} AND {rules_sql} ORDER BY {order}"
        all_params = params + where_params + rules_params + order_params
        if limit is not None:
            sql += " LIMIT ?"
            all_params.append(limit)
        return [_decode(row) for row in cursor.execute(sql, all_params)]

    def _count(self, cursor: sqlite3.Cursor, collection_id: str, parent_id: str, filters: Sequence[Filter]) -> int:
        base = "FROM records WHERE collection_id = ? AND parent_id = ? AND deleted = 0"
        params: list[Any] = [collection_id, parent_id]
        try:
            where, where_params = compile_filters(filters)
        except _Unsupported:
            rows = cursor.execute(f"SELECT id, last_modified, data {base}", params)
            return sum(1 for row in rows if filtering.match(_decode(row), filters))
        return cursor.execute(f"SELECT count(*) {base} AND {where}", params + where_params).fetchone()[0]

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
        limit = self.max_fetch_size if limit is None else min(limit, self.max_fetch_size)
        with self._db.read() as cursor:
            total = self._count(cursor, collection_id, parent_id, filters) if count else None
            records = self._select(cursor, collection_id, parent_id, filters, sorting, pagination_rules, limit,
                                   include_deleted)
        return records, total


# -- cache ---------------------------------------------------------------------------

_CACHE_SCHEMA = [
    "CREATE TABLE IF NOT EXISTS cache (key TEXT PRIMARY KEY, value BLOB NOT NULL, expires_at REAL)",
    "CREATE INDEX IF NOT EXISTS cache_expires_at ON cache (expires_at)",
]

#: Seconds between two sweeps of expired cache rows (they are also ignored on read).
_PURGE_INTERVAL_SECONDS = 60.0


class SQLiteCache(_OnFile, Cache):
    """Msgpack values in a ``cache`` table; expiry is wall-clock (shared by processes)."""

    def __init__(self, path: str, prefix: str = "", timeout_seconds: float = 30.0) -> None:
        self.prefix = prefix
        self._db = _Database(path, timeout_seconds, lambda c: _migrate(c, "cache", _CACHE_SCHEMA))
        self._next_purge = 0.0

    @classmethod
    def from_settings(cls, settings: Mapping[str, Any]) -> "SQLiteCache":
        return cls(
            database_path(settings["cache_url"], "cache_url"),
            prefix=settings.get("cache_prefix", ""),
            timeout_seconds=settings.get("cache_pool_timeout", 30.0),
        )


    def flush(self) -> None:
        with self._db.write() as cursor:
            cursor.execute("DELETE FROM cache WHERE substr(key, 1, ?) = ?", (len(self.prefix), self.prefix))

    @staticmethod
    def _expiry(ttl: float | None) -> float | None:
        return None if ttl is None else time.time() + ttl

    def _live(self, cursor: sqlite3.Cursor, key: str) -> tuple[bytes, float | None] | None:
        row = cursor.execute(
            "SELECT value, expires_at FROM cache WHERE key = ? AND (expires_at IS NULL OR expires_at > ?)",
            (self.prefix + key, time.time()),
        ).fetchone()
        return None if row is None else (row[0], row[1])

    def _purge_expired(self, cursor: sqlite3.Cursor) -> None:
        now = time.time()
        if now >= self._next_purge:
            self._next_purge = now + _PURGE_INTERVAL_SECONDS
            cursor.execute("DELETE FROM cache WHERE expires_at <= ?", (now,))

    def get(self, key: str) -> Any:
        with self._db.read() as cursor:
            entry = self._live(cursor, key)
        return None if entry is None else msgpack.unpackb(entry[0], raw=False)

    def _upsert(self, cursor: sqlite3.Cursor, key: str, value: Any, expires_at: float | None) -> None:
        cursor.execute(
            "INSERT INTO cache (key, value, expires_at) VALUES (?, ?, ?) ON CONFLICT (key) DO UPDATE SET "
            "value = excluded.value, expires_at = excluded.expires_at",
            (self.prefix + key, msgpack.packb(value, use_bin_type=True), expires_at),
        )

    def set(self, key: str, value: Any, ttl: float | None = None) -> None:
        with self._db.write() as cursor:
            self._purge_expired(cursor)
            self._upsert(cursor, key, value, self._expiry(ttl))

    def add(self, key: str, value: Any, ttl: float | None = None) -> bool:
        with self._db.write() as cursor:
            if self._live(cursor, key) is not None:
                return False
            self._upsert(cursor, key, value, self._expiry(ttl))
            return True

    def incr(self, key: str, delta: int = 1, ttl: float | None = None) -> int:
        with self._db.write() as cursor:
            entry = self._live(cursor, key)
            if entry is None:
                value, expires_at = delta, self._expiry(ttl)
            else:
                current = msgpack.unpackb(entry[0], raw=False)
                if not isinstance(current, int) or isinstance(current, bool):
                    raise TypeError(f"cache key {key!r} does not hold an integer")
                value, expires_at = current + delta, entry[1]
            self._upsert(cursor, key, value, expires_at)
            return value

    def delete(self, key: str) -> Any:
        with self._db.write() as cursor:
            row = cursor.execute(
                "DELETE FROM cache WHERE key = ? RETURNING value, expires_at", (self.prefix + key,)
            ).fetchone()
        if row is None or (row[1] is not None and row[1] <= time.time()):
            return None
        return msgpack.unpackb(row[0], raw=False)

    def expire(self, key: str, ttl: float) -> None:
        with self._db.write() as cursor:
            if ttl <= 0:
                cursor.execute("DELETE FROM cache WHERE key = ?", (self.prefix + key,))
            else:
                cursor.execute(
                    "UPDATE cache SET expires_at = ? WHERE key = ? AND (expires_at IS NULL OR expires_at > ?)",
                    (self._expiry(ttl), self.prefix + key, time.time()),
                )

    def ttl(self, key: str) -> float:
        with self._db.read() as cursor:
            entry = self._live(cursor, key)
        if entry is None or entry[1] is None:
            return -1
        return entry[1] - time.time()


# -- permission ----------------------------------------------------------------------

_PERMISSION_SCHEMA = [
    """CREATE TABLE IF NOT EXISTS user_principals (
        user_id TEXT NOT NULL, principal TEXT NOT NULL, PRIMARY KEY (user_id, principal)
    )""",
    "CREATE INDEX IF NOT EXISTS user_principals_principal ON user_principals (principal)",
    """CREATE TABLE IF NOT EXISTS access_control_entries (
        object_id TEXT NOT NULL, permission TEXT NOT NULL, principal TEXT NOT NULL,
        PRIMARY KEY (object_id, permission, principal)
    )""",
    "CREATE INDEX IF NOT EXISTS access_control_entries_principal ON access_control_entries (principal, permission)",
]


class SQLitePermission(_OnFile, Permission):
    """``user_principals`` and ``access_control_entries`` tables, composite primary keys."""

    def __init__(self, path: str, timeout_seconds: float = 30.0) -> None:
        self._db = _Database(path, timeout_seconds, lambda c: _migrate(c, "permission", _PERMISSION_SCHEMA))

    @classmethod
    def from_settings(cls, settings: Mapping[str, Any]) -> "SQLitePermission":
        return cls(
            database_path(settings["permission_url"], "permission_url"),
            timeout_seconds=settings.get("permission_pool_timeout", 30.0),
        )


    def flush(self) -> None:
        with self._db.write() as cursor:
            cursor.execute("DELETE FROM user_principals")
            cursor.execute("DELETE FROM access_control_entries")

    def add_user_principal(self, user_id: str, principal: str) -> None:
        with self._db.write() as cursor:
            cursor.execute("INSERT OR IGNORE INTO user_principals VALUES (?, ?)", (user_id, principal))

    def remove_user_principal(self, user_id: str, principal: str) -> None:
        with self._db.write() as cursor:
            cursor.execute("DELETE FROM user_principals WHERE user_id = ? AND principal = ?", (user_id, principal))

    def remove_principal(self, principal: str) -> None:
        with self._db.write() as cursor:
            cursor.execute("DELETE FROM user_principals WHERE principal = ?", (principal,))

    def user_principals(self, user_id: str) -> set[str]:
        with self._db.read() as cursor:
            rows = cursor.execute("SELECT principal FROM user_principals WHERE user_id = ?", (user_id,)).fetchall()
        return {row[0] for row in rows}

    def add_principal_to_ace(self, object_id: str, permission: str, principal: str) -> None:
        with self._db.write() as cursor:
            cursor.execute(
                "INSERT OR IGNORE INTO access_control_entries VALUES (?, ?, ?)", (object_id, permission, principal)
            )

    def remove_principal_from_ace(self, object_id: str, permission: str, principal: str) -> None:
        with self._db.write() as cursor:
            cursor.execute(
                "DELETE FROM access_control_entries WHERE object_id = ? AND permission = ? AND principal = ?",
                (object_id, permission, principal),
            )

    def object_permission_principals(self, object_id: str, permission: str) -> set[str]:
        return self.object_permission_authorized_principals(object_id, permission)

    def object_permission_authorized_principals(
        self, object_id: str, permission: str, get_bound_permissions: BoundPermissions | None = None
    ) -> set[str]:
        pairs = get_bound_permissions(object_id, permission) if get_bound_permissions else [(object_id, permission)]
        found: set[str] = set()
        with self._db.read() as cursor:
            for obj, perm in pairs:
                rows = cursor.execute(
                    "SELECT principal FROM access_control_entries WHERE object_id = ? AND permission = ?",
                    (obj, perm),
                )
                found.update(row[0] for row in rows)
        return found

    def principals_accessible_objects(
        self,
        principals: Iterable[str],
        permission: str,
        object_id_match: str | None = None,
        get_bound_permissions: BoundPermissions | None = None,
    ) -> set[str]:
        principals = sorted(set(principals))
        if get_bound_permissions is not None:
            pairs = list(get_bound_permissions(object_id_match, permission))
        else:
            pairs = [(object_id_match, permission)]
        if not principals or not pairs:
            return set()
        permissions = sorted({perm for _, perm in pairs})
        with self._db.read() as cursor:
            rows = cursor.execute(
                "SELECT DISTINCT object_id, permission FROM access_control_entries "
                "WHERE principal IN (SELECT value FROM json_each(?)) AND permission IN (SELECT value FROM json_each(?))",
                (json.dumps(principals), json.dumps(permissions)),
            ).fetchall()
        found: set[str] = set()
        for object_id, perm in rows:
            for pattern, wanted in pairs:
                if perm == wanted and (pattern is None or filtering.object_id_glob(pattern).fullmatch(object_id)):
                    found.add(object_id)
                    break
        return found

    def object_permissions(self, object_id: str, permissions: Sequence[str] | None = None) -> dict[str, set[str]]:
        with self._db.read() as cursor:
            rows = cursor.execute(
                "SELECT permission, principal FROM access_control_entries WHERE object_id = ?", (object_id,)
            ).fetchall()
        result: dict[str, set[str]] = {}
        for perm, principal in rows:
            if permissions is None or perm in permissions:
                result.setdefault(perm, set()).add(principal)
        return result

    def replace_object_permissions(self, object_id: str, permissions: dict[str, Iterable[str]]) -> None:
        with self._db.write() as cursor:
            for perm, principals in permissions.items():
                cursor.execute(
                    "DELETE FROM access_control_entries WHERE object_id = ? AND permission = ?", (object_id, perm)
                )
                cursor.executemany(
                    "INSERT OR IGNORE INTO access_control_entries VALUES (?, ?, ?)",
                    [(object_id, perm, principal) for principal in set(principals)],
                )

    def delete_object_permissions(self, *object_ids: str) -> None:
        if not object_ids:
            return
        with self._db.write() as cursor:
            cursor.execute(
                "DELETE FROM access_control_entries WHERE object_id IN (SELECT value FROM json_each(?))",
                (json.dumps(list(object_ids)),),
            )


STORAGE = SQLiteStorage
CACHE = SQLiteCache
PERMISSION = SQLitePermission
