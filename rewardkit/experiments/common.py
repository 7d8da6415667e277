"""What every experiment's run and report share: seeds checked, one torch thread, a console per seed, the report
written as Markdown and HTML."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import torch

from rewardkit.progress import Console, quiet_libraries
from rewardkit.reporting import Document
from rewardkit.rl.statistics import NOT_RESOLVED, t_interval


@contextmanager
def experiment_run(seeds: Sequence[int], output_dir: str | Path) -> Iterator[Path]:
    """Checks the seeds, creates `output_dir`, and runs the body with one torch thread (the models are tiny: see
    `run_demo`) and no other libraries' progress bars; yields the output directory."""
    if not seeds or len(set(seeds)) != len(seeds):
        raise ValueError(f"seeds must be distinct and at least one, got {tuple(seeds)}")
    output = Path(output_dir)
    output.mkdir(parents=True, exist_ok=True)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with quiet_libraries():
            yield output
    finally:
        torch.set_num_threads(threads)


def seed_consoles(seeds: Sequence[int], console: Console) -> Iterator[tuple[int, Console]]:
    """Each seed with a console whose headings say which seed of how many ("[seed 1, 2 of 3] ...")."""
    for number, seed in enumerate(seeds, 1):
        yield seed, Console(console.enabled, console.stream, prefix=f"[seed {seed}, {number} of {len(seeds)}] ")


def run_seeds(seeds: Sequence[int], output_dir: str | Path, console: Console,
              run_seed: Callable[[int, Path, Console], dict]) -> tuple[list[dict], dict]:
    """`run_seed(seed, seed_dir, console)` for every seed inside `experiment_run`; returns the runs and each seed's
    stage seconds and total."""
    runs, timings = [], {}
    with experiment_run(seeds, output_dir) as output:
        for seed, seed_console in seed_consoles(seeds, console):
            started = time.perf_counter()
            runs.append(run_seed(seed, output / f"seed-{seed}", seed_console))
            timings[str(seed)] = seed_console.seconds | {"total": round(time.perf_counter() - started, 2)}
    return runs, timings


def write_results(output_dir: str | Path, results: dict, timings: dict, **machine: object) -> None:
    """results.json (no timings: the same seeds on the same machine write the same file) and timings.json (the
    seconds with the machine and its load)."""
    from rewardkit.demo.pipeline import machine_timings, to_json

    output = Path(output_dir)
    (output / "results.json").write_text(to_json(results))
    (output / "timings.json").write_text(json.dumps(machine_timings(timings) | machine, indent=2))


def difference_verdict(per_seed: Sequence[float], if_above: str, if_below: str) -> str:
    """`if_above` / `if_below` when the t interval over seeds of a difference lies above / below 0; else not
    resolved (also with fewer than two seeds)."""
    if len(per_seed) < 2:
        return f"{NOT_RESOLVED} (an interval needs 2 or more seeds)"
    estimate = t_interval(list(per_seed))
    return if_above if estimate.above(0.0) else if_below if estimate.below(0.0) else NOT_RESOLVED


def finished_seed(seed_dir: Path, config: dict) -> tuple[dict, dict | None] | None:
    """(results, timings or None) of a seed an earlier run finished (seed_dir/results.json, whose "config", when it
    has one, must equal `config` as JSON), else None."""
    path = seed_dir / "results.json"
    if not path.exists():
        return None
    results = json.loads(path.read_text())
    if "config" in results and results["config"] != json.loads(json.dumps(config)):
        return None
    timings = seed_dir / "timings.json"
    return results, json.loads(timings.read_text()) if timings.exists() else None


def save_report(document: Document, output_dir: Path) -> dict[str, Path]:
    """report.md and report.html in `output_dir`."""
    files = {"markdown": output_dir / "report.md", "html": output_dir / "report.html"}
    files["markdown"].write_text(document.to_markdown())
    files["html"].write_text(document.to_html())
    return files


def value(entry: dict | float) -> float:
    """A results entry's point value: an estimate's "value", or the number itself."""
    return entry["value"] if isinstance(entry, dict) else float(entry)
