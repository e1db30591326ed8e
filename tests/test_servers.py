"""RELIABILITY I4 (and I2 for paths) and F11 over real sockets, against waitress and gunicorn.

The app is :mod:`tests.apps.limited_body`: an echo app behind the errors
middleware with ``max_body_bytes = 1024``. Requests are written byte by byte
on raw sockets, so that nothing between the test and the server fixes them.

What each server does before the app is called matters here:

* gunicorn (sync worker) calls the app once the headers are parsed and
  streams the body: a ``Content-Length`` above the limit is refused before the
  body is sent, and a chunked body after ``limit + 1`` bytes;
* waitress buffers the whole body (de-chunked, with ``CONTENT_LENGTH`` set)
  before calling the app, up to its own ``max_request_body_size`` (1 GiB by
  default). The middleware still answers 413 without the app reading it, but
  only waitress's ``max_request_body_size`` can stop the upload itself.

F11 (clients that leave or never finish) uses :mod:`tests.apps.streaming`, the
default stack (``wrap()``) around a streaming app, with one worker thread
(waitress) or one sync worker (gunicorn): a request answered after a client
left proves that the only worker was released, and the app reports whether
the body's ``close()`` was called.
"""
from __future__ import annotations

import http
import json
import os
import socket
import struct
import subprocess
import sys
import threading
import time
import uuid
from wsgiref.validate import validator

import pytest
import waitress
from waitress import wasyncore
import waitress.server
import webtest

from cliquet_wsgi.errors import MESSAGES
from tests.apps import limited_body, streaming

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LIMIT = limited_body.LIMIT
#: The socket timeout of a request whose body is never (fully) sent: a server
#: waiting for that body would hang until its own channel timeout (30 s and
#: more), so the read times out and the test fails. A hang guard, not a speed
#: goal: the refusal itself takes milliseconds.
HANG_GUARD_SECONDS = 5.0
JSON = "application/json; charset=UTF-8"


def error_body(code: int, errno: int, message: str, error: str | None = None, **extra) -> bytes:
    error = {"code": code, "errno": errno, "error": error or http.HTTPStatus(code).phrase, "message": message,
             **extra}
    return json.dumps(error, separators=(",", ":")).encode()


TOO_LARGE = error_body(413, 113, MESSAGES["too_large"])


def bad_utf8(location: str) -> bytes:
    # PROTOCOL §2: validation errors are named "Invalid parameters", not by the status phrase.
    return error_body(400, 107, f"{location}: Invalid UTF-8 sequence", "Invalid parameters",
                      details=[{"location": location, "name": None, "description": "Invalid UTF-8 sequence"}])


class Response:
    def __init__(self, status: int, headers: dict[str, str], body: bytes) -> None:
        self.status, self.headers, self.body = status, headers, body


def exchange(port: int, *parts: bytes, timeout: float = HANG_GUARD_SECONDS) -> Response:
    """Send ``parts`` on a new connection and read one response (framed by Content-Length)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        for part in parts:
            sock.sendall(part)
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = sock.recv(65536)
            if not chunk:
                raise AssertionError(f"connection closed before a response: {data!r}")
            data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        length = int(headers["content-length"])
        while len(body) < length:
            chunk = sock.recv(65536)
            if not chunk:
                break
            body += chunk
        return Response(status, headers, body[:length])


def chunk(data: bytes) -> bytes:
    return f"{len(data):x}\r\n".encode() + data + b"\r\n"


def post_head(extra: str) -> bytes:
    return f"POST /v1/upload HTTP/1.1\r\nHost: localhost\r\n{extra}\r\n".encode()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_listening(port: int, process: subprocess.Popen, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"gunicorn exited with {process.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.1)
    raise AssertionError(f"gunicorn did not listen on {port} within {timeout}s")


def start_waitress(
    application=limited_body.application, **options
) -> tuple[waitress.server.BaseWSGIServer, threading.Thread]:
    server = waitress.create_server(application, host="127.0.0.1", port=0, **options)
    thread = threading.Thread(target=server.run, name="waitress-test", daemon=True)
    thread.start()
    return server, thread


def stop_waitress(server: waitress.server.BaseWSGIServer, thread: threading.Thread) -> None:
    # Worker threads first: one still finishing a response would write to a closed trigger.
    server.task_dispatcher.shutdown(timeout=5)
    # NOTE: sockets are closed by the loop thread itself (closing them from here
    # races its select() into EBADF); an empty map ends the loop.
    server.trigger.pull_trigger(lambda: wasyncore.close_all(server._map))
    thread.join(5)
    assert not thread.is_alive()


@pytest.fixture(scope="module")
def waitress_port():
    server, thread = start_waitress(threads=2)
    try:
        yield server.effective_port
    finally:
        stop_waitress(server, thread)


def run_gunicorn(tmp_path_factory, application: str, timeout_seconds: int):
    """Serve ``application`` with one sync worker; yields the port, stops gunicorn afterwards."""
    port = free_port()
    log = tmp_path_factory.mktemp("gunicorn") / "gunicorn.log"
    with open(log, "wb") as output:
        process = subprocess.Popen(
            # --preload: the app is imported once, before the fork, so that a replaced
            # worker is serving at once, well within the timeout even on a loaded machine.
            [sys.executable, "-m", "gunicorn", "--bind", f"127.0.0.1:{port}", "-w", "1", "--preload",
             "--timeout", str(timeout_seconds), "--no-control-socket", application],
            cwd=ROOT, stdout=output, stderr=subprocess.STDOUT,
        )
    try:
        wait_listening(port, process)
        yield port
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


@pytest.fixture(scope="module")
def gunicorn_port(tmp_path_factory):
    yield from run_gunicorn(tmp_path_factory, "tests.apps.limited_body:application", 30)


@pytest.fixture(params=["waitress", "gunicorn"])
def server_port(request):
    return request.getfixturevalue(f"{request.param}_port")


# -- both servers ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "size, status",
    [
        pytest.param(LIMIT, 200, id="at-limit"),
        pytest.param(LIMIT + 1, 413, id="one-byte-over"),
        pytest.param(8 * LIMIT, 413, id="far-over"),
    ],
)
def test_content_length_with_full_body(server_port, size, status):
    response = exchange(server_port, post_head(f"Content-Length: {size}\r\nConnection: close\r\n"), b"x" * size)
    assert response.status == status
    if status == 413:
        assert response.headers["content-type"] == JSON
        assert response.body == TOO_LARGE
    else:
        assert json.loads(response.body) == {"length": size}


@pytest.mark.parametrize(
    "chunks, status, payload",
    [
        pytest.param([b"a" * 600, b"b" * 424], 200, {"length": LIMIT}, id="at-limit"),
        pytest.param([b"a" * 600, b"b" * 425], 413, None, id="one-byte-over"),
        pytest.param([b"x" * 1000] * 8, 413, None, id="far-over"),
    ],
)
def test_chunked_body(server_port, chunks, status, payload):
    body = b"".join(chunk(part) for part in chunks) + b"0\r\n\r\n"
    response = exchange(server_port, post_head("Transfer-Encoding: chunked\r\nConnection: close\r\n"), body)
    assert response.status == status
    assert response.body == (TOO_LARGE if status == 413 else json.dumps(payload).encode())


def test_content_length_smaller_than_body(server_port):
    # The app gets exactly Content-Length bytes; the rest is never part of its body.
    response = exchange(server_port, post_head("Content-Length: 5\r\nConnection: close\r\n"), b"helloEXTRA")
    assert (response.status, response.body) == (200, b'{"length": 5}')


@pytest.mark.parametrize(
    "target, location",
    [
        pytest.param("/v1/caf%E9", "path", id="path-latin1-escape"),
        pytest.param("/v1/%ff%fe", "path", id="path-invalid-bytes"),
        pytest.param("/v1/ok?a=%ff", "querystring", id="querystring"),
    ],
)
def test_invalid_utf8_is_400_json(server_port, target, location):
    response = exchange(server_port, f"GET {target} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n".encode())
    assert response.status == 400
    assert response.headers["content-type"] == JSON
    assert response.body == bad_utf8(location)


def test_raw_non_utf8_byte_in_request_line_is_400(server_port):
    # Both servers refuse a raw 0xE9 in the request line themselves (their own text/HTML 400): never a 500.
    response = exchange(server_port, b"GET /v1/caf\xe9 HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
    assert response.status == 400


def test_valid_utf8_path_reaches_the_app(server_port):
    response = exchange(server_port, post_head("Content-Length: 2\r\nConnection: close\r\n").replace(
        b"/v1/upload", b"/v1/caf%C3%A9"), b"ok")
    assert (response.status, response.body) == (200, b'{"length": 2}')


# -- gunicorn streams the body: refusals happen before it is sent --------------------------------


def test_gunicorn_content_length_over_limit_refused_before_the_body(gunicorn_port):
    # Ten megabytes announced, not one byte sent: the answer cannot wait for the body.
    response = exchange(gunicorn_port, post_head("Content-Length: 10485760\r\n"))
    assert response.status == 413
    assert response.body == TOO_LARGE


def test_gunicorn_endless_chunked_body_refused_after_the_limit(gunicorn_port):
    # A chunked upload that never ends: 413 once limit + 1 bytes were read, without the terminating chunk.
    response = exchange(
        gunicorn_port, post_head("Transfer-Encoding: chunked\r\n"), chunk(b"x" * 700), chunk(b"y" * 700),
    )
    assert response.status == 413
    assert response.body == TOO_LARGE


# -- waitress buffers the body before the app ---------------------------------------------------


def test_waitress_over_limit_never_reaches_the_echo_app(waitress_port):
    before = len(limited_body.calls)
    response = exchange(waitress_port, post_head(f"Content-Length: {4 * LIMIT}\r\nConnection: close\r\n"),
                        b"x" * (4 * LIMIT))
    assert (response.status, response.body) == (413, TOO_LARGE)
    assert len(limited_body.calls) == before


def test_waitress_own_limit_stops_the_upload_itself():
    # The deployment advice of the errors middleware: waitress's max_request_body_size
    # equal to max_body_bytes refuses before buffering, without waiting for the body.
    before = len(limited_body.calls)
    server, thread = start_waitress(threads=1, max_request_body_size=LIMIT)
    try:
        response = exchange(server.effective_port, post_head("Content-Length: 10485760\r\n"))
    finally:
        stop_waitress(server, thread)
    assert response.status == 413
    assert len(limited_body.calls) == before


# -- F11: clients that leave, or never finish their request ------------------------------------

#: Seconds of silence after which each server drops a connection (waitress's
#: channel_timeout) or kills a worker that did not report back (gunicorn's timeout).
CHANNEL_TIMEOUT_SECONDS = 2
#: Hang guard of the requests that can only be answered after such a timeout
#: (and, for gunicorn, the boot of a new worker): never reached when all is well.
AFTER_TIMEOUT_GUARD_SECONDS = 30.0


@pytest.fixture(scope="module")
def streaming_waitress_port():
    # One worker thread: a request still answered after a client left proves it was released.
    server, thread = start_waitress(streaming.application, threads=1, channel_timeout=CHANNEL_TIMEOUT_SECONDS,
                                    cleanup_interval=1)
    try:
        yield server.effective_port
    finally:
        stop_waitress(server, thread)


@pytest.fixture(scope="module")
def streaming_gunicorn_port(tmp_path_factory):
    # NOTE: one more second than waitress: the arbiter needs a moment to replace a killed worker.
    yield from run_gunicorn(tmp_path_factory, "tests.apps.streaming:application", CHANNEL_TIMEOUT_SECONDS + 1)


@pytest.fixture(params=["waitress", "gunicorn"])
def streaming_port(request):
    return request.getfixturevalue(f"streaming_{request.param}_port")


def reset_close(sock: socket.socket) -> None:
    """Leave as a client that goes away does: RST at once, whatever the server still sends."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


def get(port: int, target: str, timeout: float = HANG_GUARD_SECONDS) -> Response:
    return exchange(port, f"GET {target} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n".encode(),
                    timeout=timeout)


def events(port: int, request_id: str, timeout: float = HANG_GUARD_SECONDS) -> dict:
    """What the app recorded for ``request_id``; served by the only worker, so after it was released."""
    response = get(port, f"/v1/events?id={request_id}", timeout=timeout)
    assert response.status == 200
    return json.loads(response.body)


def test_client_leaving_mid_response_closes_the_body_and_frees_the_worker(streaming_port):
    request_id = uuid.uuid4().hex
    with socket.create_connection(("127.0.0.1", streaming_port), timeout=HANG_GUARD_SECONDS) as sock:
        sock.sendall(f"GET /v1/stream?id={request_id} HTTP/1.1\r\nHost: localhost\r\n\r\n".encode())
        head = b""
        while b"\r\n\r\n" not in head:
            data = sock.recv(65536)
            assert data, "connection closed before the response started"
            head += data
        assert head.startswith(b"HTTP/1.1 200 OK\r\n")
        # 64 MiB are on their way: the server is still writing when the client leaves.
        reset_close(sock)
    # The body's close() ran (PEP 3333), through every layer of the stack, before the next request.
    assert events(streaming_port, request_id) == {"closed": 1, "uploads": []}


def test_client_leaving_mid_upload_frees_the_worker(streaming_port):
    request_id = uuid.uuid4().hex
    with socket.create_connection(("127.0.0.1", streaming_port), timeout=HANG_GUARD_SECONDS) as sock:
        sock.sendall(f"POST /v1/upload?id={request_id} HTTP/1.1\r\nHost: localhost\r\n"
                     "Content-Length: 100000\r\n\r\n".encode() + b"x" * 1000)
        reset_close(sock)
    # waitress never calls the app with a partial body; gunicorn's read fails: the app never
    # takes 1,000 bytes for a complete upload, and the worker serves the next request.
    assert events(streaming_port, request_id) == {"closed": 0, "uploads": []}


def test_slowloris_is_cut_at_the_channel_timeout(streaming_port):
    request_id = uuid.uuid4().hex
    with socket.create_connection(("127.0.0.1", streaming_port), timeout=AFTER_TIMEOUT_GUARD_SECONDS) as slow:
        # Headers that never end. waitress parses headers outside its worker threads;
        # gunicorn's sync worker is stuck reading them until the arbiter replaces it.
        slow.sendall(b"GET /v1/events?id=slow HTTP/1.1\r\nHost: loc")
        # Another client is answered: by the free worker thread, or by gunicorn's new worker.
        assert events(streaming_port, request_id, timeout=AFTER_TIMEOUT_GUARD_SECONDS) == {"closed": 0, "uploads": []}
        # The slow connection is then closed by the server (gunicorn first writes its own 500).
        received = b""
        while True:
            data = slow.recv(65536)
            if not data:
                break
            received += data
    assert received == b"" or received.startswith(b"HTTP/1.1 500 Internal Server Error\r\n")


def test_the_stack_forwards_close_when_the_server_stops_early():
    """PEP 3333: a server that stops iterating calls close(); every layer passes it to the app's body."""
    request_id = uuid.uuid4().hex
    app = validator(streaming.application)
    environ = webtest.TestRequest.blank(f"/v1/stream?id={request_id}").environ
    started = []
    body = app(environ, lambda status, headers, exc_info=None: started.append(status))
    first = next(iter(body))
    body.close()
    assert (started, first) == (["200 OK"], streaming.CHUNK)
    assert webtest.TestApp(app).get(f"/v1/events?id={request_id}").json == {"closed": 1, "uploads": []}
