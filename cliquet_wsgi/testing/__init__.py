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
