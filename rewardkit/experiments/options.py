"""The options every experiment command shares (argparse only, so `--help` stays fast), and their checks."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_shared_arguments(p: argparse.ArgumentParser, name: str, quick: str,
                         seeds: str = "independent worlds for the intervals (0 1 2)",
                         seed_workers: bool = True) -> None:
    """--output experiment-NAME, --quick (what it shrinks), --seeds, --no-progress and (`seed_workers`) --workers."""
    p.add_argument("--output", default=f"experiment-{name}", help="directory for the report and artifacts")
    p.add_argument("--quick", action="store_true", help=quick)
    p.add_argument("--seeds", type=int, nargs="+", help=seeds)
    p.add_argument("--no-progress", dest="progress", action="store_false", help="hide progress bars")
    if seed_workers:
        p.add_argument("--workers", type=int, help="seeds side by side in worker processes (2; 1: one after the "
                       "other in this process); the results do not depend on it")


def check_shared_arguments(args: argparse.Namespace) -> Path:
    """One-line errors for an --output that is a file and repeated --seeds; returns the output directory."""
    from rewardkit.errors import RewardkitError

    output = Path(args.output)
    if output.exists() and not output.is_dir():
        raise RewardkitError(f"--output {output} exists and is not a directory")
    if getattr(args, "workers", None) is not None and args.workers < 1:
        raise RewardkitError(f"--workers must be at least 1, got {args.workers}")
    if args.seeds is not None and len(set(args.seeds)) != len(args.seeds):
        raise RewardkitError(f"--seeds must be distinct, got {' '.join(map(str, args.seeds))}")
    return output
