"""Seeds side by side in worker processes give the same results as one after the other in this process."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch

from rewardkit.experiments.common import run_experiment
from rewardkit.progress import Console


@dataclass
class TinyConfig:
    seeds: tuple[int, ...] = (0, 1, 2)
    workers: int = 1


def fit_one_seed(config: TinyConfig, seed: int, seed_dir: Path, console: Console) -> dict:
    """A seeded least-squares fit by SGD (module level: worker processes import it by name)."""
    with console.stage("fit"):
        generator = torch.Generator().manual_seed(seed)
        x, w = torch.randn(64, 4, generator=generator), torch.zeros(4, requires_grad=True)
        y = x @ torch.arange(4.0) + 0.1 * torch.randn(64, generator=generator)
        optimizer = torch.optim.SGD([w], lr=0.1)
        for _ in range(50):
            optimizer.zero_grad()
            ((x @ w - y) ** 2).mean().backward()
            optimizer.step()
    seed_dir.mkdir(parents=True, exist_ok=True)
    return {"seed": seed, "weights": w.tolist(), "threads": torch.get_num_threads()}


def combine(runs: list[dict], config: TinyConfig) -> dict:
    return {"runs": runs}


def test_seeds_in_worker_processes_give_the_same_results(tmp_path):
    alone = run_experiment(TinyConfig(workers=1), tmp_path / "one", Console(enabled=False), fit_one_seed, combine)
    side_by_side = run_experiment(TinyConfig(workers=2), tmp_path / "two", Console(enabled=False), fit_one_seed,
                                  combine)
    assert side_by_side == alone and [run["seed"] for run in alone["runs"]] == [0, 1, 2]
    assert {run["threads"] for run in side_by_side["runs"]} == {1}  # one torch thread per worker, as in-process
    assert (tmp_path / "one" / "results.json").read_bytes() == (tmp_path / "two" / "results.json").read_bytes()
    timings = json.loads((tmp_path / "two" / "timings.json").read_text())
    assert timings["workers"] == 2 and set(timings["seconds"]) == {"0", "1", "2"}
    assert all({"fit", "total"} <= set(seconds) for seconds in timings["seconds"].values())
