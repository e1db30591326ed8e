"""In-process backends: storage, cache and permission in Python dicts.

For tests, demos and single-process development servers. Everything is lost
when the process exits and nothing is shared between processes (several
gunicorn workers would each see their own data): use SQLite or PostgreSQL
for anything else.

Each backend is thread-safe behind one re-entrant lock. A storage
transaction holds that lock from its first statement to its end, so it
**serialises all readers and writers** of that storage for its duration:
that is what makes timestamps strictly increasing and conditional writes
(``get(for_update=True)`` then ``update``) safe, at the cost of no
parallelism. Writes are recorded in an undo log and reverted on rollback.
Used in a process forked after it was created (gunicorn ``--preload`` with
several workers), the storage logs an error once: each worker would silently
see its own copy of the data.
"""
from __future__ import annotations

import collections
import contextlib
import logging
import os
import threading
import time
import uuid
from typing import Any, Callable, Iterable, Mapping, Sequence

import msgpack

from cliquet_wsgi import filtering
from cliquet_wsgi.cache import Cache
from cliquet_wsgi.permission import BoundPermissions, Permission
from cliquet_wsgi.rendering import JSON_SCALAR_TYPES, json_copy
from cliquet_wsgi.storage import Filter, RecordNotFoundError, Sort, Storage, UnicityError

__all__ = ["MemoryStorage", "MemoryCache", "MemoryPermission", "STORAGE", "CACHE", "PERMISSION"]

logger = logging.getLogger(__name__)

_ABSENT = object()
Partition = tuple[str, str]


def now_ms() -> int:
    return int(time.time() * 1000)




class _Nested(dict):
    """A stored record holding a container (object or array) somewhere in its values.

    PERF: stored records are plain ``dict`` when all their values are scalars,
    which a shallow ``dict()`` copies safely (several times cheaper than a
    walk); the class travels with the record, so the undo log needs nothing.
    """


def _to_store(record: dict[str, Any]) -> dict[str, Any]:
    """The private copy kept in the store (flat records as ``dict``, others as :class:`_Nested`)."""
    stored = json_copy(record)
    if all(type(v) in JSON_SCALAR_TYPES for v in stored.values()):
        return stored
    return _Nested(stored)


def _from_store(stored: dict[str, Any]) -> dict[str, Any]:
    """A plain-``dict`` copy of a stored record that callers may mutate."""
    if type(stored) is dict:
        return dict(stored)
    return {k: v if type(v) in JSON_SCALAR_TYPES else json_copy(v) for k, v in stored.items()}


def forced_timestamp(value: Any) -> int | None:
    """A client-given ``last_modified`` if it is an integer (``True`` is not one)."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    return None


class _Transaction:
    """One ``with storage.transaction()`` block: holds the lock; the outermost one owns the undo log.

    PERF: a plain context manager class (entered several times per request,
    mostly nested) instead of a ``contextlib`` generator.
    """

    __slots__ = ("storage", "outermost")

    def __init__(self, storage: "MemoryStorage") -> None:
        self.storage = storage
        self.outermost = False

    def __enter__(self) -> None:
        storage = self.storage
        storage._check_process()
        storage._lock.acquire()
        local = storage._local
        if getattr(local, "undo", None) is None:
            self.outermost = True
            local.undo = []

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> bool:
        storage = self.storage
        try:
            if self.outermost:
                try:
                    if exc_type is not None:
                        storage._rollback()
                finally:
                    storage._local.undo = None
        finally:
            storage._lock.release()
        return False


class MemoryStorage(Storage):
    """Records, tombstones and timestamps in dicts keyed by ``(collection_id, parent_id)``."""

    def __init__(self, max_fetch_size: int = 10000) -> None:
        self.max_fetch_size = max_fetch_size
        self._lock = threading.RLock()
        self._local = threading.local()
        self._records: dict[Partition, dict[str, dict[str, Any]]] = collections.defaultdict(dict)
        self._tombstones: dict[Partition, dict[str, dict[str, Any]]] = collections.defaultdict(dict)
        self._timestamps: dict[Partition, int] = {}
        self._pid = os.getpid()

    @classmethod
    def from_settings(cls, settings: Mapping[str, Any]) -> "MemoryStorage":
        return cls(max_fetch_size=settings.get("storage_max_fetch_size", 10000))

    def ping(self) -> bool:
        return True

    def flush(self) -> None:
        with self.transaction():
            self._log_all()
            self._records.clear()
            self._tombstones.clear()
            self._timestamps.clear()

    # -- transactions: an undo log of (mapping, key, previous value) ----------------

    def _check_process(self) -> None:
        if self._pid != os.getpid():
            self._pid = os.getpid()
            logger.error(
                "Memory storage used in a forked process (pid %s): each process has its own data; "
                "use SQLite or PostgreSQL with several workers", self._pid,
            )

    def transaction(self) -> contextlib.AbstractContextManager[None]:
        return _Transaction(self)

    def _rollback(self) -> None:
        for mapping, key, previous in reversed(self._local.undo):
            if previous is _ABSENT:
                mapping.pop(key, None)
            else:
                mapping[key] = previous

    def _put(self, mapping: dict, key: Any, value: Any) -> None:
        self._local.undo.append((mapping, key, mapping.get(key, _ABSENT)))
        mapping[key] = value

    def _pop(self, mapping: dict, key: Any) -> None:
        if key in mapping:
            self._local.undo.append((mapping, key, mapping.pop(key)))

    def _log_all(self) -> None:
        """Make a wholesale clear of the top-level dicts undoable (flush)."""
        for mapping in (self._records, self._tombstones):
            for key, partition in mapping.items():
                self._local.undo.append((mapping, key, partition))
        for key, value in self._timestamps.items():
            self._local.undo.append((self._timestamps, key, value))

    # -- timestamps (PROTOCOL §10.3) ------------------------------------------------

    def _bump(self, partition: Partition, forced: int | None) -> int:
        """Advance the partition's timestamp for one write; return the record's timestamp."""
        previous = self._timestamps.get(partition)
        current = now_ms() if previous is None else max(now_ms(), previous + 1)
        if forced is None:
            self._put(self._timestamps, partition, current)
            return current
        self._put(self._timestamps, partition, forced if previous is None or forced > previous else current)
        return forced

    def collection_timestamp(self, collection_id: str, parent_id: str) -> int:
        with self.transaction():
            partition = (collection_id, parent_id)
            if partition not in self._timestamps:
                self._put(self._timestamps, partition, now_ms())
            return self._timestamps[partition]

    # -- writes ---------------------------------------------------------------------

    def _check_unicity(self, partition: Partition, record: dict, fields: Sequence[str], own_id: str) -> None:
        for field in fields:
            value = filtering.resolve(record, field)
            if value is filtering.MISSING or value is None:
                continue
            for other in self._records[partition].values():
                if other["id"] != own_id and filtering.json_equal(filtering.resolve(other, field), value):
                    raise UnicityError(field, _from_store(other))

    def _store(self, partition: Partition, object_id: str, record: dict, timestamp: int) -> dict:
        stored = _to_store({**record, "id": object_id, "last_modified": timestamp})
        self._put(self._records[partition], object_id, stored)
        self._pop(self._tombstones[partition], object_id)
        return _from_store(stored)

    def create(
        self,
        collection_id: str,
        parent_id: str,
        record: dict[str, Any],
        id_generator: Callable[[], str] | None = None,
        unique_fields: Sequence[str] = (),
    ) -> dict[str, Any]:
        partition = (collection_id, parent_id)
        with self.transaction():
            object_id = record.get("id")
            if object_id is None:
                object_id = id_generator() if id_generator is not None else str(uuid.uuid4())
            existing = self._records[partition].get(object_id)
            if existing is not None:
                raise UnicityError("id", _from_store(existing))
            self._check_unicity(partition, record, unique_fields, object_id)
            timestamp = self._bump(partition, forced_timestamp(record.get("last_modified")))
            return self._store(partition, object_id, record, timestamp)

    def get(self, collection_id: str, parent_id: str, object_id: str, for_update: bool = False) -> dict[str, Any]:
        # NOTE: for_update needs nothing more: a transaction already holds the lock.
        with self._lock:
            record = self._records.get((collection_id, parent_id), {}).get(object_id)
            if record is None:
                raise RecordNotFoundError(object_id)
            return _from_store(record)

    def update(
        self,
        collection_id: str,
        parent_id: str,
        object_id: str,
        record: dict[str, Any],
        unique_fields: Sequence[str] = (),
    ) -> dict[str, Any]:
        partition = (collection_id, parent_id)
        with self.transaction():
            self._check_unicity(partition, record, unique_fields, object_id)
            forced = forced_timestamp(record.get("last_modified"))
            existing = self._records[partition].get(object_id)
            if existing is not None and forced is not None and forced <= existing["last_modified"]:
                forced = None
            timestamp = self._bump(partition, forced)
            return self._store(partition, object_id, record, timestamp)

    def _delete(self, partition: Partition, object_id: str, with_deleted: bool, forced: int | None) -> dict:
        existing = self._records[partition][object_id]
        if forced is not None and forced <= existing["last_modified"]:
            forced = None
        tombstone = {"id": object_id, "last_modified": self._bump(partition, forced), "deleted": True}
        self._pop(self._records[partition], object_id)
        if with_deleted:
            self._put(self._tombstones[partition], object_id, tombstone)
        return dict(tombstone)

    def delete(
        self,
        collection_id: str,
        parent_id: str,
        object_id: str,
        with_deleted: bool = True,
        last_modified: int | None = None,
    ) -> dict[str, Any]:
        partition = (collection_id, parent_id)
        with self.transaction():
            if object_id not in self._records[partition]:
                raise RecordNotFoundError(object_id)
            return self._delete(partition, object_id, with_deleted, forced_timestamp(last_modified))

    def delete_all(
        self,
        collection_id: str,
        parent_id: str,
        filters: Sequence[Filter] = (),
        with_deleted: bool = True,
    ) -> list[dict[str, Any]]:
        partition = (collection_id, parent_id)
        with self.transaction():
            doomed = filtering.apply(self._records[partition].values(), filters, [Sort("last_modified", 1)])
            return [self._delete(partition, record["id"], with_deleted, None) for record in doomed]

    def purge_deleted(self, collection_id: str, parent_id: str, before: int | None = None) -> int:
        partition = (collection_id, parent_id)
        with self.transaction():
            tombstones = self._tombstones[partition]
            purged = [tid for tid, t in tombstones.items() if before is None or t["last_modified"] < before]
            for tombstone_id in purged:
                self._pop(tombstones, tombstone_id)
            return len(purged)

    # -- reads ----------------------------------------------------------------------

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
        partition = (collection_id, parent_id)
        limit = self.max_fetch_size if limit is None else min(limit, self.max_fetch_size)
        with self._lock:
            records = list(self._records.get(partition, {}).values())
            if not count:
                total = None
            elif filters:
                total = sum(1 for r in records if filtering.match(r, filters))
            else:
                total = len(records)
            if include_deleted:
                records.extend(self._tombstones.get(partition, {}).values())
            page = filtering.apply(records, filters, sorting, pagination_rules, limit)
            # Copies on read: callers may mutate what they get (stored values are never mutated in place).
            # (_from_store inlined for the common flat record: one call less per record.)
            return [dict(r) if type(r) is dict else _from_store(r) for r in page], total


class MemoryCache(Cache):
    """Msgpack-encoded values in insertion order, bounded by ``cache_max_size_bytes``.

    When full, the oldest written entries are evicted first; a single value
    larger than the bound is not stored (a later ``get`` misses). Expiry uses
    the monotonic clock and is checked on access.
    """

    def __init__(self, prefix: str = "", max_size_bytes: int = 524288) -> None:
        self.prefix = prefix
        self.max_size_bytes = max_size_bytes
        self._lock = threading.Lock()
        self._entries: collections.OrderedDict[str, tuple[bytes, float | None]] = collections.OrderedDict()
        self._size = 0

    @classmethod
    def from_settings(cls, settings: Mapping[str, Any]) -> "MemoryCache":
        return cls(prefix=settings.get("cache_prefix", ""), max_size_bytes=settings.get("cache_max_size_bytes", 524288))

    def ping(self) -> bool:
        return True

    def flush(self) -> None:
        with self._lock:
            self._entries.clear()
            self._size = 0

    @property
    def size_bytes(self) -> int:
        """Bytes currently accounted (keys and encoded values)."""
        return self._size

    @staticmethod
    def _weight(key: str, packed: bytes) -> int:
        return len(key.encode("utf-8", "surrogatepass")) + len(packed)

    def _live(self, key: str) -> tuple[bytes, float | None] | None:
        entry = self._entries.get(key)
        if entry is not None and entry[1] is not None and entry[1] <= time.monotonic():
            self._remove(key)
            return None
        return entry

    def _remove(self, key: str) -> None:
        packed, _ = self._entries.pop(key)
        self._size -= self._weight(key, packed)

    def _write(self, key: str, value: Any, expires_at: float | None) -> None:
        packed = msgpack.packb(value, use_bin_type=True)
        if key in self._entries:
            self._remove(key)
        weight = self._weight(key, packed)
        if weight > self.max_size_bytes:
            return
        while self._size + weight > self.max_size_bytes:
            self._remove(next(iter(self._entries)))
        self._entries[key] = (packed, expires_at)
        self._size += weight

    @staticmethod
    def _expiry(ttl: float | None) -> float | None:
        return None if ttl is None else time.monotonic() + ttl

    @staticmethod
    def _unpack(packed: bytes) -> Any:
        return msgpack.unpackb(packed, raw=False)

    def get(self, key: str) -> Any:
        with self._lock:
            entry = self._live(self.prefix + key)
            return None if entry is None else self._unpack(entry[0])

    def set(self, key: str, value: Any, ttl: float | None = None) -> None:
        with self._lock:
            self._write(self.prefix + key, value, self._expiry(ttl))

    def add(self, key: str, value: Any, ttl: float | None = None) -> bool:
        with self._lock:
            if self._live(self.prefix + key) is not None:
                return False
            self._write(self.prefix + key, value, self._expiry(ttl))
            return True

    def incr(self, key: str, delta: int = 1, ttl: float | None = None) -> int:
        with self._lock:
            entry = self._live(self.prefix + key)
            if entry is None:
                value, expires_at = delta, self._expiry(ttl)
            else:
                current = self._unpack(entry[0])
                if not isinstance(current, int) or isinstance(current, bool):
                    raise TypeError(f"cache key {key!r} does not hold an integer")
                value, expires_at = current + delta, entry[1]
            self._write(self.prefix + key, value, expires_at)
            return value

    def delete(self, key: str) -> Any:
        with self._lock:
            entry = self._live(self.prefix + key)
            if entry is None:
                return None
            self._remove(self.prefix + key)
            return self._unpack(entry[0])

    def expire(self, key: str, ttl: float) -> None:
        with self._lock:
            entry = self._live(self.prefix + key)
            if entry is None:
                return
            if ttl <= 0:
                self._remove(self.prefix + key)
            else:
                self._entries[self.prefix + key] = (entry[0], self._expiry(ttl))

    def ttl(self, key: str) -> float:
        with self._lock:
            entry = self._live(self.prefix + key)
            if entry is None or entry[1] is None:
                return -1
            return entry[1] - time.monotonic()


class MemoryPermission(Permission):
    """ACEs as ``{(object_id, permission): principals}``, user groups as ``{user_id: principals}``."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._user_principals: dict[str, set[str]] = collections.defaultdict(set)
        self._aces: dict[tuple[str, str], set[str]] = collections.defaultdict(set)

    @classmethod
    def from_settings(cls, settings: Mapping[str, Any]) -> "MemoryPermission":
        return cls()

    def ping(self) -> bool:
        return True

    def flush(self) -> None:
        with self._lock:
            self._user_principals.clear()
            self._aces.clear()

    def add_user_principal(self, user_id: str, principal: str) -> None:
        with self._lock:
            self._user_principals[user_id].add(principal)

    def remove_user_principal(self, user_id: str, principal: str) -> None:
        with self._lock:
            self._user_principals.get(user_id, set()).discard(principal)

    def remove_principal(self, principal: str) -> None:
        with self._lock:
            for principals in self._user_principals.values():
                principals.discard(principal)

    def user_principals(self, user_id: str) -> set[str]:
        with self._lock:
            return set(self._user_principals.get(user_id, ()))

    def add_principal_to_ace(self, object_id: str, permission: str, principal: str) -> None:
        with self._lock:
            self._aces[(object_id, permission)].add(principal)

    def remove_principal_from_ace(self, object_id: str, permission: str, principal: str) -> None:
        with self._lock:
            principals = self._aces.get((object_id, permission))
            if principals is not None:
                principals.discard(principal)
                if not principals:
                    del self._aces[(object_id, permission)]

    def object_permission_principals(self, object_id: str, permission: str) -> set[str]:
        with self._lock:
            return set(self._aces.get((object_id, permission), ()))

    def object_permission_authorized_principals(
        self, object_id: str, permission: str, get_bound_permissions: BoundPermissions | None = None
    ) -> set[str]:
        pairs = get_bound_permissions(object_id, permission) if get_bound_permissions else [(object_id, permission)]
        with self._lock:
            return set().union(*(self._aces.get((obj, perm), set()) for obj, perm in pairs))

    def principals_accessible_objects(
        self,
        principals: Iterable[str],
        permission: str,
        object_id_match: str | None = None,
        get_bound_permissions: BoundPermissions | None = None,
    ) -> set[str]:
        principals = set(principals)
        if get_bound_permissions is not None:
            pairs = list(get_bound_permissions(object_id_match, permission))
        else:
            pairs = [(object_id_match, permission)]
        found: set[str] = set()
        with self._lock:
            for (object_id, perm), holders in self._aces.items():
                if holders.isdisjoint(principals):
                    continue
                for pattern, wanted in pairs:
                    if perm == wanted and (pattern is None or filtering.object_id_glob(pattern).fullmatch(object_id)):
                        found.add(object_id)
                        break
        return found

    def object_permissions(self, object_id: str, permissions: Sequence[str] | None = None) -> dict[str, set[str]]:
        with self._lock:
            return {
                perm: set(holders)
                for (obj, perm), holders in self._aces.items()
                if obj == object_id and holders and (permissions is None or perm in permissions)
            }

    def replace_object_permissions(self, object_id: str, permissions: dict[str, Iterable[str]]) -> None:
        with self._lock:
            for perm, principals in permissions.items():
                principals = set(principals)
                if principals:
                    self._aces[(object_id, perm)] = principals
                else:
                    self._aces.pop((object_id, perm), None)

    def delete_object_permissions(self, *object_ids: str) -> None:
        with self._lock:
            doomed = set(object_ids)
            for key in [key for key in self._aces if key[0] in doomed]:
                del self._aces[key]


STORAGE = MemoryStorage
CACHE = MemoryCache
PERMISSION = MemoryPermission
