"""In-process cost of monitoring: metrics (StatsD) + request summary logs, on vs off.

Stack: errors + version around a three-line app that sets the route name as
the resources layer would. "on" adds request_log and metrics above it, with
StatsD pointed at a closed loopback port (datagrams are sent and dropped) and
the summary logger enabled at INFO with a NullHandler (the record is built and
handled; no formatter runs, as with any handler that filters it out). One row
packs StatsD lines into datagrams (``statsd_flush_interval_seconds = 1``);
another also formats each summary as a mozlog JSON line written to /dev/null.

    python3 bench/monitoring.py [--number N]

Each figure is the best of 15 repeats of N calls (timeit), with a prebuilt
environ copied per call, timed with ``time.thread_time`` (CPU time of this
thread: stable on a machine shared with other jobs). Goal: monitoring adds at
most 10 µs per request.
"""
from __future__ import annotations

import argparse
import io
import logging
import os
import socket
import sys
import time
import timeit

from cliquet_wsgi import environ as keys
from cliquet_wsgi.middlewares.errors import ErrorsMiddleware
from cliquet_wsgi.middlewares.metrics import MetricsMiddleware
from cliquet_wsgi.middlewares.request_log import SUMMARY_LOGGER, RequestLogMiddleware
from cliquet_wsgi.middlewares.version import VersionMiddleware
from cliquet_wsgi.registry import Registry

BODY = b'{"data":[]}'


def app(environ, start_response):
    environ[keys.ROUTE_NAME] = "article-collection"
    start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(BODY)))])
    return [BODY]


def environ_for(path: str, request_id: str | None = None) -> dict:
    environ = {
        "REQUEST_METHOD": "GET", "SCRIPT_NAME": "", "PATH_INFO": path, "QUERY_STRING": "_limit=10",
        "SERVER_NAME": "localhost", "SERVER_PORT": "8000", "SERVER_PROTOCOL": "HTTP/1.1",
        "HTTP_HOST": "localhost:8000", "HTTP_USER_AGENT": "bench/1", "HTTP_ACCEPT": "application/json",
        "wsgi.url_scheme": "http", "wsgi.input": io.BytesIO(b""), "wsgi.errors": sys.stderr,
        "wsgi.version": (1, 0), "wsgi.multithread": True, "wsgi.multiprocess": False, "wsgi.run_once": False,
    }
    if request_id:
        environ["HTTP_X_REQUEST_ID"] = request_id
    return environ


def start_response(status, headers, exc_info=None):
    return None


def measure(wsgi_app, template: dict, number: int) -> float:
    def run():
        body = wsgi_app(dict(template), start_response)
        for _ in body:
            pass
        close = getattr(body, "close", None)
        if close is not None:
            close()

    run()
    return min(timeit.repeat(run, number=number, repeat=15, timer=time.thread_time)) / number * 1e6


def closed_udp_port() -> int:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    return port


def build(layers: list[str], statsd_url: str, flush_interval: float = 0.0):
    registry = Registry()
    stack = VersionMiddleware(app, registry=registry)
    stack = ErrorsMiddleware(stack, registry=registry)
    if "metrics" in layers:
        stack = MetricsMiddleware(stack, registry=registry, statsd_url=statsd_url, statsd_prefix="bench",
                                  statsd_flush_interval_seconds=flush_interval)
    if "request_log" in layers:
        stack = RequestLogMiddleware(stack, registry=registry, project_name="bench")
    return stack


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--number", type=int, default=5000)
    number = parser.parse_args().number

    summary = logging.getLogger(SUMMARY_LOGGER)
    summary.addHandler(logging.NullHandler())
    summary.setLevel(logging.INFO)
    summary.propagate = False
    statsd_url = f"udp://127.0.0.1:{closed_udp_port()}"

    template = environ_for("/v1/articles")
    off = measure(build([], statsd_url), template, number)
    print(f"{'off (errors+version+app)':<36}{off:8.2f} µs/request")
    for label, layers, environ in (
        ("metrics only", ["metrics"], template),
        ("request_log only", ["request_log"], template),
        ("metrics + request_log", ["metrics", "request_log"], template),
        ("metrics + request_log, client rid", ["metrics", "request_log"], environ_for("/v1/articles", "abc-123")),
    ):
        on = measure(build(layers, statsd_url), environ, number)
        print(f"{label:<36}{on:8.2f} µs/request   (+{on - off:.2f} µs)")
    on = measure(build(["metrics", "request_log"], statsd_url, flush_interval=1.0), template, number)
    print(f"{'both, StatsD lines packed (1 s)':<36}{on:8.2f} µs/request   (+{on - off:.2f} µs)")
    from cliquet_wsgi.middlewares.request_log import JsonFormatter

    with open(os.devnull, "w") as devnull:
        writer = logging.StreamHandler(devnull)
        writer.setFormatter(JsonFormatter())
        summary.addHandler(writer)
        on = measure(build(["metrics", "request_log"], statsd_url, flush_interval=1.0), template, number)
        summary.removeHandler(writer)
    print(f"{'both, packed, JSON lines to /dev/null':<36}{on:8.2f} µs/request   (+{on - off:.2f} µs)")
    summary.setLevel(logging.WARNING)
    on = measure(build(["metrics", "request_log"], statsd_url), template, number)
    print(f"{'both, summary logger at WARNING':<36}{on:8.2f} µs/request   (+{on - off:.2f} µs)")


if __name__ == "__main__":
    main()
