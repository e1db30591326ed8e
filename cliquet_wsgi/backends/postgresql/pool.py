"""A small thread-safe connection pool for pg8000, which has none.

One :class:`Pool` per database URL and process (:func:`get_pool`), so that
storage, permission and cache backends pointing at the same database share
connections **and the calling thread's current transaction**: a request that
writes a record and its ACEs commits or rolls back both together.

What it guarantees:

* at most ``size + max_overflow`` connections; a checkout waits at most
  ``timeout`` seconds, then raises :class:`BackendError` (never hangs);
* every reused connection is pinged on checkout (by the transaction's
  ``BEGIN`` itself, or ``SELECT 1``); a broken one is discarded and replaced,
  so a PostgreSQL restart or ``pg_terminate_backend()`` is survived without
  restarting the application;
* statements with parameters are prepared once per connection and then run
  in one network round trip (see :class:`Cursor`), unless ``prepare`` is off;
* connections carry ``application_name`` (``cliquet-wsgi``), a connect timeout,
  a socket timeout and a server-side ``statement_timeout``;
* TLS follows the URL's ``sslmode`` (libpq's semantics, :mod:`.tls`);
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
from collections import OrderedDict, deque
from typing import Any, Iterator, Sequence
from urllib.parse import unquote, urlsplit

from cliquet_wsgi.backends.postgresql.tls import make_context, negotiate, parse_tls
from cliquet_wsgi.errors import BackendError, ConfigurationError
from cliquet_wsgi.rendering import json_loads_stored

try:
    from pg8000.converters import make_params
except ImportError:  # pragma: no cover - the driver is an extra; from_settings() says how to install it
    make_params = None

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


@functools.lru_cache(maxsize=1024)
def numbered(sql: str) -> str:
    """``sql`` with its ``%s`` placeholders rewritten as ``$1, $2…`` (``%%`` as ``%``).

    pg8000's own rewrite (the ``format`` paramstyle) scans the text character
    by character in Python, about 100 µs for our statements: the result
    depends on the text alone, so it is computed once per distinct
    statement. Errors (an unsupported ``%`` sequence) are not cached.
    """
    import pg8000.dbapi

    return pg8000.dbapi.convert_paramstyle("format", sql, ())[0]


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


#: Type oids of ``json`` and ``jsonb`` (pg8000.converters.JSON, JSONB).
_JSON_OID, _JSONB_OID = 114, 3802

#: Prepared statements kept per connection; beyond this the least recently used is closed.
MAX_PREPARED_STATEMENTS = 256

#: SQLSTATE of "cached plan must not change result type" (a migration altered a table).
_FEATURE_NOT_SUPPORTED = "0A000"


class _Conn:
    """A pooled pg8000 connection with its birth time and its prepared statements."""

    __slots__ = ("raw", "sock", "created", "pid", "statements")

    def __init__(self, raw: Any, sock: socket.socket) -> None:
        self.raw = raw
        self.sock = sock
        self.created = time.monotonic()
        self.pid = os.getpid()
        #: numbered SQL -> (statement name, result columns, result converters), oldest use first.
        self.statements: OrderedDict[str, tuple[bytes, Any, Any]] = OrderedDict()

    def prepared(self, sql: str) -> tuple[bytes, Any, Any]:
        """The server-side statement of ``sql`` (numbered placeholders), prepared on first use."""
        statement = self.statements.get(sql)
        if statement is not None:
            self.statements.move_to_end(sql)
            return statement
        statement = self.statements[sql] = self.raw.prepare_statement(sql, ())
        if len(self.statements) > MAX_PREPARED_STATEMENTS:
            _, (name, _, _) = self.statements.popitem(last=False)
            self.raw.close_prepared_statement(name)
        return statement


class Cursor:
    """What :meth:`Pool.transaction` yields: ``execute``, ``fetchone``, ``fetchall``, ``rowcount``.

    Parameters are bound to ``%s`` placeholders (``%%`` is a literal ``%``),
    never formatted into the text. A statement without parameters goes
    through the simple query protocol (one round trip; several statements
    allowed). With parameters:

    * ``prepare`` on (the default): the statement is parsed once per
      connection and later executions send only Bind/Execute/Sync, one round
      trip. PERF: pg8000's unnamed statements cost three round trips each
      (Parse, then Describe, then Execute, each waiting for the server).
      Plans stay per execution: connections set ``plan_cache_mode`` to
      ``force_custom_plan``, so a filter's values still choose its plan.
    * ``prepare`` off (for a pooler in transaction mode that does not track
      prepared statements): pg8000's unnamed statements.
    """

    __slots__ = ("_conn", "_prepare", "_rows", "_index", "rowcount")

    def __init__(self, conn: _Conn, prepare: bool) -> None:
        self._conn = conn
        self._prepare = prepare
        self._rows: list[list[Any]] = []
        self._index = 0
        self.rowcount = -1

    def execute(self, sql: str, args: Sequence[Any] = ()) -> None:
        raw = self._conn.raw
        try:
            if not args:
                context = raw.execute_simple(sql)
            elif self._prepare:
                text = numbered(sql)
                name, columns, converters = self._conn.prepared(text)
                context = raw.execute_named(name, make_params(raw.py_types, args), columns, converters, text)
            else:
                context = raw.execute_unnamed(numbered(sql), vals=args)
        except AttributeError:
            # pg8000 leaves a closed connection's socket as None (its DB-API cursor does the same check).
            if raw._sock is None:
                import pg8000.exceptions

                raise pg8000.exceptions.InterfaceError("connection is closed") from None
            raise
        self._rows = context.rows if context.rows is not None else []
        self._index = 0
        self.rowcount = context.row_count

    def fetchone(self) -> list[Any] | None:
        if self._index >= len(self._rows):
            return None
        row = self._rows[self._index]
        self._index += 1
        return row

    def fetchall(self) -> list[list[Any]]:
        rows = self._rows[self._index:] if self._index else self._rows
        self._index = len(self._rows)
        return rows


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
        prepare: bool = True,
    ) -> None:
        self.url = url
        self.application_name = application_name
        self.params = parse_url(url)
        #: TLS of new connections (``?sslmode=``…, see :mod:`.tls`); one context for all of them.
        self.tls = parse_tls(url)
        self._tls_context = make_context(self.tls)
        self.size = size
        self.max_overflow = max_overflow
        self.timeout = timeout
        self.recycle = recycle
        self.connect_timeout = connect_timeout
        self.statement_timeout = statement_timeout
        #: Prepare statements with parameters once per connection (see :class:`Cursor`).
        self.prepare = prepare
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

        p = self.params
        sock = socket.create_connection((p["host"], p["port"]), timeout=self.connect_timeout)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
            # The handshake counts as connecting: a server that accepts but
            # never answers fails within connect_timeout.
            sock.settimeout(self.connect_timeout)
            sock = negotiate(sock, self.tls, self._tls_context, p["host"])
            # NOTE: prepared statements must not switch to generic plans: a
            # filter's values (selectivity) choose the plan, as when unprepared.
            startup = {"TimeZone": "UTC", "plan_cache_mode": "force_custom_plan"}
            if self.statement_timeout:
                startup["statement_timeout"] = str(int(self.statement_timeout * 1000))
            raw = pg8000.dbapi.connect(
                user=p["user"],
                password=p["password"],
                database=p["database"],
                sock=sock,
                ssl_context=False,  # negotiated above (False means "no TLS" since pg8000 1.31)
                application_name=self.application_name,
                startup_params=startup,
            )
        except BaseException:
            sock.close()
            raise
        sock.settimeout(self.io_timeout)
        raw.autocommit = True
        # PERF: json/jsonb columns were validated JSON when written; listings
        # decode a lot of them (orjson with the speedups extra).
        raw.register_in_adapter(_JSON_OID, json_loads_stored)
        raw.register_in_adapter(_JSONB_OID, json_loads_stored)
        return _Conn(raw, sock)

    @staticmethod
    def _close(conn: _Conn) -> None:
        try:
            conn.raw.close()
        except Exception:  # already broken: nothing more to release
            pass

    def _alive(self, conn: _Conn, probe: str) -> bool:
        if self.recycle >= 0 and time.monotonic() - conn.created > self.recycle:
            return False
        try:
            # A black-holed server must fail the ping within the connect
            # timeout, not the (longer) statement socket timeout.
            conn.sock.settimeout(self.connect_timeout)
            conn.raw.execute_simple(probe)
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

    def checkout(self, begin: bool = False) -> _Conn:
        """A live connection, or :class:`BackendError` after ``timeout`` seconds.

        With ``begin`` the connection is returned inside a ``BEGIN``: for a
        reused connection that ``BEGIN`` is the liveness ping (PERF: one round
        trip per transaction instead of ``SELECT 1`` then ``BEGIN``).
        """
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
                if self._alive(conn, "BEGIN" if begin else "SELECT 1"):
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
            if begin:
                try:
                    conn.raw.execute_simple("BEGIN")
                except _driver_errors() as exc:
                    self._close(conn)
                    raise backend_error(exc) from exc
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
                yield Cursor(local.conn, self.prepare)
            except errors as exc:
                # The server transaction is aborted: the outermost block must
                # not commit even if a caller swallows this error.
                error = backend_error(exc)
                local.failed = error
                raise error from exc
            finally:
                local.depth -= 1
            return

        conn = self.checkout(begin=True)
        broken = False
        local.conn, local.depth, local.failed = conn, 1, False
        try:
            try:
                yield Cursor(conn, self.prepare)
                if local.failed:
                    # NOTE: an inner block failed and its caller swallowed the
                    # error: the server transaction may be aborted, so never
                    # pretend it committed.
                    raise BackendError(
                        message="transaction aborted by an earlier error", retryable=local.failed.retryable
                    )
                conn.raw.execute_simple("COMMIT")
            except BaseException as exc:
                # NOTE: 0A000 after a migration altered a table: this session's
                # prepared statements are stale, so the session is dropped.
                broken = isinstance(exc, errors) and (
                    not is_database_error(exc) or sqlstate(exc) == _FEATURE_NOT_SUPPORTED
                )
                if not broken:
                    try:
                        conn.raw.execute_simple("ROLLBACK")
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
