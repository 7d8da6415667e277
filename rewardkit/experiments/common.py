"""What every experiment's run, command and report share: seeds checked, one torch thread, a console per seed,
results and timings written, the config from the command's options, the report written as Markdown and HTML with
the machine it ran on."""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import Any

import torch

from rewardkit.progress import Console, format_seconds, quiet_libraries
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
            run, timings[str(seed)] = _timed_seed(run_seed, seed, output / f"seed-{seed}", seed_console)
            runs.append(run)
    return runs, timings


def _timed_seed(run_seed: Callable[[int, Path, Console], dict], seed: int, seed_dir: Path,
                console: Console) -> tuple[dict, dict]:
    started = time.perf_counter()
    run = run_seed(seed, seed_dir, console)
    return run, console.seconds | {"total": round(time.perf_counter() - started, 2)}


def _seed_in_worker(run_seed: Callable[[Any, int, Path, Console], dict], config: Any, seed: int, seed_dir: Path,
                    progress: bool, prefix: str) -> tuple[dict, dict]:
    """One seed in a worker process (its own console: consoles hold a stream and do not cross processes)."""
    return _timed_seed(partial(run_seed, config), seed, seed_dir, Console(progress, prefix=prefix))


def run_experiment(config: Any, output_dir: str | Path, console: Console | None,
                   run_seed: Callable[[Any, int, Path, Console], dict],
                   combine: Callable[[list[dict], Any], dict]) -> dict:
    """`run_seed(config, seed, seed_dir, console)` for every seed of `config.seeds`, then `combine(runs, config)`;
    writes results.json and timings.json; returns the results. With `config.workers` > 1 the seeds run side by
    side in that many worker processes, one torch thread each (each seed draws only from its own seeded streams,
    so the results do not depend on it); `run_seed` must then be a module-level function."""
    console = console or Console()
    started = time.perf_counter()
    workers = min(getattr(config, "workers", 1), len(config.seeds))
    if workers <= 1:
        runs, timings = run_seeds(config.seeds, output_dir, console, partial(run_seed, config))
    else:
        from rewardkit.demo.ppo_runs import worker_pool

        console.print(f"{len(config.seeds)} seeds, {workers} side by side in worker processes")
        with experiment_run(config.seeds, output_dir) as output, worker_pool(workers) as pool:
            futures = {seed: pool.submit(_seed_in_worker, run_seed, config, seed, output / f"seed-{seed}",
                                         console.enabled, seed_console.prefix)
                       for seed, seed_console in seed_consoles(config.seeds, console)}
            done = {seed: future.result() for seed, future in futures.items()}
        runs, timings = [done[seed][0] for seed in config.seeds], {str(seed): done[seed][1] for seed in config.seeds}
    results = combine(runs, config)
    write_results(output_dir, results, timings, workers=workers,
                  wall_seconds=round(time.perf_counter() - started, 1))  # "total" sums the seeds' seconds
    return results


def elapsed(timings: dict) -> float:
    """The run's wall-clock seconds (seeds side by side overlap), else the sum of its seeds' seconds."""
    return timings.get("wall_seconds", timings["total"])


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


def report_document(title: str, output_dir: str | Path) -> tuple[Document, Path]:
    """A report titled `title` and its output directory, with plots/ created in it."""
    output = Path(output_dir)
    (output / "plots").mkdir(parents=True, exist_ok=True)
    return Document(title), output


def save_report(document: Document, output_dir: Path, timings: dict | None = None, lead: str = "") -> dict[str, Path]:
    """report.md and report.html in `output_dir`; with `timings`, a closing paragraph (`lead`, then the machine,
    its load and the total seconds) first."""
    if timings is not None:
        side_by_side = f", {timings['workers']} seeds side by side" if timings.get("workers", 1) > 1 else ""
        took = (f"{timings['wall_seconds']:.0f} s wall-clock" if "wall_seconds" in timings else
                f"total {timings['total']:.0f} s (the seeds' seconds summed)")
        document.paragraph(f"{lead}Machine: {timings['cpu']}, load average {timings['load_average']}{side_by_side}, "
                           f"{took}.")
    files = {"markdown": output_dir / "report.md", "html": output_dir / "report.html"}
    files["markdown"].write_text(document.to_markdown())
    files["html"].write_text(document.to_html())
    return files


def command_config(config_class: type, args: argparse.Namespace, **overrides: object) -> Any:
    """`config_class.quick()` under --quick, else its defaults; --seeds, --workers and each override that is not
    None replace their fields (lists become tuples)."""
    config = config_class.quick() if args.quick else config_class()
    overrides = {"seeds": args.seeds, "workers": getattr(args, "workers", None), **overrides}
    return replace(config, **{key: tuple(v) if isinstance(v, list) else v for key, v in overrides.items()
                              if v is not None})


def run_command(args: argparse.Namespace, config: Any, headline: str, run: Callable[..., dict],
                write_report: Callable[[dict, dict, Path], dict[str, Path]]) -> tuple[dict, dict, dict[str, Path]]:
    """An experiment command's body: the headline, `run(config, output, console)`, the report; returns the results,
    the timings and the report's files."""
    output = Path(args.output)
    console = Console(args.progress)
    console.print(headline)
    results = run(config, output, console)
    timings = json.loads((output / "timings.json").read_text())
    return results, timings, write_report(results, timings, output)


def report_line(files: dict[str, Path], timings: dict) -> str:
    """"report: DIR/report.md (and report.html, plots/, results.json) in 4.2 min" (no time when no seed was timed)."""
    took = f" in {format_seconds(elapsed(timings))}" if timings["seconds"] else ""
    return f"report: {files['markdown']} (and report.html, plots/, results.json){took}"


def value(entry: dict | float) -> float:
    """A results entry's point value: an estimate's "value", or the number itself."""
    return entry["value"] if isinstance(entry, dict) else float(entry)
