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
    5. policy sizes Gao et al.'s §3.4 the other way round: ONE fixed RM (the cells' RM at the SFT policy's width on
                    all the training rankings, reused) and SFT policies of several widths (the backbones of step 2,
                    which are SFT policies; a width no RM uses is trained the same way). Each policy draws its own
                    best-of-n sample set (KL of best-of-n = log n − (n − 1)/n) re-ranked by the fixed RM: its gold
                    at n = 1 (where it starts, gold centred on the width-`sft.hidden_size` SFT policy), its gold
                    gain curve and Gao fit, and the proxy−gold gap of the gains (the RM's scores in gold units:
                    scaled to gold's spread on the SFT policy's samples, the same scale for every policy).
                    Deviation from Gao: their policies were pretrained at each size and fine-tuned; ours are only
                    SFT'd on the world's demonstrations (this world has no pretraining stage).

Then per (size, data) and per policy size over seeds: t intervals; the largest minus the smallest policy per seed
with a verdict only where its t interval excludes 0. results.json has one entry per (size, data, seed) in "cells",
the combined ones in "summary", and "policy_sizes" with one entry per (policy size, seed), its summary and verdicts.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np

from rewardkit.demo.config import DemoConfig
from rewardkit.demo.pipeline import to_json
from rewardkit.experiments.common import difference_verdict, run_experiment
from rewardkit.experiments.worlds import (
    SampleSet,
    SeedWorld,
    best_of_n_curve,
    policy_samples,
    quick_setup,
    seed_world,
    shared_samples,
    train_reward_model,
)
from rewardkit.model import RewardModel
from rewardkit.progress import Console
from rewardkit.rl.curves import OptimizationCurve, summarize_curve
from rewardkit.rl.statistics import bootstrap, over_seeds, t_interval
from rewardkit.world import SFTConfig, save_policy, train_sft_policy, write_rankings
from rewardkit.world.ceilings import ceilings_and_baselines, held_out_pairs


@dataclass
class ScalingConfig:
    seeds: tuple[int, ...] = (0, 1, 2)
    workers: int = 2  # seeds side by side in worker processes, one torch thread each (results do not depend on it)
    setup: DemoConfig = field(default_factory=DemoConfig)  # world, SFT, preferences, RM training, best-of-n sizes
    rm_sizes: tuple[int, ...] = (16, 32, 64, 128)  # hidden sizes (2 layers, MLP 2x): ~1.6 decades of parameters
    data_fractions: tuple[float, ...] = (0.125, 0.25, 0.5, 1.0)  # of the training rankings
    # SFT policies' hidden sizes for best-of-n against one fixed RM; widths the RMs use reuse their backbones
    policy_sizes: tuple[int, ...] = (16, 32, 64, 128)

    @classmethod
    def quick(cls) -> ScalingConfig:
        """The demo's --quick world and a smaller best-of-n set (about 10 minutes on 2 idle cores)."""
        return cls(setup=quick_setup())

    def to_dict(self) -> dict:
        return {key: value for key, value in asdict(self).items() if key != "workers"}  # timings.json has it


def backbone_config(setup: DemoConfig, hidden_size: int) -> SFTConfig:
    """The SFT policy's recipe at another width (2 layers, MLP 2x wide, 16-wide heads)."""
    return replace(setup.sft, hidden_size=hidden_size, intermediate_size=2 * hidden_size,
                   num_heads=max(1, hidden_size // 16))


def run_scaling(config: ScalingConfig, output_dir: str | Path, console: Console | None = None) -> dict:
    """Every seed's cells and policy sizes; writes results.json and timings.json; returns the results."""
    return run_experiment(config, output_dir, console, run_seed, combine)


def combine(runs: list[dict], config: ScalingConfig) -> dict:
    """The cells and policy-size entries of every seed, each summarized over seeds."""
    cells = [cell for run in runs for cell in run["cells"]]
    policies = [entry for run in runs for entry in run["policy_sizes"]]
    results = {"seeds": list(config.seeds), "config": config.to_dict(),
               "world": over_seeds([run["world"] for run in runs]), "cells": cells, "summary": summarize_cells(cells),
               "largest_minus_smallest": compare_rm_cells(cells),
               "policy_sizes": {"fixed_rm": runs[0]["fixed_rm"], "entries": policies,
                                "summary": summarize_cells(policies, by=("policy_size",)),
                                "largest_minus_smallest": compare_policy_sizes(policies)}}
    return results


def run_seed(config: ScalingConfig, seed: int, seed_dir: Path, console: Console) -> dict:
    setup, built, train_records = seed_world(config.setup, seed, seed_dir, console)
    world = built.world
    train_path = seed_dir / "data" / "train.jsonl"

    # every width an RM or a policy uses: an SFT policy of that width (the RM's backbone, or the policy itself)
    backbones = {setup.sft.hidden_size: seed_dir / "sft-policy"}
    language_models = {setup.sft.hidden_size: (built.policy, built.tokenizer)}
    widths = sorted(set(config.rm_sizes) | set(config.policy_sizes))
    with console.stage("Backbones", f"hidden sizes {', '.join(map(str, widths))}, trained on "
                                    f"{setup.sft.num_demonstrations:,} demonstrations each"):
        for size in widths:
            if size == setup.sft.hidden_size:
                continue
            backbones[size] = seed_dir / f"backbone-{size}"
            model, lm_tokenizer = train_sft_policy(world, backbone_config(setup, size), progress=console.enabled)
            save_policy(model, lm_tokenizer, world, str(backbones[size]))
            language_models[size] = (model.requires_grad_(False), lm_tokenizer)

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

    # the fixed RM: the cells' RM at the SFT policy's width on all the rankings (trained here only if no cell did)
    fixed_rm = {"hidden_size": setup.sft.hidden_size, "data_prompts": counts[-1]}
    rm_dir = seed_dir / "rm-runs" / f"size-{fixed_rm['hidden_size']}-prompts-{fixed_rm['data_prompts']}"
    if not rm_dir.exists():
        train_reward_model(backbones[setup.sft.hidden_size], train_path, seed_dir / "data" / "val.jsonl", rm_dir,
                           setup, console, seed=setup.stage_seed(f"rm-{fixed_rm['hidden_size']}-{counts[-1]}"),
                           description=f"RM hidden {fixed_rm['hidden_size']}")
    fixed_rm["path"] = str(rm_dir.relative_to(seed_dir))
    with console.stage("Policy sizes", f"hidden sizes {', '.join(map(str, config.policy_sizes))}, best-of-n "
                                       f"against the fixed RM (hidden {fixed_rm['hidden_size']}, "
                                       f"{counts[-1]} prompts)"):
        policies = policy_size_entries(config, built, language_models, samples,
                                       RewardModel.from_pretrained(rm_dir).eval(), setup, console)
    for entry in policies:
        entry |= {"seed": seed, "reward_model": fixed_rm["path"]}
    (seed_dir / "policy_sizes.json").write_text(to_json(policies))
    return {"world": built.facts, "cells": cells, "policy_sizes": policies, "fixed_rm": fixed_rm}


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


def policy_size_entries(config: ScalingConfig, built: SeedWorld, language_models: dict[int, tuple],
                        shared: SampleSet, reward_model: RewardModel, setup: DemoConfig,
                        console: Console) -> list[dict]:
    """Per policy width: its own best-of-n sample set (the SFT policy's is the shared one) re-ranked by the fixed
    RM; where it starts (gold at n = 1), its gold gain curve with Gao's fit, and the proxy−gold gap of the gains."""
    def rm_scores(samples: SampleSet) -> np.ndarray:
        return reward_model.score(samples.prompts, samples.texts, batch_size=1024).double().numpy()

    # the RM's scores in gold units, one scale for every policy: gold's spread over the RM's on the SFT policy's set
    scale = float(shared.gold.std() / rm_scores(shared).std())
    statistics = {"num_bootstrap": setup.bootstrap_samples, "seed": setup.stage_seed("bootstrap")}
    entries = []
    for size in config.policy_sizes:
        policy, tokenizer = language_models[size]
        samples = shared if size == setup.sft.hidden_size else policy_samples(built.world, policy, tokenizer, setup,
                                                                              console.enabled)
        proxy = samples.reshape(scale * rm_scores(samples))
        curve = OptimizationCurve.from_best_of_n(proxy, {"gold": samples.gold, "proxy": proxy,
                                                         "proxy_minus_gold": proxy - samples.gold}, setup.bon_n_max)
        summary = summarize_curve(curve, **statistics)
        start = bootstrap(lambda idx, gold=samples.gold: {"gold": gold[idx].mean()}, len(samples.gold),
                          statistics["num_bootstrap"], statistics["seed"])["gold"]
        entries.append({
            "policy_size": size, "policy_parameters": sum(p.numel() for p in policy.parameters()),
            "gold_at_start": start.to_dict(), "alpha": summary["fit"]["alpha"], "beta": summary["fit"]["beta"],
            "r2_cv": summary["fit"]["r2_cv"], "peak_gold": summary["peak"]["gold"], "peak_n": summary["peak"]["n"],
            "gain_at_peak": summary["gain_at_peak"], "gold_gain_at_n_max": summary["end"]["gold"],
            "proxy_gain_at_n_max": summary["end"]["proxy"],
            "proxy_gold_gap_at_n_max": summary["end"]["proxy_minus_gold"], "proxy_scale": scale,
            "points": [{key: point[key] for key in ("n", "kl", "sqrt_kl", "gold", "proxy")}
                       for point in summary["points"]]})
    return entries


# Gao et al. 2022 §3.4 (larger policies, one RM): they start higher, gain less, and their proxy−gold gap is not larger
# (statistic, verdict if the larger minus the smaller lies above 0, if below, what Gao et al. found)
POLICY_COMPARISONS = {
    "gold_at_start": ("gold at n = 1", "the larger policy starts higher", "the larger policy starts lower",
                      "starts higher"),
    "gold_gain_at_n_max": ("gold gain at the largest n", "the larger policy gains more from best-of-n",
                           "the larger policy gains less", "gains less"),
    "proxy_gold_gap_at_n_max": ("proxy − gold gap at the largest n", "the larger policy's proxy−gold gap is larger",
                                "the larger policy's gap is smaller", "gap not larger"),
}


# what a larger RM, or more comparison data, changes in a cell (Gao et al.: accuracy and the best-of-n fit's α, β
# vary smoothly with RM size; more data helps; below ~2,000 comparisons RMs are near chance)
CELL_COMPARISONS = {
    "accuracy_vs_gold": ("accuracy against gold", "higher", "lower", "higher"),
    "accuracy_vs_labels": ("accuracy against held-out labels", "higher", "lower", "higher"),
    "alpha": ("Gao α", "larger", "smaller", "varies smoothly"),
    "beta": ("Gao β", "larger", "smaller", "varies smoothly"),
    "gain_at_peak": ("gold at the peak (cross-fitted)", "higher", "lower", "higher"),
}


def compare_policy_sizes(entries: list[dict]) -> dict:
    """The largest minus the smallest policy per seed for each statistic of `POLICY_COMPARISONS`."""
    return compare_extremes(entries, "policy_size", POLICY_COMPARISONS)


def compare_rm_cells(cells: list[dict]) -> dict:
    """The largest minus the smallest RM at the most data, and the most minus the least data at the largest RM, per
    seed for each statistic of `CELL_COMPARISONS`."""
    most_data, largest = max(c["data_prompts"] for c in cells), max(c["hidden_size"] for c in cells)
    return {"rm_size": compare_extremes([c for c in cells if c["data_prompts"] == most_data], "hidden_size",
                                        CELL_COMPARISONS) | {"at": f"{most_data} training prompts"},
            "data": compare_extremes([c for c in cells if c["hidden_size"] == largest], "data_prompts",
                                     CELL_COMPARISONS) | {"at": f"hidden size {largest}"}}


def compare_extremes(entries: list[dict], by: str, comparisons: dict[str, tuple[str, str, str, str]]) -> dict:
    """The entry with the largest `by` minus the one with the smallest, per seed, for each statistic of
    `comparisons` (key -> statistic, verdict above 0, verdict below 0, what Gao et al. found): the per-seed
    differences, their t interval (2 or more seeds) and a verdict only where it excludes 0."""
    sizes = sorted({e[by] for e in entries})
    if len(sizes) < 2:
        return {}
    by_seed = {(e["seed"], e[by]): e for e in entries}
    seeds = sorted({e["seed"] for e in entries})
    comparison = {"larger": sizes[-1], "smaller": sizes[0]}
    for key, (statistic, if_above, if_below, gao) in comparisons.items():
        per_seed = [by_seed[seed, sizes[-1]][key]["value"] - by_seed[seed, sizes[0]][key]["value"] for seed in seeds]
        interval = t_interval(per_seed).to_dict() if len(per_seed) > 1 else {}
        comparison[key] = interval | {"statistic": statistic, "per_seed": per_seed, "gao": gao,
                                      "verdict": difference_verdict(per_seed, if_above, if_below)}
    return comparison


def summarize_cells(cells: list[dict], by: tuple[str, ...] = ("hidden_size", "data_prompts")) -> list[dict]:
    """Per value of `by` (an RM cell's hidden size and data prompts, or a policy size): every statistic over the
    seeds (t intervals when there are several)."""
    summary = []
    for key in sorted({tuple(c[k] for k in by) for c in cells}):
        group = [c for c in cells if tuple(c[k] for k in by) == key]
        combined = over_seeds([{k: v for k, v in c.items() if k != "seed"} for c in group])
        summary.append(combined | {"seeds": [c["seed"] for c in group]})
    return summary
