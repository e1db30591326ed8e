"""Contract suite of :class:`cliquet_wsgi.storage.Storage`, run unchanged against every backend.

Use it from a test module next to a ``storage`` fixture (a fresh, flushed
backend) and a ``storage_url`` fixture (the URL it was built from; used by
the multi-process test to build one backend per process)::

    from cliquet_wsgi.testing.storage import *  # noqa: F401,F403

Tests marked ``concurrency`` are the heavy ones (threads, processes); they run
for every backend, memory included, and can be deselected with
``-m "not concurrency"``.
"""
from __future__ import annotations

import multiprocessing
import threading
import time
from typing import Any

import pytest

from cliquet_wsgi.storage import COMPARISON, Filter, RecordNotFoundError, Sort, UnicityError

CID, PID = "article", "/users/alice"


def _now_ms() -> int:
    return int(time.time() * 1000)


def _create_all(storage: Any, records: list[dict[str, Any]], cid: str = CID, pid: str = PID) -> list[dict]:
    return [storage.create(cid, pid, dict(r)) for r in records]


def _ids(records: list[dict[str, Any]]) -> list[str]:
    return [r["id"] for r in records]


# -- schema and health --------------------------------------------------------------


def test_ping_is_true(storage):
    assert storage.ping() is True


def test_initialize_schema_is_idempotent(storage):
    lines = storage.initialize_schema()
    assert isinstance(lines, list)
    assert all(isinstance(line, str) for line in lines)
    storage.create(CID, PID, {"title": "kept"})
    storage.initialize_schema()
    records, _ = storage.get_all(CID, PID)
    assert [r["title"] for r in records] == ["kept"]


def test_flush_removes_records_tombstones_and_timestamps(storage):
    kept = storage.create(CID, PID, {"a": 1})
    gone = storage.create(CID, PID, {"a": 2})
    storage.delete(CID, PID, gone["id"])
    storage.flush()
    records, total = storage.get_all(CID, PID, include_deleted=True, count=True)
    assert (records, total) == ([], 0)
    with pytest.raises(RecordNotFoundError):
        storage.get(CID, PID, kept["id"])


# -- create -------------------------------------------------------------------------


def test_create_generates_uuid4_ids_by_default(storage):
    record = storage.create(CID, PID, {"title": "x"})
    assert set(record) == {"id", "last_modified", "title"}
    assert len(record["id"]) == 36 and record["id"][14] == "4"
    assert isinstance(record["last_modified"], int)
    assert storage.get(CID, PID, record["id"]) == record


def test_create_uses_id_generator(storage):
    record = storage.create(CID, PID, {"title": "x"}, id_generator=lambda: "fixed-id")
    assert record["id"] == "fixed-id"


def test_create_keeps_given_id_over_generator(storage):
    record = storage.create(CID, PID, {"id": "mine", "title": "x"}, id_generator=lambda: "other")
    assert record["id"] == "mine"
    assert storage.get(CID, PID, "mine")["title"] == "x"


def test_create_does_not_mutate_argument(storage):
    given = {"title": "x", "nested": {"a": [1]}}
    storage.create(CID, PID, given)
    assert given == {"title": "x", "nested": {"a": [1]}}


def test_stored_records_are_isolated_from_callers(storage):
    # Callers may mutate what they pass and what they get back: neither changes what is stored.
    given = {"title": "x", "nested": {"a": [1, {"b": 2}]}}
    created = storage.create(CID, PID, given)
    given["nested"]["a"][1]["b"] = "given"
    created["nested"]["a"].append("created")
    created["title"] = "created"
    fetched = storage.get(CID, PID, created["id"])
    fetched["nested"]["a"][1]["b"] = "fetched"
    records, _ = storage.get_all(CID, PID)
    records[0]["nested"]["a"].append("listed")
    records[0]["title"] = "listed"
    updated = storage.update(CID, PID, created["id"], {"title": "y", "nested": {"a": [3]}})
    updated["nested"]["a"].append("updated")
    stored = storage.get(CID, PID, created["id"])
    assert stored == {
        "id": created["id"], "last_modified": updated["last_modified"], "title": "y", "nested": {"a": [3]}
    }
    listed, _ = storage.get_all(CID, PID)
    assert listed == [stored]


def test_unicity_error_record_is_a_copy(storage):
    existing = storage.create(CID, PID, {"id": "dup", "tags": ["a"]})
    with pytest.raises(UnicityError) as info:
        storage.create(CID, PID, {"id": "dup"})
    info.value.record["tags"].append("b")
    assert storage.get(CID, PID, "dup") == existing


def test_create_with_live_id_raises_unicity_on_id(storage):
    existing = storage.create(CID, PID, {"id": "dup", "title": "first"})
    with pytest.raises(UnicityError) as info:
        storage.create(CID, PID, {"id": "dup", "title": "second"})
    assert info.value.field == "id"
    assert info.value.record == existing
    assert storage.get(CID, PID, "dup")["title"] == "first"


def test_create_removes_tombstone_with_same_id(storage):
    storage.create(CID, PID, {"id": "again", "v": 1})
    storage.delete(CID, PID, "again")
    recreated = storage.create(CID, PID, {"id": "again", "v": 2})
    records, _ = storage.get_all(CID, PID, include_deleted=True)
    assert records == [recreated]


def test_create_checks_unique_fields(storage):
    existing = storage.create(CID, PID, {"email": "a@x", "name": "a"})
    with pytest.raises(UnicityError) as info:
        storage.create(CID, PID, {"email": "a@x", "name": "b"}, unique_fields=("name", "email"))
    assert info.value.field == "email"
    assert info.value.record == existing
    records, _ = storage.get_all(CID, PID)
    assert len(records) == 1


def test_unique_fields_are_type_aware_and_ignore_null_and_missing(storage):
    storage.create(CID, PID, {"code": 1, "ref": None})
    # "1" is not 1; null never conflicts; a record lacking the field never conflicts.
    storage.create(CID, PID, {"code": "1", "ref": None}, unique_fields=("code", "ref"))
    storage.create(CID, PID, {"other": True}, unique_fields=("code", "ref"))
    records, _ = storage.get_all(CID, PID)
    assert len(records) == 3


def test_unique_fields_ignore_tombstones_and_other_partitions(storage):
    gone = storage.create(CID, PID, {"email": "a@x"})
    storage.delete(CID, PID, gone["id"])
    storage.create(CID, "/users/bob", {"email": "a@x"})
    storage.create("other", PID, {"email": "a@x"})
    created = storage.create(CID, PID, {"email": "a@x"}, unique_fields=("email",))
    assert storage.get(CID, PID, created["id"])["email"] == "a@x"


def test_unique_fields_compare_nested_values(storage):
    storage.create(CID, PID, {"tags": ["a", 1], "meta": {"k": "v"}})
    with pytest.raises(UnicityError) as info:
        storage.create(CID, PID, {"tags": ["a", 1]}, unique_fields=("tags",))
    assert info.value.field == "tags"
    with pytest.raises(UnicityError):
        storage.create(CID, PID, {"meta": {"k": "v"}}, unique_fields=("meta",))
    storage.create(CID, PID, {"tags": ["a", True]}, unique_fields=("tags",))


# -- get ----------------------------------------------------------------------------


def test_get_missing_raises(storage):
    with pytest.raises(RecordNotFoundError):
        storage.get(CID, PID, "nope")


def test_get_tombstone_raises(storage):
    record = storage.create(CID, PID, {})
    storage.delete(CID, PID, record["id"])
    with pytest.raises(RecordNotFoundError):
        storage.get(CID, PID, record["id"])


def test_get_for_update_returns_record_inside_and_outside_transaction(storage):
    record = storage.create(CID, PID, {"x": 1})
    assert storage.get(CID, PID, record["id"], for_update=True) == record
    with storage.transaction():
        assert storage.get(CID, PID, record["id"], for_update=True) == record
        with pytest.raises(RecordNotFoundError):
            storage.get(CID, PID, "nope", for_update=True)


def test_values_round_trip_exactly(storage):
    data = {
        "unicode": "é\u4e2d\U0001f600",
        "int": 2**53,
        "neg": -7,
        "float": 3.5,
        "bool": False,
        "null": None,
        "list": [1, "a", None, [True], {"x": {}}],
        "nested": {"a": {"b": {"c": []}}},
        "empty": "",
    }
    record = storage.create(CID, PID, data)
    fetched = storage.get(CID, PID, record["id"])
    assert fetched == record == {**data, "id": record["id"], "last_modified": record["last_modified"]}
    assert type(fetched["float"]) is float and type(fetched["bool"]) is bool


def test_returned_records_are_copies(storage):
    record = storage.create(CID, PID, {"nested": {"a": 1}})
    record["nested"]["a"] = 2
    fetched = storage.get(CID, PID, record["id"])
    fetched["nested"]["a"] = 3
    records, _ = storage.get_all(CID, PID)
    records[0]["nested"]["a"] = 4
    assert storage.get(CID, PID, record["id"])["nested"] == {"a": 1}


# -- update -------------------------------------------------------------------------


def test_update_replaces_existing_record(storage):
    record = storage.create(CID, PID, {"a": 1, "b": 2})
    updated = storage.update(CID, PID, record["id"], {"a": 10})
    assert updated == {"id": record["id"], "a": 10, "last_modified": updated["last_modified"]}
    assert updated["last_modified"] > record["last_modified"]
    assert storage.get(CID, PID, record["id"]) == updated


def test_update_creates_when_absent(storage):
    created = storage.update(CID, PID, "new-id", {"a": 1})
    assert created["id"] == "new-id"
    assert storage.get(CID, PID, "new-id") == created


def test_update_ignores_id_in_body_and_uses_argument(storage):
    created = storage.update(CID, PID, "path-id", {"id": "path-id", "a": 1})
    assert created["id"] == "path-id"


def test_update_replaces_tombstone(storage):
    record = storage.create(CID, PID, {"a": 1})
    storage.delete(CID, PID, record["id"])
    revived = storage.update(CID, PID, record["id"], {"a": 2})
    records, _ = storage.get_all(CID, PID, include_deleted=True)
    assert records == [revived]


def test_update_checks_unicity_excluding_itself(storage):
    mine = storage.create(CID, PID, {"email": "me@x"})
    other = storage.create(CID, PID, {"email": "other@x"})
    storage.update(CID, PID, mine["id"], {"email": "me@x", "v": 2}, unique_fields=("email",))
    with pytest.raises(UnicityError) as info:
        storage.update(CID, PID, mine["id"], {"email": "other@x"}, unique_fields=("email",))
    assert info.value.field == "email" and info.value.record["id"] == other["id"]
    assert storage.get(CID, PID, mine["id"])["v"] == 2


# -- delete -------------------------------------------------------------------------


def test_delete_returns_tombstone_and_keeps_it(storage):
    record = storage.create(CID, PID, {"a": 1})
    tombstone = storage.delete(CID, PID, record["id"])
    assert tombstone == {"id": record["id"], "last_modified": tombstone["last_modified"], "deleted": True}
    assert tombstone["last_modified"] > record["last_modified"]
    assert storage.collection_timestamp(CID, PID) == tombstone["last_modified"]
    records, total = storage.get_all(CID, PID, include_deleted=True, count=True)
    assert records == [tombstone] and total == 0


def test_delete_without_tombstone(storage):
    record = storage.create(CID, PID, {"a": 1})
    tombstone = storage.delete(CID, PID, record["id"], with_deleted=False)
    assert tombstone["deleted"] is True and tombstone["id"] == record["id"]
    records, _ = storage.get_all(CID, PID, include_deleted=True)
    assert records == []


def test_delete_missing_or_already_deleted_raises(storage):
    with pytest.raises(RecordNotFoundError):
        storage.delete(CID, PID, "nope")
    record = storage.create(CID, PID, {})
    storage.delete(CID, PID, record["id"])
    with pytest.raises(RecordNotFoundError):
        storage.delete(CID, PID, record["id"])


def test_delete_all_with_filters(storage):
    a, b, c = _create_all(storage, [{"k": 1}, {"k": 2}, {"k": 1}])
    tombstones = storage.delete_all(CID, PID, filters=[Filter("k", 1, COMPARISON.EQ)])
    assert sorted(_ids(tombstones)) == sorted([a["id"], c["id"]])
    assert all(t["deleted"] is True and set(t) == {"id", "last_modified", "deleted"} for t in tombstones)
    stamps = [t["last_modified"] for t in tombstones]
    assert len(set(stamps)) == 2 and min(stamps) > c["last_modified"]
    records, _ = storage.get_all(CID, PID)
    assert records == [b]
    live_and_dead, _ = storage.get_all(CID, PID, include_deleted=True)
    assert len(live_and_dead) == 3
    assert storage.collection_timestamp(CID, PID) == max(stamps)


def test_delete_all_without_filters_and_without_tombstones(storage):
    _create_all(storage, [{"k": 1}, {"k": 2}])
    other = storage.create(CID, "/users/bob", {"k": 1})
    tombstones = storage.delete_all(CID, PID, with_deleted=False)
    assert len(tombstones) == 2
    records, _ = storage.get_all(CID, PID, include_deleted=True)
    assert records == []
    assert storage.get(CID, "/users/bob", other["id"]) == other


def test_delete_all_on_empty_partition_returns_empty_list(storage):
    assert storage.delete_all(CID, PID) == []


def test_purge_deleted_all_and_before(storage):
    records = _create_all(storage, [{}, {}, {}, {}])
    tombstones = [storage.delete(CID, PID, r["id"]) for r in records[:3]]
    assert storage.purge_deleted(CID, PID, before=tombstones[1]["last_modified"]) == 1
    remaining, _ = storage.get_all(CID, PID, include_deleted=True)
    assert sorted(_ids(remaining)) == sorted([records[1]["id"], records[2]["id"], records[3]["id"]])
    assert storage.purge_deleted(CID, PID) == 2
    remaining, _ = storage.get_all(CID, PID, include_deleted=True)
    assert remaining == [records[3]]
    assert storage.purge_deleted(CID, PID) == 0


def test_purge_deleted_is_per_partition(storage):
    storage.delete(CID, PID, storage.create(CID, PID, {})["id"])
    theirs = storage.delete(CID, "/users/bob", storage.create(CID, "/users/bob", {})["id"])
    assert storage.purge_deleted(CID, PID) == 1
    records, _ = storage.get_all(CID, "/users/bob", include_deleted=True)
    assert records == [theirs]


# -- timestamps (PROTOCOL §10.3) ----------------------------------------------------


def test_timestamps_strictly_increase_within_one_millisecond(storage):
    before = storage.collection_timestamp(CID, PID)
    created = [storage.create(CID, PID, {"i": i}) for i in range(60)]
    stamps = [r["last_modified"] for r in created]
    assert stamps == sorted(set(stamps))
    assert stamps[0] > before
    assert storage.collection_timestamp(CID, PID) == stamps[-1]
    # 60 writes usually fit in far fewer milliseconds: the + 1 rule was exercised.
    # Each stamp is max(clock, previous + 1): never ahead of both the clock and
    # one per write since the first (which may itself follow the clock). The
    # slack covers a database server reading a clock a few ms ahead of ours
    # (seen between the CPUs of a VM).
    assert stamps[-1] <= max(_now_ms(), stamps[0] + len(stamps) - 1) + 5


def test_timestamp_follows_the_clock(storage):
    first = storage.create(CID, PID, {})
    time.sleep(0.02)
    second = storage.create(CID, PID, {})
    assert second["last_modified"] >= first["last_modified"] + 15
    assert abs(second["last_modified"] - _now_ms()) < 5000


def test_collection_timestamp_of_unwritten_partition_is_persisted(storage):
    before = _now_ms()
    first = storage.collection_timestamp(CID, "/users/new")
    assert before - 5 <= first <= _now_ms() + 5  # slack: the server may read another CPU's clock
    time.sleep(0.01)
    assert storage.collection_timestamp(CID, "/users/new") == first
    record = storage.create(CID, "/users/new", {})
    assert record["last_modified"] > first
    assert storage.collection_timestamp(CID, "/users/new") == record["last_modified"]


def test_deletions_and_updates_bump_collection_timestamp(storage):
    record = storage.create(CID, PID, {})
    updated = storage.update(CID, PID, record["id"], {"v": 1})
    assert storage.collection_timestamp(CID, PID) == updated["last_modified"] > record["last_modified"]
    tombstone = storage.delete(CID, PID, record["id"])
    assert storage.collection_timestamp(CID, PID) == tombstone["last_modified"] > updated["last_modified"]


def test_forced_timestamp_on_create_in_the_past_is_kept(storage):
    current = storage.create(CID, PID, {})["last_modified"]
    old = storage.create(CID, PID, {"last_modified": 1000})
    assert old["last_modified"] == 1000
    assert storage.get(CID, PID, old["id"])["last_modified"] == 1000
    # The collection timestamp is bumped normally, not set to the past value.
    assert storage.collection_timestamp(CID, PID) > current


def test_forced_timestamp_on_create_in_the_future_becomes_collection_timestamp(storage):
    future = _now_ms() + 10_000_000
    record = storage.create(CID, PID, {"last_modified": future})
    assert record["last_modified"] == future
    assert storage.collection_timestamp(CID, PID) == future
    after = storage.create(CID, PID, {})
    assert after["last_modified"] == future + 1


def test_forced_timestamp_on_update_honoured_only_if_greater(storage):
    record = storage.create(CID, PID, {})
    lower = storage.update(CID, PID, record["id"], {"last_modified": record["last_modified"]})
    assert lower["last_modified"] > record["last_modified"]
    equal_or_lower = storage.update(CID, PID, record["id"], {"last_modified": 5})
    assert equal_or_lower["last_modified"] > lower["last_modified"]
    forced = equal_or_lower["last_modified"] + 100_000
    higher = storage.update(CID, PID, record["id"], {"last_modified": forced})
    assert higher["last_modified"] == forced
    assert storage.collection_timestamp(CID, PID) == forced


def test_forced_timestamp_on_update_of_new_record_acts_as_create(storage):
    record = storage.update(CID, PID, "fresh", {"last_modified": 1234})
    assert record["last_modified"] == 1234


def test_forced_timestamp_on_delete(storage):
    record = storage.create(CID, PID, {})
    ignored = storage.delete(CID, PID, record["id"], last_modified=record["last_modified"])
    assert ignored["last_modified"] > record["last_modified"]
    other = storage.create(CID, PID, {})
    forced = other["last_modified"] + 50_000
    tombstone = storage.delete(CID, PID, other["id"], last_modified=forced)
    assert tombstone["last_modified"] == forced
    records, _ = storage.get_all(CID, PID, include_deleted=True)
    assert tombstone in records
    assert storage.collection_timestamp(CID, PID) == forced


def test_non_integer_forced_timestamp_is_ignored(storage):
    record = storage.create(CID, PID, {"last_modified": "yesterday"})
    assert isinstance(record["last_modified"], int)
    assert record["last_modified"] == storage.collection_timestamp(CID, PID)


# -- partitions ---------------------------------------------------------------------


def test_partitions_are_isolated(storage):
    mine = storage.create(CID, PID, {"id": "same", "who": "alice"})
    theirs = storage.create(CID, "/users/bob", {"id": "same", "who": "bob"})
    other_collection = storage.create("comment", PID, {"id": "same", "who": "comment"})
    assert storage.get(CID, PID, "same") == mine
    assert storage.get(CID, "/users/bob", "same") == theirs
    assert storage.get("comment", PID, "same") == other_collection
    storage.delete(CID, PID, "same")
    assert storage.get(CID, "/users/bob", "same") == theirs
    records, _ = storage.get_all(CID, "/users/bob", include_deleted=True)
    assert records == [theirs]
    # Timestamps are per partition too.
    assert storage.collection_timestamp("comment", PID) == other_collection["last_modified"]


def test_partition_ids_are_compared_exactly(storage):
    storage.create(CID, "a", {"x": 1})
    storage.create(CID, "a%", {"x": 2})
    storage.create(CID, "A", {"x": 3})
    for pid, expected in [("a", 1), ("a%", 2), ("A", 3), ("_", None)]:
        records, _ = storage.get_all(CID, pid)
        assert [r["x"] for r in records] == ([] if expected is None else [expected])


# -- get_all: filters ---------------------------------------------------------------

FILTER_DATA = [
    {"id": "r1", "n": 1, "s": "apple", "b": True, "tags": ["a", "b"], "author": {"name": "Ann", "age": 30}},
    {"id": "r2", "n": 2, "s": "Banana", "b": False, "tags": ["b", "c"], "author": {"name": "Bob"}},
    {"id": "r3", "n": "1", "s": "cherry 100%", "b": None, "tags": [], "author": "anonymous"},
    {"id": "r4", "n": 3.5, "s": "date_x", "tags": ["a", 1]},
    {"id": "r5", "s": "*star*", "b": 1, "tags": "a"},
]


@pytest.fixture
def filter_records(storage):
    return _create_all(storage, FILTER_DATA)


FILTER_CASES = [
    pytest.param([Filter("n", 1, COMPARISON.EQ)], ["r1"], id="eq-number-not-string"),
    pytest.param([Filter("n", "1", COMPARISON.EQ)], ["r3"], id="eq-string-not-number"),
    pytest.param([Filter("n", 1.0, COMPARISON.EQ)], ["r1"], id="eq-float-equals-int"),
    pytest.param([Filter("b", True, COMPARISON.EQ)], ["r1"], id="eq-true-not-1"),
    pytest.param([Filter("b", 1, COMPARISON.EQ)], ["r5"], id="eq-1-not-true"),
    pytest.param([Filter("b", False, COMPARISON.EQ)], ["r2"], id="eq-false"),
    pytest.param([Filter("b", None, COMPARISON.EQ)], ["r3"], id="eq-null"),
    pytest.param([Filter("id", "r2", COMPARISON.EQ)], ["r2"], id="eq-id"),
    pytest.param([Filter("tags", ["a", "b"], COMPARISON.EQ)], ["r1"], id="eq-array"),
    pytest.param([Filter("author", {"name": "Bob"}, COMPARISON.EQ)], ["r2"], id="eq-object"),
    pytest.param([Filter("n", 1, COMPARISON.NOT)], ["r2", "r3", "r4", "r5"], id="not-matches-missing"),
    pytest.param([Filter("b", None, COMPARISON.NOT)], ["r1", "r2", "r4", "r5"], id="not-null"),
    pytest.param([Filter("n", 2, COMPARISON.LT)], ["r1"], id="lt-numbers-only"),
    pytest.param([Filter("n", 1, COMPARISON.GT)], ["r2", "r4"], id="gt-numbers-only"),
    pytest.param([Filter("n", 2, COMPARISON.MIN)], ["r2", "r4"], id="min-inclusive"),
    pytest.param([Filter("n", 2, COMPARISON.MAX)], ["r1", "r2"], id="max-inclusive"),
    pytest.param([Filter("n", "0", COMPARISON.GT)], ["r3"], id="gt-strings-only"),
    pytest.param([Filter("s", "b", COMPARISON.GT)], ["r3", "r4"], id="gt-string-case-sensitive"),
    pytest.param([Filter("b", False, COMPARISON.GT)], ["r1"], id="gt-bool"),
    pytest.param([Filter("n", [1, "1"], COMPARISON.IN)], ["r1", "r3"], id="in-mixed-types"),
    pytest.param([Filter("n", [2, 3.5, 9], COMPARISON.IN)], ["r2", "r4"], id="in-numbers"),
    pytest.param([Filter("id", ["r1", "r5", "zz"], COMPARISON.IN)], ["r1", "r5"], id="in-id"),
    pytest.param([Filter("n", [], COMPARISON.IN)], [], id="in-empty"),
    pytest.param([Filter("n", [1, 2], COMPARISON.EXCLUDE)], ["r3", "r4", "r5"], id="exclude-matches-missing"),
    pytest.param([Filter("n", [], COMPARISON.EXCLUDE)], ["r1", "r2", "r3", "r4", "r5"], id="exclude-empty"),
    pytest.param([Filter("author.name", "Bob", COMPARISON.EQ)], ["r2"], id="dotted-eq"),
    pytest.param([Filter("author.age", 18, COMPARISON.MIN)], ["r1"], id="dotted-min"),
    pytest.param([Filter("author.name", "Bob", COMPARISON.NOT)], ["r1", "r3", "r4", "r5"], id="dotted-not"),
    pytest.param([Filter("author.name", True, COMPARISON.HAS)], ["r1", "r2"], id="dotted-has"),
    pytest.param([Filter("author.name.x", True, COMPARISON.HAS)], [], id="dotted-through-string"),
    pytest.param([Filter("s", "AN", COMPARISON.LIKE)], ["r2"], id="like-case-insensitive"),
    pytest.param([Filter("s", "a*e", COMPARISON.LIKE)], ["r1", "r4"], id="like-wildcard"),
    pytest.param([Filter("s", "%", COMPARISON.LIKE)], ["r3"], id="like-percent-literal"),
    pytest.param([Filter("s", "e_", COMPARISON.LIKE)], ["r4"], id="like-underscore-literal"),
    pytest.param([Filter("s", "*", COMPARISON.LIKE)], ["r1", "r2", "r3", "r4", "r5"], id="like-star-only"),
    pytest.param([Filter("n", "1", COMPARISON.LIKE)], ["r3"], id="like-strings-only"),
    pytest.param([Filter("b", True, COMPARISON.HAS)], ["r1", "r2", "r5"], id="has-true-null-is-absent"),
    pytest.param([Filter("b", False, COMPARISON.HAS)], ["r3", "r4"], id="has-false"),
    pytest.param([Filter("tags", ["a"], COMPARISON.CONTAINS)], ["r1", "r4"], id="contains-one"),
    pytest.param([Filter("tags", ["a", "b"], COMPARISON.CONTAINS)], ["r1"], id="contains-all"),
    pytest.param([Filter("tags", [1], COMPARISON.CONTAINS)], ["r4"], id="contains-type-aware"),
    pytest.param([Filter("tags", [], COMPARISON.CONTAINS)], ["r1", "r2", "r3", "r4"], id="contains-empty-arrays-only"),
    pytest.param([Filter("tags", ["a", "c"], COMPARISON.CONTAINS_ANY)], ["r1", "r2", "r4"], id="contains-any"),
    pytest.param([Filter("tags", ["zz"], COMPARISON.CONTAINS_ANY)], [], id="contains-any-none"),
    pytest.param([Filter("n", 1, COMPARISON.MIN), Filter("n", 3, COMPARISON.LT)], ["r1", "r2"], id="and"),
    pytest.param([Filter("missing", 1, COMPARISON.EQ)], [], id="missing-field"),
    pytest.param([Filter("a'b\"c", 1, COMPARISON.EQ)], [], id="odd-field-name"),
]


@pytest.mark.parametrize(("filters", "expected"), FILTER_CASES)
def test_get_all_filters(storage, filter_records, filters, expected):
    records, total = storage.get_all(CID, PID, filters=filters, count=True)
    assert sorted(_ids(records)) == expected
    assert total == len(expected)


def test_filter_on_last_modified(storage, filter_records):
    stamps = {r["id"]: r["last_modified"] for r in filter_records}
    records, _ = storage.get_all(CID, PID, filters=[Filter("last_modified", stamps["r3"], COMPARISON.GT)])
    assert sorted(_ids(records)) == ["r4", "r5"]
    records, _ = storage.get_all(CID, PID, filters=[Filter("last_modified", stamps["r2"], COMPARISON.MAX)])
    assert sorted(_ids(records)) == ["r1", "r2"]
    records, _ = storage.get_all(CID, PID, filters=[Filter("last_modified", stamps["r2"], COMPARISON.EQ)])
    assert _ids(records) == ["r2"]


def test_filter_field_names_with_special_characters(storage):
    data = {"we\"ird": 1, "sp ace": "x", "quo'te": True, "dot": {"ted": 2}, "$": 3, "[0]": 4}
    record = storage.create(CID, PID, data)
    for field, value in [("we\"ird", 1), ("sp ace", "x"), ("quo'te", True), ("dot.ted", 2), ("$", 3), ("[0]", 4)]:
        records, _ = storage.get_all(CID, PID, filters=[Filter(field, value, COMPARISON.EQ)])
        assert _ids(records) == [record["id"]], field
        records, _ = storage.get_all(CID, PID, sorting=[Sort(field, 1)])
        assert _ids(records) == [record["id"]], field


def test_filter_values_are_data_not_code(storage):
    storage.create(CID, PID, {"s": "x"})
    for value in ["x' OR '1'='1", "x\" OR 1=1 --", "%", "*\x00"]:
        records, _ = storage.get_all(CID, PID, filters=[Filter("s", value, COMPARISON.EQ)])
        assert records == []


def test_filters_apply_to_tombstones_as_id_last_modified_deleted(storage, filter_records):
    storage.delete(CID, PID, "r1")
    records, total = storage.get_all(
        CID, PID, filters=[Filter("n", 2, COMPARISON.NOT)], include_deleted=True, count=True
    )
    # The tombstone lacks ``n``, so NOT matches it; the total counts live records only.
    assert sorted(_ids(records)) == ["r1", "r3", "r4", "r5"]
    assert total == 3
    assert {"id": "r1", "deleted": True} == {k: v for k, v in records[_ids(records).index("r1")].items() if k != "last_modified"}
    records, _ = storage.get_all(CID, PID, filters=[Filter("deleted", True, COMPARISON.EQ)], include_deleted=True)
    assert _ids(records) == ["r1"]
    records, _ = storage.get_all(CID, PID, filters=[Filter("n", 1, COMPARISON.EQ)], include_deleted=True)
    assert records == []


# -- get_all: sorting, pagination, limit, count ----------------------------------


def test_default_sort_is_newest_first(storage):
    created = _create_all(storage, [{"i": i} for i in range(5)])
    records, _ = storage.get_all(CID, PID)
    assert records == list(reversed(created))


def test_sort_multiple_fields_with_directions(storage):
    _create_all(storage, [
        {"id": "a", "g": 1, "v": "x"},
        {"id": "b", "g": 2, "v": "x"},
        {"id": "c", "g": 1, "v": "y"},
        {"id": "d", "g": 2, "v": "y"},
        {"id": "e", "g": 1, "v": "x"},
    ])
    records, _ = storage.get_all(CID, PID, sorting=[Sort("v", -1), Sort("g", 1)])
    assert _ids(records) == ["c", "d", "a", "e", "b"]


def test_sort_ties_broken_by_id(storage):
    _create_all(storage, [{"id": "b", "g": 1}, {"id": "c", "g": 1}, {"id": "a", "g": 1}])
    records, _ = storage.get_all(CID, PID, sorting=[Sort("g", 1)])
    assert _ids(records) == ["a", "b", "c"]


def test_sort_is_type_aware_with_missing_last(storage):
    _create_all(storage, [
        {"id": "str", "v": "10"},
        {"id": "missing"},
        {"id": "num9", "v": 9},
        {"id": "true", "v": True},
        {"id": "null", "v": None},
        {"id": "num10", "v": 10},
        {"id": "false", "v": False},
        {"id": "num-1.5", "v": -1.5},
        {"id": "strA", "v": "A"},
    ])
    records, _ = storage.get_all(CID, PID, sorting=[Sort("v", 1)])
    ascending = ["null", "false", "true", "num-1.5", "num9", "num10", "str", "strA", "missing"]
    assert _ids(records) == ascending
    records, _ = storage.get_all(CID, PID, sorting=[Sort("v", -1)])
    assert _ids(records) == list(reversed(ascending))


def test_sort_on_dotted_field_and_last_modified(storage):
    created = _create_all(storage, [
        {"id": "x", "author": {"age": 40}},
        {"id": "y", "author": {"age": 20}},
        {"id": "z", "author": "none"},
    ])
    records, _ = storage.get_all(CID, PID, sorting=[Sort("author.age", 1)])
    assert _ids(records) == ["y", "x", "z"]
    records, _ = storage.get_all(CID, PID, sorting=[Sort("last_modified", 1)])
    assert records == created


def test_limit_applies_after_filter_and_sort(storage, filter_records):
    records, total = storage.get_all(
        CID, PID, filters=[Filter("s", True, COMPARISON.HAS)], sorting=[Sort("s", 1)], limit=2, count=True
    )
    assert _ids(records) == ["r5", "r2"]
    assert total == 5
    records, _ = storage.get_all(CID, PID, limit=0)
    assert records == []


def test_count_only_when_asked(storage, filter_records):
    records, total = storage.get_all(CID, PID)
    assert total is None and len(records) == 5


def test_pagination_rules_are_or_of_ands(storage):
    created = _create_all(storage, [{"id": f"r{i}", "g": i % 3, "i": i} for i in range(9)])
    assert len(created) == 9
    rules = [
        [Filter("g", 0, COMPARISON.EQ), Filter("i", 3, COMPARISON.GT)],
        [Filter("g", 1, COMPARISON.GT)],
    ]
    records, total = storage.get_all(
        CID, PID, filters=[Filter("i", 8, COMPARISON.LT)], sorting=[Sort("i", 1)],
        pagination_rules=rules, count=True,
    )
    assert _ids(records) == ["r2", "r5", "r6"]
    assert total == 8


def test_count_is_given_with_an_empty_page(storage):
    _create_all(storage, [{"i": i} for i in range(3)])
    assert storage.get_all(CID, PID, limit=0, count=True) == ([], 3)
    beyond = [[Filter("i", 5, COMPARISON.GT)]]
    assert storage.get_all(CID, PID, pagination_rules=beyond, count=True) == ([], 3)
    records, total = storage.get_all(CID, PID, filters=[Filter("i", 1, COMPARISON.MIN)], limit=1, count=True)
    assert (len(records), total) == (1, 2)


def test_keyset_pagination_walks_every_record_once(storage):
    _create_all(storage, [{"id": f"r{i:02d}", "g": i % 4} for i in range(23)])
    sorting = [Sort("g", -1), Sort("id", 1)]
    seen: list[str] = []
    rules: list[list[Filter]] = []
    while True:
        page, total = storage.get_all(CID, PID, sorting=sorting, pagination_rules=rules, limit=5, count=True)
        assert total == 23
        if not page:
            break
        seen.extend(_ids(page))
        last = page[-1]
        rules = [
            [Filter("g", last["g"], COMPARISON.LT)],
            [Filter("g", last["g"], COMPARISON.EQ), Filter("id", last["id"], COMPARISON.GT)],
        ]
    expected = sorted((f"r{i:02d}" for i in range(23)), key=lambda rid: (-(int(rid[1:]) % 4), rid))
    assert seen == expected


def test_include_deleted_sorts_and_limits_tombstones_with_records(storage):
    created = _create_all(storage, [{"i": i} for i in range(4)])
    t0 = storage.delete(CID, PID, created[0]["id"])
    t2 = storage.delete(CID, PID, created[2]["id"])
    records, total = storage.get_all(CID, PID, include_deleted=True, count=True)
    assert records == [t2, t0, created[3], created[1]]
    assert total == 2
    records, _ = storage.get_all(CID, PID, include_deleted=True, limit=3, sorting=[Sort("last_modified", 1)])
    assert records == [created[1], created[3], t0]
    since = created[3]["last_modified"]
    records, _ = storage.get_all(
        CID, PID, filters=[Filter("last_modified", since, COMPARISON.GT)], include_deleted=True
    )
    assert records == [t2, t0]


def test_limit_is_capped_by_max_fetch_size(storage, storage_url):
    from cliquet_wsgi.registry import build_backend
    from cliquet_wsgi.settings import load_settings

    capped = build_backend("storage", load_settings({"storage_url": storage_url, "storage_max_fetch_size": 3}, environ={}))
    try:
        capped.initialize_schema()
        _create_all(capped, [{"i": i} for i in range(5)], cid="capped")
        records, total = capped.get_all("capped", PID, limit=10, count=True)
        assert len(records) == 3 and total == 5
        records, _ = capped.get_all("capped", PID, limit=2)
        assert len(records) == 2
        records, _ = capped.get_all("capped", PID)
        assert len(records) == 3
    finally:
        capped.flush()
        capped.close()


# -- transactions -------------------------------------------------------------------


def test_transaction_commits(storage):
    with storage.transaction():
        a = storage.create(CID, PID, {"a": 1})
        b = storage.create(CID, PID, {"b": 1})
        assert storage.get(CID, PID, a["id"]) == a
    records, _ = storage.get_all(CID, PID)
    assert records == [b, a]


def test_read_transaction_reads_and_persists_a_first_timestamp(storage):
    created = storage.create(CID, PID, {"a": 1})
    with storage.read_transaction():
        timestamp = storage.collection_timestamp(CID, PID)
        records, total = storage.get_all(CID, PID, count=True)
        fresh = storage.collection_timestamp(CID, "/users/never-written")
        assert storage.get(CID, PID, created["id"]) == created
    assert (timestamp, records, total) == (created["last_modified"], [created], 1)
    # The never-written partition's timestamp was kept: stable after the block.
    assert storage.collection_timestamp(CID, "/users/never-written") == fresh


def test_read_transaction_lets_exceptions_through(storage):
    with pytest.raises(ZeroDivisionError):
        with storage.read_transaction():
            storage.get_all(CID, PID)
            1 / 0
    with pytest.raises(RecordNotFoundError):
        with storage.read_transaction():
            storage.get(CID, PID, "missing")
    assert storage.get_all(CID, PID) == ([], None)


def test_read_transaction_inside_a_transaction_joins_it(storage):
    with pytest.raises(ZeroDivisionError):
        with storage.transaction():
            created = storage.create(CID, PID, {"a": 1})
            with storage.read_transaction():
                assert storage.get_all(CID, PID)[0] == [created]
                assert storage.collection_timestamp(CID, PID) == created["last_modified"]
            # Leaving the inner block neither committed nor ended the outer one.
            storage.create(CID, PID, {"b": 2})
            1 / 0
    assert storage.get_all(CID, PID) == ([], None)


def test_transaction_rollback_leaves_nothing(storage):
    kept = storage.create(CID, PID, {"kept": True})
    doomed = storage.create(CID, PID, {"doomed": True})
    timestamp = storage.collection_timestamp(CID, PID)
    other_ts = storage.collection_timestamp(CID, "/users/bob")
    with pytest.raises(ZeroDivisionError):
        with storage.transaction():
            storage.create(CID, PID, {"id": "new"})
            storage.update(CID, PID, kept["id"], {"changed": True})
            storage.delete(CID, PID, doomed["id"])
            storage.create(CID, "/users/bob", {"x": 1})
            storage.purge_deleted(CID, PID)
            1 / 0
    assert storage.get(CID, PID, kept["id"]) == kept
    assert storage.get(CID, PID, doomed["id"]) == doomed
    with pytest.raises(RecordNotFoundError):
        storage.get(CID, PID, "new")
    records, _ = storage.get_all(CID, PID, include_deleted=True)
    assert records == [doomed, kept]
    assert storage.collection_timestamp(CID, PID) == timestamp
    assert storage.collection_timestamp(CID, "/users/bob") == other_ts
    after = storage.create(CID, PID, {})
    assert after["last_modified"] > timestamp


def test_transaction_rollback_restores_tombstones(storage):
    record = storage.create(CID, PID, {"id": "t"})
    tombstone = storage.delete(CID, PID, "t")
    with pytest.raises(RuntimeError):
        with storage.transaction():
            storage.create(CID, PID, {"id": "t", "v": 2})
            storage.purge_deleted(CID, PID)
            raise RuntimeError("abort")
    records, _ = storage.get_all(CID, PID, include_deleted=True)
    assert records == [tombstone]
    assert record["id"] == tombstone["id"]


def test_nested_transaction_joins_outer(storage):
    with pytest.raises(KeyError):
        with storage.transaction():
            storage.create(CID, PID, {"id": "outer"})
            with storage.transaction():
                storage.create(CID, PID, {"id": "inner"})
            # The inner block exited normally but did not commit on its own.
            assert storage.get(CID, PID, "inner")["id"] == "inner"
            raise KeyError("abort outer")
    records, _ = storage.get_all(CID, PID, include_deleted=True)
    assert records == []


def test_nested_transaction_commits_with_outer(storage):
    with storage.transaction():
        with storage.transaction():
            inner = storage.create(CID, PID, {"id": "inner"})
        outer = storage.create(CID, PID, {"id": "outer"})
    records, _ = storage.get_all(CID, PID)
    assert records == [outer, inner]


def test_unicity_error_inside_transaction_keeps_earlier_writes_until_outcome(storage):
    storage.create(CID, PID, {"id": "dup"})
    with storage.transaction():
        first = storage.create(CID, PID, {"id": "first"})
        with pytest.raises(UnicityError):
            storage.create(CID, PID, {"id": "dup"})
    assert storage.get(CID, PID, "first") == first


def test_transaction_is_usable_again_after_rollback(storage):
    for _ in range(3):
        with pytest.raises(ValueError):
            with storage.transaction():
                storage.create(CID, PID, {})
                raise ValueError
    with storage.transaction():
        record = storage.create(CID, PID, {})
    assert storage.get(CID, PID, record["id"]) == record


# -- concurrency (RELIABILITY C1, C2, C7) ---------------------------------------------

WRITERS, PER_WRITER = 8, 150


def _poll(storage: Any, cid: str, last_seen: int, seen: dict[str, int]) -> int:
    records, _ = storage.get_all(
        cid, PID, filters=[Filter("last_modified", last_seen, COMPARISON.GT)], include_deleted=True
    )
    for record in records:
        # Never seen twice: a record visible after last_seen must be newer than it.
        assert record["id"] not in seen, record
        seen[record["id"]] = record["last_modified"]
    return max([last_seen] + [r["last_modified"] for r in records])


def _check_committed_and_polled(storage: Any, cid: str, committed: list[list[tuple[str, int]]],
                                seen: dict[str, int]) -> None:
    flat = [item for writer in committed for item in writer]
    assert len(flat) == WRITERS * PER_WRITER
    for writer in committed:
        stamps = [ts for _, ts in writer]
        assert stamps == sorted(stamps) and len(set(stamps)) == len(stamps)
    stamps = [ts for _, ts in flat]
    assert len(set(stamps)) == len(stamps), "two records share a timestamp"
    assert set(seen) == {rid for rid, _ in flat}, "the poller missed records"
    assert seen == dict(flat)
    records, total = storage.get_all(cid, PID, count=True)
    assert total == WRITERS * PER_WRITER
    assert storage.collection_timestamp(cid, PID) == max(stamps)


@pytest.mark.concurrency
def test_concurrent_creates_strictly_increasing_and_none_missed_by_since_poller(storage):
    cid = "concurrent"
    committed: list[list[tuple[str, int]]] = [[] for _ in range(WRITERS)]
    errors: list[BaseException] = []
    barrier = threading.Barrier(WRITERS + 1)

    def writer(index: int) -> None:
        try:
            barrier.wait()
            for i in range(PER_WRITER):
                record = storage.create(cid, PID, {"writer": index, "i": i})
                committed[index].append((record["id"], record["last_modified"]))
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(WRITERS)]
    for thread in threads:
        thread.start()
    seen: dict[str, int] = {}
    last_seen = 0
    barrier.wait()
    while any(t.is_alive() for t in threads):
        last_seen = _poll(storage, cid, last_seen, seen)
        time.sleep(0.0005)
    for thread in threads:
        thread.join()
    last_seen = _poll(storage, cid, last_seen, seen)
    assert not errors, errors
    _check_committed_and_polled(storage, cid, committed, seen)


@pytest.mark.concurrency
def test_concurrent_conditional_updates_exactly_one_wins(storage):
    contenders, rounds = 20, 5
    record = storage.create(CID, PID, {"id": "contended", "round": -1})
    for round_number in range(rounds):
        before = storage.get(CID, PID, "contended")["last_modified"]
        outcomes: list[tuple[int, int]] = []
        errors: list[BaseException] = []
        barrier = threading.Barrier(contenders)

        def contender(index: int) -> None:
            try:
                barrier.wait()
                with storage.transaction():
                    current = storage.get(CID, PID, "contended", for_update=True)
                    if current["last_modified"] != before:
                        outcomes.append((412, index))
                        return
                    storage.update(CID, PID, "contended", {"round": round_number, "winner": index})
                    outcomes.append((200, index))
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=contender, args=(n,)) for n in range(contenders)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert not errors, errors
        winners = [index for status, index in outcomes if status == 200]
        assert len(winners) == 1 and len(outcomes) == contenders
        final = storage.get(CID, PID, "contended")
        assert final["winner"] == winners[0] and final["round"] == round_number
        assert final["last_modified"] > before
    assert record["id"] == "contended"


@pytest.mark.concurrency
def test_concurrent_create_of_same_id_exactly_one_wins(storage):
    contenders = 12
    outcomes: list[str] = []
    errors: list[BaseException] = []
    barrier = threading.Barrier(contenders)

    def contender(index: int) -> None:
        try:
            barrier.wait()
            storage.create(CID, PID, {"id": "only-one", "by": index})
            outcomes.append("created")
        except UnicityError:
            outcomes.append("conflict")
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=contender, args=(n,)) for n in range(contenders)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors
    assert sorted(outcomes) == ["conflict"] * (contenders - 1) + ["created"]


@pytest.mark.concurrency
def test_concurrent_delete_and_update_leave_a_record_or_a_tombstone(storage):
    contenders, rounds = 10, 4
    for round_number in range(rounds):
        object_id = f"race-{round_number}"
        storage.create(CID, PID, {"id": object_id})
        writes: list[tuple[int, str]] = []
        errors: list[BaseException] = []
        barrier = threading.Barrier(contenders)

        def contender(index: int) -> None:
            try:
                barrier.wait()
                with storage.transaction():
                    storage.get(CID, PID, object_id, for_update=True)
                    if index % 2:
                        writes.append((storage.update(CID, PID, object_id, {"by": index})["last_modified"], "update"))
                    else:
                        writes.append((storage.delete(CID, PID, object_id)["last_modified"], "delete"))
            except RecordNotFoundError:
                pass
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=contender, args=(n,)) for n in range(contenders)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert not errors, errors
        entries = [r for r in storage.get_all(CID, PID, include_deleted=True)[0] if r["id"] == object_id]
        assert len(entries) == 1, entries
        last_timestamp, last_kind = max(writes)
        assert len({ts for ts, _ in writes}) == len(writes)
        assert entries[0]["last_modified"] == last_timestamp
        assert entries[0].get("deleted", False) is (last_kind == "delete")


@pytest.mark.concurrency
def test_delete_all_while_records_are_written(storage):
    writers, per_writer = 4, 40
    created: list[dict[str, Any]] = []
    errors: list[BaseException] = []
    def writer() -> None:
        try:
            for _ in range(per_writer):
                created.append(storage.create(CID, PID, {}))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=writer) for _ in range(writers)]
    for thread in threads:
        thread.start()
    tombstones: list[dict[str, Any]] = []
    while any(t.is_alive() for t in threads):
        tombstones.extend(storage.delete_all(CID, PID))
    for thread in threads:
        thread.join()
    tombstones.extend(storage.delete_all(CID, PID))
    assert not errors, errors
    assert sorted(t["id"] for t in tombstones) == sorted(r["id"] for r in created)
    by_id = {r["id"]: r for r in created}
    assert all(t["last_modified"] > by_id[t["id"]]["last_modified"] for t in tombstones)
    entries, total = storage.get_all(CID, PID, include_deleted=True, count=True)
    assert total == 0
    assert sorted(e["id"] for e in entries) == sorted(by_id)
    assert all(e["deleted"] is True for e in entries)


def _process_writer(url: str, cid: str, count: int, start: Any, results: Any) -> None:
    """Runs in a child process: its own backend built from the URL."""
    from cliquet_wsgi.registry import build_backend
    from cliquet_wsgi.settings import load_settings

    try:
        backend = build_backend("storage", load_settings({"storage_url": url}, environ={}))
        created = []
        start.wait()
        for i in range(count):
            record = backend.create(cid, PID, {"i": i})
            created.append((record["id"], record["last_modified"]))
        backend.close()
        results.put(("ok", created))
    except BaseException as exc:
        results.put(("error", repr(exc)))


@pytest.mark.concurrency
def test_concurrent_creates_from_processes(storage, storage_url):
    if storage_url.startswith("memory:"):
        pytest.skip("the memory backend lives in one process")
    cid = "processes"
    context = multiprocessing.get_context("spawn")
    start = context.Event()
    results = context.Queue()
    processes = [
        context.Process(target=_process_writer, args=(storage_url, cid, PER_WRITER, start, results))
        for _ in range(WRITERS)
    ]
    for process in processes:
        process.start()
    seen: dict[str, int] = {}
    committed: list[list[tuple[str, int]]] = []
    last_seen = 0
    start.set()
    deadline = time.monotonic() + 300
    while len(committed) < WRITERS:
        assert time.monotonic() < deadline, "writer processes did not finish"
        last_seen = _poll(storage, cid, last_seen, seen)
        time.sleep(0.0005)
        while not results.empty():
            status, payload = results.get()
            assert status == "ok", payload
            committed.append(payload)
    for process in processes:
        process.join(timeout=30)
        assert process.exitcode == 0
    last_seen = _poll(storage, cid, last_seen, seen)
    _check_committed_and_polled(storage, cid, committed, seen)


__all__ = [name for name in dir() if name.startswith("test_")] + ["filter_records"]
