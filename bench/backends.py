"""Operations per second of the storage and cache backends, one thread, in-process.

Storage (memory, SQLite, PostgreSQL): ``create``; ``get`` of a random record
and ``get_all(limit=10)`` (default order) in a partition seeded with
``--seed`` records. Cache (memory, SQLite, PostgreSQL, memcached): ``set``
(ttl 60 s) and ``get`` of a small dict over 1000 keys.

    python3 bench/backends.py [--quick] [--seconds S] [--seed N]

Backends are built like the registry builds them
(``build_backend(kind, load_settings({...}, environ={}))``). A backend whose
module is not importable, or whose server does not answer
(``CLIQUET_TEST_POSTGRESQL_URL``, ``CLIQUET_TEST_MEMCACHED_URL``), is skipped
with a note. Each operation runs for ``--seconds`` (or 20000 calls), after 20
warm-up calls. The bench never flushes a backend: it writes in partitions and
under a cache prefix of its own, and deletes what it wrote, so that it can run
against the shared test servers.
"""
from __future__ import annotations

import argparse
import importlib
import os
import random
import shutil
import sys
import tempfile
import time
from typing import Any, Callable
from urllib.parse import urlsplit

from cliquet_wsgi.registry import BACKEND_SCHEMES, build_backend
from cliquet_wsgi.settings import load_settings
from cliquet_wsgi.testing import MEMCACHED_URL, POSTGRESQL_URL, tcp_reachable

MAX_CALLS = 20000
WARMUP_CALLS = 20
CACHE_KEYS = 1000
RECORD = {"title": "A bench record", "done": False, "tags": ["one", "two"], "size": 1234}


def urls(tmp: str) -> dict[str, str]:
    return {
        "memory": "memory://",
        "sqlite": f"sqlite:///{tmp}/bench.sqlite",
        "postgresql": POSTGRESQL_URL,
        "memcached": MEMCACHED_URL,
    }


def unavailable(name: str, url: str) -> str | None:
    """Why ``url`` cannot be benchmarked, or ``None``."""
    module = BACKEND_SCHEMES[url.split("://", 1)[0]]
    try:
        importlib.import_module(module)
    except ImportError as exc:
        return f"{module} is not importable ({exc})"
    if name in ("postgresql", "memcached"):
        parts = urlsplit(url)
        host, port = parts.hostname or "127.0.0.1", parts.port or (5432 if name == "postgresql" else 11211)
        if not tcp_reachable(host, port):
            return f"nothing listens on {host}:{port}"
    return None


def rate(call: Callable[[int], Any], seconds: float) -> tuple[float, int]:
    """``(operations per second, calls)`` of ``call(i)`` run for ``seconds``."""
    for i in range(WARMUP_CALLS):
        call(i)
    clock = time.perf_counter
    start = clock()
    deadline = start + seconds
    calls = 0
    while calls < MAX_CALLS:
        call(calls)
        calls += 1
        if clock() >= deadline:
            break
    return calls / (clock() - start), calls


def bench_storage(storage: Any, seconds: float, seed: int, run_id: str) -> list[tuple[str, float, int]]:
    parent = f"bench-{run_id}"
    storage.initialize_schema()
    results = []
    try:
        results.append(("create", *rate(lambda i: storage.create("bench-create", parent, dict(RECORD, n=i)), seconds)))
        ids = [storage.create("bench-read", parent, dict(RECORD, n=i))["id"] for i in range(seed)]
        picks = [random.choice(ids) for _ in range(1024)]
        results.append(("get", *rate(lambda i: storage.get("bench-read", parent, picks[i % 1024]), seconds)))
        results.append(
            (f"get_all(limit=10) of {seed}", *rate(lambda i: storage.get_all("bench-read", parent, limit=10), seconds))
        )
    finally:
        for collection in ("bench-create", "bench-read"):
            storage.delete_all(collection, parent, with_deleted=False)
            storage.purge_deleted(collection, parent)
    return results


def bench_cache(cache: Any, seconds: float) -> list[tuple[str, float, int]]:
    cache.initialize_schema()
    keys = [f"key-{i}" for i in range(CACHE_KEYS)]
    value = {"user": "bench", "principals": ["system.Everyone", "system.Authenticated"], "n": 1}
    try:
        results = [("set", *rate(lambda i: cache.set(keys[i % CACHE_KEYS], value, ttl=60), seconds))]
        for key in keys:
            cache.set(key, value, ttl=60)
        results.append(("get", *rate(lambda i: cache.get(keys[i % CACHE_KEYS]), seconds)))
        if cache.get(keys[0]) != value:
            raise AssertionError("the cache lost the value it was given")
    finally:
        for key in keys:
            cache.delete(key)
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="0.25 s per operation, 200 seeded records")
    parser.add_argument("--seconds", type=float, help="duration of each operation (default 1.0)")
    parser.add_argument("--seed", type=int, help="records in the get/get_all partition (default 1000)")
    args = parser.parse_args()
    seconds = args.seconds or (0.25 if args.quick else 1.0)
    seed = args.seed or (200 if args.quick else 1000)
    run_id = f"{os.getpid()}-{int(time.time())}"
    tmp = tempfile.mkdtemp(prefix="cliquet-bench-")
    rows: list[tuple[str, str, str, float, int]] = []
    notes: list[str] = []
    started = time.perf_counter()
    try:
        targets = [("storage", name) for name in ("memory", "sqlite", "postgresql")]
        targets += [("cache", name) for name in ("memory", "sqlite", "postgresql", "memcached")]
        for kind, name in targets:
            url = urls(tmp)[name]
            reason = unavailable(name, url)
            if reason:
                notes.append(f"skipped {name} {kind}: {reason}")
                continue
            settings: dict[str, Any] = {f"{kind}_url": url}
            if kind == "cache":
                settings["cache_prefix"] = f"bench-{run_id}:"
            try:
                backend = build_backend(kind, load_settings(settings, environ={}))
            except Exception as exc:
                notes.append(f"skipped {name} {kind}: cannot build it ({type(exc).__name__}: {exc})")
                continue
            try:
                results = bench_storage(backend, seconds, seed, run_id) if kind == "storage" else bench_cache(backend, seconds)
            except Exception as exc:
                notes.append(f"failed {name} {kind}: {type(exc).__name__}: {exc}")
                continue
            finally:
                backend.close()
            rows.extend((name, kind, operation, ops, calls) for operation, ops, calls in results)
            print(f"  measured {name} {kind}", file=sys.stderr, flush=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    print(f"\nBackends, one thread, {seconds:g} s per operation (max {MAX_CALLS} calls), Python {sys.version.split()[0]}")
    print(f"{'backend':<12}{'kind':<9}{'operation':<26}{'ops/s':>10}{'µs/op':>10}{'calls':>8}")
    for name, kind, operation, ops, calls in rows:
        print(f"{name:<12}{kind:<9}{operation:<26}{ops:>10,.0f}{1e6 / ops:>10.1f}{calls:>8}")
    for note in notes:
        print(f"note: {note}")
    print(f"total {time.perf_counter() - started:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
