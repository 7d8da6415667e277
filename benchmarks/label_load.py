"""Load test for `rewardkit label serve`: 20 simulated annotators submitting at once for a minute, on loopback.

    flock /tmp/rewardkit-heavy.lock python benchmarks/label_load.py     # SQLite, then PostgreSQL when installed

For each database the server runs as a real subprocess (`rewardkit label serve --port 0`), so the clients (one
thread each, in this process) and the server do not share a GIL. Each client logs in through the login form and
loops: GET the next assignment, POST a ranking with the session's CSRF token. Afterwards every judgement the
clients were told was stored is looked up in the database: none may be lost, none stored twice, no item may have
more rankings than it wants. Writes benchmarks/results/label_load.json and .md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from rewardkit.label.db import make_engine, open_database, upgrade  # noqa: E402
from rewardkit.label.pgserver import create_database, postgres_binaries, temporary_postgres  # noqa: E402
from rewardkit.label.simulate import audit_submissions, run_annotators  # noqa: E402
from rewardkit.label.store import LabelStore, ProjectSettings, parse_item  # noqa: E402

RESULTS = REPO / "benchmarks" / "results"
PASSWORD = "load-test-password"


def start_server(url: str) -> tuple[subprocess.Popen, str]:
    process = subprocess.Popen([sys.executable, "-m", "rewardkit", "label", "serve", "--db", url, "--port", "0"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO)
    match = re.search(r"http://(127\.0\.0\.1:\d+)", process.stdout.readline())
    if match is None:
        process.kill()
        raise RuntimeError(f"the server did not start: {process.stderr.read()}")
    return process, f"http://{match.group(1)}"


def server_rss_mb(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):  # peak resident set size
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def run_one(url: str, annotators: int, seconds: float, items: int) -> dict:
    upgrade(make_engine(url))
    store = LabelStore(open_database(url))
    store.create_project(ProjectSettings("load", annotations_per_item=2, overlap_fraction=0.25,
                                         overlap_annotations=3))
    store.import_items("load", [parse_item({"id": f"i{n}", "prompt": f"Prompt number {n}: say something useful.",
                                            "responses": [f"answer {n}.{r} " + "words " * r for r in range(4)]},
                                           f"item {n}") for n in range(items)])
    names = [f"load{a:02d}" for a in range(annotators)]
    for name in names:
        store.add_annotator(name, password=PASSWORD)

    def rank(prompt, shown):
        order = [index for index, _ in shown]
        random.shuffle(order)
        return order

    process, base = start_server(url)
    try:
        started = time.perf_counter()
        logs = run_annotators(base, "load", [(name, PASSWORD, rank) for name in names], seconds=seconds)
        wall = time.perf_counter() - started
        peak = server_rss_mb(process.pid)
    finally:
        process.send_signal(signal.SIGTERM)
        code = process.wait(timeout=60)
    audit = audit_submissions(store, "load", logs)
    latencies = sorted(x for log in logs for x in log.latencies)

    def quantile(q: float) -> float:
        return latencies[min(len(latencies) - 1, int(q * len(latencies)))] * 1000

    return {
        **audit,
        "annotators": annotators,
        "seconds_requested": seconds,
        "seconds_wall_including_logins": round(wall, 1),
        "submissions_per_second": round(audit["acknowledged"] / seconds, 1),
        "per_annotator": [len(log.submitted) for log in logs],
        "stopped": sorted({log.stopped for log in logs}),
        "latency_ms_next_plus_submit": {"p50": round(statistics.median(latencies) * 1000, 1),
                                        "p90": round(quantile(0.9), 1), "p99": round(quantile(0.99), 1)},
        "server_peak_rss_mb": peak,
        "server_exit_status": code,
        "errors": [e for log in logs for e in log.errors][:10],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--annotators", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--items", type=int, default=20_000, help="more than the run can label")
    parser.add_argument("--databases", nargs="+", default=["sqlite", "postgresql"])
    parser.add_argument("--output", default="label_load")
    args = parser.parse_args(argv)
    results = {"command": "python benchmarks/label_load.py " + " ".join(sys.argv[1:] if argv is None else argv),
               "cpu": next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                            if line.startswith("model name")), platform.processor()),
               "cores": os.cpu_count(), "load_average_before": os.getloadavg(), "runs": {}}
    with tempfile.TemporaryDirectory(prefix="rewardkit-load-") as folder:
        for database in args.databases:
            if database == "sqlite":
                url = f"sqlite:///{Path(folder) / 'load.db'}"
                results["runs"]["sqlite"] = run_one(url, args.annotators, args.seconds, args.items)
            elif postgres_binaries() is not None:
                with temporary_postgres() as base:
                    url = create_database(base, "load")
                    results["runs"]["postgresql"] = run_one(url, args.annotators, args.seconds, args.items)
            else:
                print("PostgreSQL is not installed: skipped")
            print(database, json.dumps(results["runs"].get(database), indent=1), flush=True)
    results["load_average_after"] = os.getloadavg()
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{args.output}.json").write_text(json.dumps(results, indent=2))
    lines = [f"# `rewardkit label serve` under {args.annotators} concurrent annotators", "",
             f"Command: `{results['command']}`; CPU: {results['cpu']} ({results['cores']} cores); load average "
             f"before {results['load_average_before'][0]:.2f}, after {results['load_average_after'][0]:.2f}.", "",
             "| database | submissions | per second | p50 / p90 / p99 ms (next + submit) | lost | unacknowledged | "
             "duplicated | overfilled items | client errors |", "|---|---|---|---|---|---|---|---|---|"]
    for name, run in results["runs"].items():
        lat = run["latency_ms_next_plus_submit"]
        lines.append(f"| {name} | {run['acknowledged']} | {run['submissions_per_second']} | {lat['p50']} / "
                     f"{lat['p90']} / {lat['p99']} | {run['lost']} | {run['unacknowledged']} | {run['duplicated']} | "
                     f"{run['overfilled_items']} | {run['client_errors']} |")
    (RESULTS / f"{args.output}.md").write_text("\n".join(lines) + "\n")
    bad = [name for name, run in results["runs"].items()  # also: an annotator told "nothing left" too early
           if run["lost"] or run["duplicated"] or run["overfilled_items"] or run["unacknowledged"]
           or run["stopped"] != ["time"]]
    print(f"results: {RESULTS / args.output}.json" + (f"; PROBLEMS in {bad}" if bad else "; nothing lost or doubled"))
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
