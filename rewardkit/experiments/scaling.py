"""`rewardkit experiment scaling`: how big must the reward model be, and how much comparison data must it see?
Gao et al. (2022)'s RM-size and data-size study, rerun in the demo world.

Per seed (an independent world, SFT policy and labels, built as the demo builds them: `experiments.worlds`):

    1. world        SFT policy and the biased labeller's rankings (train and held-out)
    2. backbones    one language model per RM size, trained on the world's demonstrations like the SFT policy
                    (Gao et al. initialised each RM from a pretrained model of its size); the policy's own size
                    reuses the SFT policy
    3. best-of-n    ONE sample set from the SFT policy for the held-out prompts, scored by gold
    4. cells        per (size, data): an RM from that backbone on the first `data` training rankings; its accuracy
                    against held-out labels and against gold, and its best-of-n curve re-ranking the shared samples:
                    Gao's fit d(α − β d) with bootstrap intervals over prompts, its held-out (leave-one-point-out)
                    R², the observed peak gold and the cross-fitted gain at the peak

Then per (size, data) over seeds: t intervals. results.json has one entry per (size, data, seed) in "cells" and
the combined ones in "summary".
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from rewardkit.demo.config import DemoConfig
from rewardkit.demo.pipeline import to_json
from rewardkit.experiments.common import run_seeds, write_results
from rewardkit.experiments.worlds import (
    SampleSet,
    SeedWorld,
    best_of_n_curve,
    build_world,
    shared_samples,
    train_reward_model,
)
from rewardkit.model import RewardModel
from rewardkit.progress import Console
from rewardkit.rl.curves import summarize_curve
from rewardkit.rl.statistics import over_seeds
from rewardkit.world import SFTConfig, save_policy, train_sft_policy, write_rankings
from rewardkit.world.ceilings import ceilings_and_baselines, held_out_pairs


@dataclass
class ScalingConfig:
    seeds: tuple[int, ...] = (0, 1, 2)
    setup: DemoConfig = field(default_factory=DemoConfig)  # world, SFT, preferences, RM training, best-of-n sizes
    rm_sizes: tuple[int, ...] = (16, 32, 64, 128)  # hidden sizes (2 layers, MLP 2x): ~1.6 decades of parameters
    data_fractions: tuple[float, ...] = (0.125, 0.25, 0.5, 1.0)  # of the training rankings

    @classmethod
    def quick(cls) -> ScalingConfig:
        """The demo's --quick world and a smaller best-of-n set (about 10 minutes on 2 idle cores)."""
        return cls(setup=replace(DemoConfig.quick(), bon_samples=128, bon_n_max=64, bootstrap_samples=200))

    def to_dict(self) -> dict:
        return asdict(self)


def backbone_config(setup: DemoConfig, hidden_size: int) -> SFTConfig:
    """The SFT policy's recipe at another width (2 layers, MLP 2x wide, 16-wide heads)."""
    return replace(setup.sft, hidden_size=hidden_size, intermediate_size=2 * hidden_size,
                   num_heads=max(1, hidden_size // 16))


def run_scaling(config: ScalingConfig, output_dir: str | Path, console: Console | None = None) -> dict:
    """Every seed's cells; writes results.json and timings.json; returns the results."""
    runs, timings = run_seeds(config.seeds, output_dir, console or Console(),
                              lambda seed, seed_dir, seed_console: run_seed(config, seed, seed_dir, seed_console))
    cells = [cell for run in runs for cell in run["cells"]]
    results = {"seeds": list(config.seeds), "config": config.to_dict(),
               "world": over_seeds([run["world"] for run in runs]), "cells": cells, "summary": summarize_cells(cells)}
    write_results(output_dir, results, timings)
    return results


def run_seed(config: ScalingConfig, seed: int, seed_dir: Path, console: Console) -> dict:
    setup = replace(config.setup, seed=seed)
    built = build_world(setup, seed_dir, console, reward_model=False)
    world = built.world
    train_path = seed_dir / "data" / "train.jsonl"
    train_records = [json.loads(line) for line in train_path.read_text().splitlines() if line.strip()]

    backbones = {}
    with console.stage("Backbones", f"hidden sizes {', '.join(map(str, config.rm_sizes))}, trained on "
                                    f"{setup.sft.num_demonstrations:,} demonstrations each"):
        for size in config.rm_sizes:
            if size == setup.sft.hidden_size:
                backbones[size] = seed_dir / "sft-policy"
                continue
            backbones[size] = seed_dir / f"backbone-{size}"
            model, lm_tokenizer = train_sft_policy(world, backbone_config(setup, size), progress=console.enabled)
            save_policy(model, lm_tokenizer, world, str(backbones[size]))

    samples = shared_samples(built, setup, console)

    counts = sorted({min(len(train_records), max(8, round(f * len(train_records)))) for f in config.data_fractions})
    cells = []
    with console.stage("Reward models", f"{len(config.rm_sizes)} sizes x {len(counts)} data sizes, each re-ranking "
                                        "the shared samples"):
        for count in counts:
            data = train_path
            if count < len(train_records):
                data = seed_dir / "data" / f"train-first-{count}.jsonl"
                write_rankings(train_records[:count], str(data))
            for size in config.rm_sizes:
                rm_dir = seed_dir / "rm-runs" / f"size-{size}-prompts-{count}"
                trained = train_reward_model(backbones[size], data, seed_dir / "data" / "val.jsonl", rm_dir, setup,
                                             console, seed=setup.stage_seed(f"rm-{size}-{count}"),
                                             description=f"RM hidden {size}")
                model = RewardModel.from_pretrained(rm_dir).eval()
                cell = {"seed": seed, "hidden_size": size, "parameters": sum(p.numel() for p in model.parameters()),
                        "data_prompts": count, "comparisons": trained["comparisons"]}
                cell |= evaluate_cell(model, built, samples, setup)
                cells.append(cell)
    (seed_dir / "cells.json").write_text(to_json(cells))
    return {"world": built.facts, "cells": cells}


def evaluate_cell(model: RewardModel, built: SeedWorld, samples: SampleSet, setup: DemoConfig) -> dict:
    """Accuracy against held-out labels and gold, and Gao's best-of-n fit on the shared samples."""
    name = "rm"
    val_scores = [model.score([r["prompt"]] * len(r["responses"]), r["responses"], batch_size=256).double().numpy()
                  for r in built.val_records]
    judges = ceilings_and_baselines(held_out_pairs(built.world, built.labeller, built.val_records,
                                                   {name: val_scores}), seed=setup.stage_seed("bootstrap"))["judges"]
    curve = best_of_n_curve(samples, model.score(samples.prompts, samples.texts, batch_size=1024).double().numpy(),
                            setup)
    summary = summarize_curve(curve, num_bootstrap=setup.bootstrap_samples, seed=setup.stage_seed("bootstrap"))
    return {"accuracy_vs_labels": judges[name]["vs_labels"], "accuracy_vs_gold": judges[name]["vs_gold"],
            "alpha": summary["fit"]["alpha"], "beta": summary["fit"]["beta"], "r2_cv": summary["fit"]["r2_cv"],
            "fit_gold_at_peak": summary["fit"]["gold_at_peak"], "peak_gold": summary["peak"]["gold"],
            "peak_n": summary["peak"]["n"], "gain_at_peak": summary["gain_at_peak"],
            "gold_at_n_max": summary["end"]["gold"]}


def summarize_cells(cells: list[dict]) -> list[dict]:
    """Per (hidden size, data prompts): every statistic over the seeds (t intervals when there are several)."""
    keys = sorted({(c["hidden_size"], c["data_prompts"]) for c in cells})
    summary = []
    for size, count in keys:
        group = [c for c in cells if (c["hidden_size"], c["data_prompts"]) == (size, count)]
        combined = over_seeds([{k: v for k, v in c.items() if k != "seed"} for c in group])
        summary.append(combined | {"seeds": [c["seed"] for c in group]})
    return summary
