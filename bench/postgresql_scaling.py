"""How PostgreSQL storage listing latency scales with collection size.

Seeds one dedicated collection with 1,000, then 100,000, then 1,000,000
records (server-side batched ``INSERT ... SELECT generate_series``), and at each
size measures through :class:`PostgreSQLStorage`:

* ``page``: ``get_all(limit=10)``, newest first (the default listing);
* ``since``: a ``_since`` poll, ``last_modified > X`` near the end, ascending,
  tombstones included, limit 10;
* ``next page``: a page in the middle of a ``Next-Page`` walk (keyset
  pagination rules, no OFFSET);
* ``page+count``: the page plus ``Total-Records``: unfiltered, the count
  kept by the schema's triggers (one row read); a filtered count is O(n),
  only computed when asked.

Prints the median of N runs and the ``EXPLAIN (ANALYZE, BUFFERS)`` plans of
the listing queries, then deletes the collection. Goal: page at 1M <= 2x page at 1K.

    python3 bench/postgresql_scaling.py [--url postgresql://...] [--runs 50] [--max 1000000]
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
import uuid
from typing import Any, Callable

from cliquet_wsgi.backends.postgresql.pool import Cursor, Pool
from cliquet_wsgi.backends.postgresql.storage import PostgreSQLStorage
from cliquet_wsgi.storage import COMPARISON, Filter, Sort
from cliquet_wsgi.testing import POSTGRESQL_URL

SIZES = (1_000, 100_000, 1_000_000)
BATCH = 100_000
BASE_MS = 1_600_000_000_000


def median_ms(func: Callable[[], Any], runs: int) -> float:
    func()  # warm up (plan cache, buffers)
    timings = []
    for _ in range(runs):
        started = time.perf_counter()
        func()
        timings.append((time.perf_counter() - started) * 1000)
    return statistics.median(timings)


def seed(pool: Pool, cid: str, start: int, stop: int) -> None:
    """Rows start+1..stop, ids zero-padded, last_modified increasing with n."""
    for low in range(start, stop, BATCH):
        high = min(low + BATCH, stop)
        with pool.transaction() as cursor:
            cursor.execute(
                "INSERT INTO records (collection_id, parent_id, id, last_modified, deleted, data) "
                "SELECT %s, '', 'r' || lpad(n::text, 8, '0'), %s::bigint + n, FALSE, "
                "jsonb_build_object('n', n, 'title', 'record ' || n) "
                "FROM generate_series(%s::bigint, %s::bigint) AS n",
                (cid, BASE_MS, low + 1, high),
            )
    with pool.transaction() as cursor:
        cursor.execute(
            "INSERT INTO timestamps (collection_id, parent_id, last_modified) VALUES (%s, '', %s::bigint) "
            "ON CONFLICT (collection_id, parent_id) DO UPDATE SET last_modified = EXCLUDED.last_modified",
            (cid, BASE_MS + stop),
        )


def vacuum(pool: Pool) -> None:
    """VACUUM records, indexes included (outside a transaction, as VACUUM requires)."""
    conn = pool.checkout()
    try:
        conn.raw.cursor().execute("VACUUM (INDEX_CLEANUP ON, ANALYZE) records")
    finally:
        pool.checkin(conn)


def captured_sql(pool: Pool, call: Callable[[], Any]) -> tuple[str, list[Any]]:
    """The listing statement ``call`` sends (the last one aggregating a page with ``json_agg``)."""
    seen: list[tuple[str, list[Any]]] = []
    original = Cursor.execute

    def spy(self: Any, sql: str, args: Any = ()) -> Any:
        if "json_agg" in sql:
            seen.append((sql, list(args)))
        return original(self, sql, args)

    Cursor.execute = spy  # type: ignore[method-assign]
    try:
        call()
    finally:
        Cursor.execute = original  # type: ignore[method-assign]
    return seen[-1]


def explain(pool: Pool, sql: str, args: list[Any]) -> str:
    with pool.transaction() as cursor:
        cursor.execute("EXPLAIN (ANALYZE, BUFFERS) " + sql, args)
        return "\n".join("    " + row[0] for row in cursor.fetchall())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", default=POSTGRESQL_URL)
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--max", type=int, default=SIZES[-1], help="largest size to seed")
    options = parser.parse_args(argv)

    pool = Pool(options.url, size=2, max_overflow=0, application_name="cliquet-wsgi-bench")
    storage = PostgreSQLStorage(pool, {"storage_max_fetch_size": 10000})
    print("\n".join(storage.initialize_schema()))
    cid = f"bench_scaling_{uuid.uuid4().hex[:8]}"
    figures: list[tuple[int, float, float, float]] = []
    seeded = 0
    started = time.monotonic()
    try:
        for size in (s for s in SIZES if s <= options.max):
            t0 = time.monotonic()
            seed(pool, cid, seeded, size)
            seeded = size
            # Fresh statistics and visibility map; dead rows of earlier runs gone.
            vacuum(pool)
            print(f"\n== {size:,} records (seeded in {time.monotonic() - t0:.1f}s)")
            since_value = BASE_MS + size - 50

            def page() -> Any:
                return storage.get_all(cid, "", limit=10)

            def since() -> Any:
                return storage.get_all(
                    cid, "", filters=[Filter("last_modified", since_value, COMPARISON.GT)],
                    sorting=[Sort("last_modified", 1)], limit=10, include_deleted=True,
                )

            deep = size - size // 2  # a page in the middle of a Next-Page walk

            def next_page() -> Any:
                rules = [
                    [Filter("last_modified", BASE_MS + deep, COMPARISON.LT)],
                    [
                        Filter("last_modified", BASE_MS + deep, COMPARISON.EQ),
                        Filter("id", f"r{deep:08d}", COMPARISON.GT),
                    ],
                ]
                return storage.get_all(cid, "", pagination_rules=rules, limit=10)

            def page_count() -> Any:
                return storage.get_all(cid, "", limit=10, count=True)

            records, _ = page()
            assert [r["n"] for r in records] == list(range(size, size - 10, -1)), records
            records, _ = since()
            assert [r["n"] for r in records] == list(range(size - 49, size - 39)), records
            assert page_count()[1] == size
            records, _ = next_page()
            assert [r["n"] for r in records] == list(range(deep - 1, deep - 11, -1)), records
            runs = options.runs
            figures.append(
                (
                    size, median_ms(page, runs), median_ms(since, runs), median_ms(next_page, runs),
                    median_ms(page_count, max(5, runs // 10)),
                )
            )
            print(f"page  (get_all limit=10, newest first): {figures[-1][1]:.3f} ms median of {runs}")
            print(f"since (last_modified > X, limit=10):     {figures[-1][2]:.3f} ms median of {runs}")
            print(f"next page (keyset rules, mid-walk):      {figures[-1][3]:.3f} ms median of {runs}")
            print(f"page + count (Total-Records):            {figures[-1][4]:.3f} ms")
            for name, call in (("page", page), ("since", since), ("next page", next_page)):
                sql, args = captured_sql(pool, call)
                print(f"-- EXPLAIN ANALYZE {name}:\n{explain(pool, sql, args)}")
    finally:
        t0 = time.monotonic()
        with pool.transaction() as cursor:
            cursor.execute("DELETE FROM records WHERE collection_id = %s", (cid,))
            cursor.execute("DELETE FROM timestamps WHERE collection_id = %s", (cid,))
        vacuum(pool)
        print(f"\ncleaned up {cid} in {time.monotonic() - t0:.1f}s")
        pool.dispose()

    print("\n     size   page ms   since ms   next-page ms   page+count ms")
    for size, page_ms, since_ms, next_ms, count_ms in figures:
        print(f"{size:>9,}  {page_ms:8.3f}  {since_ms:9.3f}  {next_ms:13.3f}  {count_ms:14.3f}")
    if len(figures) > 1:
        ratio = figures[-1][1] / figures[0][1]
        verdict = "OK" if ratio <= 2 else "ABOVE GOAL"
        print(f"page at {figures[-1][0]:,} / page at {figures[0][0]:,} = {ratio:.2f}x (goal <= 2x): {verdict}")
    print(f"total {time.monotonic() - started:.0f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
