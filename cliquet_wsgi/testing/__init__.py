"""Test support shipped with the core: real-service fixtures and contract suites.

Tests that need a server (PostgreSQL, memcached) call :func:`require_service`
when the server does not answer: it skips with the reason on a developer's
machine and fails when ``CLIQUET_TEST_REQUIRE_SERVICES=1`` (as ``.ci/run``
sets), so that CI can never go green by skipping them.
"""
from __future__ import annotations

import os
import socket

POSTGRESQL_URL = os.environ.get("CLIQUET_TEST_POSTGRESQL_URL", "postgresql://postgres@127.0.0.1:5432/test")
MEMCACHED_URL = os.environ.get("CLIQUET_TEST_MEMCACHED_URL", "memcached://127.0.0.1:11211")


def services_required() -> bool:
    return os.environ.get("CLIQUET_TEST_REQUIRE_SERVICES", "") not in ("", "0", "false", "no")


def require_service(name: str, reason: str) -> None:
    """Skip (or fail under ``CLIQUET_TEST_REQUIRE_SERVICES=1``) because ``name`` is absent."""
    import pytest

    message = f"{name} is not available: {reason}"
    if services_required():
        pytest.fail(message + " (CLIQUET_TEST_REQUIRE_SERVICES=1)", pytrace=False)
    pytest.skip(message)


def tcp_reachable(host: str, port: int, timeout: float = 1.0) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def postgresql_database(name: str, settings: dict[str, str] | None = None) -> str:
    """URL of database ``name`` on the test server, created if missing (skip/fail if unreachable).

    Suites that flush or count use their own database so that runs of other
    suites on the shared ``test`` database cannot interfere. ``settings`` are
    applied with ``ALTER DATABASE … SET`` (names and values must be trusted).
    """
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(POSTGRESQL_URL)
    host, port = parts.hostname or "127.0.0.1", parts.port or 5432
    if not tcp_reachable(host, port):
        require_service("postgresql", f"nothing listens on {host}:{port}")
    import pg8000.dbapi

    connection = pg8000.dbapi.connect(
        user=parts.username or "postgres", password=parts.password, host=host, port=port,
        database=parts.path.lstrip("/") or "postgres",
    )
    connection.autocommit = True
    try:
        cursor = connection.cursor()
        cursor.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,))
        if not cursor.fetchall():
            cursor.execute(f'CREATE DATABASE "{name}" ENCODING \'UTF8\' TEMPLATE template0')
        for setting, value in (settings or {}).items():
            cursor.execute(f'ALTER DATABASE "{name}" SET {setting} = \'{value}\'')
    finally:
        connection.close()
    return urlunsplit(parts._replace(path=f"/{name}"))
