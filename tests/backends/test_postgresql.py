"""PostgreSQL-specific behaviour: pool faults, locking, migrations, SQL hygiene.

The shared contract suites (``test_*_contract.py``) cover the semantics; this
module covers what only a real server shows (RELIABILITY C1, C2, C6, F2, F10,
S7). Every test builds its own small pool with a unique ``application_name``
so that killing "our" connections never touches another test's.
"""
from __future__ import annotations

import functools
import importlib.util
import multiprocessing
import os
import signal
import threading
import time
import uuid
from typing import Any
from urllib.parse import urlsplit

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from cliquet_wsgi import filtering
from cliquet_wsgi.errors import BackendError, ConfigurationError
from cliquet_wsgi.storage import COMPARISON, Filter, Sort, UnicityError
from cliquet_wsgi.testing import POSTGRESQL_URL, require_service, tcp_reachable
from cliquet_wsgi.testing.faults import BlackHole, hang_guard
from tests.backends.pg_cluster import private_cluster

pg8000 = pytest.importorskip("pg8000.dbapi")

from cliquet_wsgi.backends.postgresql import (  # noqa: E402
    PERMISSION,
    STORAGE,
    PostgreSQLPermission,
    PostgreSQLStorage,
)
from cliquet_wsgi.backends.postgresql.pool import Cursor, Pool, parse_url  # noqa: E402

PID = ""

@pytest.fixture(scope="module")
def url() -> Any:
    """A throwaway database for this module.

    NOTE: other suites flush the shared test database at any moment; the
    counts asserted here must only see this module's writes.
    """
    parts = urlsplit(POSTGRESQL_URL)
    if not tcp_reachable(parts.hostname or "127.0.0.1", parts.port or 5432):
        require_service("postgresql", f"nothing listens on {parts.hostname}:{parts.port}")
    name = f"cliquet_pg_test_{uuid.uuid4().hex[:12]}"
    admin = _admin(POSTGRESQL_URL)
    admin.cursor().execute(f'CREATE DATABASE "{name}"')
    try:
        yield POSTGRESQL_URL.rsplit("/", 1)[0] + "/" + name
    finally:
        admin.cursor().execute(f'DROP DATABASE "{name}" WITH (FORCE)')
        admin.close()


def _pool(url: str, **options: Any) -> Pool:
    options.setdefault("application_name", f"cliquet-wsgi-test-{uuid.uuid4().hex[:8]}")
    options.setdefault("timeout", 5.0)
    return Pool(url, **options)


def _admin(url: str, database: str | None = None) -> Any:
    params = parse_url(url)
    if database:
        params["database"] = database
    conn = pg8000.connect(**params)
    conn.autocommit = True
    return conn


@pytest.fixture
def pool(url):
    pool = _pool(url, size=4, max_overflow=0)
    yield pool
    pool.dispose()


@pytest.fixture
def storage(pool):
    backend = PostgreSQLStorage(pool, {"storage_max_fetch_size": 10000})
    backend.initialize_schema()
    backend.flush()
    yield backend
    backend.flush()


@pytest.fixture
def permission(pool):
    backend = PostgreSQLPermission(pool)
    backend.initialize_schema()
    backend.flush()
    yield backend
    backend.flush()


# -- configuration ---------------------------------------------------------------


@pytest.mark.parametrize(
    "url, expected",
    [
        pytest.param(
            "postgresql://bob:s%40cret@db.example:6543/app",
            {"user": "bob", "password": "s@cret", "host": "db.example", "port": 6543, "database": "app"},
            id="full",
        ),
        pytest.param(
            "postgres://postgres@127.0.0.1/test",
            {"user": "postgres", "password": None, "host": "127.0.0.1", "port": 5432, "database": "test"},
            id="postgres-scheme-default-port",
        ),
    ],
)
def test_parse_url(url, expected):
    assert parse_url(url) == expected


@pytest.mark.parametrize(
    "url",
    [
        pytest.param("postgresql://127.0.0.1/test", id="no-user"),
        pytest.param("postgresql://postgres@127.0.0.1/", id="no-database"),
        pytest.param("mysql://postgres@127.0.0.1/test", id="other-scheme"),
    ],
)
def test_bad_url_is_a_configuration_error(url):
    with pytest.raises(ConfigurationError):
        parse_url(url)


def test_module_exports_and_from_settings_share_one_pool(url):
    storage = STORAGE.from_settings({"storage_url": url})
    permission = PERMISSION.from_settings({"permission_url": url.replace("postgresql://", "postgres://", 1)})
    assert storage.pool is permission.pool


@pytest.mark.parametrize(
    "query",
    [
        pytest.param("SELECT %s, %s::jsonb", id="format"),
        pytest.param("SELECT '%%s' || %s, 100 %% 7, E'\\'%s'", id="escapes-and-quotes"),
        pytest.param('SELECT "a%s" FROM t WHERE x = %s -- %s\n AND y = $$%s$$', id="identifiers-comments-dollars"),
    ],
)
def test_numbered_placeholders_match_pg8000_without_patching_it(query):
    from cliquet_wsgi.backends.postgresql.pool import numbered

    for _ in range(2):  # the first call fills the cache, the second reads it
        assert numbered(query) == _unpatched_conversion()("format", query, ("a", 1))[0]
    assert pg8000.convert_paramstyle is _pg8000_conversion


_pg8000_conversion = pg8000.convert_paramstyle


@functools.lru_cache(maxsize=None)
def _unpatched_conversion():
    """pg8000's own function, from a fresh copy of its module."""
    spec = importlib.util.find_spec("pg8000.dbapi")
    fresh = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(fresh)
    return fresh.convert_paramstyle


def test_numbered_placeholders_raise_every_time():
    from cliquet_wsgi.backends.postgresql.pool import numbered

    for _ in range(2):
        with pytest.raises(pg8000.InterfaceError):
            numbered("SELECT %d")


def _server_statements(cursor: Any) -> list[str]:
    cursor.execute("SELECT statement FROM pg_prepared_statements ORDER BY prepare_time")
    return [row[0] for row in cursor.fetchall()]


def test_statements_with_parameters_are_prepared_once_per_connection(url):
    pool = _pool(url, size=1, max_overflow=0)
    try:
        for value in range(3):
            with pool.transaction() as cursor:
                cursor.execute("SELECT %s::int + 1, %s::text", (value, "x"))
                assert cursor.fetchall() == [[value + 1, "x"]]
                cursor.execute("SELECT 2")  # no parameters: simple protocol, nothing prepared
                assert cursor.fetchone() == [2]
                assert _server_statements(cursor) == ["SELECT $1::int + 1, $2::text"]
    finally:
        pool.dispose()


def test_least_recently_used_statements_are_closed_beyond_the_limit(url, monkeypatch):
    from cliquet_wsgi.backends.postgresql import pool as pool_module

    monkeypatch.setattr(pool_module, "MAX_PREPARED_STATEMENTS", 2)
    pool = _pool(url, size=1, max_overflow=0)
    try:
        with pool.transaction() as cursor:
            for n in (1, 2, 1, 3):  # 1 is used again before 3 arrives: 2 is the one closed
                cursor.execute(f"SELECT %s::int * {n}", (10,))
                assert cursor.fetchone() == [10 * n]
            assert sorted(_server_statements(cursor)) == ["SELECT $1::int * 1", "SELECT $1::int * 3"]
    finally:
        pool.dispose()


def test_without_prepared_statements_nothing_is_prepared(url):
    pool = _pool(url, size=1, max_overflow=0, prepare=False)
    storage = PostgreSQLStorage(pool)
    storage.initialize_schema()
    try:
        created = storage.create("unprepared", PID, {"a": 1})
        assert storage.get("unprepared", PID, created["id"]) == created
        assert storage.get_all("unprepared", PID, count=True) == ([created], 1)
        with pool.transaction() as cursor:
            assert _server_statements(cursor) == []
    finally:
        pool.dispose()


def test_setting_turns_prepared_statements_off(url):
    # URLs of their own (pools are shared per URL and set up by their first
    # user); both sslmodes connect to any server.
    storage = PostgreSQLStorage.from_settings({"storage_url": f"{url}?sslmode=prefer",
                                               "storage_prepared_statements": False})
    assert storage.pool.prepare is False
    default = PostgreSQLStorage.from_settings({"storage_url": f"{url}?sslmode=disable"})
    assert default.pool.prepare is True


def test_a_transaction_pings_with_its_begin(url, monkeypatch):
    pool = _pool(url, size=1, max_overflow=0)
    try:
        with pool.transaction():
            pass  # the connection now waits in the pool
        conn = pool._idle[0]
        sent = []
        original = conn.raw.execute_simple
        monkeypatch.setattr(conn.raw, "execute_simple", lambda sql: sent.append(sql) or original(sql))
        with pool.transaction() as cursor:
            cursor.execute("SELECT %s::int", (1,))
        assert sent == ["BEGIN", "COMMIT"]
    finally:
        pool.dispose()


def test_a_table_altered_under_prepared_statements_fails_once_then_recovers(url):
    pool = _pool(url, size=1, max_overflow=0)
    admin = _admin(url)
    table = f"altered_{uuid.uuid4().hex[:8]}"
    admin.cursor().execute(f"CREATE TABLE {table} (id int, v int)")
    try:
        with pool.transaction() as cursor:
            cursor.execute(f"INSERT INTO {table} VALUES (%s, %s)", (1, 2))
            cursor.execute(f"SELECT * FROM {table} WHERE id = %s", (1,))
            assert cursor.fetchall() == [[1, 2]]
        admin.cursor().execute(f"ALTER TABLE {table} ALTER COLUMN v TYPE text")
        with pytest.raises(BackendError) as raised:
            with pool.transaction() as cursor:
                cursor.execute(f"SELECT * FROM {table} WHERE id = %s", (1,))
        assert "0A000" in str(raised.value.original)  # cached plan must not change result type
        with pool.transaction() as cursor:  # a new session prepares it again
            cursor.execute(f"SELECT * FROM {table} WHERE id = %s", (1,))
            assert cursor.fetchall() == [[1, "2"]]
    finally:
        admin.cursor().execute(f"DROP TABLE {table}")
        admin.close()
        pool.dispose()


def test_read_transaction_checks_out_one_connection_for_its_reads(storage, pool, monkeypatch):
    storage.create("c", "p", {"a": 1})
    checkouts = []
    original = pool.checkout
    monkeypatch.setattr(pool, "checkout", lambda **kw: checkouts.append(1) or original(**kw))
    with storage.read_transaction():
        assert pool.in_transaction()
        storage.collection_timestamp("c", "p")
        storage.get_all("c", "p", count=True)
    assert len(checkouts) == 1 and not pool.in_transaction()
    storage.collection_timestamp("c", "p")
    storage.get_all("c", "p")
    assert len(checkouts) == 3  # outside a block each call has its own transaction


# -- pool faults (RELIABILITY C6, F2) -------------------------------------------------


def _backend_pids(pool: Pool) -> list[int]:
    conns = [pool.checkout() for _ in range(pool.size)]
    try:
        pids = []
        for conn in conns:
            cursor = conn.raw.cursor()
            cursor.execute("SELECT pg_backend_pid()")
            pids.append(cursor.fetchone()[0])
        return pids
    finally:
        for conn in conns:
            pool.checkin(conn)


def test_terminated_connections_are_replaced_transparently(url, pool, storage):
    storage.create("killed", PID, {"before": True})
    pids = _backend_pids(pool)
    assert len(set(pids)) == pool.size
    admin = _admin(url)
    try:
        cursor = admin.cursor()
        cursor.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = %s",
            (pool.application_name,),
        )
        assert [row[0] for row in cursor.fetchall()] == [True] * pool.size
        time.sleep(0.2)  # let the server close the sockets
        # Every pooled connection is dead: each call must still succeed.
        for i in range(pool.size + 1):
            storage.create("killed", PID, {"after": i})
        records, total = storage.get_all("killed", PID, count=True)
        assert total == pool.size + 2
        cursor.execute(
            "SELECT pid FROM pg_stat_activity WHERE application_name = %s", (pool.application_name,)
        )
        assert not set(pids) & {row[0] for row in cursor.fetchall()}
    finally:
        admin.close()


def test_pool_exhaustion_raises_backend_error_within_timeout(url):
    """C6: a checkout finding every connection busy gives up after ``timeout`` (how fast: bench/faults.py)."""
    pool = _pool(url, size=2, max_overflow=1, timeout=0.5)
    storage = PostgreSQLStorage(pool)
    held = [pool.checkout() for _ in range(3)]
    try:
        with hang_guard():
            # The message names the timeout that was applied.
            with pytest.raises(BackendError, match=r"pool exhausted: no connection within 0\.5s"):
                storage.collection_timestamp("exhausted", PID)
        # Every connection was still held: the call gave up on its own, none was freed for it.
        assert pool.checked_out == 3
    finally:
        for conn in held:
            pool.checkin(conn)
    assert pool.checked_out == 0
    assert isinstance(storage.collection_timestamp("exhausted", PID), int)
    pool.dispose()


def test_overflow_connections_are_closed_on_checkin(url):
    pool = _pool(url, size=1, max_overflow=2)
    conns = [pool.checkout() for _ in range(3)]
    for conn in conns:
        pool.checkin(conn)
    assert len(pool._idle) == 1
    assert pool.checked_out == 0
    pool.dispose()


def test_black_holed_server_fails_within_connect_timeout_without_leaking():
    """F4: each call fails on its connect timeout, not on a reply or a hang (how fast: bench/faults.py)."""
    hole = BlackHole()
    pool = _pool(f"postgresql://postgres@127.0.0.1:{hole.port}/test", size=2, max_overflow=0, connect_timeout=0.5)
    storage = PostgreSQLStorage(pool)
    try:
        for calls in range(1, 4):
            # The black hole holds every connection until teardown: only a client timeout ends the call.
            with hang_guard():
                with pytest.raises(BackendError) as raised:
                    storage.get_all("hole", PID, limit=10)
            assert isinstance(raised.value.original, TimeoutError)
            connections = hole.wait_for_connections(calls)
            assert len(connections) == calls  # one connection per call, no retry loop
            # The call's connection carried the handshake, got no answer, and was
            # closed by the client while the black hole still held it.
            assert connections[-1].sent()
        assert pool.checked_out == 0
        with hang_guard():
            assert storage.ping() is False
        connections = hole.wait_for_connections(4)
        assert len(connections) == 4 and all(held.sent() for held in connections)  # ping's was the 4th
        assert pool.checked_out == 0
    finally:
        hole.close()
        pool.dispose()


def test_statement_timeout_is_a_backend_error_and_the_connection_is_reused(url):
    """The server cancels a statement after ``statement_timeout`` (how fast: bench/faults.py)."""
    pool = _pool(url, size=1, max_overflow=0, statement_timeout=0.2)
    try:
        with pool.transaction() as cursor:
            cursor.execute("SHOW statement_timeout")
            assert cursor.fetchone() == ["200ms"]  # the setting reached the session
        with hang_guard():
            with pytest.raises(BackendError) as raised:
                with pool.transaction() as cursor:
                    # Sleeps far beyond the hang guard: only the server's cancel ends it in time.
                    cursor.execute("SELECT pg_sleep(60)")
        assert "57014" in str(raised.value.original)  # query_canceled
        with pool.transaction() as cursor:
            cursor.execute("SELECT 1")
            assert cursor.fetchone() == [1]
    finally:
        pool.dispose()


def test_read_only_database_fails_writes_with_backend_error_but_serves_reads(url):
    pool = _pool(url, size=1, max_overflow=0)
    storage = PostgreSQLStorage(pool)
    storage.initialize_schema()
    record = storage.create("readonly", PID, {"a": 1})
    conn = pool.checkout()
    conn.raw.cursor().execute("SET default_transaction_read_only = on")
    pool.checkin(conn)
    try:
        with pytest.raises(BackendError) as raised:
            storage.create("readonly", PID, {"a": 2})
        assert "25006" in str(raised.value.original)  # read_only_sql_transaction
        with pytest.raises(BackendError):
            storage.delete("readonly", PID, record["id"])
        assert storage.get("readonly", PID, record["id"]) == record
        assert storage.collection_timestamp("readonly", PID) == record["last_modified"]
        # A never-written partition is readable too; its timestamp is not persisted.
        assert abs(storage.collection_timestamp("readonly-new", PID) - time.time() * 1000) < 5000
    finally:
        pool.dispose()


def _session_pid(conn: Any) -> int:
    cursor = conn.raw.cursor()
    cursor.execute("SELECT pg_backend_pid()")
    return cursor.fetchone()[0]


def _forked_create(storage: PostgreSQLStorage, queue: Any) -> None:
    try:
        with storage.pool.transaction() as cursor:
            created = storage.create("forked", PID, {"child": True})
            cursor.execute("SELECT pg_backend_pid()")
            session = cursor.fetchone()[0]
        storage.pool.dispose()
        queue.put(("ok", created["id"], session))
    except Exception as exc:  # reported to the parent
        queue.put(("error", repr(exc), None))


def test_a_forked_child_never_uses_the_parents_connections(storage, pool):
    parent_record = storage.create("forked", PID, {"child": False})
    parent_pids = [_session_pid(conn) for conn in pool._idle]
    assert parent_pids
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    child = context.Process(target=_forked_create, args=(storage, queue))
    child.start()
    status, child_id, child_pid = queue.get(timeout=30)
    child.join(30)
    assert status == "ok", child_id
    assert child_pid not in parent_pids
    # The parent's sessions were neither used nor closed by the child.
    assert [_session_pid(conn) for conn in pool._idle] == parent_pids
    records, _ = storage.get_all("forked", PID, sorting=[Sort("child", 1)])
    assert [r["id"] for r in records] == [parent_record["id"], child_id]


@pytest.fixture
def cluster(url):
    with private_cluster() as cluster:
        yield cluster


def test_restart_and_outage_are_survived_without_restarting_the_app(cluster):
    """RELIABILITY F1/F3: 503-style BackendError while down, success right after, no app restart."""
    pool = _pool(cluster.url, size=3, max_overflow=0, connect_timeout=1.0)
    storage = PostgreSQLStorage(pool)
    storage.initialize_schema()
    for i in range(3):
        storage.create("restart", PID, {"before": i})
    assert len(pool._idle) >= 1
    cluster.ctl("restart")
    # Every pooled session died with the server; no call may fail because of it.
    for i in range(pool.size + 1):
        storage.create("restart", PID, {"after": i})
    assert storage.get_all("restart", PID, count=True)[1] == 3 + pool.size + 1
    cluster.ctl("stop")
    try:
        with hang_guard():
            assert storage.ping() is False
            with pytest.raises(BackendError) as raised:
                storage.get_all("restart", PID)
        # A stopped server refuses at once: no call waits for a timeout (how fast: bench/faults.py).
        assert isinstance(raised.value.original, ConnectionRefusedError)
        assert pool.checked_out == 0
    finally:
        cluster.ctl("start")
    assert storage.get_all("restart", PID, count=True)[1] == 3 + pool.size + 1
    pool.dispose()


def _hold_partition_lock(url: str, ready: Any) -> None:
    pool = Pool(url, size=1, max_overflow=0, application_name="cliquet-wsgi-test-killed")
    storage = PostgreSQLStorage(pool)
    with storage.transaction():
        storage.create("killed-writer", PID, {"half": "written"})
        ready.set()
        time.sleep(60)  # killed long before


def test_a_writer_killed_mid_transaction_leaves_nothing_and_releases_the_lock(url, storage):
    """RELIABILITY F9: no partial write; the next writer of the partition proceeds (in under 1 s: bench/faults.py)."""
    context = multiprocessing.get_context("spawn")
    ready = context.Event()
    writer = context.Process(target=_hold_partition_lock, args=(url, ready))
    writer.start()
    admin = _admin(url)
    try:
        assert ready.wait(30)
        # The writer really holds an advisory (partition) lock that the next create must wait for.
        cursor = admin.cursor()
        cursor.execute(
            "SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
            "WHERE l.locktype = 'advisory' AND l.granted AND a.application_name = %s "
            "AND a.datname = current_database()",
            ("cliquet-wsgi-test-killed",),
        )
        assert cursor.fetchone() == [1]
        os.kill(writer.pid, signal.SIGKILL)
        writer.join(10)
        # The pool's statement_timeout (30 s) is above the guard: a lock never released fails here.
        with hang_guard():
            record = storage.create("killed-writer", PID, {"after": True})
    finally:
        admin.close()
        if writer.is_alive():
            writer.kill()
    assert storage.get_all("killed-writer", PID, include_deleted=True) == ([record], None)


def test_limit_is_capped_by_max_fetch_size(pool):
    storage = PostgreSQLStorage(pool, {"storage_max_fetch_size": 3})
    storage.initialize_schema()
    for i in range(5):
        storage.create("capped", PID, {"n": i})
    assert [r["n"] for r in storage.get_all("capped", PID, limit=10)[0]] == [4, 3, 2]
    assert [r["n"] for r in storage.get_all("capped", PID)[0]] == [4, 3, 2]
    assert storage.get_all("capped", PID, limit=2, count=True)[1] == 5
    storage.delete_all("capped", PID, with_deleted=False)


# -- transactions shared by storage and permission ---------------------------------------


def test_rollback_leaves_neither_records_nor_aces(storage, permission):
    assert storage.pool is permission.pool
    with pytest.raises(RuntimeError):
        with storage.transaction():
            record = storage.create("tx", PID, {"a": 1})
            permission.add_principal_to_ace(f"/tx/{record['id']}", "write", "alice")
            with permission.transaction():  # nested: joins the outer one
                permission.add_user_principal("alice", "group:tx")
            raise RuntimeError("request failed")
    assert storage.get_all("tx", PID, include_deleted=True, count=True) == ([], 0)
    assert permission.object_permissions(f"/tx/{record['id']}") == {}
    assert permission.user_principals("alice") == set()


def test_commit_keeps_records_and_aces_together(storage, permission):
    with storage.transaction():
        record = storage.create("tx", PID, {"a": 1})
        permission.add_principal_to_ace(f"/tx/{record['id']}", "write", "alice")
    assert storage.get("tx", PID, record["id"]) == record
    assert permission.object_permissions(f"/tx/{record['id']}") == {"write": {"alice"}}


def test_sql_error_inside_a_swallowing_caller_never_commits(storage, pool):
    with pytest.raises(BackendError, match="aborted"):
        with storage.transaction():
            storage.create("tx", PID, {"a": 1})
            try:
                with pool.transaction() as cursor:
                    cursor.execute("SELECT 1/0")
            except BackendError:
                pass
    assert storage.get_all("tx", PID, count=True) == ([], 0)


# -- concurrency (RELIABILITY C1, C2) ------------------------------------------------------

PROCESSES, PER_PROCESS = 8, 150


def _writer(url: str, cid: str, count: int, queue: Any) -> None:
    pool = Pool(url, size=1, max_overflow=0, timeout=30.0, application_name="cliquet-wsgi-test-writer")
    storage = PostgreSQLStorage(pool)
    done = []
    try:
        for i in range(count):
            record = storage.create(cid, PID, {"n": i})
            done.append((record["id"], record["last_modified"]))
        queue.put(("ok", done))
    except Exception as exc:  # reported to the parent, which fails the test
        queue.put(("error", repr(exc)))
    finally:
        pool.dispose()


def test_processes_creating_concurrently_with_a_since_poller(url, storage):
    cid = "c2"
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    workers = [context.Process(target=_writer, args=(url, cid, PER_PROCESS, queue)) for _ in range(PROCESSES)]
    for worker in workers:
        worker.start()
    seen: dict[str, int] = {}
    since = 0
    polls = 0

    def poll() -> None:
        nonlocal since, polls
        records, _ = storage.get_all(
            cid, PID, filters=[Filter("last_modified", since, COMPARISON.GT)],
            sorting=[Sort("last_modified", 1)], include_deleted=True,
        )
        polls += 1
        for record in records:
            assert record["id"] not in seen
            seen[record["id"]] = record["last_modified"]
        if records:
            assert records[-1]["last_modified"] > since
            since = records[-1]["last_modified"]

    results = []
    deadline = time.monotonic() + 240
    while len(results) < PROCESSES and time.monotonic() < deadline:
        poll()
        while not queue.empty():
            results.append(queue.get())
    for worker in workers:
        worker.join(timeout=30)
    poll()  # the last commits; it uses the same `since` cursor, so a miss stays missed
    assert [status for status, _ in results] == ["ok"] * PROCESSES, results
    committed = {object_id: stamp for _, done in results for object_id, stamp in done}
    assert len(committed) == PROCESSES * PER_PROCESS
    assert seen == committed  # 0 missed, nothing invented
    assert len(set(committed.values())) == len(committed)  # distinct timestamps
    for _, done in results:
        stamps = [stamp for _, stamp in done]
        assert stamps == sorted(stamps)
    assert storage.collection_timestamp(cid, PID) == max(committed.values())
    assert polls > 2


def test_concurrent_conditional_updates_exactly_one_wins(url):
    contenders = 20
    pool = _pool(url, size=contenders, max_overflow=0, timeout=20.0)
    storage = PostgreSQLStorage(pool)
    storage.initialize_schema()
    record = storage.create("c1", PID, {"id": "contended", "winner": None})
    try:
        for round_ in range(3):
            barrier = threading.Barrier(contenders)
            expected = storage.get("c1", PID, "contended")["last_modified"]
            outcomes: list[tuple[str, int]] = []

            def contend(n: int) -> None:
                barrier.wait()
                try:
                    with storage.transaction():
                        current = storage.get("c1", PID, "contended", for_update=True)
                        if current["last_modified"] != expected:  # If-Match failed: 412
                            outcomes.append(("412", n))
                            return
                        storage.update("c1", PID, "contended", {"winner": n})
                        outcomes.append(("200", n))
                except Exception as exc:  # noqa: BLE001 - counted as a failure below
                    outcomes.append((repr(exc), n))

            threads = [threading.Thread(target=contend, args=(n,)) for n in range(contenders)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(30)
            statuses = sorted(status for status, _ in outcomes)
            assert statuses == ["200"] + ["412"] * (contenders - 1), outcomes
            winner = next(n for status, n in outcomes if status == "200")
            stored = storage.get("c1", PID, "contended")
            assert stored["winner"] == winner
            assert stored["last_modified"] > expected
    finally:
        storage.delete_all("c1", PID, with_deleted=False)
        pool.dispose()
    assert record["id"] == "contended"


def test_concurrent_create_of_one_id_is_a_unicity_error_not_a_crash(url):
    from cliquet_wsgi.storage import UnicityError

    contenders = 10
    pool = _pool(url, size=contenders, max_overflow=0, timeout=20.0)
    storage = PostgreSQLStorage(pool)
    storage.initialize_schema()
    barrier = threading.Barrier(contenders)
    outcomes: list[str] = []

    def create() -> None:
        barrier.wait()
        try:
            storage.create("c3", PID, {"id": "same"})
            outcomes.append("created")
        except UnicityError as exc:
            outcomes.append(f"unicity:{exc.field}")
        except Exception as exc:  # noqa: BLE001
            outcomes.append(repr(exc))

    threads = [threading.Thread(target=create) for _ in range(contenders)]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        assert sorted(outcomes) == ["created"] + ["unicity:id"] * (contenders - 1)
    finally:
        storage.delete_all("c3", PID, with_deleted=False)
        pool.dispose()


# -- migrations ---------------------------------------------------------------------------


def test_initialize_schema_on_an_empty_database_concurrently_then_idempotently(url):
    name = f"cliquet_migrate_test_{uuid.uuid4().hex[:12]}"
    admin = _admin(url)
    admin.cursor().execute(f'CREATE DATABASE "{name}"')
    db_url = url.rsplit("/", 1)[0] + "/" + name
    pools = [_pool(db_url, size=1, max_overflow=0) for _ in range(4)]
    try:
        lines: list[list[str]] = []
        errors: list[BaseException] = []
        barrier = threading.Barrier(len(pools))

        def migrate(pool: Pool) -> None:
            barrier.wait()
            try:
                lines.append(PostgreSQLStorage(pool).initialize_schema())
            except BaseException as exc:  # noqa: BLE001
                errors.append(exc)

        threads = [threading.Thread(target=migrate, args=(p,)) for p in pools]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        assert errors == []
        assert sorted(lines) == [["storage: created schema version 2"]] + [
            ["storage: schema already at version 2"]
        ] * 3
        pool = pools[0]
        assert PostgreSQLPermission(pool).initialize_schema() == ["permission: created schema version 1"]
        from cliquet_wsgi.backends.postgresql import PostgreSQLCache

        assert PostgreSQLCache(pool).initialize_schema() == ["cache: created schema version 1"]
        assert PostgreSQLPermission(pool).initialize_schema() == ["permission: schema already at version 1"]
        with pool.transaction() as cursor:
            cursor.execute("SELECT name, value FROM metadata ORDER BY name")
            assert list(cursor.fetchall()) == [
                ["cache_schema_version", "1"],
                ["permission_schema_version", "1"],
                ["storage_schema_version", "2"],
            ]
        storage = PostgreSQLStorage(pool)
        assert storage.create("m", PID, {"id": "x"})["id"] == "x"
    finally:
        for pool in pools:
            pool.dispose()
        admin.cursor().execute(f'DROP DATABASE "{name}" WITH (FORCE)')
        admin.close()


def _live_counts(pool: Pool) -> dict[tuple[str, str], tuple[int, int]]:
    """``{partition: (kept live_records, counted live records)}`` of every partition with a row or a record."""
    with pool.transaction() as cursor:
        cursor.execute(
            "SELECT p.collection_id, p.parent_id, coalesce(t.live_records, 0), "
            "(SELECT count(*) FROM records r WHERE r.collection_id = p.collection_id "
            "AND r.parent_id = p.parent_id AND NOT r.deleted) "
            "FROM (SELECT collection_id, parent_id FROM records UNION SELECT collection_id, parent_id FROM timestamps) p "
            "LEFT JOIN timestamps t USING (collection_id, parent_id)"
        )
        return {(c, p): (kept, counted) for c, p, kept, counted in cursor.fetchall()}


def test_live_record_counts_follow_every_write(storage, pool):
    """Schema 2: the triggers' count equals count(*) after any sequence of writes, and listings report it."""
    import random

    from cliquet_wsgi.storage import RecordNotFoundError

    rng = random.Random(20261128)
    partitions = [("count-a", "alice"), ("count-a", "bob"), ("count-b", "alice")]
    ids = [f"r{n}" for n in range(12)]
    for step in range(400):
        collection, parent = rng.choice(partitions)
        object_id = rng.choice(ids)
        action = rng.choice(["create", "create", "update", "delete", "delete-hard", "delete_all", "purge",
                             "rollback"])
        try:
            if action == "create":
                storage.create(collection, parent, {"id": object_id, "n": step})
            elif action == "update":
                storage.update(collection, parent, object_id, {"n": step})
            elif action == "delete":
                storage.delete(collection, parent, object_id)
            elif action == "delete-hard":
                storage.delete(collection, parent, object_id, with_deleted=False)
            elif action == "delete_all":
                if rng.random() < 0.2:
                    storage.delete_all(collection, parent, filters=[Filter("n", step // 2, COMPARISON.LT)])
            elif action == "purge":
                storage.purge_deleted(collection, parent)
            else:
                with pytest.raises(RuntimeError):
                    with storage.transaction():
                        storage.create(collection, parent, {"n": step})
                        raise RuntimeError("rolled back with its count")
        except (UnicityError, RecordNotFoundError):
            pass
        if step % 20 == 0 or action in ("delete_all", "rollback"):
            counts = _live_counts(pool)
            assert all(kept == counted for kept, counted in counts.values()), (step, action, counts)
    for collection, parent in partitions:
        _, total = storage.get_all(collection, parent, limit=1, count=True)
        assert total == _live_counts(pool)[(collection, parent)][1]
        filtered = storage.get_all(collection, parent, filters=[Filter("n", 0, COMPARISON.GT)], limit=1, count=True)
        with pool.transaction() as cursor:
            cursor.execute("SELECT count(*) FROM records WHERE collection_id = %s AND parent_id = %s "
                           "AND NOT deleted AND (data->>'n')::int > 0", (collection, parent))
            assert filtered[1] == cursor.fetchone()[0]


def test_migration_2_counts_existing_records(url):
    """A version-1 database with records gets exact counts, and triggers, when migrated."""
    from cliquet_wsgi.backends.postgresql.schema import MIGRATIONS

    name = f"cliquet_pg_migrate2_{uuid.uuid4().hex[:8]}"
    admin = _admin(url)
    admin.cursor().execute(f'CREATE DATABASE "{name}"')
    pool = _pool(url.rsplit("/", 1)[0] + "/" + name, size=1, max_overflow=0)
    try:
        with pool.transaction() as cursor:
            for statement in MIGRATIONS["storage"][0]:
                cursor.execute(statement)
            cursor.execute("CREATE TABLE metadata (name TEXT PRIMARY KEY, value TEXT NOT NULL)")
            cursor.execute("INSERT INTO metadata VALUES ('storage_schema_version', '1')")
            cursor.execute(
                "INSERT INTO records (collection_id, parent_id, id, last_modified, deleted) "
                "SELECT 'old', 'p' || (n % 3), 'r' || n, n, n % 4 = 0 FROM generate_series(1, 100) AS n"
            )
            # One partition written before timestamps existed for it.
            cursor.execute("INSERT INTO timestamps VALUES ('old', 'p0', 100), ('old', 'p1', 100)")
        storage = PostgreSQLStorage(pool)
        assert storage.initialize_schema() == ["storage: upgraded schema from version 1 to 2"]
        with pool.transaction() as cursor:
            cursor.execute("SELECT reloptions FROM pg_class WHERE relname = 'records'")
            # Statistics follow fast-growing collections (analysed after 1 % of changes, not 10 %).
            assert cursor.fetchone() == [["autovacuum_analyze_scale_factor=0.01", "autovacuum_analyze_threshold=1000"]]
        counts = _live_counts(pool)
        assert counts == {("old", "p0"): (25, 25), ("old", "p1"): (25, 25), ("old", "p2"): (25, 25)}
        storage.create("old", "p2", {"id": "new"})
        storage.delete("old", "p0", "r3")
        assert _live_counts(pool)[("old", "p2")] == (26, 26)
        assert _live_counts(pool)[("old", "p0")] == (24, 24)
    finally:
        pool.dispose()
        admin.cursor().execute(f'DROP DATABASE "{name}" WITH (FORCE)')
        admin.close()


def test_since_and_newest_first_pages_are_index_scans(storage, pool):
    with pool.transaction() as cursor:
        cursor.execute(
            "INSERT INTO records (collection_id, parent_id, id, last_modified, data) "
            "SELECT 'plan', '', 'r' || n, n, '{}'::jsonb FROM generate_series(1, 20000) AS n"
        )
        cursor.execute("ANALYZE records")
    spied: list[str] = []
    original = Cursor.execute

    def spy(self: Any, operation: str, args: Any = ()) -> Any:
        if operation.startswith("SELECT coalesce(json_agg"):
            spied.append((operation, list(args)))
        return original(self, operation, args)

    Cursor.execute = spy
    try:
        storage.get_all("plan", PID, limit=10)
        storage.get_all(
            "plan", PID, filters=[Filter("last_modified", 19990, COMPARISON.GT)],
            sorting=[Sort("last_modified", 1)], limit=10, include_deleted=True,
        )
    finally:
        Cursor.execute = original
    assert len(spied) == 2
    for sql, args in spied:
        with pool.transaction() as cursor:
            cursor.execute("EXPLAIN " + sql, args)
            plan = "\n".join(row[0] for row in cursor.fetchall())
        assert "Index" in plan and "idx_records" in plan, plan
        assert "Seq Scan" not in plan, plan


# -- SQL hygiene and reference semantics (RELIABILITY S7, I10) ------------------------------

MARK = "Zq9"
_names = st.lists(st.text(min_size=0, max_size=12).map(lambda s: MARK + s), min_size=1, max_size=3).map(".".join)
# A small pool, so that filters hit equal, smaller and larger values of every type.
_scalars = st.sampled_from(
    [None, True, False, -1, 0, 1, 1.0, 2, 0.5, "", "a", "A", "ab", "b", "a*b", "a%", "_", "\\", "1"]
)
_values = st.one_of(
    _scalars, _scalars, _scalars,
    st.lists(_scalars, max_size=3),
    st.dictionaries(st.sampled_from(["x", "y"]), _scalars, max_size=2),
)
_ops = st.sampled_from(list(COMPARISON))


def _filter_value(op: COMPARISON, present: list[Any]) -> st.SearchStrategy:
    # Values taken from the stored records make equality boundaries likely.
    scalars = st.one_of(_scalars, st.sampled_from(present)) if present else _scalars
    if op in (COMPARISON.IN, COMPARISON.EXCLUDE, COMPARISON.CONTAINS, COMPARISON.CONTAINS_ANY):
        return st.lists(scalars, max_size=3)
    if op is COMPARISON.HAS:
        return st.booleans()
    return scalars


@st.composite
def _filters(draw: Any, fields: list[str], present: list[Any]) -> Filter:
    op = draw(_ops)
    return Filter(draw(st.sampled_from(fields)), draw(_filter_value(op, present)), op)


def _leaves(value: Any) -> list[Any]:
    if isinstance(value, dict):
        return [leaf for v in value.values() for leaf in _leaves(v)]
    if isinstance(value, list):
        return [leaf for v in value for leaf in _leaves(v)]
    return [value]


_SPY_LOCK = threading.Lock()


def _walk_pages(storage: PostgreSQLStorage, filters: list[Filter], sorting: list[Sort]) -> list[str] | None:
    """Ids met by keyset pagination (2 per page) with rules built as the resources layer does.

    ``None`` when a sort value is not an orderable scalar of one type per
    field: the rule language cannot express "after a missing value".
    """
    keys = list(sorting or filtering.DEFAULT_SORT)
    if not any(key.field == "id" for key in keys):
        keys.append(Sort("id", 1))
    everything, _ = storage.get_all("hyp", PID, filters=filters, sorting=sorting)
    for key in keys:
        values = [filtering.resolve(record, key.field) for record in everything]
        if any(v is filtering.MISSING or filtering.rank(v) not in (1, 2, 3) for v in values):
            return None
        if len({filtering.rank(v) for v in values}) > 1:
            return None
    seen: list[str] = []
    rules: list[list[Filter]] = []
    for _ in range(len(everything) + 1):
        page, _ = storage.get_all("hyp", PID, filters=filters, sorting=sorting, pagination_rules=rules, limit=2)
        if not page:
            return seen
        seen.extend(record["id"] for record in page)
        last = page[-1]
        rules = [
            [Filter(key.field, filtering.resolve(last, key.field), COMPARISON.EQ) for key in keys[:k]]
            + [Filter(keys[k].field, filtering.resolve(last, keys[k].field),
                      COMPARISON.GT if keys[k].direction > 0 else COMPARISON.LT)]
            for k in range(len(keys))
        ]
    raise AssertionError("pagination does not end")


@settings(
    max_examples=int(os.environ.get("CLIQUET_TEST_HYPOTHESIS_EXAMPLES", "100")),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(data=st.data())
def test_field_names_are_bound_never_in_sql_and_results_match_the_reference(storage, data):
    fields = data.draw(st.lists(_names, min_size=1, max_size=3, unique=True), label="fields")
    candidates = fields + ["last_modified", "id"]
    records = data.draw(
        # PostgreSQL cannot store U+0000 (a BackendError): only filters and sorts get such names.
        st.lists(
            st.dictionaries(st.sampled_from([f for f in fields if "\x00" not in f] + ["other"]), _values, max_size=3),
            min_size=3, max_size=8,
        ),
        label="records",
    )
    present = [leaf for record in records for leaf in _leaves(record)]
    filters = data.draw(st.lists(_filters(candidates, present), max_size=2), label="filters")
    sorting = data.draw(
        st.lists(st.builds(Sort, st.sampled_from(candidates), st.sampled_from([1, -1])), max_size=2),
        label="sorting",
    )
    storage.flush()
    stored = []
    for fields_values in records:
        record: dict[str, Any] = {}
        for name, value in fields_values.items():
            # Dotted names are nested objects, as a client would send them.
            target = record
            *parents, leaf = name.split(".")
            for parent in parents:
                target = target.setdefault(parent, {}) if isinstance(target.get(parent, {}), dict) else {}
            target[leaf] = value
        stored.append(storage.create("hyp", PID, record))
    statements: list[str] = []
    original = Cursor.execute

    def spy(self: Any, operation: str, args: Any = ()) -> Any:
        statements.append(operation)
        return original(self, operation, args)

    with _SPY_LOCK:
        Cursor.execute = spy
        try:
            got, total = storage.get_all("hyp", PID, filters=filters, sorting=sorting, count=True)
            walked = _walk_pages(storage, filters, sorting)
            storage.delete_all("hyp", PID, filters=filters)
        finally:
            Cursor.execute = original
    assert statements
    for sql in statements:
        assert MARK not in sql
    expected = filtering.apply(stored, filters, sorting)
    assert [r["id"] for r in got] == [r["id"] for r in expected]
    assert got == expected
    assert total == len(expected)
    if walked is not None:
        assert walked == [r["id"] for r in expected]
    left, _ = storage.get_all("hyp", PID)
    assert sorted(r["id"] for r in left) == sorted(
        r["id"] for r in stored if r["id"] not in {e["id"] for e in expected}
    )


def test_like_escapes_percent_underscore_and_backslash(storage):
    for value in ["100%", "1000", "a_b", "axb", "back\\slash", "backslash", "Star"]:
        storage.create("like", PID, {"v": value})

    def like(needle: str) -> list[str]:
        records, _ = storage.get_all(
            "like", PID, filters=[Filter("v", needle, COMPARISON.LIKE)], sorting=[Sort("v", 1)]
        )
        return [r["v"] for r in records]

    assert like("0%") == ["100%"]
    assert like("a_b") == ["a_b"]
    assert like("k\\s") == ["back\\slash"]
    assert like("s*r") == ["Star"]
    assert like("STAR") == ["Star"]


def test_a_page_read_out_of_order_from_the_aggregate_is_put_back_in_order(storage, monkeypatch):
    """SQL does not promise that json_agg() reads its subquery in order: positions decide."""
    created = [storage.create("shuffled", PID, {"n": n}) for n in range(5)]
    original = Cursor.fetchone

    def reversed_page(self: Any) -> Any:
        row = original(self)
        return [list(reversed(row[0])), *row[1:]]

    monkeypatch.setattr(Cursor, "fetchone", reversed_page)
    records, total = storage.get_all("shuffled", PID, sorting=[Sort("n", 1)], count=True)
    assert [r["n"] for r in records] == [0, 1, 2, 3, 4]
    assert records == created and total == 5


def test_a_create_refused_for_a_live_id_writes_nothing_not_even_the_timestamp(storage):
    record = storage.create("dup", PID, {"a": 1})
    deleted = storage.create("dup", PID, {"a": 0})
    storage.delete("dup", PID, deleted["id"])
    before = storage.collection_timestamp("dup", PID)
    with storage.transaction():  # the caller catches the error and commits the rest
        with pytest.raises(UnicityError) as raised:
            storage.create("dup", PID, {"id": record["id"], "a": 2})
    assert (raised.value.field, raised.value.record) == ("id", record)
    assert storage.collection_timestamp("dup", PID) == before
    assert storage.get("dup", PID, record["id"]) == record
    # A tombstone's id is free again.
    revived = storage.create("dup", PID, {"id": deleted["id"], "a": 3})
    assert revived["last_modified"] > before
    assert storage.get("dup", PID, deleted["id"]) == revived


def test_id_lists_are_one_parameter_whatever_their_length(storage, pool):
    """A shareable listing may name more readable ids than PostgreSQL takes parameters (65535)."""
    kept = [storage.create("many", PID, {"n": n}) for n in range(3)]
    wanted = [record["id"] for record in kept[:2]] + [f"absent-{n}" for n in range(70000)] + [1, "nul\x00"]
    statements: list[tuple[str, int]] = []
    original = Cursor.execute

    def spy(self: Any, operation: str, args: Any = ()) -> Any:
        statements.append((operation, len(args)))
        return original(self, operation, args)

    with _SPY_LOCK:
        Cursor.execute = spy
        try:
            records, total = storage.get_all("many", PID, filters=[Filter("id", wanted, COMPARISON.IN)],
                                             sorting=[Sort("n", 1)], count=True)
            short, _ = storage.get_all("many", PID, filters=[Filter("id", wanted[:1], COMPARISON.IN)],
                                       sorting=[Sort("n", 1)], count=True)
            others, _ = storage.get_all("many", PID, filters=[Filter("id", wanted, COMPARISON.EXCLUDE)])
            in_data, _ = storage.get_all("many", PID, filters=[Filter("n", list(range(1, 70000)), COMPARISON.IN)],
                                         sorting=[Sort("n", 1)])
        finally:
            Cursor.execute = original
    assert (records, total) == (kept[:2], 2)
    assert short == kept[:1]
    assert others == [kept[2]]
    assert in_data == kept[1:]
    listings = [(sql, count) for sql, count in statements if sql.startswith("SELECT coalesce(json_agg")]
    assert len(listings) == 4 and all(count < 40 for _, count in listings)
    assert listings[0][0] == listings[1][0]  # the same text: one prepared statement for any length
