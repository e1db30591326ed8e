"""RELIABILITY L4: baseline figures of a release, and the check against them.

Four scenarios, in-process through the default ``wrap()`` stack (Basic auth,
one per-user resource ``/v1/articles``, as ``bench/resources_app.py`` builds
it), on ``memory://``, on SQLite (the embedded default; a file in a
temporary directory) and on PostgreSQL:

* ``get_record``: GET one record of a 10-record collection;
* ``post_record``: POST a new record;
* ``batch_25``: POST /v1/batch with 25 creates;
* ``since_poll``: GET the collection with ``_since`` at its latest timestamp
  (nothing new: an empty page, what polling clients receive most).

Each figure is the best of ``--repeats`` runs of about ``--seconds`` each, in
wall-clock µs per request (wall clock, so that time spent in PostgreSQL
counts), shown with its requests per second. Machines differ, so every
figure is also divided by a calibration figure measured the same way (a
fixed pure-Python workload of JSON, dicts and strings): that *score* is what
is compared, so a baseline recorded on one machine still means something on a
similar one (the script warns when Python or the CPU differ).

    python3 bench/baseline.py --record   # at each release: write bench/baseline.json
    python3 bench/baseline.py            # nightly: compare; exit 1 when a score regressed by more than 15 %

PostgreSQL (127.0.0.1:5432, user postgres, trust) gets a database of the
script's own, ``cliquet_bench_baseline``, recreated at start and dropped at
the end; without a server only the memory figures are measured (and compared).
"""
from __future__ import annotations

import argparse
import datetime
import itertools
import json
import os
import platform
import sys
import tempfile
import urllib.parse
from typing import Any, Callable

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from bench.resources import (  # noqa: E402
    PG_SERVER, basic, expect, measure as measure_calls, record_body, recreate_database, wsgi_client,
)

BASELINE = os.path.join(ROOT, "bench", "baseline.json")
DATABASE = "cliquet_bench_baseline"
SCENARIOS = ("get_record", "post_record", "batch_25", "since_poll")
THRESHOLD = 0.15


def calibration() -> None:
    """A fixed workload of the interpreter's common operations (about 50 µs)."""
    records = [{"id": f"r{n:04d}", "title": f"article {n}", "tags": ["a", "b"], "n": n} for n in range(40)]
    text = json.dumps(records)
    decoded = json.loads(text)
    sorted(decoded, key=lambda record: (record["title"], record["n"]))
    "-".join(record["id"] for record in decoded if record["n"] % 3)


def best_of(run: Callable[[], None], seconds: float, repeats: int) -> float:
    """Best wall-clock µs per call over ``repeats`` runs of about ``seconds`` each."""
    return measure_calls(run, seconds, repeats)["us"]


def scenarios(app: Any) -> dict[str, Callable[[], None]]:
    """One call of each scenario per run, checked: an unexpected status stops the benchmark."""
    reader, writer = {"Authorization": basic("reader")}, {"Authorization": basic("writer")}
    json_headers = {"Content-Type": "application/json"}
    request = wsgi_client(app)
    for n in range(10):
        expect(request("POST", "/v1/articles", {**reader, **json_headers}, record_body(n)), 201, "setup POST")
    for n in range(100):  # the writer's collection exists before statistics are taken (see analyze())
        expect(request("POST", "/v1/articles", {**writer, **json_headers}, record_body(n)), 201, "setup POST")
    listing = expect(request("GET", "/v1/articles", reader, b""), 200, "setup GET")["data"]
    record_path = f"/v1/articles/{listing[0]['id']}"
    poll_path = f"/v1/articles?_since={max(record['last_modified'] for record in listing)}"
    counter = itertools.count(1000)

    def get_record() -> None:
        expect(request("GET", record_path, reader, b""), 200, "get_record")

    def post_record() -> None:
        expect(request("POST", "/v1/articles", {**writer, **json_headers}, record_body(next(counter))), 201,
               "post_record")

    def batch_25() -> None:
        requests = [{"method": "POST", "path": "/articles", "body": {"data": {"title": f"t{next(counter)}"}}}
                    for _ in range(25)]
        body = json.dumps({"requests": requests}).encode()
        responses = expect(request("POST", "/v1/batch", {**writer, **json_headers}, body), 200, "batch_25")
        if [r["status"] for r in responses["responses"]] != [201] * 25:
            raise SystemExit(f"batch_25: sub-responses {responses['responses'][:2]!r}…")

    def since_poll() -> None:
        if expect(request("GET", poll_path, reader, b""), 200, "since_poll")["data"]:
            raise SystemExit("since_poll: records newer than the latest one")

    return {"get_record": get_record, "post_record": post_record, "batch_25": batch_25, "since_poll": since_poll}


def analyze() -> None:
    """Fresh planner statistics, as autovacuum keeps them in production.

    In a database that has never been analysed, PostgreSQL guesses that a
    collection holds one row and may look a record up through a
    ``last_modified`` index, scanning the collection: the writes would then
    slow down as the benchmark adds records (11 ms for a batch at 0 records,
    20 ms at 10,000, measured) and the figures would depend on its length.
    """
    import pg8000.native

    parts = urllib.parse.urlsplit(PG_SERVER)
    connection = pg8000.native.Connection(parts.username, host=parts.hostname, port=parts.port, database=DATABASE)
    try:
        connection.run("ANALYZE")
    finally:
        connection.close()


def postgresql_available() -> bool:
    try:
        recreate_database(DATABASE)
    except Exception as exc:  # no server, no driver: the memory figures still count
        print(f"PostgreSQL skipped: {exc}", file=sys.stderr)
        return False
    return True


def measure(backends: list[str], seconds: float, repeats: int, workdir: str) -> dict[str, Any]:
    from bench.resources_app import build_cliquet

    calibration_us = best_of(calibration, seconds, repeats)
    figures: dict[str, dict[str, float]] = {}
    for backend in backends:
        if backend == "postgresql" and not postgresql_available():
            continue
        storage_url = {"memory": "memory://", "sqlite": f"sqlite:///{workdir}/baseline.sqlite",
                       "postgresql": f"{PG_SERVER}/{DATABASE}"}[backend]
        try:
            app = build_cliquet(storage_url)
            runs = scenarios(app)
            if backend == "postgresql":
                analyze()
            for name, run in runs.items():
                us = best_of(run, seconds, repeats)
                figures[f"{backend}/{name}"] = {"us": round(us, 2), "score": round(us / calibration_us, 4)}
                print(f"  {backend:<11}{name:<13}{us:10.1f} µs  {1e6 / us:9.0f} req/s", flush=True)
        finally:
            if backend == "postgresql":
                # WITH (FORCE) ends the stack's pooled sessions too.
                recreate_database(DATABASE, drop_only=True)
    # Calibrated again at the end: a machine that got busier meanwhile shows in the gap.
    calibration_us = min(calibration_us, best_of(calibration, seconds, repeats))
    for figure in figures.values():
        figure["score"] = round(figure["us"] / calibration_us, 4)
    return {"calibration_us": round(calibration_us, 3), "figures": figures}


def machine() -> dict[str, str]:
    cpu = platform.processor()
    try:
        with open("/proc/cpuinfo") as info:
            cpu = next((line.split(":", 1)[1].strip() for line in info if line.startswith("model name")), cpu)
    except OSError:
        pass
    return {"python": platform.python_version(), "implementation": platform.python_implementation(), "cpu": cpu}


def compare(current: dict[str, Any], baseline: dict[str, Any], threshold: float) -> list[str]:
    """The scenarios whose score grew by more than ``threshold`` over the baseline's."""
    regressions = []
    print(f"\n{'scenario':<26}{'baseline':>10}{'now':>10}{'change':>9}")
    for name, then in baseline["figures"].items():
        now = current["figures"].get(name)
        if now is None:
            print(f"{name:<26}{then['score']:10.3f}{'-':>10}   not measured")
            continue
        change = now["score"] / then["score"] - 1
        flag = "  REGRESSION" if change > threshold else ""
        print(f"{name:<26}{then['score']:10.3f}{now['score']:10.3f}{change:+8.1%}{flag}")
        if flag:
            regressions.append(name)
    return regressions


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--record", action="store_true", help=f"write the figures to {BASELINE}")
    parser.add_argument("--backends", default="memory,sqlite,postgresql")
    parser.add_argument("--seconds", type=float, default=0.5, help="about this long per repeat")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--threshold", type=float, default=THRESHOLD, help="regression that fails (0.15 = 15 %%)")
    parser.add_argument("--baseline", default=BASELINE)
    args = parser.parse_args()

    from cliquet_wsgi import __version__

    print(f"cliquet-wsgi {__version__}; calibration and scenarios, best of {args.repeats}:", flush=True)
    with tempfile.TemporaryDirectory() as workdir:
        current = measure(args.backends.split(","), args.seconds, args.repeats, workdir)
    current.update(version=__version__, recorded=datetime.date.today().isoformat(), machine=machine())
    print(f"  calibration {current['calibration_us']:.2f} µs; scores (µs / calibration µs):")
    for name, figure in current["figures"].items():
        print(f"  {name:<26}{figure['score']:10.3f}")
    if args.record:
        with open(args.baseline, "w") as out:
            json.dump(current, out, indent=2, sort_keys=True)
            out.write("\n")
        print(f"recorded in {args.baseline}")
        return 0
    try:
        with open(args.baseline) as source:
            baseline = json.load(source)
    except FileNotFoundError:
        print(f"no baseline at {args.baseline}: run with --record first", file=sys.stderr)
        return 2
    print(f"baseline: {baseline['version']} recorded {baseline['recorded']} on {baseline['machine']}")
    if baseline["machine"] != current["machine"]:
        print(f"WARNING: measured on {current['machine']}; scores compare only roughly across machines")
    regressions = compare(current, baseline, args.threshold)
    if regressions:
        print(f"\n{len(regressions)} regression(s) above {args.threshold:.0%}: {', '.join(regressions)}")
        return 1
    print(f"\nno regression above {args.threshold:.0%}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
