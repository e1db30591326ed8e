"""The memcached cache backend against real memcached processes (RELIABILITY F5-F7).

Each test starts its own ``memcached`` on a free loopback port, so it can kill
and restart it; the shared contract suite (``tests/backends/conftest.py``) uses
the one on 11211. Faults: SIGKILL for "down", a loopback proxy that accepts
connections and never answers for "black-holed".
"""
from __future__ import annotations

import contextlib
import hashlib
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

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


class BlackHole:
    """Loopback TCP server that accepts connections and never answers (proxy mode "blackhole")."""

    def __init__(self) -> None:
        self.listener = socket.socket()
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(64)
        self.port = self.listener.getsockname()[1]
        self.accepted: list[socket.socket] = []
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            self.accepted.append(conn)  # held open, never read, never answered

    def close(self) -> None:
        self.listener.close()
        for conn in self.accepted:
            conn.close()


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


@contextlib.contextmanager
def hang_guard(seconds: int):
    """Fail instead of hanging when a call ignores its timeouts (main thread, SIGALRM)."""

    def fail(signum, frame):
        raise AssertionError(f"still running after {seconds} s: a timeout is not applied")

    previous = signal.signal(signal.SIGALRM, fail)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def timed(call, *args):
    """``(result or exception, seconds)``."""
    start = time.monotonic()
    try:
        result = call(*args)
    except Exception as exc:  # the tests assert on the type
        result = exc
    return result, time.monotonic() - start


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
    cache.set("short", "v", ttl=0.3)
    assert 0 < cache.ttl("short") <= 0.3
    cache.set("long", "v", ttl=100)
    cache.expire("long", 10)
    assert 9 < cache.ttl("long") <= 10
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
    assert cache.incr("rate", ttl=20) == 1
    assert 19 < cache.ttl("rate") <= 20
    assert cache.incr("rate", ttl=500) == 2
    assert 19 < cache.ttl("rate") <= 20  # an existing counter keeps its expiry
    cache.set("int", 41, ttl=50)
    assert cache.incr("int") == 42  # an envelope holding an int is a counter
    assert 49 < cache.ttl("int") <= 50
    cache.set("plain", 7)
    assert cache.incr("plain", -8) == -1
    cache.expire("n", 30)  # a raw counter becomes an expiring envelope
    assert 29 < cache.ttl("n") <= 30 and cache.incr("n") == 2**62 - 91
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
#: Generous bound for one call that may touch the network once.
CALL_BOUND = FAST["cache_connect_timeout_seconds"] + FAST["cache_timeout_seconds"] + 0.5


def test_f5_killed_node_reads_miss_writes_documented_then_recovers(spawn, caches):
    node = spawn()
    cache = caches([node.address], **FAST)
    cache.set("before", "v")
    assert cache.get("before") == "v"
    node.kill()

    # Reads are misses and set is silently lost, whatever state the ring is in.
    started = time.monotonic()
    for i in range(50):
        result, seconds = timed(cache.get, "before")
        assert result is None and seconds < CALL_BOUND
        result, seconds = timed(cache.set, f"k{i}", i)
        assert result is None and seconds < CALL_BOUND
        assert cache.ttl("before") == -1
        time.sleep(0.01)
    assert time.monotonic() - started < 10
    # Writes whose outcome matters say so.
    for call, args in [(cache.add, ("a", 1)), (cache.incr, ("n",)), (cache.delete, ("before",))]:
        result, seconds = timed(call, *args)
        assert isinstance(result, NodeUnavailableError) and isinstance(result, BackendError)
        assert seconds < CALL_BOUND
    result, seconds = timed(cache.ping)
    assert result is False and seconds < CALL_BOUND

    # Once dead, a call does no network I/O at all.
    time.sleep(FAST["cache_retry_timeout_seconds"] * (FAST["cache_retry_attempts"] + 2))
    for _ in range(5):
        cache.get("x")
        time.sleep(FAST["cache_retry_timeout_seconds"])
    started = time.monotonic()
    for _ in range(1000):
        cache.get("x")
    assert time.monotonic() - started < 1.0

    node.start()  # same port
    assert cache.ping() is True  # the heartbeat sees it at once
    deadline = time.monotonic() + FAST["cache_dead_timeout_seconds"] + 3
    while True:
        cache.set("after", "back")
        if cache.get("after") == "back":
            break
        assert time.monotonic() < deadline, "hit rate did not recover after dead_timeout"
        time.sleep(0.1)
    hits = 0
    for i in range(100):
        cache.set(f"r{i}", i)
        hits += cache.get(f"r{i}") == i
    assert hits == 100
    assert cache.add("a", 1) is True


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
    cache = caches([first.address, second.address], **FAST)
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

    # Once the node is dead its keys move to the live node: writes work again.
    time.sleep(FAST["cache_retry_timeout_seconds"] * (FAST["cache_retry_attempts"] + 2))
    for _ in range(FAST["cache_retry_attempts"] + 2):
        cache.get(next(iter(on_second)))
        time.sleep(FAST["cache_retry_timeout_seconds"] + 0.05)
    for key in keys:
        cache.set(key, key)
    assert all(cache.get(key) == key for key in keys)
    assert cache.incr("counter") == 1

    second.start()
    assert cache.ping() is True
    time.sleep(FAST["cache_dead_timeout_seconds"] + 0.2)
    cache.get("wake-up")  # the ring puts the node back on its next call
    for key in keys:
        cache.set(key, key)
    assert all(cache.get(key) == key for key in keys)
    raw = second.raw()
    back_on_second = {key for key in keys if raw.get(key) is not None}
    raw.close()
    assert back_on_second == on_second  # same node, same keys: hashing is stable


# -- F6: the node is black-holed ---------------------------------------------------------


def test_f6_black_holed_node_calls_bounded_reads_miss():
    hole = BlackHole()
    settings = {
        "cache_url": f"memcached://127.0.0.1:{hole.port}",
        "cache_connect_timeout_seconds": 0.3,
        "cache_timeout_seconds": 0.3,
        "cache_retry_attempts": 1,
        "cache_retry_timeout_seconds": 0.2,
        "cache_dead_timeout_seconds": 60,
    }
    cache = MemcachedCache.from_settings(load_settings(settings, environ={}))
    bound = settings["cache_timeout_seconds"] * (settings["cache_retry_attempts"] + 1) + 0.3
    try:
        with hang_guard(30):
            slowest = 0.0
            deadline = time.monotonic() + 2
            while time.monotonic() < deadline:
                result, seconds = timed(cache.get, "k")
                assert result is None
                slowest = max(slowest, seconds)
                result, seconds = timed(cache.set, "k", 1)
                assert result is None
                slowest = max(slowest, seconds)
            assert slowest < bound
            # The node went dead after retry_attempts + 1 slow calls: now no call waits.
            started = time.monotonic()
            for _ in range(200):
                assert cache.get("k") is None
            assert time.monotonic() - started < 0.5
            result, seconds = timed(cache.add, "k", 1)
            assert isinstance(result, BackendError) and seconds < bound
            result, seconds = timed(cache.ping)
            assert result is False and seconds < bound + settings["cache_connect_timeout_seconds"]
            assert len(hole.accepted) >= 1  # the calls really reached the black hole
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
        result, seconds = timed(registry.all_heartbeat_checks()["cache"])
        assert result is False and seconds < CALL_BOUND
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
    assert slots.acquire(timeout=1)  # the only connection is busy elsewhere
    try:
        started = time.monotonic()
        assert cache.get("k") is None  # a read degrades to a miss
        assert 0.3 <= time.monotonic() - started < 1.0
        with pytest.raises(BackendError, match="pool exhausted"):
            cache.add("lock", 1)  # a write whose outcome matters reports it
    finally:
        slots.release()
    # Not a node failure: the next call goes through at once.
    assert cache.get("k") == "v"
    assert ring._failed_clients == {} and ring._dead_clients == {}


def test_a_waiting_call_proceeds_when_a_connection_is_freed(spawn, caches):
    cache = caches([spawn().address], cache_pool_size=1, cache_maxoverflow=0, cache_pool_timeout=5)
    cache.set("k", "v")
    ring = cache._ring
    slots = ring._node_slots(next(iter(ring.clients.values())).server)
    assert slots.acquire(timeout=1)
    threading.Timer(0.2, slots.release).start()
    started = time.monotonic()
    assert cache.get("k") == "v"
    assert 0.15 <= time.monotonic() - started < 2.0
