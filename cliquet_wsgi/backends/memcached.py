"""Cache backend on one or several memcached servers (pymemcache).

Use it when several application processes or hosts must share a cache and
losing cached entries is acceptable: memcached evicts under memory pressure
and forgets everything on restart. Do not use it for data that must survive
(single-use tokens are fine: losing one only makes a client retry).

Configuration (``cache_url = memcached://host:port[,host2:port2...]``)::

    cache_url = memcached://10.0.0.1:11211,10.0.0.2:11211
    cache_prefix = myapp:
    cache_pool_size = 25                   # connections per node and process
    cache_maxoverflow = 5                  # more connections when all are busy
    cache_pool_timeout = 30.0              # wait for a free connection, then fail the call
    cache_connect_timeout_seconds = 1.0    # TCP connect
    cache_timeout_seconds = 1.0            # each send/receive
    cache_retry_attempts = 2
    cache_retry_timeout_seconds = 1.0
    cache_dead_timeout_seconds = 30.0

At most ``cache_pool_size + cache_maxoverflow`` connections per node and
process are open at once (memcached connections are cheap: once opened they
stay in the pool). A call finding them all busy waits up to
``cache_pool_timeout`` seconds for one, then fails like an unreachable node
would (a miss for reads, see below) without counting as a node failure.

**Nodes and failures.** Keys are spread over the nodes by rendezvous hashing
(pymemcache ``HashClient`` with pooled clients). A node that fails (refused or
timed-out connection, connection closed) is *failed*: calls routed to it fail
fast without network I/O for ``cache_retry_timeout_seconds``, then one call
probes it again. After ``cache_retry_attempts`` failed probes it is *dead*:
taken out of the ring, so its keys move to the remaining nodes (they start as
misses there). After ``cache_dead_timeout_seconds`` it is put back and probed
again. So a dead node costs at most ``cache_retry_attempts + 1`` calls of up
to ``connect_timeout + timeout`` each per dead-timeout period, and nothing in
between. The defaults keep that below one slow call every ten seconds per
process while noticing a restarted node within half a minute. A node that
restarts between two calls costs one failed call per process: the first
pooled connection found closed only drops the idle ones and is not counted
as a node failure.

**Degradation** (the ``ignore_exc=True`` behaviour, applied at our boundary so
that writes which matter can still report failure):

* ``get`` and ``ttl`` on an unreachable node: a miss (``None`` / ``-1``), no error;
* ``set`` on an unreachable node: the value is lost, no error (logged);
* ``add``, ``incr``, ``delete``, ``expire`` and ``flush``: :class:`BackendError`,
  because callers rely on their outcome (a lock, a counter, a consumed token);
* anything a *reachable* server refuses (e.g. a value above memcached's item
  size limit, 1 MiB by default): :class:`BackendError`.

``ping()`` does a set/get round-trip on every node and is ``False`` as soon as
one node is down, so the heartbeat reports ``"cache": false`` even though
requests keep working on the other nodes.

**Keys.** A key becomes ``cache_prefix + key``. memcached keys are at most 250
bytes of printable ASCII without spaces, so a key that is longer, contains a
space, a control or non-ASCII character, or itself starts with ``sha256:``,
is stored as ``cache_prefix + "sha256:" + sha256(key).hexdigest()``. The last
rule keeps the mapping one-to-one. ``cache_prefix`` itself must be printable
ASCII without spaces and at most 179 bytes (checked at startup).

**Items.** The memcached *flags* field says what an item holds:

* flags ``1``, an *envelope*: msgpack ``{"v": value, "e": expiry}`` where
  ``e`` is the absolute expiry (Unix time, float) or ``None``. It makes
  ``ttl()`` possible and sub-second TTLs exact: memcached only knows whole
  seconds, so its own expiry is set one second later and the envelope decides.
* flags ``2``, a *raw counter*: memcached's own decimal, so that ``incr`` is
  memcached's atomic ``incr``/``decr``. memcached counters are unsigned 64-bit;
  we store ``value + 2**63`` so that counters are signed 64-bit (``incr``
  wraps past ``2**63 - 1``, ``decr`` stops at ``-2**63``) and ``get`` returns
  ``int(data) - 2**63``. A raw counter never expires.

``incr`` first tries memcached's ``incr`` (``decr`` for a negative delta). On
a missing key it ``add``s a raw counter, or an envelope when a ``ttl`` is
given. On a key holding an envelope (an expiring counter, ``set()`` of an
int, or a logically expired entry) it updates the envelope by
compare-and-swap, keeping its expiry. So counters without expiry cost one
round-trip, expiring counters two or three, and both are atomic.
``expire()`` on a raw counter turns it into an envelope. A write with
``ttl <= 0`` stores nothing (the entry would be expired at once): ``set``
deletes the key, ``add`` and ``incr`` on a missing key only return.

**delete** returns the old value atomically, so that a single-use token is
consumed once: it reads the item with its CAS id (``gets``) and deletes it
with memcached 1.6's meta delete conditional on that id (``md <key> C<cas>``);
if another writer changed it in between, it reads again. On a server without
meta commands (memcached < 1.6) it falls back to ``get`` then ``delete``, which
is **not atomic**: two concurrent deletes of one key may both return its value.
``add`` over an expired-but-not-yet-evicted entry and ``expire`` use
compare-and-swap and are atomic.
"""
from __future__ import annotations

import functools
import hashlib
import logging
import math
import re
import threading
import time
from types import SimpleNamespace
from typing import Any, Mapping
from urllib.parse import urlsplit

import msgpack

from cliquet_wsgi.cache import Cache
from cliquet_wsgi.errors import BackendError, ConfigurationError

__all__ = ["MemcachedCache", "NodeUnavailableError", "CACHE"]

logger = logging.getLogger(__name__)

#: memcached's key length limit, in bytes.
MAX_KEY_BYTES = 250
#: Marker of hashed keys (see the module docstring).
HASH_MARK = "sha256:"
_HASHED_SUFFIX_BYTES = len(HASH_MARK) + 64
MAX_PREFIX_BYTES = MAX_KEY_BYTES - _HASHED_SUFFIX_BYTES
_PLAIN_KEY = re.compile(r"[\x21-\x7e]+")

#: Flags of the two item formats (see the module docstring).
ENVELOPE_FLAGS = 1
COUNTER_FLAGS = 2
#: Raw counters hold ``value + COUNTER_BIAS``: memcached's unsigned 64-bit as signed.
COUNTER_BIAS = 2**63
#: memcached reads an expiry above 30 days as an absolute Unix time.
_RELATIVE_EXPIRY_LIMIT = 30 * 24 * 3600
#: Compare-and-swap rounds before giving up under contention.
_CAS_ATTEMPTS = 64
_DEFAULT_PORT = 11211


class NodeUnavailableError(BackendError):
    """The memcached node owning a key cannot be reached (refused, timed out, dead)."""


#: Returned by the ring instead of a result when it did not reach the node.
_UNAVAILABLE = object()


@functools.lru_cache(maxsize=None)
def _driver() -> SimpleNamespace:
    """pymemcache, imported on first use (an optional driver), and our ring class built on it."""
    from pymemcache import exceptions
    from pymemcache.client.hash import HashClient

    return SimpleNamespace(ring_class=_ring_class(HashClient, exceptions.MemcacheUnexpectedCloseError), errors=exceptions)


def _ring_class(HashClient: type, MemcacheUnexpectedCloseError: type) -> type:

    # The server closed a connection we reused: maybe only the pooled connections are stale.
    stale_connection_errors = (BrokenPipeError, ConnectionResetError, MemcacheUnexpectedCloseError)

    class NodeRing(HashClient):
        """``HashClient`` whose failed/dead bookkeeping is safe under threads.

        NOTE(memcached): pymemcache's ``HashClient`` mutates its failure dicts
        and the ring without a lock and raises ``KeyError``/``ValueError`` when
        two threads see a node fail or recover at once; it also calls a node
        once more right after declaring it dead. We keep its routing and its
        pooled per-node clients, and re-implement the retry policy (same
        parameters, documented in the module docstring) under one lock.
        """

        def __init__(self, servers: list[tuple[str, int]], *, pool_timeout: float, **kwargs: Any) -> None:
            self._state_lock = threading.RLock()
            self._stale_at: dict[Any, float] = {}
            self._pool_timeout = pool_timeout
            #: Per node: one permit per connection pymemcache's pool may hold.
            self._slots: dict[Any, threading.BoundedSemaphore] = {}
            super().__init__(servers, **kwargs)

        def _node_slots(self, server: Any) -> threading.BoundedSemaphore:
            slots = self._slots.get(server)
            if slots is None:
                with self._state_lock:
                    slots = self._slots.setdefault(server, threading.BoundedSemaphore(self.default_kwargs["max_pool_size"]))
            return slots

        def add_server(self, server: Any, port: Any = None) -> None:
            with self._state_lock:
                old = self.clients.get(self._make_client_key(server))
                super().add_server(server, port)
                if old is not None:
                    # The old client only holds sockets to the node that died.
                    old.close()

        def _get_client(self, key: Any) -> Any:
            # Keys were made valid by MemcachedCache; an empty ring means every
            # node is dead: the caller gets None (-> _UNAVAILABLE), not an exception.
            if self._dead_clients:
                self._retry_dead()
            nodes = tuple(self.hasher.nodes)  # a snapshot: other threads may change the ring
            if len(nodes) == 1:
                # PERF(memcached): pure-Python murmur3 costs ~8 µs a call; one node needs no hashing.
                return self.clients[nodes[0]]
            node = self.hasher.get_node(key)
            return None if node is None else self.clients[node]

        def _retry_dead(self) -> None:
            now = time.monotonic()
            with self._state_lock:
                for server, dead_since in list(self._dead_clients.items()):
                    if now - dead_since >= self.dead_timeout:
                        logger.warning("memcached node %s: back in the ring after %.0f s", server, now - dead_since)
                        del self._dead_clients[server]
                        self.add_server(server)

        def _declare_dead(self, server: Any) -> None:
            with self._state_lock:
                self._failed_clients.pop(server, None)
                if server in self._dead_clients:
                    return
                self._dead_clients[server] = time.monotonic()
                key = self._make_client_key(server)
                if key in self.hasher.nodes:
                    self.hasher.remove_node(key)
            logger.warning(
                "memcached node %s: dead, its keys go to the other nodes for %.0f s", server, self.dead_timeout
            )

        def _mark_failed_server(self, server: Any) -> None:
            with self._state_lock:
                failed = self._failed_clients.get(server)
                if failed is None:
                    self._failed_clients[server] = {"failed_time": time.monotonic(), "attempts": 0}
                    logger.warning("memcached node %s: failed, retrying in %.1f s", server, self.retry_timeout)
                else:
                    failed["attempts"] += 1
                    failed["failed_time"] = time.monotonic()
                give_up = self._failed_clients[server]["attempts"] >= self.retry_attempts
            if give_up:
                self._declare_dead(server)

        def _safely_run_func(self, client: Any, func: Any, default_val: Any, *args: Any, **kwargs: Any) -> Any:
            server = client.server
            with self._state_lock:
                failed = self._failed_clients.get(server)
                if failed is not None and time.monotonic() - failed["failed_time"] < self.retry_timeout:
                    return default_val  # fail fast between probes
                if server in self._dead_clients:
                    return default_val  # routed before the node was removed
            # NOTE(memcached): pymemcache's pool refuses a connection beyond its
            # size instead of waiting for one; the permits make callers wait.
            slots = self._node_slots(server)
            if not slots.acquire(timeout=self._pool_timeout):
                raise PoolExhaustedError(
                    f"no free connection to memcached node {server} within {self._pool_timeout:g} s"
                )
            try:
                result = func(*args, **kwargs)
            except (OSError, MemcacheUnexpectedCloseError) as exc:
                # The pooled client already dropped the broken connection.
                if isinstance(exc, stale_connection_errors) and self._first_stale(server):
                    self._drop_idle_connections(client)
                else:
                    self._mark_failed_server(server)
                raise
            finally:
                slots.release()
            if failed is not None:
                with self._state_lock:
                    if self._failed_clients.pop(server, None) is not None:
                        logger.warning("memcached node %s: recovered", server)
            return result

        def _first_stale(self, server: Any) -> bool:
            """Whether this closed connection is the node's first in ``retry_timeout``.

            NOTE(memcached): after a memcached restart every idle pooled
            connection is closed by the old process. Counting each as a node
            failure would declare a healthy node dead for ``dead_timeout``; the
            first one only makes us drop the idle connections, so a restart
            costs one failed call per process. A second one soon after counts.
            """
            now = time.monotonic()
            with self._state_lock:
                last = self._stale_at.get(server)
                self._stale_at[server] = now
            return last is None or now - last > self.retry_timeout

        @staticmethod
        def _drop_idle_connections(client: Any) -> None:
            pool = client.client_pool
            for _ in range(len(pool.free)):
                pool.destroy(pool.get())  # get() hands out idle ones first; destroy() closes

        def command(self, cmd: str, key: str, *args: Any, **kwargs: Any) -> Any:
            """Run ``cmd`` on the node owning ``key``; ``_UNAVAILABLE`` if it was not reached.

            ``raw_command`` takes the command line instead of the key as first argument.
            """
            if cmd == "raw_command":
                client = self._get_client(key)
                if client is None:
                    return _UNAVAILABLE
                return self._safely_run_func(client, client.raw_command, _UNAVAILABLE, *args, **kwargs)
            return self._run_cmd(cmd, key, _UNAVAILABLE, *args, **kwargs)

    return NodeRing


class PoolExhaustedError(RuntimeError):
    """Every connection to a node stayed busy for ``cache_pool_timeout``."""


class _FlagsSerde:
    """Values cross pymemcache as ``(flags, bytes)`` pairs; the flags name the item format."""

    def serialize(self, key: Any, value: tuple[int, bytes]) -> tuple[bytes, int]:
        flags, data = value
        return data, flags

    def deserialize(self, key: Any, data: bytes, flags: int) -> tuple[int, bytes]:
        return flags, data


def parse_servers(url: str) -> list[tuple[str, int]]:
    """``memcached://h1:p1,h2:p2`` -> ``[("h1", p1), ("h2", p2)]``; ConfigurationError if malformed."""
    scheme, sep, rest = url.partition("://")
    if not sep or scheme.lower() != "memcached":
        raise ConfigurationError(f"Setting 'cache_url' must look like memcached://host:port[,host:port], got {url!r}")
    servers = []
    for part in rest.split(","):
        part = part.strip()
        try:
            split = urlsplit("//" + part)
            host, port = split.hostname, split.port
        except ValueError:
            host = port = None
            split = None
        if not part or not host or split is None or split.path or split.query or split.fragment or split.username:
            raise ConfigurationError(f"Setting 'cache_url': invalid memcached server {part!r} in {url!r}")
        servers.append((host, port or _DEFAULT_PORT))
    if len(set(servers)) != len(servers):
        raise ConfigurationError(f"Setting 'cache_url': a server is listed twice in {url!r}")
    return servers


def _memcached_expire(ttl: float | None) -> int:
    """memcached's ``exptime`` for an envelope's TTL: whole seconds, absolute beyond 30 days, 0 = never.

    memcached's clock ticks once a second, so an item may vanish up to a second
    before its exptime: one more second lets the envelope's own expiry decide.
    """
    if ttl is None:
        return 0
    seconds = max(1, math.ceil(ttl)) + 1
    if seconds > _RELATIVE_EXPIRY_LIMIT:
        return math.ceil(time.time()) + seconds
    return seconds


def _already_expired(ttl: float | None) -> bool:
    """A ``ttl <= 0`` on a write: the entry would be expired at once (nothing is stored)."""
    return ttl is not None and ttl <= 0


class MemcachedCache(Cache):
    """Cache on memcached nodes; see the module docstring for failure behaviour and formats.

    ``servers``: ``[(host, port), ...]``; the other arguments mirror the ``cache_*`` settings.
    """

    def __init__(
        self,
        servers: list[tuple[str, int]],
        *,
        prefix: str = "",
        pool_size: int = 25,
        max_overflow: int = 5,
        pool_timeout: float = 30.0,
        connect_timeout: float = 1.0,
        timeout: float = 1.0,
        retry_attempts: int = 2,
        retry_timeout: float = 1.0,
        dead_timeout: float = 30.0,
    ) -> None:
        if not servers:
            raise ConfigurationError("Setting 'cache_url': no memcached server given")
        if prefix and (not _PLAIN_KEY.fullmatch(prefix) or len(prefix) > MAX_PREFIX_BYTES):
            raise ConfigurationError(
                f"Setting 'cache_prefix' must be printable ASCII without spaces and at most "
                f"{MAX_PREFIX_BYTES} bytes for memcached, got {prefix!r}"
            )
        try:
            self._driver = _driver()
        except ImportError as exc:
            raise ConfigurationError(f"The memcached cache needs pymemcache (pip install pymemcache): {exc}") from None
        self.prefix = prefix
        self.servers = list(servers)
        #: Atomic delete with meta commands; cleared on the first server that lacks them.
        self._meta_delete = True
        self._ring = self._driver.ring_class(
            self.servers,
            serde=_FlagsSerde(),
            connect_timeout=connect_timeout,
            timeout=timeout,
            no_delay=True,
            use_pooling=True,
            max_pool_size=pool_size + max_overflow,
            pool_timeout=pool_timeout,
            retry_attempts=retry_attempts,
            retry_timeout=retry_timeout,
            dead_timeout=dead_timeout,
            # We classify failures ourselves (reads degrade, some writes raise).
            ignore_exc=False,
            # NOTE(memcached): with noreply, a server error reply (e.g. "object
            # too large") stays unread on the pooled socket and desyncs it; we
            # always wait for replies.
            default_noreply=False,
        )

    @classmethod
    def from_settings(cls, settings: Mapping[str, Any]) -> "MemcachedCache":
        return cls(
            parse_servers(settings.get("cache_url") or ""),
            prefix=settings.get("cache_prefix", ""),
            pool_size=settings.get("cache_pool_size", 25),
            max_overflow=settings.get("cache_maxoverflow", 5),
            pool_timeout=settings.get("cache_pool_timeout", 30.0),
            connect_timeout=settings.get("cache_connect_timeout_seconds", 1.0),
            timeout=settings.get("cache_timeout_seconds", 1.0),
            retry_attempts=settings.get("cache_retry_attempts", 2),
            retry_timeout=settings.get("cache_retry_timeout_seconds", 1.0),
            dead_timeout=settings.get("cache_dead_timeout_seconds", 30.0),
        )

    # -- the one boundary where driver errors are translated ------------------------

    def _command(self, cmd: str, name: str, *args: Any, **kwargs: Any) -> Any:
        try:
            result = self._ring.command(cmd, name, *args, **kwargs)
        except (OSError, self._driver.errors.MemcacheUnexpectedCloseError) as exc:
            raise NodeUnavailableError(exc) from exc
        except RuntimeError as exc:
            # PoolExhaustedError, or pymemcache's own pool refusing a connection.
            raise NodeUnavailableError(exc, f"memcached connection pool exhausted: {exc}") from exc
        except Exception as exc:
            raise BackendError(exc) from exc
        if result is _UNAVAILABLE:
            raise NodeUnavailableError(None, f"memcached node for {name!r} is failed or dead")
        return result

    # -- keys and item formats ------------------------------------------------------

    def _name(self, key: str) -> str:
        """The memcached key for ``key`` (prefixed; hashed when memcached would refuse it)."""
        if not isinstance(key, str):
            raise TypeError(f"cache keys are strings, got {type(key).__name__}")
        name = self.prefix + key
        if len(name) <= MAX_KEY_BYTES and _PLAIN_KEY.fullmatch(name) and not key.startswith(HASH_MARK):
            return name
        return self.prefix + HASH_MARK + hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()

    @staticmethod
    def _envelope(value: Any, expiry: float | None) -> tuple[int, bytes]:
        return ENVELOPE_FLAGS, msgpack.packb({"v": value, "e": expiry}, use_bin_type=True)

    def _counter_or_envelope(self, number: int, expiry: float | None) -> tuple[tuple[int, bytes], int]:
        """``(item, exptime)`` for a counter value: raw when it never expires and fits 64 bits."""
        if expiry is None and -COUNTER_BIAS <= number < COUNTER_BIAS:
            return (COUNTER_FLAGS, str(number + COUNTER_BIAS).encode("ascii")), 0
        remaining = None if expiry is None else max(expiry - time.time(), 0.001)
        return self._envelope(number, expiry), _memcached_expire(remaining)

    @staticmethod
    def _decode(item: Any) -> tuple[Any, float | None] | None:
        """``(flags, data)`` -> ``(value, expiry)``, or ``None`` if missing, expired or not ours."""
        if item is None:
            return None
        flags, data = item
        if flags == ENVELOPE_FLAGS:
            try:
                envelope = msgpack.unpackb(data, raw=False, strict_map_key=False)
                value, expiry = envelope["v"], envelope["e"]
            except Exception:
                logger.warning("memcached: undecodable cache item ignored (treated as a miss)")
                return None
        elif flags == COUNTER_FLAGS and data.isdigit():
            value, expiry = int(data) - COUNTER_BIAS, None
        else:
            logger.warning("memcached: foreign cache item with flags %r ignored (treated as a miss)", flags)
            return None
        if expiry is not None and expiry <= time.time():
            return None
        return value, expiry

    def _read(self, name: str) -> tuple[Any, float | None] | None:
        return self._decode(self._command("get", name, default=None))

    # -- the contract ---------------------------------------------------------------

    def ping(self) -> bool:
        token = str(time.time_ns()).encode()
        name = self.prefix + "__cliquet_heartbeat__"
        ok = True
        for server, client in list(self._ring.clients.items()):
            try:
                item = self._envelope(token, None)
                client.set(name, item, expire=60, noreply=False)
                if client.get(name) != item:
                    raise RuntimeError("value read back differs")
            except Exception as exc:
                logger.warning("memcached node %s: heartbeat failed: %s: %s", server, type(exc).__name__, exc)
                ok = False
        return ok

    def flush(self) -> None:
        for client in list(self._ring.clients.values()):
            try:
                client.flush_all(noreply=False)
            except Exception as exc:
                raise BackendError(exc) from exc

    def close(self) -> None:
        for client in list(self._ring.clients.values()):
            try:
                client.close()
            except Exception:  # closing sockets of a dead node may fail; nothing to do
                pass

    def get(self, key: str) -> Any:
        name = self._name(key)
        try:
            found = self._read(name)
        except NodeUnavailableError:
            return None
        return None if found is None else found[0]

    def ttl(self, key: str) -> float:
        name = self._name(key)
        try:
            found = self._read(name)
        except NodeUnavailableError:
            return -1
        if found is None or found[1] is None:
            return -1
        return max(found[1] - time.time(), 0.0)

    def set(self, key: str, value: Any, ttl: float | None = None) -> None:
        name = self._name(key)
        item = self._envelope(value, None if ttl is None else time.time() + ttl)
        try:
            if _already_expired(ttl):
                self._command("delete", name, noreply=False)
            else:
                self._command("set", name, item, expire=_memcached_expire(ttl), noreply=False)
        except NodeUnavailableError as exc:
            logger.debug("memcached: set of %r lost: %s", name, exc)

    def add(self, key: str, value: Any, ttl: float | None = None) -> bool:
        name = self._name(key)
        if _already_expired(ttl):
            return self._read(name) is None
        expire = _memcached_expire(ttl)
        item = self._envelope(value, None if ttl is None else time.time() + ttl)
        for _ in range(_CAS_ATTEMPTS):
            if self._command("add", name, item, expire=expire, noreply=False):
                return True
            # memcached still holds the key, but it may be logically expired
            # (envelopes outlive their expiry by up to 2 s): replace it atomically.
            current, cas = self._command("gets", name)
            if current is None:
                continue  # evicted meanwhile: add again
            if self._decode(current) is not None:
                return False
            if self._command("cas", name, item, cas, expire=expire, noreply=False):
                return True
        raise BackendError(None, f"memcached: add of {name!r} lost {_CAS_ATTEMPTS} races")

    def incr(self, key: str, delta: int = 1, ttl: float | None = None) -> int:
        if isinstance(delta, bool) or not isinstance(delta, int):
            raise TypeError(f"delta must be an int, got {delta!r}")
        name = self._name(key)
        for _ in range(_CAS_ATTEMPTS):
            try:
                if delta >= 0:
                    result = self._command("incr", name, delta, noreply=False)
                else:
                    result = self._command("decr", name, -delta, noreply=False)
            except NodeUnavailableError:
                raise
            except BackendError as exc:
                # memcached refuses to incr a non-decimal item: the key holds an envelope.
                if not isinstance(exc.original, self._driver.errors.MemcacheClientError):
                    raise
                result = self._incr_envelope(key, name, delta, ttl)
                if result is not None:
                    return result
            else:
                if result is not None:
                    return int(result) - COUNTER_BIAS
            # Missing: create it; if another writer was faster, go round again.
            if _already_expired(ttl):
                return delta
            item, exptime = self._counter_or_envelope(delta, None if ttl is None else time.time() + ttl)
            if self._command("add", name, item, expire=exptime, noreply=False):
                return delta
        raise BackendError(None, f"memcached: incr of {name!r} lost {_CAS_ATTEMPTS} races")

    def _incr_envelope(self, key: str, name: str, delta: int, ttl: float | None) -> int | None:
        """Add ``delta`` to a counter held in an envelope (compare-and-swap); ``None`` if the key vanished."""
        for _ in range(_CAS_ATTEMPTS):
            current, cas = self._command("gets", name)
            if current is None:
                return None
            found = self._decode(current)
            if found is None:  # logically expired: the counter restarts
                number, expiry = delta, (None if ttl is None else time.time() + ttl)
            else:
                value, expiry = found
                if isinstance(value, bool) or not isinstance(value, int):
                    raise TypeError(f"cache key {key!r} does not hold an integer")
                number = value + delta
            item, exptime = self._counter_or_envelope(number, expiry)
            stored = self._command("cas", name, item, cas, expire=exptime, noreply=False)
            if stored:
                return number
            if stored is None:
                return None
        raise BackendError(None, f"memcached: incr of {name!r} lost {_CAS_ATTEMPTS} races")

    def delete(self, key: str) -> Any:
        name = self._name(key)
        if not self._meta_delete:
            found = self._read(name)
            self._command("delete", name, noreply=False)
            return None if found is None else found[0]
        for _ in range(_CAS_ATTEMPTS):
            current, cas = self._command("gets", name)
            if current is None:
                return None
            try:
                # Keys are printable ASCII without spaces: safe in a command line.
                reply = self._command("raw_command", name, f"md {name} C{int(cas)}".encode("ascii"), b"\r\n")
            except BackendError as exc:
                if not isinstance(exc.original, self._driver.errors.MemcacheUnknownCommandError):
                    raise
                logger.warning("memcached: no meta commands (memcached < 1.6): delete is not atomic")
                self._meta_delete = False
                return self.delete(key)
            if reply == b"HD":
                found = self._decode(current)
                return None if found is None else found[0]
            if reply == b"NF":
                return None
            if reply != b"EX":  # EX: changed since our gets, read again
                raise BackendError(None, f"memcached: unexpected reply to meta delete: {reply!r}")
        raise BackendError(None, f"memcached: delete of {name!r} lost {_CAS_ATTEMPTS} races")

    def expire(self, key: str, ttl: float) -> None:
        name = self._name(key)
        if ttl <= 0:
            self._command("delete", name, noreply=False)
            return
        expiry = time.time() + ttl
        for _ in range(_CAS_ATTEMPTS):
            current, cas = self._command("gets", name)
            found = self._decode(current)
            if found is None:
                return
            stored = self._command(
                "cas", name, self._envelope(found[0], expiry), cas, expire=_memcached_expire(ttl), noreply=False
            )
            if stored or stored is None:
                return
        raise BackendError(None, f"memcached: expire of {name!r} lost {_CAS_ATTEMPTS} races")


CACHE = MemcachedCache
