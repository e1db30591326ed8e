"""WSGI application for ``bench/resources.py``: our stack or Kinto, same scenarios.

``gunicorn bench.resources_app:application`` serves, depending on
``BENCH_TARGET``:

* ``cliquet`` (default): the default stack (``wrap()``, Basic auth) with one
  per-user, schemaless resource ``article`` at ``/v1/articles``, stored in
  ``BENCH_STORAGE_URL`` (default ``memory://``; a PostgreSQL URL gets its
  schema created). The request log layer is left out, as Kinto's summary log
  is silenced in ``bench/kinto.ini``: the benchmark measures the protocol, not
  log output.
* ``bare``: a WSGI function answering a fixed 200 JSON body to every request,
  no middleware: the ceiling of the server setup (gunicorn, wrk, loopback).
* ``kinto``: Kinto built from ``BENCH_KINTO_INI`` (default ``bench/kinto.ini``);
  Kinto's own ``KINTO_*`` environment variables pick its backends. Only
  importable from Kinto's virtualenv: Kinto is a benchmark peer, never a
  dependency.

A single sync worker keeps the memory backends consistent.
"""
from __future__ import annotations

import os
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
SECRET = "bench-resources-secret"  # the same HMAC secret as bench/kinto.ini


def not_found(environ, start_response):
    body = b'{"error": "not found"}'
    start_response("404 Not Found", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
    return [body]


def bare(environ, start_response):
    body = b'{"data": []}'
    start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
    return [body]


def build_cliquet(storage_url: str) -> Any:
    from cliquet_wsgi.middlewares.resources import Resource
    from cliquet_wsgi.registry import Registry
    from cliquet_wsgi.settings import load_settings
    from cliquet_wsgi.stack import wrap

    settings = {"userid_hmac_secret": SECRET, "storage_url": storage_url, "permission_url": "memory://"}
    registry = Registry(load_settings(settings))
    if storage_url.startswith("postgres"):
        registry.storage.initialize_schema()
    return wrap(not_found, [Resource("article")], registry=registry, exclude=["request_log"], **settings)


def build_kinto(ini: str) -> Any:
    from pyramid.paster import get_app, setup_logging

    setup_logging(ini)
    return get_app(ini, "main")


def build(target: str | None = None) -> Any:
    target = target or os.environ.get("BENCH_TARGET", "cliquet")
    if target == "cliquet":
        return build_cliquet(os.environ.get("BENCH_STORAGE_URL", "memory://"))
    if target == "bare":
        return bare
    if target == "kinto":
        return build_kinto(os.environ.get("BENCH_KINTO_INI", os.path.join(HERE, "kinto.ini")))
    raise SystemExit(f"BENCH_TARGET must be 'cliquet', 'bare' or 'kinto', not {target!r}")


application = build()
