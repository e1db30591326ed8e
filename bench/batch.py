"""Records/second: one batch of 25 creates vs 25 separate POSTs, over HTTP.

Starts gunicorn (1 sync worker) serving :mod:`bench.batch_app` on a free
loopback port, loads it with ``wrk`` for a bounded duration in each mode
(Lua scripts generate the POST bodies), checks that every request succeeded
and that the stored record count matches, and prints records/second for both
modes and their ratio (goal: batch >= 5x), plus records per CPU-second of the
gunicorn worker (from ``/proc``), which other load on the machine disturbs less.

    python3 bench/batch.py [--duration 10] [--rounds 3] [--connections 2] [--storage-url memory://]

A PostgreSQL URL names a database of its own (created if missing), e.g.
``postgresql://postgres@127.0.0.1:5432/cliquet_bench``: test suites flush
the shared test database, which would make the stored-count check fail.
"""
from __future__ import annotations

import argparse
import base64
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
import uuid

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BATCH_SIZE = 25

LUA_SINGLE = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "%(auth)s"
local n = 0
request = function()
  n = n + 1
  return wrk.format(nil, "/v1/notes", nil, '{"data": {"title": "note ' .. n .. '", "done": false}}')
end
"""

LUA_BATCH = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "%(auth)s"
local n = 0
request = function()
  local items = {}
  for i = 1, %(size)d do
    n = n + 1
    items[i] = '{"body": {"data": {"title": "note ' .. n .. '", "done": false}}}'
  end
  local body = '{"defaults": {"method": "POST", "path": "/notes"}, "requests": [' .. table.concat(items, ",") .. ']}'
  return wrk.format(nil, "/v1/batch", nil, body)
end
-- a batch answers 200 even when a sub-request fails: count failed sub-requests
failed = 0
response = function(status, headers, body)
  if status ~= 200 or not string.find(body, '"status":201', 1, true) or string.find(body, '"status":[45]') then
    failed = failed + 1
  end
end
-- response() runs in each wrk thread's own Lua state and done() in the main one:
-- sum the per-thread counters with thread:get, or done() would always read 0.
local threads = {}
setup = function(thread) table.insert(threads, thread) end
done = function(summary, latency, requests)
  local total = 0
  for _, thread in ipairs(threads) do total = total + thread:get("failed") end
  io.write(string.format("batch-failures: %%d\\n", total))
end
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def basic(user: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:bench-{uuid.uuid4().hex}".encode()).decode()


def wait_ready(url: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url + "/v1/__lbheartbeat__", timeout=1):
                return
        except OSError:
            time.sleep(0.2)
    raise SystemExit("gunicorn did not start")


def worker_pid(master: int) -> int:
    with open(f"/proc/{master}/task/{master}/children") as handle:
        children = handle.read().split()
    if len(children) != 1:
        raise SystemExit(f"expected one gunicorn worker, found {children}")
    return int(children[0])


def cpu_seconds(pid: int) -> float:
    """user + system CPU time of a process (``/proc/<pid>/stat`` fields 14 and 15)."""
    with open(f"/proc/{pid}/stat") as handle:
        fields = handle.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def ensure_database(url: str) -> None:
    """Create the benchmark's own PostgreSQL database: test suites flush the shared one."""
    import pg8000.native

    parts = urllib.parse.urlsplit(url)
    name = parts.path.lstrip("/")
    connection = pg8000.native.Connection(
        parts.username or "postgres", host=parts.hostname, port=parts.port or 5432,
        password=parts.password, database="postgres",
    )
    try:
        if not connection.run("SELECT 1 FROM pg_database WHERE datname = :n", n=name):
            connection.run(f'CREATE DATABASE "{name}"')
    finally:
        connection.close()


def count_records(url: str, auth: str) -> int:
    request = urllib.request.Request(url + "/v1/notes?_limit=1", method="HEAD", headers={"Authorization": auth})
    with urllib.request.urlopen(request, timeout=30) as response:
        return int(response.headers["Total-Records"])


def run_wrk(url: str, script: str, duration: int, connections: int) -> dict:
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as handle:
        handle.write(script)
    try:
        output = subprocess.run(
            ["wrk", "-t1", f"-c{connections}", f"-d{duration}s", "--timeout", "10s", "-s", handle.name, url],
            check=True, capture_output=True, text=True, timeout=duration + 60,
        ).stdout
    finally:
        os.unlink(handle.name)
    requests = int(re.search(r"(\d+) requests in", output).group(1))
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    errors = re.search(r"Socket errors: (.*)", output)
    batch_failures = re.search(r"batch-failures: (\d+)", output)
    return {
        "requests": requests,
        "requests_per_second": rate,
        "non_2xx": int(non_2xx.group(1)) if non_2xx else 0,
        "socket_errors": errors.group(1) if errors else "",
        "batch_failures": int(batch_failures.group(1)) if batch_failures else 0,
        "raw": output,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=10, help="seconds of load per mode")
    parser.add_argument("--connections", type=int, default=2)
    parser.add_argument("--storage-url", default="memory://")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds of both modes")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args()
    for tool in ("wrk", "gunicorn"):
        if shutil.which(tool) is None:
            raise SystemExit(f"{tool} is not installed")

    if args.storage_url.startswith("postgres"):
        ensure_database(args.storage_url)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {**os.environ, "BENCH_STORAGE_URL": args.storage_url, "PYTHONPATH": ROOT}
    server = subprocess.Popen(
        ["gunicorn", "-w", "1", "-k", "sync", "-b", f"127.0.0.1:{port}", "--log-level", "warning",
         "bench.batch_app:application"],
        cwd=ROOT, env=env, start_new_session=True,
    )
    rounds: dict[str, list[dict]] = {"single": [], "batch": []}
    try:
        wait_ready(url)
        worker = worker_pid(server.pid)
        # NOTE: modes alternate for several rounds and the median round counts, so that
        # load from other processes on a shared machine hits both modes alike.
        for _ in range(args.rounds):
            for mode, template in (("single", LUA_SINGLE), ("batch", LUA_BATCH)):
                auth = basic(mode)
                script = template % {"auth": auth, "size": BATCH_SIZE}
                cpu_before = cpu_seconds(worker)
                result = run_wrk(url, script, args.duration, args.connections)
                worker_cpu = cpu_seconds(worker) - cpu_before
                per_request = 1 if mode == "single" else BATCH_SIZE
                # Records per CPU-second of the worker: robust to other load on a shared machine.
                result["records_per_worker_cpu_second"] = result["requests"] * per_request / max(worker_cpu, 1e-9)
                stored = count_records(url, auth)
                result["records_per_second"] = result["requests_per_second"] * per_request
                result["stored"] = stored
                # wrk may count a request whose answer arrived after its clock stopped, never fewer.
                result["stored_matches"] = stored >= result["requests"] * per_request
                result.pop("raw")
                rounds[mode].append(result)
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)

    median = {mode: statistics.median(r["records_per_second"] for r in results) for mode, results in rounds.items()}
    median_cpu = {
        mode: statistics.median(r["records_per_worker_cpu_second"] for r in results) for mode, results in rounds.items()
    }
    ratio = median["batch"] / median["single"]
    cpu_ratio = median_cpu["batch"] / median_cpu["single"]
    summary = {
        "storage": args.storage_url,
        "duration_seconds": args.duration,
        "connections": args.connections,
        "rounds": rounds,
        "median_records_per_second": median,
        "median_records_per_worker_cpu_second": median_cpu,
        "ratio": round(ratio, 2),
        "cpu_ratio": round(cpu_ratio, 2),
        "goal_met": ratio >= 5,
    }
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        for mode in ("single", "batch"):
            for r in rounds[mode]:
                print(
                    f"{mode:>6}: {r['requests_per_second']:8.1f} req/s  {r['records_per_second']:8.1f} records/s  "
                    f"{r['records_per_worker_cpu_second']:8.1f} records/worker-CPU-s  "
                    f"({r['requests']} requests, {r['stored']} stored, non-2xx {r['non_2xx']}, "
                    f"failed batches {r['batch_failures']}, socket errors: {r['socket_errors'] or 'none'})"
                )
        print(f"median records/s: single {median['single']:.1f}, batch {median['batch']:.1f}")
        print(f"median records/worker-CPU-s: single {median_cpu['single']:.1f}, batch {median_cpu['batch']:.1f}")
        print(f" ratio: {ratio:.2f}x wall clock, {cpu_ratio:.2f}x per worker CPU second "
              f"(goal >= 5x: {'met' if ratio >= 5 else 'NOT met'})")
    results = [r for mode in rounds.values() for r in mode]
    ok = all(r["non_2xx"] == 0 and r["batch_failures"] == 0 and r["stored_matches"] for r in results)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
