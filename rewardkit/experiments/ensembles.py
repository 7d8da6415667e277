"""`rewardkit experiment ensembles`: do reward-model ensembles, built as the literature built them, raise gold at
high KL?

Per seed (an independent world, SFT policy and labels: `experiments.worlds`), for two label sets, the rankings as
collected and the same comparisons with 25% of their pair labels flipped (Coste et al. 2023's noise injection):

    single RM            one RM from the SFT policy on all the data (the baseline)
    fine-tune ensemble   M RMs from the SFT policy, each on a bootstrap resample of the prompts, its own seed
                         (same backbone: Eisenstein et al.'s fine-tune ensemble, with Coste et al.'s resampling)
    pretrain ensemble    M RMs, each from its own language model trained from a different seed on the world's
                         demonstrations (Eisenstein et al. 2023's pretrain ensemble; member 0 is the SFT policy), on
                         all the data with its own seed

Every scorer (the single RM; each ensemble aggregated by mean, min and mean − λ·std of the members' normalized
rewards) re-ranks ONE shared best-of-n sample set per seed. Reported: gold at the largest n (the highest KL) and the
cross-fitted peak, and each ensemble minus the single RM at the largest n (paired: same prompts and samples), over
seeds with t intervals; a verdict only where the interval excludes 0.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np

from rewardkit.demo.config import DemoConfig
from rewardkit.demo.pipeline import to_json
from rewardkit.ensemble import RewardEnsemble
from rewardkit.ensemble.bootstrap import bootstrap_indices
from rewardkit.experiments.common import difference_verdict, run_experiment
from rewardkit.experiments.worlds import best_of_n_curve, quick_setup, seed_world, shared_samples, train_reward_model
from rewardkit.model import RewardModel
from rewardkit.progress import Console
from rewardkit.rl.curves import paired_difference, summarize_curve
from rewardkit.rl.statistics import over_seeds
from rewardkit.world import save_policy, train_sft_policy, write_rankings

SINGLE = "single RM"
LABEL_SETS = ("labels as collected", "25% of pair labels flipped")
AGGREGATIONS = ("mean", "min", "uwo")


@dataclass
class EnsemblesConfig:
    seeds: tuple[int, ...] = (0, 1, 2)
    workers: int = 2  # seeds side by side in worker processes, one torch thread each (results do not depend on it)
    setup: DemoConfig = field(default_factory=DemoConfig)  # world, SFT, preferences, RM training, best-of-n sizes
    members: int = 4
    label_flip: float = 0.25  # Coste et al.'s noise injection
    uwo_lambda: float = 0.5

    @classmethod
    def quick(cls) -> EnsemblesConfig:
        return cls(setup=quick_setup(), members=3)

    def to_dict(self) -> dict:
        return {key: value for key, value in asdict(self).items() if key != "workers"}  # timings.json has it


def flip_pairs(records: list[dict], share: float, seed: int) -> list[dict]:
    """Every ranking as its C(K, 2) pairs ({"prompt", "chosen", "rejected"}), each swapped with probability `share`."""
    rng = np.random.default_rng(seed)
    pairs = []
    for record in records:
        ordered = [record["responses"][i] for i in record["ranking"]]  # best first
        for a in range(len(ordered)):
            for b in range(a + 1, len(ordered)):
                chosen, rejected = (ordered[b], ordered[a]) if rng.random() < share else (ordered[a], ordered[b])
                pairs.append({"prompt": record["prompt"], "chosen": chosen, "rejected": rejected})
    return pairs


def run_ensembles(config: EnsemblesConfig, output_dir: str | Path, console: Console | None = None) -> dict:
    """Every seed; writes results.json and timings.json; returns the results."""
    return run_experiment(config, output_dir, console, run_seed, combine)


def run_seed(config: EnsemblesConfig, seed: int, seed_dir: Path, console: Console) -> dict:
    setup, built, records = seed_world(config.setup, seed, seed_dir, console)
    data_dir = seed_dir / "data"
    noisy = data_dir / "train-flipped-pairs.jsonl"
    noisy.write_text("".join(json.dumps(pair) + "\n" for pair in
                             flip_pairs(records, config.label_flip, setup.stage_seed("label-flips"))))

    backbones = [seed_dir / "sft-policy"]
    with console.stage("Pretrain backbones", f"{config.members - 1} more language models from other seeds"):
        for member in range(1, config.members):
            backbones.append(seed_dir / f"backbone-seed-{member}")
            sft = replace(setup.sft, seed=setup.stage_seed(f"pretrain-{member}"))
            model, tokenizer = train_sft_policy(built.world, sft, progress=console.enabled)
            save_policy(model, tokenizer, built.world, str(backbones[-1]))

    samples = shared_samples(built, setup, console)

    results: dict = {"seed": seed}
    for label_set, data in zip(LABEL_SETS, (data_dir / "train.jsonl", noisy), strict=True):
        tag = "noisy" if data == noisy else "clean"
        runs = {SINGLE: [(backbones[0], data, setup.stage_seed(f"rm-{tag}"))]}
        runs["fine-tune ensemble"] = [(backbones[0], _resample(data, setup.stage_seed(f"bootstrap-{tag}-{m}")),
                                       setup.stage_seed(f"rm-{tag}-{m}")) for m in range(config.members)]
        runs["pretrain ensemble"] = [(backbones[m], data, setup.stage_seed(f"rm-{tag}-{m}"))
                                     for m in range(config.members)]
        count = sum(len(v) for v in runs.values())
        with console.stage(f"Reward models, {label_set}", f"{count} runs"):
            members = {name: [_train(seed_dir / "rm-runs" / f"{tag}-{_slug(name)}-{m}", backbone, member_data,
                                     member_seed, setup, console)
                              for m, (backbone, member_data, member_seed) in enumerate(entries)]
                       for name, entries in runs.items()}
        scorers = {SINGLE: members[SINGLE][0].score(samples.prompts, samples.texts, batch_size=1024)}
        for name in ("fine-tune ensemble", "pretrain ensemble"):
            ensemble = RewardEnsemble(members[name], lam=config.uwo_lambda)
            for how in AGGREGATIONS:
                scorers[f"{name} {how}"] = ensemble.score(samples.prompts, samples.texts, batch_size=1024,
                                                          aggregate=how)
        curves = {name: best_of_n_curve(samples, values.double().numpy(), setup) for name, values in scorers.items()}
        statistics = {"num_bootstrap": setup.bootstrap_samples, "seed": setup.stage_seed("bootstrap")}
        results[label_set] = {
            "best_of_n": {name: summarize_curve(curve, **statistics) for name, curve in curves.items()},
            "minus_single_at_n_max": {name: paired_difference(curves[SINGLE], curve, **statistics)
                                      for name, curve in curves.items() if name != SINGLE}}
    (seed_dir / "results.json").write_text(to_json(results))
    return results


def _slug(name: str) -> str:
    return name.split()[0]


def _resample(data: Path, seed: int) -> Path:
    records = [json.loads(line) for line in data.read_text().splitlines() if line.strip()]
    path = data.with_name(f"{data.stem}-bootstrap-{seed}.jsonl")
    resampled = [records[i] for i in bootstrap_indices(len(records), seed)]
    if "ranking" in records[0]:
        write_rankings(resampled, str(path))
    else:
        path.write_text("".join(json.dumps(r) + "\n" for r in resampled))
    return path


def _train(output: Path, backbone: Path, data: Path, seed: int, setup: DemoConfig, console: Console) -> RewardModel:
    train_reward_model(backbone, data, data.parent / "val.jsonl", output, setup, console, seed=seed,
                       description=f"RM from {backbone.name}")
    return RewardModel.from_pretrained(output).eval()


def combine(runs: list[dict], config: EnsemblesConfig) -> dict:
    """Over seeds: every estimate as a t interval; each ensemble minus the single RM at the largest n, with a
    verdict where its interval excludes 0."""
    results: dict = {"seeds": [run["seed"] for run in runs], "config": config.to_dict()}
    for label_set in LABEL_SETS:
        combined = over_seeds([run[label_set] for run in runs])
        verdicts = {name: difference_verdict([run[label_set]["minus_single_at_n_max"][name]["value"] for run in runs],
                                             "raises gold at the largest n", "lowers gold at the largest n")
                    for name in combined["minus_single_at_n_max"]}
        results[label_set] = combined | {"verdicts": verdicts}
    return results
