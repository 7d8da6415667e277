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
sys.path.insert(0, str(REPO))

from rewardkit.device import cpu_model_name  # noqa: E402  (the driver may import torch; the timed commands run apart)

RESULTS = REPO / "benchmarks" / "results"
TARGET_SECONDS = 1.0


def commands() -> list[list[str]]:
    """--version, --help, and `--help` of every sub-command (nested ones included), read from the parser."""
    from rewardkit.cli import command_paths

    return [["--version"], ["--help"], *([*path, "--help"] for path in command_paths())]


def wall_time(argv: list[str], checkout: Path) -> float | None:
    """Seconds the command took, or None when that checkout does not have it (a baseline older than the command)."""
    env = {**os.environ, "PYTHONPATH": str(checkout)}
    start = time.perf_counter()
    result = subprocess.run([sys.executable, "-m", "rewardkit", *argv], env=env, cwd=checkout,  # `-m`: cwd first
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    seconds = time.perf_counter() - start
    if result.returncode == 0:
        return seconds
    if checkout == REPO:
        raise SystemExit(f"`rewardkit {' '.join(argv)}` failed (exit {result.returncode})")
    return None


def commit(checkout: Path) -> str | None:
    """The checkout's commit (None for an exported tree without .git)."""
    result = subprocess.run(["git", "-C", str(checkout), "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True)
    return result.stdout.strip() if result.returncode == 0 else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--baseline", type=Path, help="an older checkout to compare against (e.g. `git worktree add "
                        "/tmp/old COMMIT`); commands it does not have are timed on this checkout only")
    parser.add_argument("--baseline-for", nargs="+", metavar="COMMAND",
                        help="time the baseline only on these commands (e.g. version help score), when it is slow: a "
                        "baseline that imports torch for --help takes seconds per call (default: every command)")
    args = parser.parse_args()
    checkouts = {"this": REPO, **({"baseline": args.baseline.resolve()} if args.baseline else {})}
    load_before = os.getloadavg()
    rows = []
    for argv in commands():
        times: dict[str, list[float]] = {name: [] for name in checkouts}
        present = dict.fromkeys(checkouts, True)
        if args.baseline_for and not {argv[0].lstrip("-"), " ".join(argv[:-1])} & set(args.baseline_for):
            present["baseline"] = False
        for _ in range(args.repeats):
            for name, checkout in checkouts.items():  # alternating: both sides see the same load
                seconds = wall_time(argv, checkout) if present[name] else None
                present[name] = seconds is not None
                if seconds is not None:
                    times[name].append(seconds)
        row = {"command": "rewardkit " + " ".join(argv),
               **{f"{name}_median_s": round(statistics.median(t), 3) if present[name] else None
                  for name, t in times.items()},
               **{f"{name}_runs_s": [round(x, 3) for x in t] for name, t in times.items() if present[name]}}
        extra = ""
        if args.baseline and present["baseline"]:
            row["speedup"] = round(row["baseline_median_s"] / row["this_median_s"], 1)
            extra = f"  baseline {row['baseline_median_s']:.2f} s  ({row['speedup']}x)"
        elif args.baseline:
            extra = "  (baseline not timed: not in it, or not in --baseline-for)"
        rows.append(row)
        print(f"{row['command']:<42} {row['this_median_s']:.2f} s{extra}")
    slowest = max(row["this_median_s"] for row in rows)
    verdict = "within" if slowest < TARGET_SECONDS else "OVER"
    print(f"slowest: {slowest:.2f} s ({verdict} the {TARGET_SECONDS} s target)")
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "startup.json").write_text(json.dumps({
        "command": "python benchmarks/startup.py " + " ".join(sys.argv[1:]),
        "machine": {"cpu": cpu_model_name(), "cpu_count": os.cpu_count(), "python": platform.python_version()},
        "commit": commit(REPO),
        **({"baseline_commit": commit(args.baseline)} if args.baseline else {}),
        "load_average_before": load_before[0],
        "load_average_after": os.getloadavg()[0],
        "target_seconds": TARGET_SECONDS,
        "slowest_median_s": slowest,
        "rows": rows,
    }, indent=2) + "\n")


if __name__ == "__main__":
    main()
