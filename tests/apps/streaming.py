"""A streaming app behind the default stack, for the client-disconnect tests (tests/test_servers.py, RELIABILITY F11).

* ``GET /v1/stream?id=X``: :data:`STREAM_BYTES` bytes in 64 KiB chunks, from an
  iterable whose ``close()`` records ``X``: far more than the socket buffers
  hold, so the server is still writing when the client leaves;
* ``POST /v1/upload?id=X``: reads the body, then records ``X`` and the number of
  bytes read;
* ``GET /v1/events?id=X``: what was recorded for ``X``:
  ``{"closed": <close() calls>, "uploads": [<bytes read>, …]}``.

The record lives in the worker process, so that a server running in another
process (gunicorn) is asked through ``/v1/events``.

    gunicorn --bind 127.0.0.1:8000 -w 1 tests.apps.streaming:application
"""
from __future__ import annotations

import json
import threading
from typing import Iterator
from urllib.parse import parse_qs

from cliquet_wsgi.stack import wrap

CHUNK = b"x" * 65536
STREAM_BYTES = 1024 * len(CHUNK)  # 64 MiB

_lock = threading.Lock()
_closed: dict[str, int] = {}
_uploads: dict[str, list[int]] = {}


class _Stream:
    """The body of ``/v1/stream``: records its ``close()``, which servers call when the client left."""

    def __init__(self, request_id: str) -> None:
        self.request_id = request_id

    def __iter__(self) -> Iterator[bytes]:
        for _ in range(STREAM_BYTES // len(CHUNK)):
            yield CHUNK

    def close(self) -> None:
        with _lock:
            _closed[self.request_id] = _closed.get(self.request_id, 0) + 1


def _json(start_response, payload) -> list[bytes]:
    body = json.dumps(payload).encode()
    start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
    return [body]


def app(environ, start_response):
    request_id = parse_qs(environ.get("QUERY_STRING", "")).get("id", [""])[0]
    path = environ["PATH_INFO"]
    if path == "/stream":
        start_response("200 OK", [("Content-Type", "application/octet-stream"),
                                  ("Content-Length", str(STREAM_BYTES))])
        return _Stream(request_id)
    if path == "/upload":
        stream = environ["wsgi.input"]
        length = environ.get("CONTENT_LENGTH")
        data = stream.read(int(length)) if length else stream.read()
        with _lock:
            _uploads.setdefault(request_id, []).append(len(data))
        return _json(start_response, {"length": len(data)})
    if path == "/events":
        with _lock:
            return _json(start_response, {"closed": _closed.get(request_id, 0),
                                          "uploads": _uploads.get(request_id, [])})
    start_response("404 Not Found", [("Content-Type", "text/plain")])
    return [b"not found"]


application = wrap(app, exclude=["auth"])
