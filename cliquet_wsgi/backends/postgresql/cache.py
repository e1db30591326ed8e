"""PostgreSQL cache: msgpack values in BYTEA with an epoch-ms expiry.

Useful when PostgreSQL is already there and memcached is not; expired rows
are treated as absent everywhere and purged lazily. Time is the database's
clock, so several application hosts agree on expiry.
"""
from __future__ import annotations

import random
from typing import Any, Mapping

import msgpack

from cliquet_wsgi.backends.postgresql.base import PostgreSQLBackend
from cliquet_wsgi.backends.postgresql.pool import Pool
from cliquet_wsgi.cache import Cache

_NOW_MS = "floor(extract(epoch FROM clock_timestamp()) * 1000)::bigint"
_LIVE = f"(expires_at IS NULL OR expires_at > {_NOW_MS})"

#: One write in this many also purges a batch of expired rows.
_PURGE_EVERY = 16


def _pack(value: Any) -> bytes:
    return msgpack.packb(value, use_bin_type=True)


def _unpack(data: bytes) -> Any:
    return msgpack.unpackb(bytes(data), raw=False, strict_map_key=False)


def _ttl_ms(ttl: float | None) -> int | None:
    return None if ttl is None else int(round(ttl * 1000))


class PostgreSQLCache(PostgreSQLBackend, Cache):
    """Cache in PostgreSQL through pg8000.

    Settings: ``cache_url``, ``cache_prefix``, ``cache_pool_size``,
    ``cache_maxoverflow``, ``cache_pool_timeout`` (a pool is shared per URL).
    """

    kind = "cache"

    def __init__(self, pool: Pool, settings: Mapping[str, Any] | None = None) -> None:
        super().__init__(pool)
        self.prefix = (settings or {}).get("cache_prefix") or ""

    def flush(self) -> None:
        with self.pool.transaction() as cursor:
            cursor.execute("DELETE FROM cache")

    def _purge(self, cursor: Any) -> None:
        # SKIP LOCKED: concurrent purges never wait for (or deadlock with) each other.
        cursor.execute(
            "DELETE FROM cache WHERE key IN (SELECT key FROM cache "
            f"WHERE expires_at <= {_NOW_MS} ORDER BY expires_at LIMIT 100 FOR UPDATE SKIP LOCKED)"
        )

    def get(self, key: str) -> Any:
        with self.pool.transaction() as cursor:
            cursor.execute(f"SELECT value FROM cache WHERE key = %s AND {_LIVE}", (self.prefix + key,))
            row = cursor.fetchone()
        return None if row is None else _unpack(row[0])

    def set(self, key: str, value: Any, ttl: float | None = None) -> None:
        packed = _pack(value)
        with self.pool.transaction() as cursor:
            cursor.execute(
                "INSERT INTO cache (key, value, expires_at) "
                f"VALUES (%s, %s::bytea, {_NOW_MS} + %s::bigint) "
                "ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value, expires_at = EXCLUDED.expires_at",
                (self.prefix + key, packed, _ttl_ms(ttl)),
            )
            if random.randrange(_PURGE_EVERY) == 0:
                self._purge(cursor)

    def add(self, key: str, value: Any, ttl: float | None = None) -> bool:
        packed = _pack(value)
        with self.pool.transaction() as cursor:
            # A concurrent add of the same key waits on the unique index and
            # then sees the winner's row, which is live: exactly one returns a row.
            cursor.execute(
                "INSERT INTO cache AS c (key, value, expires_at) "
                f"VALUES (%s, %s::bytea, {_NOW_MS} + %s::bigint) "
                "ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value, expires_at = EXCLUDED.expires_at "
                f"WHERE c.expires_at IS NOT NULL AND c.expires_at <= {_NOW_MS} "
                "RETURNING 1",
                (self.prefix + key, packed, _ttl_ms(ttl)),
            )
            return cursor.fetchone() is not None

    def incr(self, key: str, delta: int = 1, ttl: float | None = None) -> int:
        full_key = self.prefix + key
        with self.pool.transaction() as cursor:
            # Creates a missing (or expired) counter at 0 and row-locks it in
            # every case, so the read-modify-write below is atomic.
            cursor.execute(
                "INSERT INTO cache AS c (key, value, expires_at) "
                f"VALUES (%s, %s::bytea, {_NOW_MS} + %s::bigint) "
                "ON CONFLICT (key) DO UPDATE SET value = "
                f"CASE WHEN c.expires_at IS NOT NULL AND c.expires_at <= {_NOW_MS} THEN EXCLUDED.value "
                "ELSE c.value END, expires_at = "
                f"CASE WHEN c.expires_at IS NOT NULL AND c.expires_at <= {_NOW_MS} THEN EXCLUDED.expires_at "
                "ELSE c.expires_at END "
                "RETURNING value",
                (full_key, _pack(0), _ttl_ms(ttl)),
            )
            current = _unpack(cursor.fetchone()[0])
            if not isinstance(current, int) or isinstance(current, bool):
                raise ValueError(f"Cache value of {key!r} is not an integer counter")
            new = current + delta
            cursor.execute("UPDATE cache SET value = %s::bytea WHERE key = %s", (_pack(new), full_key))
        return new

    def delete(self, key: str) -> Any:
        with self.pool.transaction() as cursor:
            cursor.execute(
                f"DELETE FROM cache WHERE key = %s RETURNING value, {_LIVE}",
                (self.prefix + key,),
            )
            row = cursor.fetchone()
        return _unpack(row[0]) if row is not None and row[1] else None

    def expire(self, key: str, ttl: float) -> None:
        with self.pool.transaction() as cursor:
            if ttl <= 0:
                cursor.execute("DELETE FROM cache WHERE key = %s", (self.prefix + key,))
                return
            cursor.execute(
                f"UPDATE cache SET expires_at = {_NOW_MS} + %s::bigint WHERE key = %s AND {_LIVE}",
                (_ttl_ms(ttl), self.prefix + key),
            )

    def ttl(self, key: str) -> float:
        with self.pool.transaction() as cursor:
            cursor.execute(
                f"SELECT expires_at - {_NOW_MS} FROM cache WHERE key = %s AND {_LIVE}",
                (self.prefix + key,),
            )
            row = cursor.fetchone()
        if row is None or row[0] is None:
            return -1
        return row[0] / 1000.0
