"""WSGI application for ``bench/batch.py``: the default stack with one per-user resource.

``gunicorn bench.batch_app:application`` serves ``/v1/notes`` (per-user
``note`` records, schemaless) behind every default layer (``wrap()``), with the
storage of ``BENCH_STORAGE_URL`` (default ``memory://``; a single sync worker
keeps the memory backend consistent; a PostgreSQL URL gets its schema created).
The request log layer is left out so that the benchmark measures the protocol
stack, not log output.
"""
from __future__ import annotations

import os

from cliquet_wsgi.middlewares.resources import Resource
from cliquet_wsgi.registry import Registry
from cliquet_wsgi.settings import load_settings
from cliquet_wsgi.stack import wrap


def not_found(environ, start_response):
    body = b'{"error": "not found"}'
    start_response("404 Not Found", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
    return [body]


SETTINGS = {
    "userid_hmac_secret": "bench-batch-secret",
    "storage_url": os.environ.get("BENCH_STORAGE_URL", "memory://"),
    "permission_url": "memory://",
}

registry = Registry(load_settings(SETTINGS))
if SETTINGS["storage_url"].startswith("postgres"):
    registry.storage.initialize_schema()

application = wrap(not_found, [Resource("note")], registry=registry, exclude=["request_log"], **SETTINGS)
