"""How long a backend call takes to give up when its server is gone, busy or silent.

The tests (``tests/backends/test_sqlite.py``, ``test_postgresql.py``,
``test_memcached.py``) prove *that* each of these calls gives up instead of
hanging, with evidence that does not depend on the machine's speed; this
script measures *how fast*, against the RELIABILITY goals:

* SQLite, busy writer: ``create()`` while another connection holds the write
  lock gives up near ``storage_pool_timeout`` (0.5 s): within ±10 %.
* PostgreSQL (RELIABILITY C6, F3, F4, F9):
  C6 ``collection_timestamp()`` with every pooled connection checked out
  gives up within the pool ``timeout`` (0.5 s) + 10 %;
  F3 ``ping()`` of a stopped server (a closed loopback port: what a stopped
  local server looks like to a client) is False within ``connect_timeout``
  (0.5 s) + 10 %;
  F4 ``get_all()`` against a black hole (accepts, never answers) fails
  within ``connect_timeout`` (0.5 s) + 10 %, and no connection leaks;
  F4 a statement slower than ``statement_timeout`` (0.5 s) is cancelled
  within it + 10 %;
  F9 after a writer is killed (SIGKILL) inside a transaction, the next
  writer of its partition proceeds in under 1 s.
  F1 (PostgreSQL restarted) needs control of the server's cluster: it is
  not measured here (``test_postgresql.py`` keeps it).
* memcached (RELIABILITY C6, F5, F6):
  C6 with the node's only connection busy, a call gives up within
  ``cache_pool_timeout`` (0.5 s) + 10 %;
  F5 after the node is killed, each call until the node is declared dead
  takes at most ``cache_connect_timeout_seconds`` (0.5 s) + 10 %, and so
  does ``ping()``; once dead, a call costs "about 0": at most 1 ms;
  F6 against a black hole, no call exceeds ``cache_timeout_seconds`` (0.3 s)
  x (``cache_retry_attempts`` (1) + 1); once dead, at most 1 ms per call.

    python3 bench/faults.py [--repeat 5] [--postgresql-url URL] [--memcached PATH]

Each scenario runs ``--repeat`` times on fresh backends (built as the tests
build them); the table gives the median and the maximum in ms (for the
"per call" rows, the mean of 1000 calls of each repetition) and "ok" or
"MISSED". The exit status is 1 when a goal is missed or a call behaved
wrongly (no error where one is expected, a leaked connection). PostgreSQL
rows that need a server are skipped, with the reason, when nothing answers at
``--postgresql-url`` (``CLIQUET_TEST_POSTGRESQL_URL``, else the tests' server);
they run in a database of their own, dropped at the end. memcached F5 rows are
skipped when no ``memcached`` binary is found (they start and kill their own
node); the others only need ``pymemcache``. Black holes are
:class:`cliquet_wsgi.testing.faults.BlackHole`, as in the tests.
"""
from __future__ import annotations

import argparse
import logging
import multiprocessing
import os
import shutil
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Callable
from urllib.parse import urlsplit

from cliquet_wsgi.errors import BackendError
from cliquet_wsgi.registry import build_backend
from cliquet_wsgi.settings import load_settings
from cliquet_wsgi.testing import POSTGRESQL_URL, tcp_reachable
from cliquet_wsgi.testing.faults import BlackHole

#: The timeouts configured in the scenarios, in seconds.
POOL_TIMEOUT = 0.5
CONNECT_TIMEOUT = 0.5
STATEMENT_TIMEOUT = 0.5
#: Calls averaged in a "per call" row.
CALLS_PER_SAMPLE = 1000
#: memcached settings of F5 (killed node); a long dead_timeout keeps the node dead while measured.
F5_SETTINGS = {
    "cache_connect_timeout_seconds": CONNECT_TIMEOUT,
    "cache_timeout_seconds": 0.5,
    "cache_retry_attempts": 2,
    "cache_retry_timeout_seconds": 0.2,
    "cache_dead_timeout_seconds": 600,
}
#: memcached settings of F6 (black-holed node), those of the F6 test.
F6_SETTINGS = {
    "cache_connect_timeout_seconds": 0.3,
    "cache_timeout_seconds": 0.3,
    "cache_retry_attempts": 1,
    "cache_retry_timeout_seconds": 0.2,
    "cache_dead_timeout_seconds": 600,
}


class ScenarioError(Exception):
    """A call did not behave as the scenario expects (its timing would mean nothing)."""


def expect(condition: bool, message: str) -> None:
    if not condition:
        raise ScenarioError(message)


def timed_ms(call: Callable[[], Any]) -> tuple[Any, float]:
    """``(what call() returned or the exception it raised, milliseconds)``."""
    started = time.perf_counter()
    try:
        result = call()
    except Exception as exc:  # the scenarios check the type
        result = exc
    return result, (time.perf_counter() - started) * 1000


def per_call_ms(call: Callable[[], Any]) -> float:
    """Mean milliseconds of ``CALLS_PER_SAMPLE`` calls of ``call()``."""
    started = time.perf_counter()
    for _ in range(CALLS_PER_SAMPLE):
        call()
    return (time.perf_counter() - started) * 1000 / CALLS_PER_SAMPLE


@dataclass
class Goal:
    """Every sample must lie in ``[low_ms, high_ms]``."""

    text: str
    high_ms: float
    low_ms: float = 0.0


@dataclass
class Row:
    """One scenario: its samples in ms, its goal, or why it was not measured."""

    name: str
    goal: Goal
    samples: list[float] = field(default_factory=list)
    error: str | None = None

    def verdict(self) -> str:
        if self.error:
            return "ERROR"
        if not self.samples:
            return "-"
        within = self.goal.low_ms <= min(self.samples) and max(self.samples) <= self.goal.high_ms
        return "ok" if within else "MISSED"


def measure(rows: list[Row], name: str, goal: Goal, repeat: int, scenario: Callable[[], float | list[float]]) -> None:
    """Run ``scenario`` ``repeat`` times into a new row; it returns one sample or several."""
    row = Row(name, goal)
    rows.append(row)
    try:
        for _ in range(repeat):
            samples = scenario()
            row.samples.extend(samples if isinstance(samples, list) else [samples])
    except ScenarioError as exc:
        row.error = str(exc)
    print(f"  measured: {name}", file=sys.stderr, flush=True)


def within_10_percent(timeout: float, label: str) -> Goal:
    return Goal(f"<= {label} +10% ({timeout * 1100:.0f})", timeout * 1100)


def closed_port() -> int:
    """A loopback port nothing listens on (it was free a moment ago)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# -- SQLite ----------------------------------------------------------------------------


def sqlite_rows(rows: list[Row], repeat: int, tmp: str) -> None:
    def busy_writer() -> float:
        path = os.path.join(tmp, f"busy-{uuid.uuid4().hex[:8]}.sqlite")
        settings = load_settings({"storage_url": f"sqlite:///{path}", "storage_pool_timeout": POOL_TIMEOUT}, environ={})
        storage = build_backend("storage", settings)
        storage.initialize_schema()
        blocker = sqlite3.connect(path, isolation_level=None)
        blocker.execute("BEGIN IMMEDIATE")
        try:
            outcome, ms = timed_ms(lambda: storage.create("c", "p", {}))
            expect(isinstance(outcome, BackendError) and "locked" in str(outcome), f"expected 'locked', got {outcome!r}")
            return ms
        finally:
            blocker.execute("ROLLBACK")
            blocker.close()
            storage.close()

    goal = Goal(f"pool_timeout ±10% ({POOL_TIMEOUT * 900:.0f}-{POOL_TIMEOUT * 1100:.0f})",
                POOL_TIMEOUT * 1100, POOL_TIMEOUT * 900)
    measure(rows, f"sqlite busy writer gives up (pool_timeout {POOL_TIMEOUT:g} s)", goal, repeat, busy_writer)


# -- PostgreSQL ----------------------------------------------------------------------------


def _hold_partition_lock(url: str, partition: str, ready: Any) -> None:
    """Child process: write in a transaction (taking the partition lock), say so, wait to be killed."""
    from cliquet_wsgi.backends.postgresql import PostgreSQLStorage
    from cliquet_wsgi.backends.postgresql.pool import Pool

    pool = Pool(url, size=1, max_overflow=0, application_name="cliquet-bench-faults-killed")
    storage = PostgreSQLStorage(pool)
    with storage.transaction():
        storage.create(partition, "", {"half": "written"})
        ready.set()
        time.sleep(300)  # killed long before


def postgresql_rows(rows: list[Row], notes: list[str], repeat: int, url: str) -> None:
    try:
        import pg8000.dbapi

        from cliquet_wsgi.backends.postgresql import PostgreSQLStorage
        from cliquet_wsgi.backends.postgresql.pool import Pool, parse_url
    except ImportError as exc:
        notes.append(f"PostgreSQL skipped: the driver is not installed ({exc})")
        return

    def pool(target: str, **options: Any) -> Pool:
        options.setdefault("application_name", "cliquet-bench-faults")
        return Pool(target, **options)

    # Rows that need no server: a closed port and a black hole stand for it.
    def stopped_server() -> float:
        storage = PostgreSQLStorage(pool(f"postgresql://postgres@127.0.0.1:{closed_port()}/test",
                                         size=1, max_overflow=0, connect_timeout=CONNECT_TIMEOUT))
        outcome, ms = timed_ms(storage.ping)
        expect(outcome is False, f"ping() of a stopped server returned {outcome!r}")
        return ms

    measure(rows, f"F3 postgresql stopped: ping() False (connect_timeout {CONNECT_TIMEOUT:g} s)",
            within_10_percent(CONNECT_TIMEOUT, "connect_timeout"), repeat, stopped_server)

    hole = BlackHole()
    try:
        def black_holed() -> float:
            black_holed_pool = pool(f"postgresql://postgres@127.0.0.1:{hole.port}/test", size=2, max_overflow=0,
                                    connect_timeout=CONNECT_TIMEOUT)
            storage = PostgreSQLStorage(black_holed_pool)
            outcome, ms = timed_ms(lambda: storage.get_all("hole", "", limit=10))
            expect(isinstance(outcome, BackendError), f"expected a BackendError, got {outcome!r}")
            expect(black_holed_pool.checked_out == 0, "a connection leaked")
            return ms

        measure(rows, f"F4 postgresql black-holed: get_all fails (connect_timeout {CONNECT_TIMEOUT:g} s)",
                within_10_percent(CONNECT_TIMEOUT, "connect_timeout"), repeat, black_holed)
    finally:
        hole.close()

    notes.append("PostgreSQL F1 (server restarted) not measured: it needs control of the cluster "
                 "(tests/backends/test_postgresql.py keeps it)")
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 5432
    if not tcp_reachable(host, port):
        notes.append(f"PostgreSQL C6, F4 statement_timeout and F9 skipped: nothing listens on {host}:{port} ({url})")
        return
    name = f"cliquet_bench_faults_{uuid.uuid4().hex[:12]}"
    params = parse_url(url)
    admin = pg8000.dbapi.connect(**params)
    admin.autocommit = True
    admin.cursor().execute(f'CREATE DATABASE "{name}"')
    db_url = url.rsplit("/", 1)[0] + "/" + name
    try:
        def exhausted() -> float:
            exhausted_pool = pool(db_url, size=2, max_overflow=1, timeout=POOL_TIMEOUT)
            storage = PostgreSQLStorage(exhausted_pool)
            held = [exhausted_pool.checkout() for _ in range(3)]
            try:
                outcome, ms = timed_ms(lambda: storage.collection_timestamp("exhausted", ""))
                expect(isinstance(outcome, BackendError) and "pool exhausted" in str(outcome),
                       f"expected 'pool exhausted', got {outcome!r}")
                return ms
            finally:
                for conn in held:
                    exhausted_pool.checkin(conn)
                exhausted_pool.dispose()

        measure(rows, f"C6 postgresql pool exhausted: call gives up (timeout {POOL_TIMEOUT:g} s)",
                within_10_percent(POOL_TIMEOUT, "timeout"), repeat, exhausted)

        def slow_statement() -> float:
            slow_pool = pool(db_url, size=1, max_overflow=0, statement_timeout=STATEMENT_TIMEOUT)
            try:
                with slow_pool.transaction() as cursor:  # a warm connection: only the statement is timed
                    cursor.execute("SELECT 1")

                def sleep() -> None:
                    with slow_pool.transaction() as cursor:
                        cursor.execute("SELECT pg_sleep(30)")

                outcome, ms = timed_ms(sleep)
                expect(isinstance(outcome, BackendError) and "57014" in str(outcome.original),
                       f"expected query_canceled (57014), got {outcome!r}")
                return ms
            finally:
                slow_pool.dispose()

        measure(rows, f"F4 postgresql slow statement cancelled (statement_timeout {STATEMENT_TIMEOUT:g} s)",
                within_10_percent(STATEMENT_TIMEOUT, "statement_timeout"), repeat, slow_statement)

        writer_pool = pool(db_url, size=2, max_overflow=0)
        storage = PostgreSQLStorage(writer_pool)
        storage.initialize_schema()
        context = multiprocessing.get_context("spawn")

        def killed_writer() -> float:
            partition = f"killed-{uuid.uuid4().hex[:8]}"
            ready = context.Event()
            child = context.Process(target=_hold_partition_lock, args=(db_url, partition, ready))
            child.start()
            try:
                expect(ready.wait(60), "the writer never started its transaction")
                os.kill(child.pid, signal.SIGKILL)
                child.join(10)
                outcome, ms = timed_ms(lambda: storage.create(partition, "", {"after": True}))
                expect(not isinstance(outcome, Exception), f"the next writer failed: {outcome!r}")
            finally:
                if child.is_alive():
                    child.kill()
                    child.join(10)
            records, _ = storage.get_all(partition, "", include_deleted=True)
            expect([r.get("after") for r in records] == [True], f"partial write visible: {records!r}")
            return ms

        try:
            measure(rows, "F9 postgresql writer killed: next writer of its partition", Goal("< 1000", 1000),
                    repeat, killed_writer)
        finally:
            writer_pool.dispose()
    finally:
        admin.cursor().execute(f'DROP DATABASE "{name}" WITH (FORCE)')
        admin.close()


# -- memcached ---------------------------------------------------------------------------------


class MemcachedNode:
    """A memcached process on a free loopback port, to be killed."""

    def __init__(self, binary: str) -> None:
        self.port = closed_port()
        command = [binary, "-l", "127.0.0.1", "-p", str(self.port), "-U", "0", "-m", "16"]
        if os.geteuid() == 0:
            command += ["-u", "root"]  # memcached refuses to run as root without it
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while not tcp_reachable("127.0.0.1", self.port, timeout=0.2):
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.kill()
                raise ScenarioError(f"memcached did not start on port {self.port}")
            time.sleep(0.02)

    def kill(self) -> None:
        # SIGKILL: SIGTERM keeps serving open connections for a while.
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=10)


def _cache(url: str, **settings: Any) -> Any:
    from cliquet_wsgi.backends.memcached import MemcachedCache

    return MemcachedCache.from_settings(load_settings({"cache_url": url, **settings}, environ={}))


def _drive_to_dead(cache: Any, retry_timeout: float) -> list[float]:
    """Call ``get`` until the ring declares the (only) node dead; the ms of each call."""
    ring = cache._ring  # read only to know when to stop
    (server,) = [client.server for client in ring.clients.values()]
    timings = []
    for _ in range(10):
        if server in ring._dead_clients:
            return timings
        outcome, ms = timed_ms(lambda: cache.get("k"))
        expect(outcome is None, f"a read of an unreachable node returned {outcome!r}")
        timings.append(ms)
        time.sleep(retry_timeout * 1.5)  # so that the next call probes the node again
    raise ScenarioError("the node was never declared dead")


def memcached_rows(rows: list[Row], notes: list[str], repeat: int, binary: str | None) -> None:
    try:
        import pymemcache  # noqa: F401
    except ImportError as exc:
        notes.append(f"memcached skipped: pymemcache is not installed ({exc})")
        return

    def busy_connection() -> float:
        hole = BlackHole()
        cache = _cache(f"memcached://127.0.0.1:{hole.port}", cache_pool_size=1, cache_maxoverflow=0,
                       cache_pool_timeout=POOL_TIMEOUT, cache_timeout_seconds=2.0)
        try:
            # A call waiting on the black hole holds the node's only connection for 2 s.
            busy = threading.Thread(target=cache.get, args=("busy",))
            busy.start()
            hole.wait_for_connections(1)
            outcome, ms = timed_ms(lambda: cache.add("k", 1))
            expect(isinstance(outcome, BackendError) and "pool exhausted" in str(outcome),
                   f"expected 'pool exhausted', got {outcome!r}")
            busy.join(10)
            return ms
        finally:
            cache.close()
            hole.close()

    measure(rows, f"C6 memcached connection busy: call gives up (pool_timeout {POOL_TIMEOUT:g} s)",
            within_10_percent(POOL_TIMEOUT, "pool_timeout"), repeat, busy_connection)

    f6_dead: list[float] = []

    def black_holed() -> list[float]:
        hole = BlackHole()
        cache = _cache(f"memcached://127.0.0.1:{hole.port}", **F6_SETTINGS)
        try:
            timings = _drive_to_dead(cache, F6_SETTINGS["cache_retry_timeout_seconds"])
            f6_dead.append(per_call_ms(lambda: cache.get("k")))
            return timings
        finally:
            cache.close()
            hole.close()

    bound = F6_SETTINGS["cache_timeout_seconds"] * (F6_SETTINGS["cache_retry_attempts"] + 1)
    measure(rows, "F6 memcached black-holed: each call until dead (timeout 0.3 s, 1 retry)",
            Goal(f"<= timeout x (retries + 1) ({bound * 1000:.0f})", bound * 1000), repeat, black_holed)
    measure(rows, f"F6 memcached dead node: ms per call (mean of {CALLS_PER_SAMPLE})", Goal("<= 1 (about 0)", 1.0),
            1, lambda: f6_dead)

    if not binary:
        notes.append("memcached F5 skipped: no memcached binary (install memcached, or pass --memcached PATH)")
        return
    f5_ping: list[float] = []
    f5_dead: list[float] = []

    def killed() -> list[float]:
        node = MemcachedNode(binary)
        cache = _cache(f"memcached://127.0.0.1:{node.port}", **F5_SETTINGS)
        try:
            cache.set("k", "v")  # leaves a pooled connection, as in a running application
            node.kill()
            timings = _drive_to_dead(cache, F5_SETTINGS["cache_retry_timeout_seconds"])
            outcome, ms = timed_ms(cache.ping)
            expect(outcome is False, f"ping() of a killed node returned {outcome!r}")
            f5_ping.append(ms)
            f5_dead.append(per_call_ms(lambda: cache.get("k")))
            return timings
        finally:
            cache.close()
            node.kill()

    connect = F5_SETTINGS["cache_connect_timeout_seconds"]
    measure(rows, f"F5 memcached killed: each call until dead (connect_timeout {connect:g} s)",
            within_10_percent(connect, "connect_timeout"), repeat, killed)
    measure(rows, "F5 memcached killed: ping() False", within_10_percent(connect, "connect_timeout"), 1, lambda: f5_ping)
    measure(rows, f"F5 memcached dead node: ms per call (mean of {CALLS_PER_SAMPLE})", Goal("<= 1 (about 0)", 1.0),
            1, lambda: f5_dead)


# -- report --------------------------------------------------------------------------------


def report(rows: list[Row], notes: list[str], repeat: int) -> bool:
    """Print the table; whether every measured goal was met."""
    print(f"\nFault scenarios, {repeat} repetitions each, Python {sys.version.split()[0]}")
    width = max(len(row.name) for row in rows) if rows else 10
    print(f"{'scenario':<{width}}  {'n':>3}  {'median ms':>10}  {'max ms':>10}  {'goal (ms)':<38}  result")
    met = True
    for row in rows:
        verdict = row.verdict()
        met = met and verdict in ("ok", "-")
        if row.samples:
            median, slowest = f"{statistics.median(row.samples):.3f}", f"{max(row.samples):.3f}"
        else:
            median = slowest = "-"
        print(f"{row.name:<{width}}  {len(row.samples):>3}  {median:>10}  {slowest:>10}  {row.goal.text:<38}  {verdict}")
        if row.error:
            print(f"    error: {row.error}")
    for note in notes:
        print(f"note: {note}")
    return met


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=5, help="repetitions of each scenario (default 5)")
    parser.add_argument("--postgresql-url", default=POSTGRESQL_URL, help=f"server to use (default {POSTGRESQL_URL})")
    parser.add_argument("--memcached", default=shutil.which("memcached") or shutil.which("memcached", path="/usr/bin"),
                        help="memcached binary for F5 (default: the one on the PATH)")
    args = parser.parse_args()
    # The backends log a warning for every fault injected here: expected, and noise in the report.
    logging.getLogger("cliquet_wsgi").addHandler(logging.NullHandler())
    rows: list[Row] = []
    notes: list[str] = []
    started = time.perf_counter()
    tmp = tempfile.mkdtemp(prefix="cliquet-bench-faults-")
    try:
        sqlite_rows(rows, args.repeat, tmp)
        postgresql_rows(rows, notes, args.repeat, args.postgresql_url)
        memcached_rows(rows, notes, args.repeat, args.memcached)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    met = report(rows, notes, args.repeat)
    print(f"total {time.perf_counter() - started:.1f} s")
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
