"""Start-up time of the command line: `rewardkit --version`, `--help` and every sub-command's `--help` (target: < 1 s).

    flock /tmp/rewardkit-heavy.lock python benchmarks/startup.py [--repeats 5] [--baseline /path/to/older/checkout]

Each command runs as a fresh `python -m rewardkit ...` process (interpreter start-up and imports included, as a
user sees it), `--repeats` times, and the median wall time is reported. With `--baseline`, the same commands run
against that checkout too (PYTHONPATH), alternating with this one in the same process, and the ratio of medians is
reported. Writes benchmarks/results/startup.json with the machine, its load average and the command line.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"
TARGET_SECONDS = 1.0


def commands() -> list[list[str]]:
    """--version, --help, and `--help` of every sub-command (nested ones included), read from the parser."""
    sys.path.insert(0, str(REPO))
    from rewardkit.cli import command_paths

    return [["--version"], ["--help"], *([*path, "--help"] for path in command_paths())]


def wall_time(argv: list[str], checkout: Path) -> float:
    env = {**os.environ, "PYTHONPATH": str(checkout)}
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "rewardkit", *argv], env=env, cwd=checkout,  # `-m` looks in cwd first
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--baseline", type=Path, help="an older checkout to compare against (e.g. /work/main)")
    args = parser.parse_args()
    checkouts = {"this": REPO, **({"baseline": args.baseline.resolve()} if args.baseline else {})}
    load_before = os.getloadavg()
    rows = []
    for argv in commands():
        times: dict[str, list[float]] = {name: [] for name in checkouts}
        for _ in range(args.repeats):
            for name, checkout in checkouts.items():  # alternating: both sides see the same load
                times[name].append(wall_time(argv, checkout))
        row = {"command": "rewardkit " + " ".join(argv),
               **{f"{name}_median_s": round(statistics.median(t), 3) for name, t in times.items()},
               **{f"{name}_runs_s": [round(x, 3) for x in t] for name, t in times.items()}}
        if args.baseline:
            row["speedup"] = round(row["baseline_median_s"] / row["this_median_s"], 1)
        rows.append(row)
        extra = f"  baseline {row['baseline_median_s']:.2f} s  ({row['speedup']}x)" if args.baseline else ""
        print(f"{row['command']:<42} {row['this_median_s']:.2f} s{extra}")
    slowest = max(row["this_median_s"] for row in rows)
    verdict = "within" if slowest < TARGET_SECONDS else "OVER"
    print(f"slowest: {slowest:.2f} s ({verdict} the {TARGET_SECONDS} s target)")
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "startup.json").write_text(json.dumps({
        "command": "python benchmarks/startup.py " + " ".join(sys.argv[1:]),
        "machine": {"cpu": cpu_model(), "cpu_count": os.cpu_count(), "python": platform.python_version()},
        "load_average_before": load_before[0],
        "load_average_after": os.getloadavg()[0],
        "target_seconds": TARGET_SECONDS,
        "slowest_median_s": slowest,
        "rows": rows,
    }, indent=2) + "\n")


if __name__ == "__main__":
    main()
