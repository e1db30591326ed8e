"""SQLite-specific behaviour beyond the contract suites: URLs, schema, locking, errors, SQL vs reference."""
from __future__ import annotations

import multiprocessing
import sqlite3
import threading
import time
import uuid

import pytest
from hypothesis import HealthCheck, given, settings as hypothesis_settings, strategies as st

from cliquet_wsgi import filtering
from cliquet_wsgi.backends import sqlite as backend
from cliquet_wsgi.errors import BackendError, ConfigurationError
from cliquet_wsgi.registry import build_backend
from cliquet_wsgi.settings import load_settings
from cliquet_wsgi.testing.faults import hang_guard
from cliquet_wsgi.storage import COMPARISON, Filter, Sort


def build(kind, url, **extra):
    return build_backend(kind, load_settings({f"{kind}_url": url, **extra}, environ={}))


@pytest.fixture
def db_url(tmp_path):
    return f"sqlite:///{tmp_path}/db.sqlite"


@pytest.fixture
def storage(db_url):
    instance = build("storage", db_url)
    yield instance
    instance.close()


# -- configuration --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "message"),
    [
        pytest.param("sqlite:///:memory:", "is not supported", id="memory"),
        pytest.param("sqlite://", "must look like", id="empty"),
        pytest.param("sqlite:///", "must look like", id="no-path"),
    ],
)
def test_bad_urls_are_configuration_errors(url, message):
    with pytest.raises(ConfigurationError, match=message):
        build("storage", url)


def test_relative_and_absolute_paths(tmp_path, monkeypatch):
    assert backend.database_path("sqlite:///data/db.sqlite", "storage_url") == "data/db.sqlite"
    assert backend.database_path("sqlite:////var/db.sqlite", "storage_url") == "/var/db.sqlite"
    monkeypatch.chdir(tmp_path)
    storage = build("storage", "sqlite:///relative.sqlite")
    try:
        storage.create("c", "p", {"x": 1})
    finally:
        storage.close()
    assert (tmp_path / "relative.sqlite").exists()


def test_registry_picks_the_sqlite_classes(db_url):
    for kind, cls in [("storage", backend.SQLiteStorage), ("cache", backend.SQLiteCache),
                      ("permission", backend.SQLitePermission)]:
        instance = build(kind, db_url)
        try:
            assert type(instance) is cls
        finally:
            instance.close()


# -- schema -----------------------------------------------------------------------------


def test_initialize_schema_reports_actions_and_kinds_share_a_file(db_url):
    instances = {kind: build(kind, db_url) for kind in ("storage", "cache", "permission")}
    try:
        for kind, instance in instances.items():
            assert instance.initialize_schema() == [f"{kind}: created schema version 1"]
            assert instance.initialize_schema() == [f"{kind}: schema already at version 1"]
        instances["storage"].create("c", "p", {"id": "r"})
        instances["cache"].set("k", "v")
        instances["permission"].add_user_principal("u", "g")
        instances["cache"].flush()
        assert instances["storage"].get("c", "p", "r")["id"] == "r"
        assert instances["permission"].user_principals("u") == {"g"}
    finally:
        for instance in instances.values():
            instance.close()


def test_schema_is_created_on_first_use(db_url):
    storage = build("storage", db_url)
    try:
        record = storage.create("c", "p", {"x": 1})
        assert storage.get("c", "p", record["id"]) == record
        assert storage.initialize_schema() == ["storage: schema already at version 1"]
    finally:
        storage.close()


def test_newer_schema_version_is_refused(db_url, tmp_path):
    storage = build("storage", db_url)
    storage.initialize_schema()
    storage.close()
    with sqlite3.connect(tmp_path / "db.sqlite") as raw:
        raw.execute("UPDATE metadata SET value = '99' WHERE name = 'storage_schema_version'")
    raw.close()
    newer = build("storage", db_url)
    try:
        with pytest.raises(BackendError, match="version 99 is newer"):
            newer.initialize_schema()
    finally:
        newer.close()


def test_wal_mode_and_indexes(storage, tmp_path):
    storage.initialize_schema()
    raw = sqlite3.connect(tmp_path / "db.sqlite")
    try:
        assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        indexes = {row[1] for row in raw.execute("PRAGMA index_list(records)")}
        assert "records_last_modified" in indexes
        columns = [row[2] for row in raw.execute("PRAGMA index_info(records_last_modified)")]
        assert columns == ["collection_id", "parent_id", "last_modified"]
    finally:
        raw.close()


def test_since_poll_and_keyset_page_are_index_range_scans(storage):
    storage.initialize_schema()
    connection = storage._db.connection()
    where, where_params = backend.compile_filters([Filter("last_modified", 5, COMPARISON.GT)])
    order, order_params = backend.compile_sorting([Sort("last_modified", -1)])
    plan = " ".join(
        row[3] for row in connection.execute(
            "EXPLAIN QUERY PLAN SELECT id FROM records WHERE collection_id = ? AND parent_id = ? "
            f"AND {where} ORDER BY {order} LIMIT 10",
            ["c", "p", *where_params, *order_params],
        )
    )
    assert "USING INDEX records_last_modified (collection_id=? AND parent_id=? AND last_modified>?)" in plan
    assert "TEMP B-TREE FOR ORDER BY" not in plan


# -- errors and locking -----------------------------------------------------------------


def test_sqlite_errors_become_backend_errors(storage, tmp_path):
    storage.initialize_schema()
    raw = sqlite3.connect(tmp_path / "db.sqlite")
    raw.execute("DROP TABLE records")
    raw.commit()
    raw.close()
    with pytest.raises(BackendError) as info:
        storage.get_all("c", "p")
    assert isinstance(info.value.original, sqlite3.OperationalError)
    assert storage.ping() is True


def test_ping_false_when_file_unusable(tmp_path):
    storage = backend.SQLiteStorage(str(tmp_path / "missing-dir" / "db.sqlite"))
    assert storage.ping() is False
    storage.close()


def test_waiting_writer_times_out_with_backend_error(db_url, tmp_path):
    """A writer waiting for the write lock gives up with BackendError (how fast: bench/faults.py)."""
    storage = build("storage", db_url, storage_pool_timeout=0.2)
    storage.initialize_schema()
    # The setting is SQLite's busy timeout on the connection that will wait.
    assert storage._db.connection().execute("PRAGMA busy_timeout").fetchone() == (200,)
    blocker = sqlite3.connect(tmp_path / "db.sqlite", isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")
    try:
        with hang_guard():
            with pytest.raises(BackendError, match="locked"):
                storage.create("c", "p", {})
        # The blocker still holds the lock: the writer gave up on its own.
        assert blocker.in_transaction
        # Readers are not blocked by a writer (WAL).
        assert storage.get_all("c", "p") == ([], None)
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
        storage.close()
    storage.create("c", "p", {})


def test_transaction_blocks_other_writers_until_commit(storage):
    storage.initialize_schema()
    done = threading.Event()

    def other_writer():
        storage.create("c", "p", {"id": "second"})
        done.set()

    with storage.transaction():
        first = storage.create("c", "p", {"id": "first"})
        thread = threading.Thread(target=other_writer)
        thread.start()
        assert not done.wait(0.3)
    thread.join(10)
    assert done.is_set()
    assert storage.get("c", "p", "second")["last_modified"] > first["last_modified"]


def test_connections_are_per_thread_and_reopened_after_close(storage):
    storage.create("c", "p", {"id": "x"})
    main_connection = storage._db.connection()
    seen = []
    thread = threading.Thread(target=lambda: seen.append(storage._db.connection()))
    thread.start()
    thread.join()
    assert seen[0] is not main_connection
    storage.close()
    assert storage.get("c", "p", "x")["id"] == "x"
    assert storage._db.connection() is not main_connection


def _forked_child(storage, queue):
    try:
        queue.put(storage.create("c", "p", {"from": "child"})["id"])
    except BaseException as exc:
        queue.put(repr(exc))


def test_forked_child_opens_its_own_connection(storage):
    storage.create("c", "p", {"from": "parent"})
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    child = context.Process(target=_forked_child, args=(storage, queue))
    child.start()
    child_id = queue.get(timeout=30)
    child.join(30)
    assert child.exitcode == 0
    assert storage.get("c", "p", child_id)["from"] == "child"


# -- SQL versus the reference filter ------------------------------------------------------

scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-2, 2), st.sampled_from([1.0, 2.5]),
    st.text(alphabet="aAé%_*", max_size=2),
)
# Scalars weigh more than containers so that filters often hit.
values = st.one_of(scalars, scalars, scalars, st.lists(scalars, max_size=3),
                   st.fixed_dictionaries({}, optional={"x": scalars}))
FIELDS = ["a", "a", "b", "b", "n.x", "id", "last_modified", "deleted", "missing", 'q"uote']
records_strategy = st.lists(
    st.fixed_dictionaries({}, optional={"a": values, "b": scalars, "n": values, 'q"uote': scalars}),
    min_size=1, max_size=8,
)


@st.composite
def filters_strategy(draw):
    op = draw(st.sampled_from(list(COMPARISON)))
    field = draw(st.sampled_from(FIELDS))
    if op in (COMPARISON.IN, COMPARISON.EXCLUDE, COMPARISON.CONTAINS, COMPARISON.CONTAINS_ANY):
        value = draw(st.lists(scalars, max_size=3))
    elif op is COMPARISON.HAS:
        value = draw(st.booleans())
    elif op in (COMPARISON.EQ, COMPARISON.NOT):
        value = draw(values)
    else:
        value = draw(scalars)
    return Filter(field, value, op)


sorts_strategy = st.lists(st.builds(Sort, st.sampled_from(FIELDS), st.sampled_from([1, -1])), max_size=2)


@pytest.fixture(scope="module")
def shared_storage(tmp_path_factory):
    instance = backend.SQLiteStorage(str(tmp_path_factory.mktemp("hypothesis") / "db.sqlite"))
    instance.initialize_schema()
    yield instance
    instance.close()


@hypothesis_settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    records=records_strategy,
    deleted=st.lists(st.integers(0, 7), max_size=3),
    filters=st.lists(filters_strategy(), max_size=2),
    rules=st.lists(st.lists(filters_strategy(), min_size=1, max_size=2), max_size=2),
    sorting=sorts_strategy,
    limit=st.one_of(st.none(), st.integers(0, 5)),
    include_deleted=st.booleans(),
)
def test_sql_matches_reference_filter(shared_storage, records, deleted, filters, rules, sorting, limit,
                                      include_deleted):
    parent = str(uuid.uuid4())
    created = [shared_storage.create("c", parent, record) for record in records]
    tombstones = []
    for index in sorted(set(deleted)):
        if index < len(created):
            tombstones.append(shared_storage.delete("c", parent, created[index]["id"]))
    live = [r for r in created if r["id"] not in {t["id"] for t in tombstones}]
    candidates = live + (tombstones if include_deleted else [])
    expected = filtering.apply(candidates, filters, sorting, rules, limit)
    got, total = shared_storage.get_all("c", parent, filters=filters, sorting=sorting, pagination_rules=rules,
                                        limit=limit, include_deleted=include_deleted, count=True)
    assert got == expected
    assert total == sum(1 for r in live if filtering.match(r, filters))
    if filters and all(f.field != 'q"uote' for f in filters):
        removed = shared_storage.delete_all("c", parent, filters=filters)
        assert sorted(t["id"] for t in removed) == sorted(r["id"] for r in live if filtering.match(r, filters))


# -- cache specifics ----------------------------------------------------------------------


def test_cache_sweeps_expired_rows(db_url, tmp_path):
    cache = build("cache", db_url)
    try:
        cache.set("old", 1, ttl=0.05)
        time.sleep(0.1)
        cache._next_purge = 0.0
        cache.set("new", 2)
        raw = sqlite3.connect(tmp_path / "db.sqlite")
        keys = [row[0] for row in raw.execute("SELECT key FROM cache")]
        raw.close()
        assert keys == ["new"]
    finally:
        cache.close()


def test_cache_flush_only_removes_its_prefix(db_url):
    first = build("cache", db_url, cache_prefix="one:")
    second = build("cache", db_url, cache_prefix="two:")
    try:
        first.set("k", 1)
        second.set("k", 2)
        first.flush()
        assert (first.get("k"), second.get("k")) == (None, 2)
    finally:
        first.close()
        second.close()


def test_cache_values_must_be_msgpack_serialisable(db_url):
    cache = build("cache", db_url)
    try:
        with pytest.raises(TypeError):
            cache.set("k", object())
        assert cache.get("k") is None
    finally:
        cache.close()
