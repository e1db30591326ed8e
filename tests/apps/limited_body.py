"""An echo app behind the errors middleware with a small body limit, for real servers (tests/test_servers.py).

``POST`` (any path) reads the whole request body and answers ``{"length": N}``.
The limit is :data:`LIMIT` bytes; :data:`calls` counts the requests that
reached the echo app (meaningful when the server runs in this process).

    gunicorn --bind 127.0.0.1:8000 -w 1 tests.apps.limited_body:application
"""
from __future__ import annotations

import json

from cliquet_wsgi.middlewares.errors import ErrorsMiddleware
from cliquet_wsgi.registry import Registry
from cliquet_wsgi.settings import load_settings

LIMIT = 1024

#: One entry per request that reached :func:`echo` (appended, so thread-safe).
calls: list[str] = []


def echo(environ, start_response):
    calls.append(environ.get("PATH_INFO", ""))
    length = environ.get("CONTENT_LENGTH")
    stream = environ["wsgi.input"]
    data = stream.read(int(length)) if length else stream.read()
    payload = json.dumps({"length": len(data)}).encode()
    start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(payload)))])
    return [payload]


application = ErrorsMiddleware(echo, registry=Registry(load_settings(environ={})), max_body_bytes=LIMIT)
