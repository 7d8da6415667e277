"""Wall time of `rewardkit demo --quick` and `rewardkit demo` (targets: < 2 and < 10 minutes on 2 CPU cores).

    python benchmarks/demo_time.py [--only quick|default] [--keep DIR]

Runs each as a fresh process (imports included, as a user would), prints the wall time and the per-stage
seconds from results.json, and writes benchmarks/results/demo_time.json.
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
        command = [sys.executable, "-m", "rewardkit", "demo", "--output", output, "--no-progress"]
        command += ["--quick"] if quick else []
        start = time.perf_counter()
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
        wall = time.perf_counter() - start
        stages = json.loads((Path(output) / "results.json").read_text())["seconds"]
    return {"mode": mode, "wall_seconds": round(wall, 1), "stage_seconds": stages,
            "target_seconds": 120 if quick else 600}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=["quick", "default"])
    parser.add_argument("--keep", metavar="DIR", help="keep each run's report in DIR/quick and DIR/default")
    args = parser.parse_args()
    modes = [args.only == "quick"] if args.only else [True, False]
    rows = [time_demo(quick, args.keep) for quick in modes]
    for row in rows:
        verdict = "within" if row["wall_seconds"] < row["target_seconds"] else "OVER"
        stages = ", ".join(f"{k} {v:.0f}s" for k, v in row["stage_seconds"].items() if k != "total")
        print(f"{row['mode']:>8}: {row['wall_seconds']:.0f} s wall ({verdict} the {row['target_seconds']} s target); "
              f"{stages}")
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "demo_time.json").write_text(json.dumps({"cpu_count": os.cpu_count(), "runs": rows}, indent=2))


if __name__ == "__main__":
    main()
