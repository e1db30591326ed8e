"""Sustained mixed load on PostgreSQL: leaks and drift (RELIABILITY L1).

Starts gunicorn (2 sync workers) serving :mod:`bench.resources_app` (the
default ``wrap()`` stack, Basic auth, per-user ``/v1/articles``) on a
PostgreSQL database of its own, measures the maximum throughput of the mix
below for ``--calibrate`` seconds, then keeps the load at ``--load`` (70 %) of
it for ``--minutes`` (10), in segments of ``--segment`` seconds. ``wrk`` runs
one connection per thread so that each Lua state knows which user a response
belongs to; the rate is held by a per-request ``delay()`` adjusted after each
segment.

The mix, per request (users drawn among ``--users``; 20 % writes):

* 30 % first page of the listing (``_limit=10``), keeping ``Next-Page``/``ETag``;
* 15 % the next page from the last ``Next-Page`` (keyset pagination);
* 25 % ``_since`` poll with ``If-None-Match`` (mostly 304);
* 10 % GET of a record the user created;
* 15 % POST of a record; 5 % batch of 25 creates.

After each segment: resident memory and open file descriptors of each
worker (``/proc``), PostgreSQL sessions on the database, req/s, p99 latency
and statuses (only 200, 201 and 304 are expected). At the end, L1's
criteria with ``M = --minutes``: worker RSS grows by less than 10 % (or
20 MiB) after minute 2; FDs stay within ±5 of minute 2; sessions stay within
the pools' budget (workers × (pool size + overflow)); the p99 of the second
half is at most 1.2 × the p99 of minutes 2 to M/2 (each the median of its
segments' p99: wrk reports percentiles per run); no 5xx; no worker restart.

    python3 bench/soak.py [--minutes 10] [--segment 30] [--load 0.7] [--users 50]

Exit status 1 when a criterion fails. Needs ``wrk`` and ``gunicorn``; the
database (``cliquet_bench_soak``) is dropped at the end unless
``--keep-database``.
"""
from __future__ import annotations

import argparse
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from bench.batch import basic, free_port, wait_ready  # noqa: E402
from bench.resources import PG_SERVER, recreate_database  # noqa: E402
WORKERS = 2
POOL_BUDGET = 25 + 5  # storage_pool_size + storage_maxoverflow (defaults), per worker

LUA = r"""
local users = {%(users)s}
local state = {}
for i = 1, #users do state[i] = {} end
local current = 1
local kind = nil
local n = 0
pause = pause or 0
delay = function() return pause end

local function batch_body()
  local items = {}
  for i = 1, 25 do
    n = n + 1
    items[i] = '{"body": {"data": {"title": "soak ' .. n .. '", "n": ' .. n .. '}}}'
  end
  return '{"defaults": {"method": "POST", "path": "/articles"}, "requests": [' .. table.concat(items, ",") .. ']}'
end

request = function()
  current = math.random(#users)
  local s = state[current]
  local headers = {["Authorization"] = users[current]}
  local roll = math.random(100)
  if roll <= 15 and s.next_page then
    kind = "list"
    return wrk.format("GET", s.next_page, headers, nil)
  elseif roll <= 40 and s.etag then
    kind = "poll"
    headers["If-None-Match"] = s.etag
    return wrk.format("GET", "/v1/articles?_limit=10&_since=" .. string.gsub(s.etag, '"', ""), headers, nil)
  elseif roll <= 50 and s.last_id then
    kind = "record"
    return wrk.format("GET", "/v1/articles/" .. s.last_id, headers, nil)
  elseif roll <= 65 then
    kind = "create"
    n = n + 1
    headers["Content-Type"] = "application/json"
    return wrk.format("POST", "/v1/articles", headers, '{"data": {"title": "soak ' .. n .. '", "n": ' .. n .. '}}')
  elseif roll <= 70 then
    kind = "batch"
    headers["Content-Type"] = "application/json"
    return wrk.format("POST", "/v1/batch", headers, batch_body())
  end
  kind = "list"
  return wrk.format("GET", "/v1/articles?_limit=10", headers, nil)
end

failures = 0
unexpected = 0
response = function(status, headers, body)
  if status >= 500 then failures = failures + 1 end
  if status ~= 200 and status ~= 201 and status ~= 304 then
    unexpected = unexpected + 1
    return
  end
  local s = state[current]
  if kind == "list" then
    local link = headers["Next-Page"]
    s.next_page = link and string.match(link, "^https?://[^/]+(/.*)$") or nil
    s.etag = headers["ETag"] or s.etag
  elseif kind == "create" then
    s.last_id = string.match(body, '"id":"([^"]+)"') or s.last_id
  elseif kind == "batch" and string.find(body, '"status":[45]') then
    unexpected = unexpected + 1
  end
end

local threads = {}
setup = function(thread)
  table.insert(threads, thread)
  thread:set("pause", %(pause)d)
end
done = function(summary, latency, requests)
  local failed, odd = 0, 0
  for _, thread in ipairs(threads) do
    failed = failed + thread:get("failures")
    odd = odd + thread:get("unexpected")
  end
  io.write(string.format("soak: requests=%%d p99_ms=%%.2f failures=%%d unexpected=%%d\n",
    summary.requests, latency:percentile(99.0) / 1000, failed, odd))
end
"""


def run_wrk(url: str, users: list[str], pause_ms: int, seconds: int, connections: int) -> dict:
    script = LUA % {"users": ", ".join(f'"{user}"' for user in users), "pause": pause_ms}
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as handle:
        handle.write(script)
    try:
        done = subprocess.run(
            ["wrk", f"-t{connections}", f"-c{connections}", f"-d{seconds}s", "--timeout", "10s", "-s",
             handle.name, url],
            capture_output=True, text=True, timeout=seconds + 60,
        )
    finally:
        os.unlink(handle.name)
    found = re.search(r"soak: requests=(\d+) p99_ms=([\d.]+) failures=(\d+) unexpected=(\d+)", done.stdout)
    if done.returncode != 0 or found is None:
        raise SystemExit(f"wrk failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    requests = int(found.group(1))
    return {"requests": requests, "rate": requests / seconds, "p99_ms": float(found.group(2)),
            "failures": int(found.group(3)), "unexpected": int(found.group(4))}


def sessions(name: str) -> int:
    import pg8000.native

    parts = urllib.parse.urlsplit(PG_SERVER)
    connection = pg8000.native.Connection(parts.username, host=parts.hostname, port=parts.port,
                                          database="postgres")
    try:
        return connection.run("SELECT count(*) FROM pg_stat_activity WHERE datname = :name", name=name)[0][0]
    finally:
        connection.close()


def workers(master: int) -> list[int]:
    with open(f"/proc/{master}/task/{master}/children") as handle:
        return sorted(int(pid) for pid in handle.read().split())


def rss_mib(pid: int) -> float:
    with open(f"/proc/{pid}/status") as handle:
        kib = int(re.search(r"VmRSS:\s+(\d+) kB", handle.read()).group(1))
    return kib / 1024


def open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def check(samples: list[dict], minutes: float, first_pids: list[int]) -> list[tuple[str, bool, str]]:
    """L1's criteria over the samples taken after each segment."""
    settled = [s for s in samples if s["minute"] >= 2] or samples[-1:]
    base, last = settled[0], samples[-1]
    results = []
    for index in range(WORKERS):
        grown = last["rss"][index] - base["rss"][index]
        limit = max(0.10 * base["rss"][index], 20.0)
        results.append((f"worker {index + 1} RSS growth after minute 2", grown < limit,
                        f"{base['rss'][index]:.1f} -> {last['rss'][index]:.1f} MiB (limit +{limit:.1f})"))
        spread = max(abs(s["fds"][index] - base["fds"][index]) for s in settled)
        results.append((f"worker {index + 1} open FDs within ±5", spread <= 5,
                        f"{base['fds'][index]} at minute 2, largest change {spread}"))
    most = max(s["sessions"] for s in samples)
    results.append(("PostgreSQL sessions within the pools' budget", most <= WORKERS * POOL_BUDGET,
                    f"at most {most} (budget {WORKERS * POOL_BUDGET})"))
    half = minutes / 2
    early = [s["p99_ms"] for s in samples if 2 <= s["minute"] <= half] or [samples[0]["p99_ms"]]
    late = [s["p99_ms"] for s in samples if s["minute"] > half]
    early_p99, late_p99 = statistics.median(early), statistics.median(late)
    results.append(("p99 of the second half <= 1.2 x p99 of minutes 2..M/2", late_p99 <= 1.2 * early_p99,
                    f"{early_p99:.1f} ms -> {late_p99:.1f} ms"))
    failures = sum(s["failures"] for s in samples)
    results.append(("no 5xx", failures == 0, f"{failures} 5xx"))
    unexpected = sum(s["unexpected"] for s in samples)
    results.append(("only 200/201/304 (batches: no failed sub-request)", unexpected == 0, f"{unexpected} others"))
    same = all(s["pids"] == first_pids for s in samples)
    results.append(("no worker restarted", same, "same worker pids throughout" if same else "a worker was replaced"))
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--segment", type=int, default=30, help="seconds per wrk run and sample")
    parser.add_argument("--calibrate", type=int, default=20, help="seconds of full load to find the maximum")
    parser.add_argument("--load", type=float, default=0.7, help="share of the maximum throughput to hold")
    parser.add_argument("--users", type=int, default=50)
    parser.add_argument("--connections", type=int, default=4)
    parser.add_argument("--database", default="cliquet_bench_soak")
    parser.add_argument("--keep-database", action="store_true")
    args = parser.parse_args()
    if args.minutes < 4:
        parser.error("--minutes must be at least 4 (minute 2 is the baseline, the second half is compared)")

    recreate_database(args.database)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {**os.environ, "BENCH_TARGET": "cliquet", "BENCH_STORAGE_URL": f"{PG_SERVER}/{args.database}",
           "PYTHONPATH": ROOT}
    server = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "-w", str(WORKERS), "-k", "sync", "-b", f"127.0.0.1:{port}",
         "--log-level", "warning", "bench.resources_app:application"],
        cwd=ROOT, env=env, start_new_session=True,
    )
    users = [basic(f"soak-{index}") for index in range(args.users)]
    try:
        wait_ready(url, timeout=60)
        pids = workers(server.pid)
        calibration = run_wrk(url, users, 0, args.calibrate, args.connections)
        maximum = calibration["rate"]
        target = args.load * maximum
        # Each connection waits for its answer, then pauses: cycle = connections / rate.
        pause = max(0.0, args.connections * (1 / target - 1 / maximum) * 1000)
        print(f"maximum {maximum:.0f} req/s (p99 {calibration['p99_ms']:.1f} ms); holding {target:.0f} req/s "
              f"({args.load:.0%}) for {args.minutes:g} min with {args.users} users, {WORKERS} workers")
        print(f"{'min':>5} {'req/s':>7} {'p99 ms':>7} {'5xx':>4} {'other':>5} "
              f"{'RSS MiB (workers)':>18} {'FDs':>9} {'PG':>4}")
        samples: list[dict] = []
        started = time.monotonic()
        while time.monotonic() - started < args.minutes * 60:
            result = run_wrk(url, users, round(pause), args.segment, args.connections)
            current = workers(server.pid)
            sample = {
                **result,
                "minute": (time.monotonic() - started) / 60,
                "pids": current,
                "rss": [rss_mib(pid) for pid in current],
                "fds": [open_fds(pid) for pid in current],
                "sessions": sessions(args.database),
            }
            samples.append(sample)
            print(f"{sample['minute']:5.1f} {sample['rate']:7.0f} {sample['p99_ms']:7.1f} {sample['failures']:4d} "
                  f"{sample['unexpected']:5d} {' / '.join(f'{r:.1f}' for r in sample['rss']):>18} "
                  f"{' / '.join(str(f) for f in sample['fds']):>9} {sample['sessions']:4d}", flush=True)
            # Hold the target rate: stretch or shorten the pause by the cycle-time error.
            if sample["rate"] > 0:
                pause = max(0.0, pause + args.connections * (1 / target - 1 / sample["rate"]) * 1000)
        results = check(samples, args.minutes, pids)
    finally:
        if server.poll() is None:
            os.killpg(server.pid, signal.SIGTERM)
            server.wait(timeout=30)
        if not args.keep_database:
            recreate_database(args.database, drop_only=True)
    print()
    for name, passed, detail in results:
        print(f"{'ok  ' if passed else 'FAIL'} {name}: {detail}")
    return 0 if all(passed for _, passed, _ in results) else 1


if __name__ == "__main__":
    sys.exit(main())
