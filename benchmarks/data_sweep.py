"""Every data-reading command on every file of ../shared/data, as a user would run it (issue 15's "done when").

    flock /tmp/rewardkit-heavy.lock python benchmarks/data_sweep.py [--max-records 200] [--max-length 64]

Builds a tiny Llama SFT model from a config (no downloads), trains a reward model and a two-member ensemble from it
for a few steps through the CLI itself (on all of HH-RLHF), then for every data file: reads it whole through the
loader every command uses (no model: every record checked), and runs `score`, `eval`, `audit`, `ensemble score`,
`ensemble eval`, `dpo score` and `dpo eval` on its first --max-records records (all of them with 0), each through
the CLI entry point (`rewardkit.cli.main`, in this process so torch loads once). `--max-length` keeps the tiny
model's forward passes short. The models learned nothing: this checks that each command reads each file and
finishes (or stops with one `rewardkit: error:` line), not what they score.

Writes benchmarks/results/data_sweep.json: per command and file, the exit status, the load report the command
logged, its first error line (or the traceback's last line), and seconds; with the machine and load average.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import itertools
import json
import logging
import os
import platform
import sys
import tempfile
import time
import traceback
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from rewardkit.cli import main as rewardkit  # noqa: E402
from rewardkit.device import cpu_model_name  # noqa: E402

OUT = REPO / "benchmarks" / "results" / "data_sweep.json"
DATA_SUFFIXES = (".json", ".jsonl", ".jsonl.gz", ".csv", ".parquet")


def data_files(root: Path) -> list[Path]:
    """Every data file under `root`, smallest first (a run cut short has covered the most files)."""
    return sorted((p for p in root.rglob("*") if p.is_file() and p.name.endswith(DATA_SUFFIXES)),
                  key=lambda p: p.stat().st_size)


class Captured(logging.Handler):
    """The log lines a command wrote (load reports, warnings), kept apart per command."""

    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


def run(argv: list[str], log: Captured) -> dict:
    """One command through the entry point: exit status, first error line, what it logged about the data."""
    log.lines.clear()
    stderr, stdout = io.StringIO(), io.StringIO()
    start = time.perf_counter()
    error = None
    with contextlib.redirect_stderr(stderr), contextlib.redirect_stdout(stdout):
        try:
            code = rewardkit(argv)
        except SystemExit as exit:  # argparse's usage errors
            code = exit.code
        except Exception as exception:  # a bug: keep the traceback's last line
            code = "traceback"
            error = traceback.format_exception_only(exception)[-1].strip()
    seconds = time.perf_counter() - start
    errors = [line for line in stderr.getvalue().splitlines() if line.startswith("rewardkit: error:")]
    loaded = [line for line in log.lines if "record" in line or "group" in line or "pair" in line]
    return {"argv": argv, "exit": code, "error": error or (errors[0] if errors else None),
            "load_report": loaded[:3], "seconds": round(seconds, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--max-length", default="64", help="tokens per prompt + response for every command (64)")
    parser.add_argument("--only", nargs="+", help="only these commands (e.g. score 'dpo eval')")
    parser.add_argument("--files", nargs="+", help="only files whose path contains one of these (e.g. oasst); with "
                        "--only or --files, the rows run replace theirs in the results file, the others are kept")
    parser.add_argument("--max-records", type=int, default=200,
                        help="commands run on a file's first N records (a copy in a temporary folder) so the sweep "
                        "fits in minutes; every file is also read whole, without a model (200; 0: whole files)")
    args = parser.parse_args()
    files = [f for f in data_files(args.data) if not args.files or any(part in str(f) for part in args.files)]
    names = [str(f.relative_to(args.data)) for f in files]
    log = Captured()
    logging.basicConfig(level=logging.INFO, handlers=[log])  # rewardkit's own basicConfig then adds nothing
    load_before = os.getloadavg()
    partial = bool(args.only or args.files)  # a partial run replaces its own rows of the results file
    kept = json.loads(OUT.read_text())["results"] if partial and OUT.exists() else []
    results: list[dict] = [r for r in kept if r["file"] not in names or (
        args.only and r["command"] not in args.only and r["command"] != "read whole file")]
    with tempfile.TemporaryDirectory(prefix="rewardkit-sweep-") as tmp:
        from rewardkit.testing import save_tiny_sft_model

        work = Path(tmp)
        sft = str(save_tiny_sft_model(work / "sft"))
        hh = str(args.data / "hh-rlhf-harmless" / "pairs.jsonl.gz")
        short = ["--max-length", args.max_length]
        setup = [
            ["train", "--model", sft, "--data", hh, "--output", str(work / "rm"), "--max-steps", "3", *short],
            ["ensemble", "train", "--model", sft, "--data", hh, "--output", str(work / "ens"), "--members", "2",
             "--max-steps", "3", *short],
        ]
        for argv in setup:
            outcome = run(argv, log)
            print(f"setup: rewardkit {' '.join(argv[:2])}: exit {outcome['exit']} {outcome['error'] or ''}",
                  flush=True)
            if outcome["exit"] != 0:
                raise SystemExit(f"set-up failed: {outcome}")
        rm, ens = str(work / "rm"), str(work / "ens")
        commands = {
            "score": lambda f: ["score", "--model", rm, "--data", f, "--output", str(work / "out.jsonl"),
                                "--no-progress"],
            "eval": lambda f: ["eval", "--model", rm, "--data", f, "--no-progress", "--bootstrap", "200"],
            "audit": lambda f: ["audit", "--model", rm, "--data", f, "--limit", "20"],
            "ensemble score": lambda f: ["ensemble", "score", "--model", ens, "--data", f,
                                         "--output", str(work / "out.jsonl")],
            "ensemble eval": lambda f: ["ensemble", "eval", "--model", ens, "--data", f],
            "dpo score": lambda f: ["dpo", "score", "--policy", sft, "--data", f, "--output", str(work / "out.jsonl")],
            "dpo eval": lambda f: ["dpo", "eval", "--policy", sft, "--data", f],
        }
        for file, file_name in zip(files, names, strict=True):
            results.append({"command": "read whole file", "file": file_name, **read_whole(file)})
            used = head(file, args.max_records, work) if args.max_records else file
            for name, argv in commands.items():
                if args.only and name not in args.only:
                    continue
                outcome = {"command": name, "file": file_name, "records_used": count_records(used),
                           **run([*argv(str(used)), *short], log)}
                results.append(outcome)
                write_results(results, names, load_before[0], complete=False)
                print(f"{name:<15} {outcome['file']:<40} exit {outcome['exit']!s:<9} {outcome['seconds']:>6.1f} s  "
                      f"{outcome['error'] or (outcome['load_report'] or [''])[0]}", flush=True)
    write_results(results, names, load_before[0], complete=True)
    print(f"{sum(r['exit'] == 0 for r in results)} of {len(results)} runs exited 0 -> {OUT.relative_to(REPO)}")


def read_whole(file: Path) -> dict:
    """Every record of the file through the loader every command uses (auto format), no model: what it holds."""
    from rewardkit.data import load_preferences
    from rewardkit.errors import RewardkitError

    start = time.perf_counter()
    try:
        summary, code = load_preferences(file).report.summary(), 0
    except RewardkitError as error:
        summary, code = f"rewardkit: error: {error}", 2
    return {"exit": code, "error": summary if code else None, "load_report": [] if code else [summary],
            "seconds": round(time.perf_counter() - start, 1)}


def head(file: Path, records: int, folder: Path) -> Path:
    """The file's first `records` records as JSONL in `folder` (the file itself when it has no more than that)."""
    from rewardkit.data.io import read_records

    items = list(itertools.islice(read_records(file), records + 1))
    if len(items) <= records:
        return file
    out = folder / (file.name.split(".")[0] + f".first{records}.jsonl")
    out.write_text("".join(json.dumps(item.data) + "\n" for item in items[:records] if hasattr(item, "data")))
    return out


def count_records(file: Path) -> int:
    from rewardkit.data.io import read_records

    return sum(1 for _ in read_records(file))


def write_results(results: list[dict], files: list[str], load_before: float, complete: bool) -> None:
    """Written after every command, so that a run cut short keeps what it measured."""
    OUT.write_text(json.dumps({
        "command": "python benchmarks/data_sweep.py " + " ".join(sys.argv[1:]),
        "machine": {"cpu": cpu_model_name(), "cpu_count": os.cpu_count(), "python": platform.python_version()},
        "load_average_before": load_before, "load_average_after": os.getloadavg()[0],
        "complete": complete, "files": files,
        "exit_0": sum(r["exit"] == 0 for r in results), "runs": len(results),
        "results": results,
    }, indent=2) + "\n")


if __name__ == "__main__":
    main()
