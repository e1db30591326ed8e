"""Fixtures of the resources middleware tests: one app per backend, test users.

Every test using ``make_app`` runs against memory, SQLite and PostgreSQL.
PostgreSQL tests use their own database (created on first use) so that other
suites flushing the shared ``test`` database cannot interfere.

Identities: the test-only :class:`HeaderUser` wrapper sets the principals the
auth middleware would set, from ``X-Test-User`` (and ``X-Test-Groups``).
"""
from __future__ import annotations

import importlib
from typing import Any
from wsgiref.validate import validator

import pytest
import webtest

from cliquet_wsgi import environ as keys
from cliquet_wsgi.errors import ConfigurationError, error_response, not_found
from cliquet_wsgi.registry import BACKEND_SCHEMES, Registry
from cliquet_wsgi.settings import load_settings
from cliquet_wsgi.testing import postgresql_database, services_required

BACKENDS = ["memory", "sqlite", "postgresql"]
PG_DATABASE = "cliquet_resources_tests"


def pytest_configure(config):
    config.addinivalue_line("markers", "concurrency: heavy test with threads or processes (run for every backend)")


def user_id(name: str) -> str:
    return f"basicauth:{name}"


class HeaderUser:
    """Test-only stand-in for the auth middleware."""

    def __init__(self, app: Any) -> None:
        self.app = app

    def __call__(self, environ, start_response):
        name = environ.get("HTTP_X_TEST_USER")
        principals = ["system.Everyone"]
        if name:
            environ[keys.USER_ID] = user_id(name)
            principals += ["system.Authenticated", user_id(name)]
            principals += environ.get("HTTP_X_TEST_GROUPS", "").split()
        environ[keys.PRINCIPALS] = principals
        return self.app(environ, start_response)


def fallback_app(environ, start_response):
    """The application below: answers 404/111 so that pass-through is visible."""
    return error_response(not_found(), start_response)


_pg_ready: dict[str, str] = {}


def _postgresql_url() -> str:
    if "url" not in _pg_ready:
        _pg_ready["url"] = postgresql_database(PG_DATABASE)
    return _pg_ready["url"]


def backend_url(name: str, tmp_path) -> str:
    if name == "memory":
        return "memory://"
    if name == "sqlite":
        return f"sqlite:///{tmp_path}/resources.sqlite"
    return _postgresql_url()


@pytest.fixture(params=BACKENDS)
def backend(request, tmp_path):
    """URL of the storage/permission backend under test."""
    url = backend_url(request.param, tmp_path)
    try:
        importlib.import_module(BACKEND_SCHEMES[url.split("://", 1)[0]])
    except ImportError as exc:
        if services_required():
            raise
        pytest.skip(f"{request.param} backend not available yet: {exc}")
    return url


@pytest.fixture
def make_registry(backend):
    registries: list[Registry] = []

    def make(**settings: Any) -> Registry:
        # One database for both, as deployed: record and ACE writes share a transaction.
        values = {"storage_url": backend, "permission_url": backend, "multiauth_policies": ""}
        values.update(settings)
        registry = Registry(load_settings(values, environ={}))
        for kind in ("storage", "permission"):
            instance = registry.backend(kind)
            instance.initialize_schema()
            instance.flush()
        registries.append(registry)
        return registry

    yield make
    for registry in registries:
        for kind in ("storage", "permission"):
            try:
                registry.backend(kind).flush()
            except ConfigurationError:
                pass
        registry.close()


@pytest.fixture
def make_app(make_registry):
    """``make_app(resources, **settings) -> webtest.TestApp`` around the middleware."""
    from cliquet_wsgi.middlewares.resources import ResourcesMiddleware

    def make(resources, *, around=None, **settings: Any) -> webtest.TestApp:
        registry = make_registry(**settings)
        middleware = ResourcesMiddleware(
            validator(fallback_app), registry=registry, resources=resources,
            **{k: v for k, v in registry.settings.items() if k in _KWARGS}, settings=registry.settings,
        )
        inner = validator(middleware)
        if around is not None:
            inner = around(inner)
        app = webtest.TestApp(validator(HeaderUser(inner)), extra_environ={"HTTP_HOST": "api.test"})
        app.registry = registry
        app.middleware = middleware
        return app

    return make


_KWARGS = {"readonly", "paginate_by", "storage_max_fetch_size", "strict_preconditions", "id_generator",
           "retry_after_seconds", "http_scheme", "http_host"}


def as_user(name: str | None, **headers: str) -> dict[str, str]:
    result = dict(headers)
    if name:
        result["X-Test-User"] = name
    return result
