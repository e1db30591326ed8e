"""The memcached cache backend against real memcached processes (RELIABILITY F5-F7).

Each test starts its own ``memcached`` on a free loopback port, so it can kill
and restart it; the shared contract suite (``tests/backends/conftest.py``) uses
the one on 11211. Faults: SIGKILL for "down", a loopback proxy that accepts
connections and never answers for "black-holed".
"""
from __future__ import annotations

import hashlib
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable

import msgpack
import pytest
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from pymemcache.client.base import Client

from cliquet_wsgi.backends.memcached import (
    CACHE,
    COUNTER_FLAGS,
    ENVELOPE_FLAGS,
    MemcachedCache,
    NodeUnavailableError,
    parse_servers,
)
from cliquet_wsgi.errors import BackendError, ConfigurationError
from cliquet_wsgi.registry import build_backend
from cliquet_wsgi.settings import load_settings
from cliquet_wsgi.testing import require_service, tcp_reachable
from cliquet_wsgi.testing.faults import BlackHole, hang_guard


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class MemcachedProcess:
    """One memcached subprocess on a fixed loopback port; restartable."""

    def __init__(self, binary: str) -> None:
        self.binary = binary
        self.port = free_port()
        self.process: subprocess.Popen | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> "MemcachedProcess":
        self.process = subprocess.Popen(
            [self.binary, "-l", "127.0.0.1", "-p", str(self.port), "-U", "0", "-u", "root", "-m", "16"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while not tcp_reachable("127.0.0.1", self.port, timeout=0.2):
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"memcached did not start on port {self.port}")
            time.sleep(0.02)
        return self

    def kill(self) -> None:
        # SIGKILL: SIGTERM keeps serving open connections for a while (RELIABILITY §3).
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=10)

    def raw(self) -> Client:
        """A plain pymemcache client to look at what the backend stored."""
        return Client(("127.0.0.1", self.port), connect_timeout=2, timeout=2)


#: Bound of a test phase that waits on timeouts: a hang guard, at least 10x the
#: timeouts configured here, never a speed goal (bench/faults.py measures those).
HANG_GUARD_SECONDS = 30


@pytest.fixture(scope="module")
def memcached_binary() -> str:
    binary = shutil.which("memcached") or (shutil.which("memcached", path="/usr/bin:/usr/sbin"))
    if binary is None:
        require_service("memcached", "the memcached binary is not installed")
    return binary


@pytest.fixture
def spawn(memcached_binary):
    """``spawn()`` -> a started MemcachedProcess, killed at teardown."""
    started: list[MemcachedProcess] = []

    def spawn() -> MemcachedProcess:
        node = MemcachedProcess(memcached_binary).start()
        started.append(node)
        return node

    yield spawn
    for node in started:
        node.kill()


@pytest.fixture
def caches():
    """``make(nodes, **settings)`` -> a MemcachedCache built from settings; closed at teardown."""
    built: list[MemcachedCache] = []

    def make(addresses: list[str], **settings) -> MemcachedCache:
        url = "memcached://" + ",".join(addresses)
        cache = MemcachedCache.from_settings(load_settings({"cache_url": url, **settings}, environ={}))
        built.append(cache)
        return cache

    yield make
    for cache in built:
        cache.close()


def outcome(call: Callable[..., Any], *args: Any) -> Any:
    """What ``call(*args)`` returned, or the exception it raised (the tests assert on the type)."""
    try:
        return call(*args)
    except Exception as exc:
        return exc


def assert_ttl(cache: MemcachedCache, key: str, ttl: float, written_after: float) -> None:
    """``cache.ttl(key)`` is what a write of ``ttl`` seconds, made after ``written_after``, leaves.

    Bracketed by the wall clock (the backend's clock) instead of a fixed
    window, so a stalled machine cannot fail it: at most the time elapsed
    since ``written_after`` may be gone, and the entry may have expired only
    if that time reached ``ttl``.
    """
    remaining = cache.ttl(key)
    elapsed = time.time() - written_after
    lowest = ttl - elapsed - 0.001  # 1 ms for float rounding of Unix times
    assert lowest <= remaining <= ttl or (remaining == -1 and lowest <= 0), (remaining, ttl, elapsed)


# -- configuration (no server needed) ----------------------------------------------


@pytest.mark.parametrize(
    "url, servers",
    [
        pytest.param("memcached://127.0.0.1:11211", [("127.0.0.1", 11211)], id="one"),
        pytest.param("memcached://cache", [("cache", 11211)], id="default-port"),
        pytest.param("memcached://a:1,b:2", [("a", 1), ("b", 2)], id="two"),
        pytest.param("memcached://a:1, b:2", [("a", 1), ("b", 2)], id="space-after-comma"),
        pytest.param("memcached://[::1]:11311", [("::1", 11311)], id="ipv6"),
    ],
)
def test_parse_servers(url, servers):
    assert parse_servers(url) == servers


@pytest.mark.parametrize(
    "url",
    [
        pytest.param("memcached://", id="empty"),
        pytest.param("memcached://a:1,", id="trailing-comma"),
        pytest.param("memcached://a:notaport", id="bad-port"),
        pytest.param("memcached://a:1/db", id="path"),
        pytest.param("memcached://a:1,a:1", id="duplicate"),
        pytest.param("redis://a:1", id="wrong-scheme"),
    ],
)
def test_bad_url_fails_at_startup(url):
    with pytest.raises(ConfigurationError, match="cache_url"):
        MemcachedCache.from_settings(load_settings({"cache_url": url}, environ={}))


@pytest.mark.parametrize(
    "prefix",
    [pytest.param("my app:", id="space"), pytest.param("é:", id="non-ascii"), pytest.param("p" * 180, id="too-long")],
)
def test_bad_prefix_fails_at_startup(prefix):
    with pytest.raises(ConfigurationError, match="cache_prefix"):
        MemcachedCache([("127.0.0.1", 1)], prefix=prefix)


def test_missing_driver_is_a_configuration_error(monkeypatch):
    from cliquet_wsgi.backends import memcached

    memcached._driver.cache_clear()
    monkeypatch.setitem(sys.modules, "pymemcache", None)
    try:
        with pytest.raises(ConfigurationError, match="pip install pymemcache"):
            MemcachedCache.from_settings(load_settings({"cache_url": "memcached://127.0.0.1:1"}, environ={}))
    finally:
        memcached._driver.cache_clear()


def test_registry_picks_the_class_by_scheme():
    settings = load_settings(
        {"cache_url": "memcached://127.0.0.1:1", "cache_prefix": "p:", "cache_pool_size": 3}, environ={}
    )
    cache = build_backend("cache", settings)
    try:
        assert type(cache) is CACHE is MemcachedCache
        assert cache.prefix == "p:"
        assert cache.servers == [("127.0.0.1", 1)]
    finally:
        cache.close()


@pytest.mark.parametrize(
    "key, hashed",
    [
        pytest.param("plain:key", False, id="plain"),
        pytest.param("k" * 248, False, id="250-bytes-with-prefix"),
        pytest.param("k" * 249, True, id="251-bytes-with-prefix"),
        pytest.param("with space", True, id="space"),
        pytest.param("tab\there", True, id="control"),
        pytest.param("nul\x00", True, id="nul"),
        pytest.param("café", True, id="non-ascii"),
        pytest.param("", False, id="empty-after-prefix"),
        pytest.param("sha256:" + "0" * 64, True, id="looks-hashed"),
    ],
)
def test_key_names(key, hashed):
    cache = MemcachedCache([("127.0.0.1", 1)], prefix="p:")
    try:
        expected = "p:sha256:" + hashlib.sha256(key.encode()).hexdigest() if hashed else "p:" + key
        assert cache._name(key) == expected
        assert len(expected.encode()) <= 250
    finally:
        cache.close()


def test_empty_name_without_prefix_is_hashed():
    cache = MemcachedCache([("127.0.0.1", 1)])
    try:
        assert cache._name("") == "sha256:" + hashlib.sha256(b"").hexdigest()
    finally:
        cache.close()


# -- round-trips against a real node --------------------------------------------------


VALUES = [
    pytest.param({"a": [1, 2.5, None, True], "nested": {"x": "y"}}, id="dict"),
    pytest.param([1, "two", b"\x00three"], id="list-with-bytes"),
    pytest.param("é\u2603", id="unicode"),
    pytest.param(0, id="zero"),
    pytest.param(False, id="false"),
    pytest.param({1: "int key"}, id="int-map-key"),
]


@pytest.mark.parametrize("value", VALUES)
def test_set_get_round_trip(spawn, caches, value):
    cache = caches([spawn().address])
    cache.set("key", value)
    assert cache.get("key") == value
    assert cache.ttl("key") == -1


class FlagsSpy:
    """pymemcache serde returning ``(flags, bytes)``: what the backend really stored."""

    def serialize(self, key, value):
        return value, 0

    def deserialize(self, key, value, flags):
        return flags, value


def raw_item(node: MemcachedProcess, name: str):
    client = Client(("127.0.0.1", node.port), serde=FlagsSpy(), connect_timeout=2, timeout=2)
    try:
        return client.get(name)
    finally:
        client.close()


def test_items_are_msgpack_envelopes_and_raw_counters(spawn, caches):
    node = spawn()
    cache = caches([node.address], cache_prefix="app:")
    before = time.time()
    cache.set("doc", "123", ttl=60)  # a string that looks like a counter
    assert cache.incr("hits", 5) == 5
    assert cache.incr("rate", ttl=30) == 1

    flags, data = raw_item(node, "app:doc")
    assert flags == ENVELOPE_FLAGS
    envelope = msgpack.unpackb(data, raw=False)  # msgpack, never pickle
    assert envelope["v"] == "123"
    assert before + 60 <= envelope["e"] <= time.time() + 60
    # A counter without expiry is memcached's own decimal (biased by 2**63 to
    # be signed), so that incr is memcached's incr; an expiring one is an envelope.
    assert raw_item(node, "app:hits") == (COUNTER_FLAGS, str(2**63 + 5).encode())
    flags, data = raw_item(node, "app:rate")
    assert flags == ENVELOPE_FLAGS and msgpack.unpackb(data)["v"] == 1

    raw = node.raw()
    assert raw.incr("app:hits", 1) == 2**63 + 6
    raw.close()
    assert cache.get("hits") == 6
    assert cache.get("doc") == "123"


def test_ttl_expire_and_sub_second_expiry(spawn, caches):
    cache = caches([spawn().address])
    written = time.time()
    cache.set("short", "v", ttl=0.3)
    assert_ttl(cache, "short", 0.3, written)
    cache.set("long", "v", ttl=100)
    written = time.time()
    cache.expire("long", 10)
    assert_ttl(cache, "long", 10, written)
    cache.expire("long", 0)
    assert cache.get("long") is None
    cache.expire("missing", 10)  # no-op
    assert cache.get("missing") is None
    time.sleep(0.45)
    # memcached still holds the item (it only knows whole seconds); the envelope decides.
    assert cache.get("short") is None
    assert cache.ttl("short") == -1
    assert cache.add("short", "again") is True
    assert cache.get("short") == "again"


def test_add_incr_delete(spawn, caches):
    cache = caches([spawn().address])
    assert cache.add("lock", "me", ttl=30) is True
    assert cache.add("lock", "you", ttl=30) is False
    assert cache.get("lock") == "me"
    assert cache.incr("n") == 1
    assert cache.incr("n", 10) == 11
    assert cache.incr("n", -3) == 8
    assert cache.incr("n", -100) == -92  # signed, although memcached's counters are not
    assert cache.incr("n", 2**62) == 2**62 - 92
    written = time.time()
    assert cache.incr("rate", ttl=20) == 1
    assert_ttl(cache, "rate", 20, written)
    assert cache.incr("rate", ttl=500) == 2
    assert_ttl(cache, "rate", 20, written)  # an existing counter keeps its expiry
    written = time.time()
    cache.set("int", 41, ttl=50)
    assert cache.incr("int") == 42  # an envelope holding an int is a counter
    assert_ttl(cache, "int", 50, written)
    cache.set("plain", 7)
    assert cache.incr("plain", -8) == -1
    written = time.time()
    cache.expire("n", 30)  # a raw counter becomes an expiring envelope
    assert_ttl(cache, "n", 30, written)
    assert cache.incr("n") == 2**62 - 91
    cache.set("text", "abc")
    with pytest.raises(TypeError):
        cache.incr("text")
    assert cache.get("text") == "abc"
    assert cache.delete("lock") == "me"
    assert cache.delete("lock") is None
    assert cache.get("lock") is None
    assert cache.delete("plain") == -1


def test_hashed_keys_round_trip_and_do_not_collide(spawn, caches):
    node = spawn()
    cache = caches([node.address], cache_prefix="p:")
    long_key = "x" * 300
    odd = "a key\nwith é"
    cache.set(long_key, 1)
    cache.set(odd, 2)
    cache.set("x" * 299, 3)
    digest = hashlib.sha256(long_key.encode()).hexdigest()
    cache.set("sha256:" + digest, 4)  # spelled like the hashed name of long_key
    assert [cache.get(k) for k in (long_key, odd, "x" * 299, "sha256:" + digest)] == [1, 2, 3, 4]
    raw = node.raw()
    assert raw.get("p:sha256:" + digest) is not None
    raw.close()


def test_value_above_memcached_item_limit_is_a_backend_error(spawn, caches):
    cache = caches([spawn().address])
    with pytest.raises(BackendError):
        cache.set("big", b"\x00" * (2 * 1024 * 1024))
    assert cache.get("big") is None
    assert cache.ping() is True  # the connection is still in sync after the error reply


def test_flush_and_ping(spawn, caches):
    nodes = [spawn(), spawn()]
    cache = caches([n.address for n in nodes])
    for i in range(20):
        cache.set(f"k{i}", i)
    assert cache.ping() is True
    cache.flush()
    assert [cache.get(f"k{i}") for i in range(20)] == [None] * 20


def test_concurrent_add_and_incr_are_atomic(spawn, caches):
    cache = caches([spawn().address], cache_pool_size=8)
    with ThreadPoolExecutor(8) as pool:
        added = list(pool.map(lambda i: cache.add("once", i), range(32)))
        counts = list(pool.map(lambda _: cache.incr("count"), range(400)))
    assert added.count(True) == 1
    assert sorted(counts) == list(range(1, 401))
    assert cache.get("count") == 400



def test_delete_consumes_a_token_once_under_threads(spawn, caches):
    cache = caches([spawn().address], cache_pool_size=16)
    contenders = 16
    for round_number in range(20):
        cache.set("token", {"round": round_number}, ttl=60)
        barrier = threading.Barrier(contenders)

        def consume(_):
            barrier.wait()
            return cache.delete("token")

        with ThreadPoolExecutor(contenders) as pool:
            results = list(pool.map(consume, range(contenders)))
        assert [r for r in results if r is not None] == [{"round": round_number}]
        assert cache.get("token") is None


def test_delete_without_meta_commands_falls_back_to_get_then_delete(spawn, caches):
    cache = caches([spawn().address])
    cache._meta_delete = False  # what a memcached < 1.6 leads to
    cache.set("token", "v")
    assert cache.delete("token") == "v"
    assert cache.delete("token") is None



@pytest.fixture(scope="module")
def shared_node(memcached_binary):
    node = MemcachedProcess(memcached_binary).start()
    yield node
    node.kill()


JSONISH = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1) | st.floats(allow_nan=False) | st.text() | st.binary(),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12,
)


@hypothesis_settings(max_examples=150, deadline=None)
@given(key=st.text(max_size=300), value=JSONISH)
def test_any_key_and_value_round_trip(shared_node, key, value):
    cache = MemcachedCache([("127.0.0.1", shared_node.port)], prefix="prop:", pool_size=2)
    try:
        cache.set(key, value, ttl=30)
        assert cache.get(key) == value
        assert cache.delete(key) == value
        assert cache.get(key) is None
    finally:
        cache.close()


@given(keys=st.lists(st.text(max_size=300), unique=True, max_size=30))
def test_key_names_are_one_to_one(keys):
    cache = MemcachedCache([("127.0.0.1", 1)], prefix="p:")
    try:
        names = [cache._name(key) for key in keys]
        assert len(set(names)) == len(keys)
        assert all(len(name.encode()) <= 250 and " " not in name for name in names)
    finally:
        cache.close()


# -- F5: the node is killed ------------------------------------------------------------

FAST = {
    "cache_connect_timeout_seconds": 0.5,
    "cache_timeout_seconds": 0.5,
    "cache_retry_attempts": 2,
    "cache_retry_timeout_seconds": 0.2,
    "cache_dead_timeout_seconds": 1.5,
}


def node_server(cache: MemcachedCache) -> Any:
    """The ring's name of the cache's only node (the key of its failed/dead bookkeeping)."""
    (client,) = cache._ring.clients.values()
    return client.server


def test_f5_killed_node_reads_miss_writes_documented_then_recovers(spawn, caches):
    node = spawn()
    cache = caches([node.address], **FAST)
    cache.set("before", "v")
    assert cache.get("before") == "v"
    node.kill()

    # A killed node refuses connections: nothing here waits for a timeout, so
    # the whole test has one hang guard (how fast each call is: bench/faults.py).
    with hang_guard(HANG_GUARD_SECONDS):
        # Reads are misses and set is silently lost, whatever state the ring is in.
        for i in range(50):
            assert outcome(cache.get, "before") is None
            assert outcome(cache.set, f"k{i}", i) is None
            assert cache.ttl("before") == -1
            time.sleep(0.01)
        # Writes whose outcome matters say so.
        for call, args in [(cache.add, ("a", 1)), (cache.incr, ("n",)), (cache.delete, ("before",))]:
            result = outcome(call, *args)
            assert isinstance(result, NodeUnavailableError) and isinstance(result, BackendError)
        assert outcome(cache.ping) is False

        node.start()  # same port
        assert cache.ping() is True  # the heartbeat sees it at once
        # Calls reach it again after dead_timeout at the latest.
        while True:
            cache.set("after", "back")
            if cache.get("after") == "back":
                break
            time.sleep(0.1)
    hits = 0
    for i in range(100):
        cache.set(f"r{i}", i)
        hits += cache.get(f"r{i}") == i
    assert hits == 100
    assert cache.add("a", 1) is True


def test_f5_a_dead_node_costs_no_network_io(spawn, caches):
    """Once a killed node is declared dead, calls routed to it open no connection at all."""
    node = spawn()
    # A dead_timeout far beyond the test: the node stays dead while we watch.
    cache = caches([node.address], **{**FAST, "cache_dead_timeout_seconds": 600})
    cache.set("k", "v")
    node.kill()
    server = node_server(cache)
    with hang_guard(HANG_GUARD_SECONDS):
        while server not in cache._ring._dead_clients:
            assert cache.get("k") is None
            time.sleep(FAST["cache_retry_timeout_seconds"] * 1.5)  # so that the next call probes the node
        # A listener takes the dead node's address: a call doing network I/O would show up as a connection.
        witness = BlackHole(port=node.port)
        try:
            # A few calls suffice: any one doing I/O shows up (their cost is measured by bench/faults.py).
            for i in range(10):
                assert cache.get("k") is None
                assert cache.set(f"k{i}", i) is None
                assert cache.ttl("k") == -1
            assert isinstance(outcome(cache.add, "a", 1), NodeUnavailableError)
            # ping() contacts every node, dead or not: the witness must see its connection, and
            # only it (connections are accepted in order, so an earlier one would be here too).
            assert cache.ping() is False
            connections = witness.wait_for_connections(1)
            assert len(connections) == 1, "a call routed to the dead node opened a connection"
            assert b"__cliquet_heartbeat__" in connections[0].sent()
        finally:
            witness.close()


def test_f5_threads_see_no_errors_while_the_node_dies(spawn, caches):
    node = spawn()
    cache = caches([node.address], cache_pool_size=8, **FAST)
    errors: list[BaseException] = []
    stop = threading.Event()

    def worker(n: int) -> None:
        i = 0
        while not stop.is_set():
            try:
                cache.set(f"w{n}-{i % 10}", i)
                cache.get(f"w{n}-{i % 10}")
            except BaseException as exc:  # noqa: B902 -- any error fails the test
                errors.append(exc)
            i += 1

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(6)]
    for thread in threads:
        thread.start()
    time.sleep(0.3)
    node.kill()
    time.sleep(1.0)
    node.start()
    time.sleep(FAST["cache_dead_timeout_seconds"] + 1)
    stop.set()
    for thread in threads:
        thread.join(10)
    assert errors == []
    cache.set("final", 1)
    assert cache.get("final") == 1


# -- F7: one of two nodes down ----------------------------------------------------------


def test_f7_one_of_two_nodes_down_half_miss_no_errors(spawn, caches):
    first, second = spawn(), spawn()
    # dead_timeout: the dead phase below (800 calls) must end before the ring
    # tries the node again, even on a stalled machine.
    settings = {**FAST, "cache_dead_timeout_seconds": 5}
    cache = caches([first.address, second.address], **settings)
    keys = [f"key-{i}" for i in range(400)]
    for key in keys:
        cache.set(key, key)
    raw = second.raw()
    on_second = {key for key in keys if raw.get(key) is not None}
    raw.close()
    assert 100 < len(on_second) < 300  # rendezvous hashing spreads the keys

    second.kill()
    hits = {key for key in keys if cache.get(key) == key}  # no call may raise
    assert hits == set(keys) - on_second
    # Misses are the killed node's keys, about half: in [25%, 75%].
    assert 0.25 < 1 - len(hits) / len(keys) < 0.75
    assert cache.ping() is False

    with hang_guard(HANG_GUARD_SECONDS):
        # Once the node is dead its keys move to the live node: writes work again.
        dead = next(client.server for client in cache._ring.clients.values() if client.server[1] == second.port)
        while dead not in cache._ring._dead_clients:
            cache.get(next(iter(on_second)))
            time.sleep(settings["cache_retry_timeout_seconds"] * 1.5)  # so that the next call probes the node
        for key in keys:
            cache.set(key, key)
        assert all(cache.get(key) == key for key in keys)
        assert cache.incr("counter") == 1

        second.start()
        assert cache.ping() is True
        # After dead_timeout the ring puts the node back on its next call.
        while dead in cache._ring._dead_clients or cache._ring._failed_clients:
            cache.get("wake-up")
            time.sleep(0.1)
    for key in keys:
        cache.set(key, key)
    assert all(cache.get(key) == key for key in keys)
    raw = second.raw()
    back_on_second = {key for key in keys if raw.get(key) is not None}
    raw.close()
    assert back_on_second == on_second  # same node, same keys: hashing is stable


# -- F6: the node is black-holed ---------------------------------------------------------


def test_f6_black_holed_node_calls_bounded_reads_miss():
    """F6: each call gives up on its own timeout; after retry_attempts + 1 of them the node is dead.

    How long a call takes (at most timeout x (retry_attempts + 1)) is measured by bench/faults.py.
    """
    hole = BlackHole()
    settings = {
        "cache_url": f"memcached://127.0.0.1:{hole.port}",
        "cache_connect_timeout_seconds": 0.3,
        "cache_timeout_seconds": 0.3,
        "cache_retry_attempts": 1,
        "cache_retry_timeout_seconds": 0.2,
        "cache_dead_timeout_seconds": 600,  # stays dead while we watch
    }
    cache = MemcachedCache.from_settings(load_settings(settings, environ={}))
    # One call per probe (retry_attempts + 1 of them); each is a read miss or a lost write.
    probes = [(cache.get, ("k",), b"get "), (cache.set, ("k", 1), b"set ")]
    assert len(probes) == settings["cache_retry_attempts"] + 1
    try:
        # The configured timeouts are the ones the driver applies.
        assert cache._ring.default_kwargs["connect_timeout"] == settings["cache_connect_timeout_seconds"]
        assert cache._ring.default_kwargs["timeout"] == settings["cache_timeout_seconds"]
        # The black hole holds every connection until teardown: only client timeouts end these calls.
        with hang_guard(HANG_GUARD_SECONDS):
            for number, (call, args, command) in enumerate(probes, 1):
                assert call(*args) is None
                connections = hole.wait_for_connections(number)
                # The probe sent its command on a connection of its own, got no answer, and
                # closed it while the black hole still held it: the client gave up on its own.
                assert connections[-1].sent().startswith(command)
                time.sleep(settings["cache_retry_timeout_seconds"] * 1.5)  # so that the next call probes
            assert node_server(cache) in cache._ring._dead_clients

            # Dead: no call does network I/O any more (any one doing it would show up below).
            for _ in range(10):
                assert cache.get("k") is None
                assert cache.set("k", 1) is None
            assert isinstance(outcome(cache.add, "k", 1), BackendError)
            # ping() contacts every node, dead or not: its connection comes right after the probes'
            # (connections are accepted in order), so the calls above opened none.
            assert cache.ping() is False
            connections = hole.wait_for_connections(len(probes) + 1)
            assert len(connections) == len(probes) + 1
            assert b"__cliquet_heartbeat__" in connections[-1].sent()
    finally:
        cache.close()
        hole.close()


def test_f5_registry_heartbeat_reports_the_cache_down_and_back(spawn):
    from cliquet_wsgi.registry import Registry

    node = spawn()
    registry = Registry(load_settings({"cache_url": f"memcached://{node.address}", **FAST}, environ={}))
    try:
        assert registry.all_heartbeat_checks()["cache"]() is True
        registry.cache.set("k", "v")
        node.kill()
        with hang_guard(HANG_GUARD_SECONDS):  # refused at once; how fast: bench/faults.py
            assert outcome(registry.all_heartbeat_checks()["cache"]) is False
            assert registry.cache.get("k") is None  # requests go on, as misses
        node.start()
        assert registry.all_heartbeat_checks()["cache"]() is True
    finally:
        registry.close()


def test_writes_with_ttl_zero_or_negative_store_nothing(spawn, caches):
    cache = caches([spawn().address])
    cache.set("k", "v")
    cache.set("k", "w", ttl=0)
    assert cache.get("k") is None
    assert cache.add("k", "v", ttl=-1) is True
    assert cache.get("k") is None
    cache.set("live", "v")
    assert cache.add("live", "w", ttl=0) is False
    assert cache.incr("n", 3, ttl=0) == 3
    assert cache.get("n") is None


def test_restart_while_idle_costs_at_most_one_call(spawn, caches):
    node = spawn()
    cache = caches([node.address], cache_pool_size=8, **FAST)
    with ThreadPoolExecutor(6) as pool:  # several pooled connections, all idle afterwards
        list(pool.map(lambda i: cache.set(f"k{i}", i), range(60)))
    node.kill()
    node.start()  # no call while it was down: every pooled connection is now stale
    outcomes = [cache.get("k1") for _ in range(3)]
    assert outcomes[1:] == [None, None]  # misses (the new process is empty), no error
    cache.set("k1", "again")
    assert cache.get("k1") == "again"
    assert cache.add("fresh", 1) is True  # not declared failed or dead: writes that matter work
    assert cache.incr("n") == 1


def test_f5_through_the_stack_heartbeat_503_and_requests_still_served(spawn):
    from webtest import TestApp

    from cliquet_wsgi.stack import wrap

    def app(environ, start_response):
        start_response("200 OK", [("Content-Type", "application/json")])
        return [b'{"app": true}']

    from cliquet_wsgi.registry import Registry

    node = spawn()
    settings = {"cache_url": f"memcached://{node.address}", "userid_hmac_secret": "s" * 64, **FAST}
    registry = Registry(load_settings(settings, environ={}))
    try:
        stack = TestApp(wrap(app, registry=registry, **settings))
        response = stack.get("/v1/__heartbeat__")
        assert (response.status, response.json["cache"]) == ("200 OK", True)
        node.kill()
        response = stack.get("/v1/__heartbeat__", status=503)
        assert response.json["cache"] is False
        assert stack.get("/v1/anything").json == {"app": True}
        assert stack.get("/v1/").status == "200 OK"
        node.start()
        assert stack.get("/v1/__heartbeat__").json["cache"] is True
    finally:
        registry.close()


def test_calls_wait_for_a_free_connection_instead_of_failing(spawn, caches):
    """More threads than connections: every call succeeds, none is refused (cache_pool_timeout)."""
    cache = caches([spawn().address], cache_pool_size=1, cache_maxoverflow=1, cache_pool_timeout=10)
    with ThreadPoolExecutor(8) as pool:
        counts = list(pool.map(lambda _: cache.incr("waited"), range(400)))
    assert sorted(counts) == list(range(1, 401))
    assert cache.get("waited") == 400


def test_a_node_whose_connections_stay_busy_fails_the_call_after_the_pool_timeout(spawn, caches):
    node = spawn()
    cache = caches([node.address], cache_pool_size=1, cache_maxoverflow=0, cache_pool_timeout=0.3)
    cache.set("k", "v")
    ring = cache._ring
    slots = ring._node_slots(next(iter(ring.clients.values())).server)
    assert slots.acquire(timeout=1)  # the only connection is busy elsewhere, until the finally
    try:
        # The calls give up on their own (how fast: bench/faults.py).
        with hang_guard(HANG_GUARD_SECONDS):
            assert cache.get("k") is None  # a read degrades to a miss
            with pytest.raises(BackendError, match="pool exhausted"):
                cache.add("lock", 1)  # a write whose outcome matters reports it
    finally:
        slots.release()
    # Not a node failure: the next call goes through at once.
    assert cache.get("k") == "v"
    assert ring._failed_clients == {} and ring._dead_clients == {}


def test_a_waiting_call_proceeds_when_a_connection_is_freed(spawn, caches):
    # pool_timeout far above the final join's bound: the call can only end by getting the freed connection.
    cache = caches([spawn().address], cache_pool_size=1, cache_maxoverflow=0, cache_pool_timeout=60)
    cache.set("k", "v")
    ring = cache._ring
    slots = ring._node_slots(next(iter(ring.clients.values())).server)
    assert slots.acquire(timeout=1)
    results: list[Any] = []
    waiter = threading.Thread(target=lambda: results.append(cache.get("k")), daemon=True)
    waiter.start()
    # While the connection is held the call waits (it cannot return: pool_timeout is 60 s).
    waiter.join(0.3)
    assert waiter.is_alive() and results == []
    slots.release()
    waiter.join(HANG_GUARD_SECONDS)
    assert results == ["v"]
