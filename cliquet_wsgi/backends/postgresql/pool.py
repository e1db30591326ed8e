"""A small thread-safe connection pool for pg8000, which has none.

One :class:`Pool` per database URL and process (:func:`get_pool`), so that
storage, permission and cache backends pointing at the same database share
connections **and the calling thread's current transaction**: a request that
writes a record and its ACEs commits or rolls back both together.

What it guarantees:

* at most ``size + max_overflow`` connections; a checkout waits at most
  ``timeout`` seconds, then raises :class:`BackendError` (never hangs);
* every reused connection is pinged (``SELECT 1``) on checkout; a broken one
  is discarded and replaced, so a PostgreSQL restart or
  ``pg_terminate_backend()`` is survived without restarting the application;
* connections carry ``application_name`` (``cliquet-wsgi``), a connect timeout,
  a socket timeout and a server-side ``statement_timeout``;
* every pg8000, socket and protocol error is translated into
  :class:`BackendError` at one boundary (:meth:`Pool.transaction`);
* after ``fork()`` the child never reuses the parent's sockets.
"""
from __future__ import annotations

import contextlib
import functools
import logging
import os
import socket
import struct
import threading
import time
from collections import deque
from typing import Any, Iterator
from urllib.parse import unquote, urlsplit

from cliquet_wsgi.errors import BackendError, ConfigurationError

logger = logging.getLogger(__name__)

APPLICATION_NAME = "cliquet-wsgi"

#: SQLSTATE classes after which the server closed the session.
_FATAL_SEVERITIES = ("FATAL", "PANIC")


def parse_url(url: str) -> dict[str, Any]:
    """``postgresql://user[:password]@host[:port]/db`` -> pg8000 connect arguments."""
    parts = urlsplit(url)
    if parts.scheme not in ("postgresql", "postgres"):
        raise ConfigurationError(f"Not a PostgreSQL URL: {parts.scheme}://…")
    database = unquote(parts.path.lstrip("/"))
    if not database or not parts.username:
        raise ConfigurationError("PostgreSQL URL must look like postgresql://user[:password]@host[:port]/db")
    try:
        port = parts.port or 5432
    except ValueError:
        raise ConfigurationError("PostgreSQL URL has an invalid port") from None
    return {
        "user": unquote(parts.username),
        "password": unquote(parts.password) if parts.password is not None else None,
        "host": parts.hostname or "127.0.0.1",
        "port": port,
        "database": database,
    }


def _driver_errors() -> tuple[type[BaseException], ...]:
    import pg8000.exceptions

    # NOTE: pg8000 lets raw socket/struct errors escape from its reader when
    # the server vanishes mid-message; they mean the same as InterfaceError.
    return (pg8000.exceptions.Error, OSError, struct.error, EOFError, UnicodeError)


def _cache_paramstyle_conversion() -> None:
    """Make pg8000's ``%s`` -> ``$n`` rewrite of a statement happen once per distinct statement.

    PERF: ``pg8000.dbapi.Cursor.execute`` rescans the SQL text character by
    character in Python on every call (about 100 µs for our statements,
    several per request). For the ``format`` paramstyle the rewritten text
    depends on the text alone and the values pass through unchanged, so a
    cache keyed by the text gives identical results; errors (an unsupported
    ``%`` sequence) are not cached and are raised again. Other paramstyles go
    to the original function. Idempotent.
    """
    import pg8000.dbapi

    original = pg8000.dbapi.convert_paramstyle
    if getattr(original, "_cliquet_cached", False):
        return

    @functools.lru_cache(maxsize=1024)
    def rewrite(query: str) -> str:
        return original("format", query, ())[0]

    def convert_paramstyle(style: str, query: str, args: Any) -> tuple[str, Any]:
        if style == "format" and type(query) is str:
            return rewrite(query), args
        return original(style, query, args)

    convert_paramstyle._cliquet_cached = True  # type: ignore[attr-defined]
    pg8000.dbapi.convert_paramstyle = convert_paramstyle


def is_database_error(exc: BaseException) -> bool:
    """A server-reported SQL error after which the session is still usable."""
    import pg8000.exceptions

    if not isinstance(exc, pg8000.exceptions.DatabaseError):
        return False
    info = exc.args[0] if exc.args and isinstance(exc.args[0], dict) else {}
    return info.get("S") not in _FATAL_SEVERITIES


def sqlstate(exc: BaseException) -> str | None:
    info = exc.args[0] if getattr(exc, "args", None) and isinstance(exc.args[0], dict) else {}
    return info.get("C")


class _Conn:
    """A pooled pg8000 connection with its birth time."""

    __slots__ = ("raw", "sock", "created", "pid")

    def __init__(self, raw: Any, sock: socket.socket) -> None:
        self.raw = raw
        self.sock = sock
        self.created = time.monotonic()
        self.pid = os.getpid()


class _TxState(threading.local):
    conn: _Conn | None = None
    depth: int = 0
    failed: bool = False


class Pool:
    """Connections to one database; see the module docstring."""

    def __init__(
        self,
        url: str,
        size: int = 25,
        max_overflow: int = 5,
        timeout: float = 30.0,
        recycle: float = -1,
        connect_timeout: float = 10.0,
        statement_timeout: float = 30.0,
        application_name: str = APPLICATION_NAME,
    ) -> None:
        self.url = url
        self.application_name = application_name
        self.params = parse_url(url)
        self.size = size
        self.max_overflow = max_overflow
        self.timeout = timeout
        self.recycle = recycle
        self.connect_timeout = connect_timeout
        self.statement_timeout = statement_timeout
        self._idle: deque[_Conn] = deque()
        self._slots = threading.BoundedSemaphore(size + max_overflow)
        self._lock = threading.Lock()
        self._local = _TxState()
        self._pid = os.getpid()
        # NOTE: bounds every socket read so that a black-holed server fails a
        # request instead of hanging a thread; above statement_timeout so
        # that the server's own cancel normally wins.
        self.io_timeout = statement_timeout + max(5.0, connect_timeout) if statement_timeout else None
        #: Connections currently checked out (observability and tests).
        self.checked_out = 0

    # -- connections ---------------------------------------------------------------

    def _connect(self) -> _Conn:
        import pg8000.dbapi

        _cache_paramstyle_conversion()

        p = self.params
        sock = socket.create_connection((p["host"], p["port"]), timeout=self.connect_timeout)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
            # The handshake counts as connecting: a server that accepts but
            # never answers fails within connect_timeout.
            sock.settimeout(self.connect_timeout)
            startup = {"TimeZone": "UTC"}
            if self.statement_timeout:
                startup["statement_timeout"] = str(int(self.statement_timeout * 1000))
            raw = pg8000.dbapi.connect(
                user=p["user"],
                password=p["password"],
                database=p["database"],
                sock=sock,
                application_name=self.application_name,
                startup_params=startup,
            )
        except BaseException:
            sock.close()
            raise
        sock.settimeout(self.io_timeout)
        raw.autocommit = True
        return _Conn(raw, sock)

    @staticmethod
    def _close(conn: _Conn) -> None:
        try:
            conn.raw.close()
        except Exception:  # already broken: nothing more to release
            pass

    def _alive(self, conn: _Conn) -> bool:
        if self.recycle >= 0 and time.monotonic() - conn.created > self.recycle:
            return False
        try:
            # A black-holed server must fail the ping within the connect
            # timeout, not the (longer) statement socket timeout.
            conn.sock.settimeout(self.connect_timeout)
            cursor = conn.raw.cursor()
            cursor.execute("SELECT 1")
            cursor.fetchall()
            conn.sock.settimeout(self.io_timeout)
            return True
        except _driver_errors():
            return False

    def _after_fork(self) -> None:
        # NOTE: the parent's sockets must not be used (nor closed) by a child:
        # closing would send Terminate on the parent's sessions.
        with self._lock:
            if self._pid != os.getpid():
                self._pid = os.getpid()
                self._idle.clear()
                self._slots = threading.BoundedSemaphore(self.size + self.max_overflow)
                self._local = _TxState()
                self.checked_out = 0

    def checkout(self) -> _Conn:
        """A live connection, or :class:`BackendError` after ``timeout`` seconds."""
        if self._pid != os.getpid():
            self._after_fork()
        deadline = time.monotonic() + self.timeout
        if not self._slots.acquire(timeout=self.timeout):
            raise BackendError(message=f"PostgreSQL pool exhausted: no connection within {self.timeout}s")
        try:
            while True:
                with self._lock:
                    conn = self._idle.pop() if self._idle else None
                if conn is None:
                    break
                if self._alive(conn):
                    with self._lock:
                        self.checked_out += 1
                    return conn
                logger.info("Discarding a broken or expired PostgreSQL connection")
                self._close(conn)
            if time.monotonic() > deadline:
                raise BackendError(message="PostgreSQL pool timeout")
            try:
                conn = self._connect()
            except _driver_errors() as exc:
                raise BackendError(exc, message=f"Cannot connect to PostgreSQL: {exc}") from exc
            with self._lock:
                self.checked_out += 1
            return conn
        except BaseException:
            self._slots.release()
            raise

    def checkin(self, conn: _Conn, broken: bool = False) -> None:
        if conn.pid != os.getpid():
            return
        with self._lock:
            self.checked_out -= 1
            keep = not broken and len(self._idle) < self.size
            if keep:
                self._idle.append(conn)
        if not keep:
            self._close(conn)
        self._slots.release()

    def dispose(self) -> None:
        """Close idle connections (checked-out ones close on checkin)."""
        with self._lock:
            idle, self._idle = list(self._idle), deque()
        for conn in idle:
            self._close(conn)

    # -- transactions --------------------------------------------------------------

    def in_transaction(self) -> bool:
        return self._local.conn is not None

    @contextlib.contextmanager
    def transaction(self) -> Iterator[Any]:
        """Yield a pg8000 cursor inside the thread's transaction.

        The outermost block checks a connection out, ``BEGIN``s, and commits on
        success or rolls back on any exception; nested blocks (also from
        another backend sharing this pool) join it. Driver errors leave as
        :class:`BackendError` (with ``original``); other exceptions pass
        through unchanged, after the rollback.
        """
        if self._pid != os.getpid():
            self._after_fork()
        local = self._local
        errors = _driver_errors()
        if local.conn is not None:
            local.depth += 1
            try:
                yield local.conn.raw.cursor()
            except errors as exc:
                # The server transaction is aborted: the outermost block must
                # not commit even if a caller swallows this error.
                error = backend_error(exc)
                local.failed = error
                raise error from exc
            finally:
                local.depth -= 1
            return

        conn = self.checkout()
        broken = False
        local.conn, local.depth, local.failed = conn, 1, False
        try:
            try:
                cursor = conn.raw.cursor()
                cursor.execute("BEGIN")
                yield cursor
                if local.failed:
                    # NOTE: an inner block failed and its caller swallowed the
                    # error: the server transaction may be aborted, so never
                    # pretend it committed.
                    raise BackendError(
                        message="transaction aborted by an earlier error", retryable=local.failed.retryable
                    )
                cursor.execute("COMMIT")
            except BaseException as exc:
                broken = isinstance(exc, errors) and not is_database_error(exc)
                if not broken:
                    try:
                        conn.raw.cursor().execute("ROLLBACK")
                    except errors:
                        broken = True
                if isinstance(exc, errors):
                    raise backend_error(exc) from exc
                raise
        finally:
            local.conn, local.depth, local.failed = None, 0, False
            self.checkin(conn, broken=broken)


#: SQLSTATEs after which the server rolled the transaction back and running it
#: again may succeed: deadlock_detected, serialization_failure.
RETRYABLE_SQLSTATES = frozenset({"40P01", "40001"})


def backend_error(exc: BaseException) -> BackendError:
    """The :class:`BackendError` for a driver error, retryable for deadlocks and serialisation failures."""
    details = exc.args[0] if exc.args and isinstance(exc.args[0], dict) else {}
    return BackendError(exc, retryable=details.get("C") in RETRYABLE_SQLSTATES)


_pools: dict[str, Pool] = {}
_pools_lock = threading.Lock()


def get_pool(url: str, **options: Any) -> Pool:
    """The process-wide pool of ``url`` (the first caller's options size it)."""
    key = url.replace("postgres://", "postgresql://", 1)
    with _pools_lock:
        pool = _pools.get(key)
        if pool is None:
            pool = _pools[key] = Pool(key, **options)
        return pool


def close_pools() -> None:
    """Close every idle pooled connection (tests, shutdown)."""
    with _pools_lock:
        pools = list(_pools.values())
    for pool in pools:
        pool.dispose()
