"""Wall time of `rewardkit demo --quick` and `rewardkit demo` (targets: < 2 and < 10 minutes on 2 CPU cores).

    flock /tmp/rewardkit-heavy.lock python benchmarks/demo_time.py [--only quick|default] [--keep DIR]

Runs each as a fresh process (imports included, as a user would) with output to a pipe, and records the wall time,
the per-stage seconds from timings.json, the CPU model and the load average before and after (on a shared machine
other jobs slow the demo down: read the load average next to the time). Writes benchmarks/results/demo_time.json.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RESULTS = Path(__file__).parent / "results"


def time_demo(quick: bool, keep: str | None = None) -> dict:
    mode = "quick" if quick else "default"
    with tempfile.TemporaryDirectory() as scratch:
        output = str(Path(keep) / mode) if keep else scratch
        command = [sys.executable, "-m", "rewardkit", "demo", "--output", output] + (["--quick"] if quick else [])
        load_before = os.getloadavg()
        start = time.perf_counter()
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wall = time.perf_counter() - start
        timings = json.loads((Path(output) / "timings.json").read_text())
    return {"mode": mode, "command": " ".join(["rewardkit", *command[3:]]), "wall_seconds": round(wall, 1),
            "target_seconds": 120 if quick else 600, "stage_seconds": timings["seconds"],
            "cpu": timings["cpu"], "load_average_before": [round(x, 2) for x in load_before],
            "load_average_after": [round(x, 2) for x in os.getloadavg()]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=["quick", "default"])
    parser.add_argument("--keep", metavar="DIR", help="keep each run's report in DIR/quick and DIR/default")
    args = parser.parse_args()
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / "demo_time.json"
    previous = json.loads(path.read_text())["runs"] if path.exists() and args.only else []
    for quick in [args.only == "quick"] if args.only else [True, False]:
        row = time_demo(quick, args.keep)
        verdict = "within" if row["wall_seconds"] < row["target_seconds"] else "OVER"
        stages = ", ".join(f"{k} {v:.0f}s" for seed in row["stage_seconds"].values() for k, v in seed.items()
                           if k != "total")
        print(f"{row['mode']:>8}: {row['wall_seconds']:.0f} s wall ({verdict} the {row['target_seconds']} s target; "
              f"load average {row['load_average_before'][0]:.1f} before, {row['load_average_after'][0]:.1f} after); "
              f"{stages}", flush=True)
        previous = [run for run in previous if run["mode"] != row["mode"]] + [row]
        path.write_text(json.dumps({"cpu_count": os.cpu_count(), "runs": previous}, indent=2) + "\n")  # after each


if __name__ == "__main__":
    main()
