"""PrometheusMiddleware: counts and the text exposition at /__metrics__."""
from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
from wsgiref.validate import validator

import pytest
import webtest

from cliquet_wsgi import environ as keys
from cliquet_wsgi.errors import ConfigurationError
from cliquet_wsgi.middlewares.prometheus import PrometheusMiddleware, filter_factory
from cliquet_wsgi.registry import Registry


class MemoryStorage:
    def get_all(self, parent_id: str) -> list:
        return []

    def ping(self) -> bool:
        return True


def view(environ, start_response):
    """Plays the inner layers: the path says which route matched and how it ended."""
    path = environ["PATH_INFO"]
    if path == "/v1/":
        environ[keys.ROUTE_NAME] = "hello"
        status = "200 OK"
    elif path == "/v1/articles":
        environ[keys.ROUTE_NAME] = "article-collection"
        environ[keys.AUTHN_TYPE] = "basicauth"
        environ[keys.REGISTRY].storage.get_all("")
        status = "200 OK"
    else:
        environ[keys.ERRNO] = 111
        status = "404 Not Found"
    start_response(status, [("Content-Type", "text/plain")])
    return [b"ok"]


def make_app(**settings):
    settings.setdefault("prometheus_enabled", True)
    registry = Registry()
    registry.set_backend("storage", MemoryStorage())
    middleware = PrometheusMiddleware(validator(view), registry=registry, **settings)
    return webtest.TestApp(middleware), middleware


def samples(body: str) -> list[str]:
    """Sample lines, without comments and the ``_created`` timestamps (which vary)."""
    return [line for line in body.splitlines()
            if line and not line.startswith("#") and "_created{" not in line and "_bucket{" not in line]


def test_exposition_body():
    app, _ = make_app()
    app.get("/v1/")
    app.get("/v1/")
    app.get("/v1/articles")
    app.get("/v1/unknown/raw/path", status=404)
    response = app.get("/__metrics__")
    assert re.fullmatch(r"text/plain; version=[0-9.]+; charset=utf-8", response.headers["Content-Type"])
    body = response.text
    assert "# TYPE cliquet_requests_total counter" in body
    assert "# TYPE cliquet_request_duration_seconds histogram" in body
    lines = samples(body)
    assert [line for line in lines if line.startswith(("cliquet_requests_total", "cliquet_errors_total",
                                                      "cliquet_authentications_total"))] == [
        'cliquet_requests_total{endpoint="hello",method="GET",status="200"} 2.0',
        'cliquet_requests_total{endpoint="article-collection",method="GET",status="200"} 1.0',
        'cliquet_requests_total{endpoint="unmatched",method="GET",status="404"} 1.0',
        'cliquet_errors_total{errno="111"} 1.0',
        'cliquet_authentications_total{policy="basicauth"} 1.0',
    ]
    counts = [line for line in lines if "_count{" in line]
    assert counts == [
        'cliquet_request_duration_seconds_count{endpoint="hello",method="GET"} 2.0',
        'cliquet_request_duration_seconds_count{endpoint="article-collection",method="GET"} 1.0',
        'cliquet_request_duration_seconds_count{endpoint="unmatched",method="GET"} 1.0',
        'cliquet_backend_duration_seconds_count{backend="memorystorage",kind="storage",method="get_all"} 1.0',
    ]
    assert "unknown" not in body and "raw" not in body


def test_each_instance_has_its_own_registry():
    first, _ = make_app()
    second, _ = make_app()
    first.get("/v1/")
    assert 'cliquet_requests_total{endpoint="hello",method="GET",status="200"} 1.0' in first.get("/__metrics__").text
    assert "cliquet_requests_total{" not in second.get("/__metrics__").text


def test_namespace_from_project_name():
    app, _ = make_app(project_name="my-shop")
    app.get("/v1/")
    assert 'my_shop_requests_total{endpoint="hello",method="GET",status="200"} 1.0' in app.get("/__metrics__").text


def test_head_and_other_methods_on_the_endpoint():
    app, _ = make_app()
    head = app.head("/__metrics__")
    assert head.status_int == 200 and head.body == b""
    response = app.post("/__metrics__", status=405)
    assert response.headers["Allow"] == "GET,HEAD"
    assert response.json == {"code": 405, "errno": 115, "error": "Method Not Allowed",
                             "message": "Method not allowed on this endpoint."}


def test_disabled_is_a_pass_through():
    app, middleware = make_app(prometheus_enabled=False)
    assert app.get("/__metrics__", status=404).body == b"ok"
    assert not hasattr(middleware, "collector_registry")


def test_missing_client_is_a_configuration_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "prometheus_client", None)
    with pytest.raises(ConfigurationError, match="pip install"):
        PrometheusMiddleware(view, registry=Registry(), prometheus_enabled=True)


def test_bad_multiproc_dir(tmp_path):
    with pytest.raises(ConfigurationError, match="prometheus_multiproc_dir"):
        PrometheusMiddleware(view, registry=Registry(), prometheus_enabled=True,
                             prometheus_multiproc_dir=str(tmp_path / "missing"))


def test_multiprocess_mode_aggregates_workers(tmp_path):
    # Two "workers" count in their own processes, as gunicorn's would.
    worker = textwrap.dedent("""
        import webtest
        from cliquet_wsgi.middlewares.prometheus import PrometheusMiddleware
        from cliquet_wsgi.registry import Registry
        from tests.middlewares.test_prometheus import view
        app = webtest.TestApp(PrometheusMiddleware(view, registry=Registry(), prometheus_enabled=True))
        app.get("/v1/")
    """)
    env = dict(os.environ, PROMETHEUS_MULTIPROC_DIR=str(tmp_path))
    for _ in range(2):
        subprocess.run([sys.executable, "-W", "ignore::DeprecationWarning", "-c", worker], env=env, check=True,
                       timeout=60, cwd=os.path.dirname(os.path.dirname(os.path.dirname(__file__))))
    app, _ = make_app(prometheus_multiproc_dir=str(tmp_path))
    body = app.get("/__metrics__").text
    assert 'cliquet_requests_total{endpoint="hello",method="GET",status="200"} 2.0' in samples(body)


def test_filter_factory():
    make = filter_factory({}, prometheus_enabled="true", project_name="ini", registry_name="prom-test")
    app = webtest.TestApp(make(validator(view)))
    app.get("/v1/")
    assert 'ini_requests_total{endpoint="hello",method="GET",status="200"} 1.0' in app.get("/__metrics__").text
