"""Memory-specific behaviour beyond the contract suites: locking, undo log, bounded msgpack cache."""
from __future__ import annotations

import threading

import msgpack
import pytest

from cliquet_wsgi.backends import memory
from cliquet_wsgi.registry import build_backend
from cliquet_wsgi.settings import load_settings
from cliquet_wsgi.storage import RecordNotFoundError


def build(kind, **extra):
    return build_backend(kind, load_settings({f"{kind}_url": "memory://", **extra}, environ={}))


def test_registry_picks_the_memory_classes_with_settings():
    storage = build("storage", storage_max_fetch_size=7)
    cache = build("cache", cache_prefix="p:", cache_max_size_bytes=1000)
    permission = build("permission")
    assert type(storage) is memory.MemoryStorage and storage.max_fetch_size == 7
    assert type(cache) is memory.MemoryCache and (cache.prefix, cache.max_size_bytes) == ("p:", 1000)
    assert type(permission) is memory.MemoryPermission
    assert storage.initialize_schema() == [] and cache.initialize_schema() == []


def test_each_instance_has_its_own_data():
    first, second = build("storage"), build("storage")
    first.create("c", "p", {"id": "x"})
    with pytest.raises(RecordNotFoundError):
        second.get("c", "p", "x")


def test_transaction_serialises_other_threads_until_it_ends():
    storage = build("storage")
    finished = threading.Event()

    def other():
        storage.get_all("c", "p")
        storage.create("c", "p", {"id": "other"})
        finished.set()

    with storage.transaction():
        storage.create("c", "p", {"id": "mine"})
        thread = threading.Thread(target=other)
        thread.start()
        assert not finished.wait(0.2), "another thread ran inside our transaction"
    thread.join(5)
    assert finished.is_set()
    assert storage.get("c", "p", "other")["last_modified"] > storage.get("c", "p", "mine")["last_modified"]


def test_flush_inside_rolled_back_transaction_is_undone():
    storage = build("storage")
    record = storage.create("c", "p", {"x": 1})
    timestamp = storage.collection_timestamp("c", "p")
    with pytest.raises(RuntimeError):
        with storage.transaction():
            storage.flush()
            storage.create("c", "p", {"y": 2})
            raise RuntimeError
    assert storage.get_all("c", "p") == ([record], None)
    assert storage.collection_timestamp("c", "p") == timestamp


def test_cache_stores_msgpack_not_references():
    cache = build("cache")
    value = {"nested": [1, 2]}
    cache.set("k", value)
    value["nested"].append(3)
    got = cache.get("k")
    got["nested"].append(4)
    assert cache.get("k") == {"nested": [1, 2]}
    with pytest.raises(TypeError):
        cache.set("bad", object())
    assert cache.get("bad") is None


def test_cache_is_bounded_and_evicts_oldest_first():
    value = "x" * 100
    entry = len("k0") + len(msgpack.packb(value, use_bin_type=True))
    cache = build("cache", cache_max_size_bytes=entry * 3)
    for index in range(3):
        cache.set(f"k{index}", value)
    assert cache.size_bytes == entry * 3
    cache.set("k3", value)
    assert [cache.get(f"k{i}") for i in range(4)] == [None, value, value, value]
    assert cache.size_bytes <= cache.max_size_bytes
    # Rewriting a key makes it the newest.
    cache.set("k1", value)
    cache.set("k4", value)
    assert cache.get("k2") is None and cache.get("k1") == value


def test_cache_value_larger_than_the_bound_is_not_stored():
    cache = build("cache", cache_max_size_bytes=64)
    cache.set("small", 1)
    cache.set("huge", "y" * 100)
    assert cache.get("huge") is None
    assert cache.get("small") == 1
    assert cache.size_bytes <= 64


def test_cache_accounting_follows_deletes_and_expiry():
    cache = build("cache")
    cache.set("a", "v")
    cache.set("b", "w", ttl=100)
    assert cache.size_bytes > 0
    cache.delete("a")
    cache.expire("b", 0)
    assert cache.size_bytes == 0


def test_incr_refuses_non_integers():
    cache = build("cache")
    cache.set("text", "abc")
    with pytest.raises(TypeError):
        cache.incr("text")
    assert cache.get("text") == "abc"


def test_permission_results_are_copies():
    permission = build("permission")
    permission.add_principal_to_ace("/o", "read", "alice")
    permission.object_permission_principals("/o", "read").add("mallory")
    permission.object_permissions("/o")["read"].add("mallory")
    permission.add_user_principal("alice", "g")
    permission.user_principals("alice").add("admins")
    assert permission.object_permission_principals("/o", "read") == {"alice"}
    assert permission.user_principals("alice") == {"g"}


def test_use_after_fork_is_reported(caplog, monkeypatch):
    storage = build("storage")
    storage.create("c", "p", {})
    monkeypatch.setattr(memory.os, "getpid", lambda: storage._pid + 1)
    with caplog.at_level("ERROR", logger="cliquet_wsgi.backends.memory"):
        storage.create("c", "p", {})
        storage.create("c", "p", {})
    assert [r.getMessage() for r in caplog.records].count(
        f"Memory storage used in a forked process (pid {storage._pid}): each process has its own data; "
        "use SQLite or PostgreSQL with several workers"
    ) == 1
