"""In-process cost of monitoring: StatsD metrics + JSON request summaries, on vs off.

Goal (issue 6): with StatsD on and every request's summary formatted as a
mozlog JSON line and written by a standard logging handler, the stack costs
at most 10 µs more per request than without monitoring. The headline row is
that case, with default settings: metrics (lines packed,
``statsd_flush_interval_seconds`` at its default 0.5) + request_log, the
summary logger at INFO with a ``logging.StreamHandler`` on /dev/null using
``JsonFormatter``. Its figure counts CPU time of the thread and of the whole
process (the packing flusher is a thread of its own).

Stack: errors + version around a three-line app that sets the route name as
the resources layer would. StatsD points at a closed loopback port (datagrams
are sent and dropped). The other rows split the cost: both with one StatsD
datagram per request; request_log alone writing JSON lines; metrics alone,
packed and one datagram per request;
request_log alone and both with a NullHandler (the record is built and
handled; no formatter runs, as with any handler that filters it out); a
client-supplied request id; and the summary logger at WARNING (no record).

    python3 bench/monitoring.py [--number N]

Each figure is the best of 15 repeats of N calls (timeit), with a prebuilt
environ copied per call, timed with ``time.thread_time`` (CPU time of this
thread: stable on a machine shared with other jobs) and, for the headline
row, also ``time.process_time``; the baseline is the best of three such
measures. A shared machine still moves figures by a few µs between runs:
run it several times and compare medians.

The goal is in µs of a machine: the last line compares this machine's speed
with the one ``bench/baseline.json`` was recorded on (``bench/baseline.py``'s
calibration workload, in wall-clock µs) and scales the headline figure to it.
"""
from __future__ import annotations

import argparse
import io
import json
import logging
import os
import socket
import sys
import time
import timeit
from typing import Any

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from bench.baseline import BASELINE, best_of, calibration  # noqa: E402
from cliquet_wsgi import environ as keys
from cliquet_wsgi.middlewares.errors import ErrorsMiddleware
from cliquet_wsgi.middlewares.metrics import MetricsMiddleware
from cliquet_wsgi.middlewares.request_log import SUMMARY_LOGGER, JsonFormatter, RequestLogMiddleware
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


def measure(wsgi_app, template: dict, number: int, timer: Any = time.thread_time) -> float:
    def run():
        body = wsgi_app(dict(template), start_response)
        for _ in body:
            pass
        close = getattr(body, "close", None)
        if close is not None:
            close()

    run()
    return min(timeit.repeat(run, number=number, repeat=15, timer=timer)) / number * 1e6


def closed_udp_port() -> int:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    return port


def build(layers: list[str], statsd_url: str, flush_interval: float | None = None):
    """The stack; ``flush_interval`` None leaves ``statsd_flush_interval_seconds`` at its default."""
    registry = Registry()
    stack = VersionMiddleware(app, registry=registry)
    stack = ErrorsMiddleware(stack, registry=registry)
    if "metrics" in layers:
        packing = {} if flush_interval is None else {"statsd_flush_interval_seconds": flush_interval}
        stack = MetricsMiddleware(stack, registry=registry, statsd_url=statsd_url, statsd_prefix="bench",
                                  **packing)
    if "request_log" in layers:
        stack = RequestLogMiddleware(stack, registry=registry, project_name="bench")
    return stack


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--number", type=int, default=5000)
    number = parser.parse_args().number

    summary = logging.getLogger(SUMMARY_LOGGER)
    summary.setLevel(logging.INFO)
    summary.propagate = False
    null = logging.NullHandler()
    statsd_url = f"udp://127.0.0.1:{closed_udp_port()}"
    template = environ_for("/v1/articles")

    def row(label: str, off: float | None, layers: list[str], environ: dict = template,
            flush_interval: float | None = None,
            timer: Any = time.thread_time) -> float:
        on = measure(build(layers, statsd_url, flush_interval), environ, number, timer)
        added = "" if off is None else f"   (+{on - off:.2f} µs)"
        print(f"{label:<52}{on:8.2f} µs/request{added}")
        return on

    # NOTE: the baseline is the best of three: a baseline inflated by noise would flatter every row.
    off = min(measure(build([], statsd_url), template, number) for _ in range(3))
    off_process = min(measure(build([], statsd_url), template, number, time.process_time) for _ in range(3))
    print(f"{'off (errors+version+app), thread CPU':<52}{off:8.2f} µs/request")
    print(f"{'off, process CPU':<52}{off_process:8.2f} µs/request")
    with open(os.devnull, "w") as devnull:
        writer = logging.StreamHandler(devnull)
        writer.setFormatter(JsonFormatter())
        summary.addHandler(writer)
        print("goal (<= +10 µs): metrics + request_log, default settings, JSON lines written to /dev/null")
        goal = row("  thread CPU", off, ["metrics", "request_log"]) - off
        row("  process CPU", off_process, ["metrics", "request_log"], timer=time.process_time)
        row("  same, one StatsD datagram per request (interval 0)", off, ["metrics", "request_log"], flush_interval=0.0)
        row("request_log only, JSON lines to /dev/null", off, ["request_log"])
        summary.removeHandler(writer)
    summary.addHandler(null)
    row("metrics only (packed, default 0.5 s)", off, ["metrics"])
    row("metrics only, one datagram per request (interval 0)", off, ["metrics"], flush_interval=0.0)
    row("request_log only, NullHandler", off, ["request_log"])
    row("metrics + request_log, NullHandler", off, ["metrics", "request_log"])
    row("  same, client X-Request-Id", off, ["metrics", "request_log"], environ_for("/v1/articles", "abc-123"))
    summary.setLevel(logging.WARNING)
    row("metrics + request_log, summary logger at WARNING", off, ["metrics", "request_log"])
    here = best_of(calibration, 0.5, 7)
    with open(BASELINE) as source:
        reference = json.load(source)
    scaled = goal * reference["calibration_us"] / here
    print(f"calibration workload {here:.1f} µs here, {reference['calibration_us']:.1f} µs on {reference['machine']['cpu']}"
          f" (bench/baseline.json): the goal row scaled to that machine is +{scaled:.2f} µs")


if __name__ == "__main__":
    main()
