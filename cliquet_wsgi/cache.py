"""The cache contract: keys to msgpack-serialisable values with expiry.

Values are anything msgpack serialises (dict, list, str, bytes, int, float,
bool, None); implementations store them msgpack-encoded (never pickle).
Keys are strings; every implementation prefixes them with ``cache_prefix``.
TTLs are in seconds (int or float). Expired entries are never returned.

Errors: :class:`~cliquet_wsgi.errors.BackendError` for driver failures,
except where an implementation documents that a failure degrades to a miss
(memcached: a dead node is a miss, writes to it are lost).
"""
from __future__ import annotations

import abc
from typing import Any

from cliquet_wsgi.backend import Backend, BackendError

__all__ = ["Cache", "BackendError"]


class Cache(Backend):
    """Abstract cache."""

    kind = "cache"

    @abc.abstractmethod
    def get(self, key: str) -> Any:
        """The value, or ``None`` if missing or expired."""

    @abc.abstractmethod
    def set(self, key: str, value: Any, ttl: float | None = None) -> None:
        """Store ``value``; ``ttl=None`` means no expiry."""

    @abc.abstractmethod
    def add(self, key: str, value: Any, ttl: float | None = None) -> bool:
        """Atomically store ``value`` only if ``key`` is absent; ``True`` if stored (locks, nonces)."""

    @abc.abstractmethod
    def incr(self, key: str, delta: int = 1, ttl: float | None = None) -> int:
        """Atomically add ``delta`` to an integer counter and return the new value.

        A missing key starts at 0 and gets ``ttl``; an existing key keeps its expiry.
        """

    @abc.abstractmethod
    def delete(self, key: str) -> Any:
        """Remove ``key``; return the value it had (``None`` if none)."""

    @abc.abstractmethod
    def expire(self, key: str, ttl: float) -> None:
        """Set a new TTL on an existing key; ``ttl <= 0`` deletes it."""

    @abc.abstractmethod
    def ttl(self, key: str) -> float:
        """Seconds left before expiry; ``-1`` if the key has no expiry or does not exist."""
