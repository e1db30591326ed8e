"""Contract suite of :class:`cliquet_wsgi.cache.Cache`, run unchanged against every backend.

Use it from a test module next to a ``cache`` fixture (a fresh, flushed
backend) and a ``cache_url`` fixture (the URL it was built from)::

    from cliquet_wsgi.testing.cache import *  # noqa: F401,F403
"""
from __future__ import annotations

import threading
import time

import pytest


def _build(url: str, **settings):
    from cliquet_wsgi.registry import build_backend
    from cliquet_wsgi.settings import load_settings

    backend = build_backend("cache", load_settings({"cache_url": url, **settings}, environ={}))
    backend.initialize_schema()
    return backend


def test_ping_is_true(cache):
    assert cache.ping() is True


def test_initialize_schema_is_idempotent(cache):
    cache.set("kept", 1)
    lines = cache.initialize_schema()
    assert isinstance(lines, list) and all(isinstance(line, str) for line in lines)
    assert cache.get("kept") == 1


def test_get_missing_is_none(cache):
    assert cache.get("missing") is None


VALUES = [
    pytest.param("text é\u4e2d", id="str"),
    pytest.param(b"\x00\xffbytes", id="bytes"),
    pytest.param(42, id="int"),
    pytest.param(-(2**40), id="big-negative-int"),
    pytest.param(3.25, id="float"),
    pytest.param(True, id="bool"),
    pytest.param([1, "a", None, [False]], id="list"),
    pytest.param({"a": {"b": [1, 2, {"c": b"raw"}]}, "d": None}, id="nested-dict"),
    pytest.param("", id="empty-str"),
]


@pytest.mark.parametrize("value", VALUES)
def test_set_get_round_trip(cache, value):
    cache.set("key", value)
    got = cache.get("key")
    assert got == value
    assert type(got) is type(value)


def test_set_overwrites(cache):
    cache.set("key", "one")
    cache.set("key", {"two": 2})
    assert cache.get("key") == {"two": 2}


def test_keys_are_independent(cache):
    cache.set("a", 1)
    cache.set("b", 2)
    cache.set("a:b", 3)
    assert (cache.get("a"), cache.get("b"), cache.get("a:b")) == (1, 2, 3)


def test_odd_keys(cache):
    for key in ["with space", "é-unicode", "quote'\"", "x" * 200, "a%_*"]:
        cache.set(key, key)
    for key in ["with space", "é-unicode", "quote'\"", "x" * 200, "a%_*"]:
        assert cache.get(key) == key
    assert cache.get("a%") is None


def test_ttl_without_expiry_or_missing_is_minus_one(cache):
    cache.set("forever", 1)
    assert cache.ttl("forever") == -1
    assert cache.ttl("missing") == -1


def test_set_with_ttl(cache):
    cache.set("key", "v", ttl=100)
    assert 98 < cache.ttl("key") <= 100
    assert cache.get("key") == "v"


def test_set_without_ttl_clears_previous_ttl(cache):
    cache.set("key", "v", ttl=100)
    cache.set("key", "w")
    assert cache.ttl("key") == -1


def test_entries_expire(cache):
    cache.set("short", "v", ttl=0.6)
    cache.set("long", "v", ttl=60)
    assert cache.get("short") == "v"
    time.sleep(0.8)
    assert cache.get("short") is None
    assert cache.ttl("short") == -1
    assert cache.get("long") == "v"


def test_expire_sets_new_ttl(cache):
    cache.set("key", "v")
    cache.expire("key", 50)
    assert 48 < cache.ttl("key") <= 50
    cache.expire("key", 0.3)
    time.sleep(0.5)
    assert cache.get("key") is None


def test_expire_zero_or_negative_deletes(cache):
    cache.set("a", 1)
    cache.set("b", 2, ttl=100)
    cache.expire("a", 0)
    cache.expire("b", -5)
    assert cache.get("a") is None and cache.get("b") is None


def test_expire_missing_key_is_a_no_op(cache):
    cache.expire("missing", 10)
    assert cache.get("missing") is None
    assert cache.ttl("missing") == -1


def test_delete_returns_old_value(cache):
    cache.set("token", {"user": "alice"})
    assert cache.delete("token") == {"user": "alice"}
    assert cache.get("token") is None
    assert cache.delete("token") is None
    assert cache.delete("never") is None


def test_delete_of_expired_returns_none(cache):
    cache.set("gone", "v", ttl=0.2)
    time.sleep(0.4)
    assert cache.delete("gone") is None


def test_add_only_if_absent(cache):
    assert cache.add("lock", "first", ttl=100) is True
    assert cache.add("lock", "second") is False
    assert cache.get("lock") == "first"
    assert 98 < cache.ttl("lock") <= 100
    cache.delete("lock")
    assert cache.add("lock", "third") is True
    assert cache.get("lock") == "third"
    assert cache.ttl("lock") == -1


def test_add_succeeds_over_expired_entry(cache):
    cache.set("nonce", "old", ttl=0.2)
    time.sleep(0.4)
    assert cache.add("nonce", "new") is True
    assert cache.get("nonce") == "new"


def test_incr(cache):
    assert cache.incr("counter") == 1
    assert cache.incr("counter") == 2
    assert cache.incr("counter", 10) == 12
    assert cache.incr("counter", -20) == -8
    assert cache.get("counter") == -8
    assert cache.ttl("counter") == -1


def test_incr_missing_gets_ttl_existing_keeps_expiry(cache):
    assert cache.incr("hits", 5, ttl=100) == 5
    assert 98 < cache.ttl("hits") <= 100
    assert cache.incr("hits", 1, ttl=1000) == 6
    assert cache.ttl("hits") <= 100


def test_incr_restarts_after_expiry(cache):
    cache.incr("window", 3, ttl=0.2)
    time.sleep(0.4)
    assert cache.incr("window", 1, ttl=60) == 1


def test_flush_removes_everything(cache):
    cache.set("a", 1)
    cache.set("b", 2, ttl=100)
    cache.incr("c")
    cache.flush()
    assert (cache.get("a"), cache.get("b"), cache.get("c")) == (None, None, None)


@pytest.mark.concurrency
def test_incr_is_atomic_under_threads(cache):
    threads_count, per_thread = 8, 50
    errors: list[BaseException] = []
    barrier = threading.Barrier(threads_count)

    def work() -> None:
        try:
            barrier.wait()
            for _ in range(per_thread):
                cache.incr("shared")
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(threads_count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors
    assert cache.get("shared") == threads_count * per_thread


@pytest.mark.concurrency
def test_add_is_atomic_under_threads(cache):
    contenders, rounds = 12, 5
    for round_number in range(rounds):
        key = f"nonce-{round_number}"
        won: list[int] = []
        errors: list[BaseException] = []
        barrier = threading.Barrier(contenders)

        def work(index: int) -> None:
            try:
                barrier.wait()
                if cache.add(key, index, ttl=60):
                    won.append(index)
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=work, args=(n,)) for n in range(contenders)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert not errors, errors
        assert len(won) == 1
        assert cache.get(key) == won[0]


def test_prefix_isolates_caches_on_one_server(cache, cache_url):
    first = _build(cache_url, cache_prefix="one:")
    second = _build(cache_url, cache_prefix="two:")
    try:
        first.set("key", "from one")
        second.set("key", "from two")
        assert first.get("key") == "from one"
        assert second.get("key") == "from two"
        assert second.delete("key") == "from two"
        assert first.get("key") == "from one"
    finally:
        first.flush()
        second.flush()
        first.close()
        second.close()


__all__ = [name for name in dir() if name.startswith("test_")]
