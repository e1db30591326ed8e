"""Fault injection for tests and benchmarks of network backends: a black-holed peer, a hang guard.

A test of a timeout must fail when the timeout is not applied, without
asserting how fast anything is (a loaded machine makes that flaky; speed
goals live in ``bench/``). The tools here give it other evidence:

* :class:`BlackHole` accepts connections and never answers; it records what
  each client sent and whether the client hung up, so a test sees that the
  client gave up on its own and counts the connections it opened (a client
  that does no network I/O opens none).
* :func:`hang_guard` turns a hang into a failure after a bound far beyond the
  timeouts under test.
"""
from __future__ import annotations

import contextlib
import signal
import socket
import threading
from typing import Any, Iterator

#: Default bound of :func:`hang_guard` and of the waits of :class:`BlackHole`.
HANG_GUARD_SECONDS = 10


class HangGuardExpired(BaseException):
    """A guarded block is still running: a timeout is not applied.

    A BaseException so that no ``except Exception`` in the code under test
    (backends turn any error into BackendError) swallows it.
    """


@contextlib.contextmanager
def hang_guard(seconds: int = HANG_GUARD_SECONDS) -> Iterator[None]:
    """Raise :class:`HangGuardExpired` in the block once it has run ``seconds`` (main thread only: SIGALRM).

    A call blocked in C code (a socket, SQLite) sees the alarm when it returns to Python.
    """

    def expire(signum: int, frame: Any) -> None:
        raise HangGuardExpired(f"still running after {seconds} s, far beyond the timeouts configured here")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


class HeldConnection:
    """One connection accepted by :class:`BlackHole`: what the client sent, and whether it hung up."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.received = bytearray()
        #: Set when the client closed the connection (the black hole never does before teardown).
        self.client_closed = threading.Event()

    def read(self) -> None:
        while True:
            try:
                data = self.sock.recv(65536)
            except OSError:  # torn down by BlackHole.close()
                return
            if not data:
                self.client_closed.set()
                return
            self.received += data

    def sent(self, timeout: float = HANG_GUARD_SECONDS) -> bytes:
        """Everything the client sent, once it closed the connection (EOF comes after its last byte)."""
        if not self.client_closed.wait(timeout):
            raise AssertionError("the client never closed the connection")
        return bytes(self.received)


class BlackHole:
    """A loopback TCP listener that accepts connections, reads what comes and never answers.

    ``port`` may be the address of a killed server, to stand in its place.
    Use it as a context manager, or call :meth:`close`.
    """

    def __init__(self, port: int = 0) -> None:
        self.listener = socket.socket()
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", port))
        self.listener.listen(64)
        self.port: int = self.listener.getsockname()[1]
        self.connections: list[HeldConnection] = []
        self._changed = threading.Condition()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                sock, _ = self.listener.accept()
            except OSError:
                return
            held = HeldConnection(sock)
            threading.Thread(target=held.read, daemon=True).start()
            with self._changed:
                self.connections.append(held)
                self._changed.notify_all()

    def wait_for_connections(self, count: int, timeout: float = HANG_GUARD_SECONDS) -> list[HeldConnection]:
        """The connections accepted so far, once there are at least ``count``.

        Accepting is asynchronous; connections are accepted in the order the
        clients opened them, so once the ``count``-th is here every earlier one is.
        """
        with self._changed:
            if not self._changed.wait_for(lambda: len(self.connections) >= count, timeout):
                raise AssertionError(f"{len(self.connections)} connection(s) within {timeout} s, expected {count}")
            return list(self.connections)

    def close(self) -> None:
        # shutdown() wakes the threads blocked in accept() and recv(); close() alone does not.
        for sock in [self.listener] + [held.sock for held in self.connections]:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    def __enter__(self) -> BlackHole:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
