"""REST resources against Kinto: µs/request in-process and req/s over HTTP.

Five scenarios, the same for our stack (``bench/resources_app.py``: the
default ``wrap()`` stack, Basic auth, one per-user resource ``/v1/articles``)
and for Kinto (``bench/kinto.ini``, Basic auth, an explicit bucket and
collections owned by the benchmark user,
``/v1/buckets/<b>/collections/<c>/records``), on the memory backends and on
PostgreSQL:

* ``get_collection_10`` / ``get_collection_100``: GET a collection of 10 / 100 records;
* ``get_record``: GET one record; ``post_record``: POST a new record;
* ``poll_304``: GET the 10-record collection with ``If-None-Match`` -> 304.

In-process: each target's app is called directly (a fresh environ per call)
and the figure is the best of several repeats, in µs/request. Over HTTP:
gunicorn, 1 sync worker, loaded by ``wrk`` on loopback (Lua scripts send
bodies and headers and count unexpected statuses); req/s and requests per
CPU-second of the worker (which load from other processes disturbs less);
targets alternate per scenario. The goal is >= 3x Kinto on each.

    python3 bench/resources.py [--quick] [--backends memory,postgresql] [--no-http] [--no-inprocess]
    python3 bench/resources.py --profile [--backend memory] [--scenarios get_record,post_record]

Kinto is a peer, never a dependency: it lives in its own virtualenv
(``--kinto-python``, default ``/tmp/kinto-venv/bin/python``; see
``bench/kinto.ini``), and its in-process part runs this same script there
(``--child --target kinto``) and hands back JSON. Without that virtualenv
only our figures are printed. PostgreSQL (127.0.0.1:5432, user postgres,
trust) uses two databases of the benchmark's own, recreated at start and
dropped at the end (``--keep-databases``); Kinto's gets ``kinto migrate``.
"""
from __future__ import annotations

import argparse
import base64
import io
import itertools
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
import uuid
from typing import Any, Callable

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
KINTO_INI = os.path.join(ROOT, "bench", "kinto.ini")
SCENARIOS = ("get_collection_10", "get_collection_100", "get_record", "post_record", "poll_304")
GOAL = 3.0
LAYOUTS = {
    "explicit": "explicit bucket + collections created by the benchmark user",
    "default_bucket": "default_bucket plugin, one user per collection (/v1/buckets/default/collections/articles)",
}
PG_SERVER = "postgresql://postgres@127.0.0.1:5432"

#: (status, headers, body) of one request, whatever carries it.
Client = Callable[[str, str, dict, bytes], tuple[int, dict, bytes]]


def basic(user: str) -> str:
    # NOTE: a fresh password per run makes a fresh user id (HMAC of user:password) on both sides,
    # so that runs against a kept PostgreSQL database never see each other's records.
    return "Basic " + base64.b64encode(f"{user}:bench-{uuid.uuid4().hex}".encode()).decode()


def record_body(n: int) -> bytes:
    return b'{"data": {"title": "article %d", "url": "https://example.org/%d", "done": false}}' % (n, n)


# -- fixtures: the same data for both targets, through their own HTTP API ---------------------


def expect(answer: tuple[int, dict, bytes], status: int, what: str) -> dict:
    got, _, body = answer
    if got != status:
        raise SystemExit(f"setup: {what} answered {got}, expected {status}: {body[:300]!r}")
    return json.loads(body) if body else {}


def setup_fixtures(target: str, request: Client, kinto_layout: str = "explicit") -> dict[str, dict]:
    """Create the records and return each scenario's request: method, path, headers, expected status."""
    json_headers = {"Content-Type": "application/json"}
    if target == "cliquet":
        auth = {size: {"Authorization": basic(f"user{size}")} for size in (10, 100, "post")}
        paths = {size: "/v1/articles" for size in (10, 100, "post")}
    elif kinto_layout == "default_bucket":
        # One user per collection as on our side; the plugin creates bucket and collection implicitly.
        auth = {size: {"Authorization": basic(f"user{size}")} for size in (10, 100, "post")}
        paths = {size: "/v1/buckets/default/collections/articles/records" for size in (10, 100, "post")}
    else:
        owner = {"Authorization": basic("owner")}
        auth = {size: owner for size in (10, 100, "post")}
        bucket = f"/v1/buckets/bench{uuid.uuid4().hex[:12]}"
        expect(request("PUT", bucket, {**owner, **json_headers}, b'{"data": {}}'), 201, "PUT bucket")
        paths = {}
        for size in (10, 100, "post"):
            collection = f"{bucket}/collections/c{size}"
            expect(request("PUT", collection, {**owner, **json_headers}, b'{"data": {}}'), 201, "PUT collection")
            paths[size] = collection + "/records"
    for size in (10, 100):
        for n in range(size):
            expect(request("POST", paths[size], {**auth[size], **json_headers}, record_body(n)), 201, "POST record")
    listing = request("GET", paths[10], auth[10], b"")
    records = expect(listing, 200, "GET collection")["data"]
    etag = listing[1]["etag"]
    for size in (10, 100):
        count = len(expect(request("GET", paths[size], auth[size], b""), 200, "GET collection")["data"])
        if count != size:
            raise SystemExit(f"setup: the {size}-record collection lists {count} records (pagination?)")
    return {
        "get_collection_10": {"method": "GET", "path": paths[10], "headers": auth[10], "status": 200},
        "get_collection_100": {"method": "GET", "path": paths[100], "headers": auth[100], "status": 200},
        "get_record": {"method": "GET", "path": f"{paths[10]}/{records[0]['id']}", "headers": auth[10],
                       "status": 200},
        "post_record": {"method": "POST", "path": paths["post"], "headers": {**auth["post"], **json_headers},
                        "status": 201},
        "poll_304": {"method": "GET", "path": paths[10], "headers": {**auth[10], "If-None-Match": etag},
                     "status": 304},
    }


# -- in-process ------------------------------------------------------------------------------


def base_environ(method: str, path: str, headers: dict, body: bytes) -> dict:
    """The environ of a request; ``path`` may carry a querystring."""
    path, _, query = path.partition("?")
    environ = {
        "REQUEST_METHOD": method, "SCRIPT_NAME": "", "PATH_INFO": path, "QUERY_STRING": query,
        "SERVER_NAME": "localhost", "SERVER_PORT": "8000", "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "127.0.0.1", "HTTP_HOST": "localhost:8000", "HTTP_ACCEPT": "application/json",
        "wsgi.url_scheme": "http", "wsgi.input": io.BytesIO(body), "wsgi.errors": sys.stderr,
        "wsgi.version": (1, 0), "wsgi.multithread": False, "wsgi.multiprocess": True, "wsgi.run_once": False,
    }
    for name, value in headers.items():
        key = name.upper().replace("-", "_")
        environ[key if key == "CONTENT_TYPE" else "HTTP_" + key] = value
    if body:
        environ["CONTENT_LENGTH"] = str(len(body))
    return environ


def wsgi_client(app) -> Client:
    def request(method: str, path: str, headers: dict, body: bytes) -> tuple[int, dict, bytes]:
        answer: dict = {}

        def start_response(status, response_headers, exc_info=None):
            answer["status"] = int(status[:3])
            answer["headers"] = {k.lower(): v for k, v in response_headers}

        result = app(base_environ(method, path, headers, body), start_response)
        try:
            data = b"".join(result)
        finally:
            if hasattr(result, "close"):
                result.close()
        return answer["status"], answer["headers"], data

    return request


def make_runner(app, scenario: dict, unexpected: list[int]) -> Callable[[], None]:
    """One request of the scenario per call; counts answers whose status is not the expected one."""
    template = base_environ(scenario["method"], scenario["path"], scenario["headers"], b"")
    expected = f"{scenario['status']} "
    counter = itertools.count(1000)

    def start_response(status, headers, exc_info=None):
        if not status.startswith(expected):
            unexpected[0] += 1

    def run() -> None:
        environ = dict(template)
        if scenario["method"] == "POST":
            body = record_body(next(counter))
            environ["CONTENT_LENGTH"] = str(len(body))
            environ["wsgi.input"] = io.BytesIO(body)
        else:
            environ["wsgi.input"] = io.BytesIO(b"")
        result = app(environ, start_response)
        for _ in result:
            pass
        if hasattr(result, "close"):
            result.close()

    return run


def measure(run: Callable[[], None], seconds: float, repeats: int) -> dict:
    for _ in range(3):
        run()  # warm caches and connections
    start = time.perf_counter()
    calls = 0
    while time.perf_counter() - start < seconds / 5 or calls < 3:
        run()
        calls += 1
    number = max(3, calls * 5)  # about `seconds` per repeat
    timings = []
    for _ in range(repeats):
        begin = time.perf_counter()
        for _ in range(number):
            run()
        timings.append((time.perf_counter() - begin) / number * 1e6)
    return {"us": min(timings), "median_us": statistics.median(timings), "number": number, "repeats": repeats}


def child(args: argparse.Namespace) -> int:
    """Measure one target in this interpreter and print JSON (or a profile)."""
    sys.path.insert(0, ROOT)
    os.environ["BENCH_TARGET"] = args.target
    os.environ["BENCH_STORAGE_URL"] = args.storage_url
    from bench import resources_app

    app = resources_app.application
    scenarios = setup_fixtures(args.target, wsgi_client(app), os.environ.get("BENCH_KINTO_LAYOUT", "explicit"))
    selected = args.scenarios.split(",") if args.scenarios else SCENARIOS
    if args.profile:
        return profile(app, scenarios, selected, args)
    results = {}
    for name in selected:
        unexpected = [0]
        result = measure(make_runner(app, scenarios[name], unexpected), args.seconds, args.repeats)
        result["unexpected_statuses"] = unexpected[0]
        results[name] = result
    json.dump(results, sys.stdout)
    return 0


def profile(app, scenarios: dict, selected, args: argparse.Namespace) -> int:
    import cProfile
    import pstats

    for name in selected:
        unexpected = [0]
        run = make_runner(app, scenarios[name], unexpected)
        for _ in range(20):
            run()
        profiler = cProfile.Profile()
        profiler.enable()
        for _ in range(args.profile_calls):
            run()
        profiler.disable()
        print(f"=== {args.target} {name} ({args.storage_url}): {args.profile_calls} calls, "
              f"{unexpected[0]} unexpected statuses; top by own time")
        stats = pstats.Stats(profiler, stream=sys.stdout)
        if args.strip_dirs:
            stats.strip_dirs()
        stats.sort_stats("tottime").print_stats(args.profile_top)
        print(f"--- {name}: top by cumulative time")
        stats.sort_stats("cumulative").print_stats(args.profile_top)
    return 0


# -- parent: databases, children, gunicorn and wrk -----------------------------------------


def recreate_database(name: str, drop_only: bool = False) -> None:
    import pg8000.native

    parts = urllib.parse.urlsplit(PG_SERVER)
    connection = pg8000.native.Connection(parts.username, host=parts.hostname, port=parts.port,
                                          database="postgres")
    try:
        connection.run(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        if not drop_only:
            connection.run(f'CREATE DATABASE "{name}"')
    finally:
        connection.close()


def backend_config(backend: str, args: argparse.Namespace) -> tuple[str, dict]:
    """Our storage URL and Kinto's environment overrides for a backend."""
    kinto_env = {"BENCH_KINTO_LAYOUT": args.kinto_layout}
    if args.kinto_layout == "default_bucket":
        kinto_env["KINTO_INCLUDES"] = "kinto.plugins.default_bucket"
    if backend == "memory":
        return "memory://", kinto_env
    kinto_url = f"{PG_SERVER}/{args.kinto_database}"
    return f"{PG_SERVER}/{args.cliquet_database}", {
        **kinto_env,
        "KINTO_STORAGE_BACKEND": "kinto.core.storage.postgresql", "KINTO_STORAGE_URL": kinto_url,
        "KINTO_PERMISSION_BACKEND": "kinto.core.permission.postgresql", "KINTO_PERMISSION_URL": kinto_url,
    }


def target_env(target: str, storage_url: str, kinto_env: dict) -> dict:
    env = {**os.environ, "BENCH_TARGET": target, "BENCH_STORAGE_URL": storage_url, "PYTHONPATH": ROOT}
    if target == "kinto":
        env.update(kinto_env)
    return env


def run_child(python: str, target: str, backend: str, storage_url: str, kinto_env: dict,
              args: argparse.Namespace) -> dict:
    command = [python, os.path.abspath(__file__), "--child", "--target", target, "--storage-url", storage_url,
               "--seconds", str(args.seconds), "--repeats", str(args.repeats)]
    done = subprocess.run(command, env=target_env(target, storage_url, kinto_env), cwd=ROOT,
                          capture_output=True, text=True, timeout=600)
    if done.returncode != 0:
        raise SystemExit(f"in-process {target} on {backend} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout)


def http_client(base: str) -> Client:
    import http.client

    parts = urllib.parse.urlsplit(base)

    def request(method: str, path: str, headers: dict, body: bytes) -> tuple[int, dict, bytes]:
        connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
        try:
            connection.request(method, path, body=body or None, headers=headers)
            response = connection.getresponse()
            return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
        finally:
            connection.close()

    return request


LUA = """
wrk.method = "%(method)s"
wrk.path = %(path)s
%(headers)s
unexpected = 0
%(request)s
response = function(status, headers, body)
  if status ~= %(status)d then unexpected = unexpected + 1 end
end
local threads = {}
setup = function(thread) table.insert(threads, thread) end
done = function(summary, latency, requests)
  local total = 0
  for _, thread in ipairs(threads) do total = total + thread:get("unexpected") end
  io.write(string.format("unexpected-statuses: %%d\\n", total))
end
"""

LUA_POST = """
local n = 0
request = function()
  n = n + 1
  return wrk.format(nil, nil, nil,
    '{"data": {"title": "article ' .. n .. '", "url": "https://example.org/' .. n .. '", "done": false}}')
end
"""


def lua_script(scenario: dict) -> str:
    # JSON string literals are valid Lua ones (ETags carry double quotes).
    headers = "\n".join(f"wrk.headers[{json.dumps(k)}] = {json.dumps(v)}" for k, v in scenario["headers"].items())
    return LUA % {"method": scenario["method"], "path": json.dumps(scenario["path"]), "headers": headers,
                  "request": LUA_POST if scenario["method"] == "POST" else "", "status": scenario["status"]}


def run_wrk(url: str, script: str, duration: int, connections: int) -> dict:
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as handle:
        handle.write(script)
    try:
        done = subprocess.run(
            ["wrk", "-t1", f"-c{connections}", f"-d{duration}s", "--timeout", "10s", "-s", handle.name, url],
            capture_output=True, text=True, timeout=duration + 60,
        )
    finally:
        os.unlink(handle.name)
    output = done.stdout
    if done.returncode != 0 or "unexpected-statuses:" not in output:
        raise SystemExit(f"wrk failed ({done.returncode}):\n{output}\n{done.stderr}\n--- script:\n{script}")
    errors = re.search(r"Socket errors: (.*)", output)
    return {
        "requests": int(re.search(r"(\d+) requests in", output).group(1)),
        "requests_per_second": float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1)),
        "unexpected_statuses": int(re.search(r"unexpected-statuses: (\d+)", output).group(1)),
        "socket_errors": errors.group(1) if errors else "",
    }


class Server:
    """gunicorn, 1 sync worker, serving one target on a free loopback port."""

    def __init__(self, gunicorn: list[str], target: str, env: dict) -> None:
        from bench.batch import free_port

        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.target = target
        self.process = subprocess.Popen(
            [*gunicorn, "-w", "1", "-k", "sync", "-b", f"127.0.0.1:{self.port}", "--log-level", "warning",
             "bench.resources_app:application"],
            cwd=ROOT, env=env, start_new_session=True,
        )

    def start(self) -> None:
        from bench.batch import wait_ready, worker_pid

        wait_ready(self.url, timeout=60)
        self.worker = worker_pid(self.process.pid)

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            self.process.wait(timeout=30)


def run_http(backend: str, targets: list[str], storage_url: str, kinto_env: dict,
             args: argparse.Namespace) -> dict[str, dict[str, dict]]:
    from bench.batch import cpu_seconds

    gunicorns = {"cliquet": [sys.executable, "-m", "gunicorn"],
                 "kinto": [os.path.join(os.path.dirname(args.kinto_python), "gunicorn")]}
    servers = {t: Server(gunicorns[t], t, target_env(t, storage_url, kinto_env)) for t in targets}
    results: dict[str, dict[str, dict]] = {t: {} for t in targets}
    try:
        scenarios = {}
        for target, server in servers.items():
            server.start()
            scenarios[target] = setup_fixtures(target, http_client(server.url), args.kinto_layout)
        for name in SCENARIOS:
            rounds: dict[str, list[dict]] = {t: [] for t in targets}
            # NOTE: targets alternate for each scenario (and each round) so that load from
            # other processes on a shared machine hits both alike.
            for _ in range(args.rounds):
                for target, server in servers.items():
                    before = cpu_seconds(server.worker)
                    result = run_wrk(server.url, lua_script(scenarios[target][name]), args.duration,
                                     args.connections)
                    result["per_worker_cpu_second"] = result["requests"] / max(cpu_seconds(server.worker) - before,
                                                                               1e-9)
                    rounds[target].append(result)
            for target in targets:
                results[target][name] = {
                    "requests_per_second": statistics.median(r["requests_per_second"] for r in rounds[target]),
                    "per_worker_cpu_second": statistics.median(r["per_worker_cpu_second"] for r in rounds[target]),
                    "requests": sum(r["requests"] for r in rounds[target]),
                    "unexpected_statuses": sum(r["unexpected_statuses"] for r in rounds[target]),
                    "socket_errors": "; ".join(r["socket_errors"] for r in rounds[target] if r["socket_errors"]),
                }
    finally:
        for server in servers.values():
            server.stop()
    return results


def run_ceiling(args: argparse.Namespace) -> dict:
    """req/s of a bare WSGI function under the same gunicorn and wrk: no app can do better here."""
    from bench.batch import cpu_seconds

    server = Server([sys.executable, "-m", "gunicorn"], "bare", target_env("bare", "memory://", {}))
    try:
        server.start()
        before = cpu_seconds(server.worker)
        scenario = {"method": "GET", "path": "/v1/articles", "headers": {"Authorization": basic("bare")},
                    "status": 200}
        result = run_wrk(server.url, lua_script(scenario), args.duration, args.connections)
        result["per_worker_cpu_second"] = result["requests"] / max(cpu_seconds(server.worker) - before, 1e-9)
        return result
    finally:
        server.stop()


def kinto_migrate(args: argparse.Namespace, kinto_env: dict) -> None:
    kinto = os.path.join(os.path.dirname(args.kinto_python), "kinto")
    subprocess.run([kinto, "migrate", "--ini", KINTO_INI], env={**os.environ, **kinto_env}, check=True,
                   capture_output=True, text=True, timeout=120)


def ratio(ours: float | None, theirs: float | None) -> float | None:
    if not ours or not theirs:
        return None
    return ours / theirs


def print_table(summary: dict) -> None:
    def fmt(value, spec):
        return format(value, spec) if value is not None else "-"

    def mark(r):
        return "" if r is None else (" ok" if r >= GOAL else " LOW")

    for backend, parts in summary["backends"].items():
        inprocess, http = parts.get("inprocess", {}), parts.get("http", {})
        if inprocess:
            print(f"\n[{backend}] in-process, µs/request (best of {summary['repeats']} repeats; lower is better)")
            print(f"  {'scenario':<20}{'cliquet':>10}{'kinto':>10}{'kinto/cliquet':>15}")
            for name in SCENARIOS:
                ours = inprocess.get("cliquet", {}).get(name, {}).get("us")
                theirs = inprocess.get("kinto", {}).get(name, {}).get("us")
                r = ratio(theirs, ours)
                print(f"  {name:<20}{fmt(ours, '10.1f')}{fmt(theirs, '10.1f')}{fmt(r, '14.2f')}x{mark(r)}")
        if http:
            print(f"\n[{backend}] HTTP, gunicorn 1 sync worker, wrk {summary['connections']} connections, "
                  f"{summary['duration']} s x {summary['rounds']} round(s): req/s (req per worker CPU-s)")
            print(f"  {'scenario':<20}{'cliquet':>20}{'kinto':>20}{'ratio':>9}{'cpu ratio':>11}")
            for name in SCENARIOS:
                ours, theirs = http.get("cliquet", {}).get(name, {}), http.get("kinto", {}).get(name, {})
                r = ratio(ours.get("requests_per_second"), theirs.get("requests_per_second"))
                rc = ratio(ours.get("per_worker_cpu_second"), theirs.get("per_worker_cpu_second"))

                def cell(d):
                    if not d:
                        return f"{'-':>20}"
                    return f"{d['requests_per_second']:9.0f} ({d['per_worker_cpu_second']:6.0f})".rjust(20)

                print(f"  {name:<20}{cell(ours)}{cell(theirs)}{fmt(r, '8.2f')}x{fmt(rc, '10.2f')}x{mark(r)}")
    ceiling = summary.get("ceiling")
    if ceiling:
        print(f"\nceiling: a bare WSGI function under the same gunicorn + wrk: {ceiling['requests_per_second']:.0f} "
              f"req/s ({ceiling['per_worker_cpu_second']:.0f} per worker CPU-s)")
    for problem in summary["problems"]:
        print("PROBLEM:", problem)


def parent(args: argparse.Namespace) -> int:
    sys.path.insert(0, ROOT)
    if args.quick:
        args.seconds, args.repeats, args.duration, args.rounds = 0.08, 3, 2, 1
    targets = ["cliquet"]
    problems: list[str] = []
    if os.path.exists(args.kinto_python):
        targets.append("kinto")
    else:
        problems.append(f"Kinto not measured: {args.kinto_python} does not exist (see bench/kinto.ini)")
    summary: dict[str, Any] = {"backends": {}, "problems": problems, "repeats": args.repeats,
                               "duration": args.duration, "rounds": args.rounds, "connections": args.connections,
                               "kinto_layout": LAYOUTS[args.kinto_layout]}
    backends = args.backends.split(",")
    started = time.monotonic()
    try:
        if not args.no_http:
            summary["ceiling"] = run_ceiling(args)
        for backend in backends:
            storage_url, kinto_env = backend_config(backend, args)
            if backend == "postgresql":
                recreate_database(args.cliquet_database)
                if "kinto" in targets:
                    recreate_database(args.kinto_database)
                    kinto_migrate(args, kinto_env)
            parts: dict[str, Any] = {}
            if not args.no_inprocess:
                pythons = {"cliquet": sys.executable, "kinto": args.kinto_python}
                parts["inprocess"] = {t: run_child(pythons[t], t, backend, storage_url, kinto_env, args)
                                      for t in targets}
            if not args.no_http:
                parts["http"] = run_http(backend, targets, storage_url, kinto_env, args)
            summary["backends"][backend] = parts
    finally:
        if "postgresql" in backends and not args.keep_databases:
            recreate_database(args.cliquet_database, drop_only=True)
            recreate_database(args.kinto_database, drop_only=True)
    summary["elapsed_seconds"] = round(time.monotonic() - started, 1)
    ceiling = summary.get("ceiling", {})
    if ceiling.get("unexpected_statuses") or ceiling.get("socket_errors"):
        problems.append(f"ceiling: {ceiling['unexpected_statuses']} unexpected statuses, "
                        f"socket errors: {ceiling['socket_errors'] or 0}")
    for backend, parts in summary["backends"].items():
        for mode in ("inprocess", "http"):
            for target, scenarios in parts.get(mode, {}).items():
                for name, result in scenarios.items():
                    if result["unexpected_statuses"] or result.get("socket_errors"):
                        problems.append(f"{backend} {mode} {target} {name}: {result['unexpected_statuses']} "
                                        f"unexpected statuses, socket errors: {result.get('socket_errors') or 0}")
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        print_table(summary)
        print(f"\nelapsed {summary['elapsed_seconds']} s; Kinto layout: {summary['kinto_layout']}")
    return 1 if problems else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="short run (about a minute)")
    parser.add_argument("--backends", default="memory,postgresql", help="memory and/or postgresql")
    parser.add_argument("--no-http", action="store_true")
    parser.add_argument("--no-inprocess", action="store_true")
    parser.add_argument("--seconds", type=float, default=0.25, help="in-process: about this long per repeat")
    parser.add_argument("--repeats", type=int, default=5, help="in-process repeats (the best counts)")
    parser.add_argument("--duration", type=int, default=5, help="HTTP: seconds of wrk load per scenario")
    parser.add_argument("--rounds", type=int, default=2, help="HTTP: alternating rounds (the median counts)")
    parser.add_argument("--connections", type=int, default=2)
    parser.add_argument("--kinto-python", default="/tmp/kinto-venv/bin/python")
    parser.add_argument("--kinto-layout", choices=sorted(LAYOUTS), default="explicit",
                        help="Kinto's records: an explicit bucket (default) or the default_bucket plugin")
    parser.add_argument("--cliquet-database", default="cliquet_bench_resources")
    parser.add_argument("--kinto-database", default="kinto_bench")
    parser.add_argument("--keep-databases", action="store_true")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    # One target in this interpreter (the parent runs Kinto's under its own virtualenv).
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--target", choices=("cliquet", "kinto"), default="cliquet")
    parser.add_argument("--storage-url", help="--child/--profile: storage URL (default: memory://)")
    parser.add_argument("--backend", choices=("memory", "postgresql"), default="memory", help="--profile backend")
    parser.add_argument("--scenarios", help="--child/--profile: comma-separated subset")
    parser.add_argument("--profile", action="store_true", help="cProfile our in-process loop instead")
    parser.add_argument("--profile-calls", type=int, default=2000)
    parser.add_argument("--profile-top", type=int, default=25)
    parser.add_argument("--strip-dirs", action="store_true")
    args = parser.parse_args()
    if args.profile:
        own_database = args.backend == "postgresql" and not args.storage_url
        if own_database:
            recreate_database(args.cliquet_database)
        args.storage_url = args.storage_url or backend_config(args.backend, args)[0]
        try:
            return child(args)
        finally:
            if own_database and not args.keep_databases:
                recreate_database(args.cliquet_database, drop_only=True)
    if args.child:
        args.storage_url = args.storage_url or "memory://"
        return child(args)
    return parent(args)


if __name__ == "__main__":
    sys.exit(main())
