"""ProfilerMiddleware: one loadable cProfile file per profiled request."""
from __future__ import annotations

import os
import pstats
import re
import time
from wsgiref.validate import validator

import pytest
import webtest

from cliquet_wsgi.errors import ConfigurationError
from cliquet_wsgi.middlewares.profiler import ProfilerMiddleware, filter_factory, profile_name
from cliquet_wsgi.registry import Registry


def busy_view(environ, start_response):
    if environ["PATH_INFO"].endswith("/crash"):
        raise RuntimeError("crash")
    time.sleep(0.002)
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"ok"]


def make_app(tmp_path, **settings):
    settings.setdefault("profiler_enabled", True)
    middleware = ProfilerMiddleware(validator(busy_view), registry=Registry(), profiler_dir=str(tmp_path), **settings)
    return webtest.TestApp(middleware)


def test_one_file_per_request_named_after_it(tmp_path):
    before = int(time.time())
    app = make_app(tmp_path)
    assert app.post("/v1/batch").body == b"ok"
    [name] = os.listdir(tmp_path)
    match = re.fullmatch(r"POST\.v1\.batch\.(\d{6})ms\.(\d{10})\.prof", name)
    assert match, name
    assert int(match[1]) >= 2  # the view sleeps 2 ms
    assert before <= int(match[2]) <= time.time()
    stats = pstats.Stats(str(tmp_path / name))
    assert "busy_view" in {function for (_, _, function) in stats.stats}


def test_same_second_does_not_overwrite(tmp_path):
    app = make_app(tmp_path)
    for _ in range(3):
        app.get("/v1/")
    names = sorted(os.listdir(tmp_path))
    assert len(names) == 3
    assert all(re.fullmatch(r"GET\.v1\.\d{6}ms\.\d{10}(-\d)?\.prof", n) for n in names), names


def test_path_filter(tmp_path):
    app = make_app(tmp_path, profiler_path_filter=r"^/v1/batch")
    app.get("/v1/")
    app.get("/v1/articles")
    app.post("/v1/batch")
    assert [n.split(".")[:3] for n in os.listdir(tmp_path)] == [["POST", "v1", "batch"]]


def test_exception_is_profiled_and_propagates(tmp_path):
    app = make_app(tmp_path)
    with pytest.raises(RuntimeError):
        app.get("/v1/crash")
    [name] = os.listdir(tmp_path)
    assert name.startswith("GET.v1.crash.")


def test_disabled_writes_nothing(tmp_path):
    app = make_app(tmp_path, profiler_enabled=False)
    app.get("/v1/")
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize(
    "method, path, expected",
    [
        pytest.param("POST", "/v1/batch", "POST.v1.batch.000176ms.1427458675", id="protocol-example"),
        pytest.param("GET", "/", "GET.root.000176ms.1427458675", id="root"),
        pytest.param("GET", "/v1/../../etc/passwd", "GET.v1.etc.passwd.000176ms.1427458675", id="traversal"),
        pytest.param("FOO", "/a b/é", "OTHER.a_b._.000176ms.1427458675", id="odd"),
    ],
)
def test_profile_name(method, path, expected):
    assert profile_name(method, path, 176.9, 1427458675.7) == expected


@pytest.mark.parametrize(
    "settings, message",
    [
        pytest.param({"profiler_path_filter": "("}, "profiler_path_filter", id="bad-regex"),
        pytest.param({"profiler_dir": "/nonexistent/dir"}, "profiler_dir", id="missing-dir"),
    ],
)
def test_bad_settings_fail_at_startup(settings, message):
    with pytest.raises(ConfigurationError, match=message):
        ProfilerMiddleware(busy_view, registry=Registry(), profiler_enabled=True, **settings)


def test_filter_factory(tmp_path):
    make = filter_factory({}, profiler_enabled="true", profiler_dir=str(tmp_path), registry_name="prof-test")
    webtest.TestApp(make(validator(busy_view))).get("/v1/")
    assert len(os.listdir(tmp_path)) == 1
