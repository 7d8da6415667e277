"""What every experiment's run and report share: seeds checked, one torch thread, a console per seed, the report
written as Markdown and HTML."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import torch

from rewardkit.progress import Console, quiet_libraries
from rewardkit.reporting import Document


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
