"""The storage contract: synchronisable records partitioned by collection and parent.

Records are JSON objects with a string ``id`` and an integer ``last_modified``
(epoch milliseconds). They live in partitions named by ``(collection_id,
parent_id)``: ``collection_id`` is the resource name (``"article"``),
``parent_id`` the user id for per-user resources or the parent object's id for
nested ones (``""`` for shareable top-level resources).

Timestamps (PROTOCOL §10.3): every write (create, update, delete — each record
of a bulk delete separately) gives the record ``T = max(now_ms,
collection_timestamp + 1)`` and makes ``T`` the collection timestamp, so
timestamps are **strictly increasing per partition**, also under concurrent
writers in several processes, and a record committed later never has a
smaller ``last_modified`` than one that was visible before it (what ``_since``
polling relies on). A forced ``last_modified`` in the record is honoured on
create (the collection timestamp takes it if it is greater, else is bumped
normally); on update and delete it is honoured only when strictly greater than
the record's current value, and otherwise ignored.

Tombstones ``{"id", "last_modified", "deleted": True}`` replace deleted
records until :meth:`Storage.purge_deleted`.

Transactions: every method may run inside ``with storage.transaction():``;
nested use (on the same thread) joins the outer transaction; the outermost
commits on success and rolls back on any exception. Outside a transaction
each call is its own transaction. ``with storage.read_transaction():`` groups
calls that only read (a listing and its collection timestamp) where that is
cheaper, without ever holding a write lock for the block.

Errors: :class:`RecordNotFoundError`, :class:`UnicityError` and
:class:`~cliquet_wsgi.errors.BackendError` for anything the driver raises.
"""
from __future__ import annotations

import abc
import contextlib
import enum
from typing import Any, Callable, ContextManager, NamedTuple, Sequence

from cliquet_wsgi.backend import Backend, BackendError

__all__ = [
    "Storage", "Filter", "Sort", "COMPARISON", "RecordNotFoundError", "UnicityError",
    "IntegrityError", "BackendError",
]


class RecordNotFoundError(Exception):
    """No live record with that id in that partition."""


class IntegrityError(Exception):
    """A write would break a constraint."""


class UnicityError(IntegrityError):
    """``field`` of the written record equals that of ``record``, another live record.

    Also raised with ``field == "id"`` when ``create`` is given the id of a
    live record.
    """

    def __init__(self, field: str, record: dict[str, Any]) -> None:
        self.field = field
        self.record = record
        super().__init__(f"Conflict of field {field} on record {record.get('id')}")


class COMPARISON(str, enum.Enum):
    """Filter operators (PROTOCOL §10.5).

    ``EQ NOT LT GT MIN MAX`` compare JSON values type-aware: numbers with
    numbers, strings with strings, booleans with booleans (``1`` never equals
    ``"1"``); ``LT GT MIN MAX`` order arrays with arrays and objects with
    objects as :class:`Sort` does (by canonical JSON text), and never match
    null; ``NOT`` and ``EXCLUDE`` match records lacking the field.
    ``IN``/``EXCLUDE`` take a list. ``LIKE`` is a case-insensitive substring
    match on strings where ``*`` in the value is a wildcard (``%``/``_`` are
    literal). ``HAS`` takes a bool: the field is present (and not null) or
    not. ``CONTAINS`` (the array field contains every element of the value
    list) and ``CONTAINS_ANY`` (at least one).
    """

    EQ = "eq"
    NOT = "not"
    LT = "lt"
    GT = "gt"
    MIN = "min"
    MAX = "max"
    IN = "in"
    EXCLUDE = "exclude"
    LIKE = "like"
    HAS = "has"
    CONTAINS = "contains"
    CONTAINS_ANY = "contains_any"


class Filter(NamedTuple):
    """``field`` may be dotted (``author.name``) to reach into sub-objects."""

    field: str
    value: Any
    operator: COMPARISON


class Sort(NamedTuple):
    """``direction`` is ``1`` (ascending) or ``-1`` (descending).

    Ordering is JSON-type-aware: across types ``null < bool < number < string
    < array < object``; ``false < true``; records lacking the field sort after
    every other value ascending (before them descending). Among arrays, or
    among objects, the order is implementation-defined.
    :mod:`cliquet_wsgi.filtering` is the executable reference of filters,
    sorting and pagination rules.
    """

    field: str
    direction: int


class Storage(Backend):
    """Abstract storage. Field names (filters, sorts) are data, never SQL."""

    kind = "storage"

    @abc.abstractmethod
    def transaction(self) -> ContextManager[None]:
        """Context manager spanning several calls (a request, a whole batch).

        Nested use joins the outer transaction. The outermost commits when the
        block exits normally and rolls back when it raises. Rollback exists
        on every implementation, memory included.
        """

    def read_transaction(self) -> ContextManager[None]:
        """Context manager around calls that only read (``collection_timestamp`` included).

        A backend where a transaction is cheap to share and takes no write
        lock (PostgreSQL: one connection checkout, ping, ``BEGIN``/``COMMIT``
        for the block) runs the block as one :meth:`transaction`; the default
        runs each call as it would run alone, so no write lock (SQLite's
        ``BEGIN IMMEDIATE``) is ever held for a read block. Either way, inside
        :meth:`transaction` it joins that transaction, and an exception raised
        in the block passes through. No isolation between the calls is
        promised (callers must not rely on one snapshot); do not write in it.
        """
        return contextlib.nullcontext()

    @abc.abstractmethod
    def collection_timestamp(self, collection_id: str, parent_id: str) -> int:
        """Current timestamp of the partition.

        A partition never written gets ``now_ms``, persisted, so that it stays
        stable (and ETags valid) until the next write.
        """

    @abc.abstractmethod
    def create(
        self,
        collection_id: str,
        parent_id: str,
        record: dict[str, Any],
        id_generator: Callable[[], str] | None = None,
        unique_fields: Sequence[str] = (),
    ) -> dict[str, Any]:
        """Store a new record and return it with ``id`` and ``last_modified``.

        The id is ``record["id"]`` if given, else ``id_generator()`` (default
        UUID4). A live record with that id -> ``UnicityError("id", existing)``;
        a tombstone with that id is removed. For each of ``unique_fields`` that
        the record has (not null), another live record with an equal value ->
        ``UnicityError(field, existing)``. A ``UnicityError`` changes nothing
        and leaves an enclosing transaction usable (the request may go on,
        e.g. to answer 200 with the existing record).
        """

    @abc.abstractmethod
    def get(
        self, collection_id: str, parent_id: str, object_id: str, for_update: bool = False
    ) -> dict[str, Any]:
        """The live record, or :class:`RecordNotFoundError`.

        ``for_update=True`` inside a transaction locks the record until the
        transaction ends, so that a check-then-write (``If-Match``) cannot be
        interleaved with another writer's: of two conditional writers only one
        can see the old timestamp.
        """

    @abc.abstractmethod
    def update(
        self,
        collection_id: str,
        parent_id: str,
        object_id: str,
        record: dict[str, Any],
        unique_fields: Sequence[str] = (),
    ) -> dict[str, Any]:
        """Create or replace the record with that id (a tombstone is removed).

        Unicity as for :meth:`create`, the record itself excluded. Returns the
        stored record with its new (or honoured forced) ``last_modified``.
        """

    @abc.abstractmethod
    def delete(
        self,
        collection_id: str,
        parent_id: str,
        object_id: str,
        with_deleted: bool = True,
        last_modified: int | None = None,
    ) -> dict[str, Any]:
        """Delete the live record and return its tombstone.

        :class:`RecordNotFoundError` when there is no live record. With
        ``with_deleted=False`` no tombstone is kept (but one is returned).
        ``last_modified`` forces the tombstone's timestamp (rules above).
        """

    @abc.abstractmethod
    def delete_all(
        self,
        collection_id: str,
        parent_id: str,
        filters: Sequence[Filter] = (),
        with_deleted: bool = True,
    ) -> list[dict[str, Any]]:
        """Delete every live record matching ``filters``; return their tombstones.

        Each record gets its own timestamp, in increasing order.
        """

    @abc.abstractmethod
    def purge_deleted(self, collection_id: str, parent_id: str, before: int | None = None) -> int:
        """Drop tombstones (all, or those with ``last_modified < before``); return how many."""

    @abc.abstractmethod
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
        """Records of the partition matching ``filters`` and ``(records, total)``.

        * ``filters`` are AND-ed.
        * ``pagination_rules`` is a list of filter lists; a record is kept if
          it matches **any** of them (each one AND-ed). This expresses keyset
          pagination from the last record of the previous page.
        * ``sorting`` is cumulative; ``last_modified`` descending is the
          default order and the final tie-breaker is ``id`` ascending.
        * ``limit`` applies last. Implementations cap it (``None`` included)
          at their ``storage_max_fetch_size``.
        * ``include_deleted=True`` adds tombstones matching the same filters
          (a tombstone has only ``id``, ``last_modified`` and ``deleted``, so
          e.g. ``NOT``/``EXCLUDE`` on another field match it).
        * ``total`` is the number of **live** records matching ``filters``,
          ignoring pagination rules and limit, computed only when ``count``
          is true (else ``None``).
        """
