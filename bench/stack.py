"""In-process cost of the protocol middlewares (issue: foundation).

Prints µs/request for a GET that reaches a bare WSGI app, for the full
foundation stack (cors, backoff, errors, version, heartbeat) in front of it,
and for each middleware alone; then hello and lbheartbeat, checking that they
are answered without reaching the app; then realistic apps (the Flask, Bottle
and Django ``/hello`` JSON views of ``tests/apps``), bare and behind the same
stack, with the ratio.

    python3 bench/stack.py [--number N]

Each figure is the best of 5 repeats of N calls (timeit), with a prebuilt
environ copied per call (as a server builds one per request).
"""
from __future__ import annotations

import argparse
import io
import os
import sys
import timeit

from cliquet_wsgi.middlewares.backoff import BackoffMiddleware
from cliquet_wsgi.middlewares.cors import CORSMiddleware
from cliquet_wsgi.middlewares.errors import ErrorsMiddleware
from cliquet_wsgi.middlewares.heartbeat import HeartbeatMiddleware
from cliquet_wsgi.middlewares.version import VersionMiddleware
from cliquet_wsgi.registry import Registry
from cliquet_wsgi.settings import load_settings

BODY = b'{"ok":true}'
calls = {"app": 0}


def bare_app(environ, start_response):
    calls["app"] += 1
    start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(BODY)))])
    return [BODY]


def environ_for(path: str) -> dict:
    return {
        "REQUEST_METHOD": "GET", "SCRIPT_NAME": "", "PATH_INFO": path, "QUERY_STRING": "a=1",
        "SERVER_NAME": "localhost", "SERVER_PORT": "8000", "SERVER_PROTOCOL": "HTTP/1.1",
        "HTTP_HOST": "localhost:8000", "HTTP_ORIGIN": "https://app.example.org",
        "HTTP_ACCEPT": "application/json", "wsgi.url_scheme": "http", "wsgi.input": io.BytesIO(b""),
        "wsgi.errors": sys.stderr, "wsgi.version": (1, 0), "wsgi.multithread": True,
        "wsgi.multiprocess": False, "wsgi.run_once": False,
    }


statuses: list[str] = []


def start_response(status, headers, exc_info=None):
    statuses.append(status)
    del statuses[:-1]  # keep the last one only
    return None


def call(app, template):
    def run():
        body = app(dict(template), start_response)
        for _ in body:
            pass
        close = getattr(body, "close", None)
        if close is not None:
            close()
    return run


def measure(app, path: str, number: int, expect: str = "200 OK") -> float:
    runner = call(app, environ_for(path))
    runner()  # warm caches
    if statuses[-1] != expect:
        raise SystemExit(f"GET {path} answered {statuses[-1]!r}, expected {expect!r}: not the path to measure")
    return min(timeit.repeat(runner, number=number, repeat=5)) / number * 1e6


def measure_pair(bare, bare_path: str, wrapped, wrapped_path: str, number: int, rounds: int = 7) -> tuple[float, float]:
    """Best µs/request of each app, measured in alternation so that load changes hit both alike."""
    runners = []
    for app, path in ((bare, bare_path), (wrapped, wrapped_path)):
        runner = call(app, environ_for(path))
        runner()
        if statuses[-1] != "200 OK":
            raise SystemExit(f"GET {path} answered {statuses[-1]!r}: not the path to measure")
        runners.append(runner)
    best = [float("inf"), float("inf")]
    for _ in range(rounds):
        for index, runner in enumerate(runners):
            best[index] = min(best[index], timeit.timeit(runner, number=number) / number * 1e6)
    return best[0], best[1]


def build(names: list[str], app=bare_app):
    settings = load_settings({"backoff": "10"}, environ={})
    registry = Registry(settings)
    classes = {
        "cors": lambda app: CORSMiddleware(app, registry=registry),
        "backoff": lambda app: BackoffMiddleware(app, registry=registry, backoff=10),
        "errors": lambda app: ErrorsMiddleware(app, registry=registry),
        "version": lambda app: VersionMiddleware(app, registry=registry),
        "heartbeat": lambda app: HeartbeatMiddleware(app, registry=registry),
    }
    for name in reversed(names):
        app = classes[name](app)
    return app


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--number", type=int, default=20000)
    number = parser.parse_args().number
    full = ["cors", "backoff", "errors", "version", "heartbeat"]

    bare, stack = measure_pair(bare_app, "/articles", build(full), "/v1/articles", number)
    print(f"{'bare app':<28}{bare:8.2f} µs/request")
    print(f"{'full foundation stack':<28}{stack:8.2f} µs/request   ratio {stack / bare:.2f}x bare "
          f"(+{stack - bare:.2f} µs)")
    for name in full:
        path = "/v1/articles" if name == "version" else "/articles"
        alone = measure(build([name]), path, number)
        print(f"{'  ' + name + ' alone':<28}{alone:8.2f} µs/request   (+{alone - bare:.2f} µs)")
    for label, path in (("hello", "/v1/"), ("lbheartbeat", "/v1/__lbheartbeat__")):
        before = calls["app"]
        cost = measure(build(full), path, number // 4)
        reached = calls["app"] - before
        print(f"{label + ' (full stack)':<28}{cost:8.2f} µs/request   app reached {reached} times")
    print("GET /hello JSON view of real frameworks (tests/apps), bare vs /v1/hello behind the full stack:")
    for label, app in framework_apps():
        alone, wrapped = measure_pair(app, "/hello", build(full, app), "/v1/hello", max(number // 20, 100))
        print(f"{'  ' + label:<28}{alone:8.2f} -> {wrapped:8.2f} µs/request   (+{wrapped - alone:.2f} µs, "
              f"ratio {wrapped / alone:.3f}x)")


def framework_apps() -> list[tuple[str, object]]:
    """The WSGI callables of the Flask, Bottle and Django test apps (one ``/hello`` JSON view each)."""
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    from tests.apps import bottle_app, django_app, flask_app

    return [("Flask", flask_app.application), ("Bottle", bottle_app.application), ("Django", django_app.application)]


if __name__ == "__main__":
    main()
