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
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np

from rewardkit.demo.config import DemoConfig
from rewardkit.demo.pipeline import machine_timings, to_json
from rewardkit.ensemble import RewardEnsemble
from rewardkit.ensemble.bootstrap import bootstrap_indices
from rewardkit.experiments.common import experiment_run, seed_consoles
from rewardkit.experiments.worlds import build_world, held_out_prompts, train_reward_model
from rewardkit.model import RewardModel
from rewardkit.progress import Console
from rewardkit.rl import BestOfNConfig
from rewardkit.rl.best_of_n import sample_and_score
from rewardkit.rl.curves import OptimizationCurve, paired_difference, summarize_curve
from rewardkit.rl.statistics import NOT_RESOLVED, over_seeds, t_interval
from rewardkit.world import save_policy, train_sft_policy, write_rankings

SINGLE = "single RM"
LABEL_SETS = ("labels as collected", "25% of pair labels flipped")
AGGREGATIONS = ("mean", "min", "uwo")


@dataclass
class EnsemblesConfig:
    seeds: tuple[int, ...] = (0, 1, 2)
    setup: DemoConfig = field(default_factory=DemoConfig)  # world, SFT, preferences, RM training, best-of-n sizes
    members: int = 4
    label_flip: float = 0.25  # Coste et al.'s noise injection
    uwo_lambda: float = 0.5

    @classmethod
    def quick(cls) -> EnsemblesConfig:
        return cls(setup=replace(DemoConfig.quick(), bon_samples=128, bon_n_max=64, bootstrap_samples=200), members=3)

    def to_dict(self) -> dict:
        return asdict(self)


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
    console = console or Console()
    runs, timings = [], {}
    with experiment_run(config.seeds, output_dir) as output_dir:
        for seed, seed_console in seed_consoles(config.seeds, console):
            started = time.perf_counter()
            runs.append(run_seed(config, seed, output_dir / f"seed-{seed}", seed_console))
            timings[str(seed)] = seed_console.seconds | {"total": round(time.perf_counter() - started, 2)}
    results = combine(runs, config)
    (output_dir / "results.json").write_text(to_json(results))
    (output_dir / "timings.json").write_text(json.dumps(machine_timings(timings), indent=2))
    return results


def run_seed(config: EnsemblesConfig, seed: int, seed_dir: Path, console: Console) -> dict:
    setup = replace(config.setup, seed=seed)
    built = build_world(setup, seed_dir, console, reward_model=False)
    data_dir = seed_dir / "data"
    records = [json.loads(line) for line in (data_dir / "train.jsonl").read_text().splitlines() if line.strip()]
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

    prompts = held_out_prompts(built.world, setup)
    with console.stage("Best-of-n samples", f"{len(prompts)} held-out prompts x {setup.bon_samples} samples"):
        bon = BestOfNConfig(n_max=setup.bon_n_max, num_samples=setup.bon_samples, max_new_tokens=setup.max_new_tokens,
                            sample_batch_size=1024, score_batch_size=4096, seed=setup.stage_seed("best-of-n"),
                            progress=console.enabled)
        responses, scores = sample_and_score(built.policy, built.tokenizer, prompts, {"gold": built.world.gold_reward},
                                             setup.bon_samples, bon)
    flat_prompts = [p for p, texts in zip(prompts, responses, strict=True) for _ in texts]
    flat_texts = [t for texts in responses for t in texts]
    gold = scores["gold"]

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
        scorers = {SINGLE: members[SINGLE][0].score(flat_prompts, flat_texts, batch_size=1024)}
        for name in ("fine-tune ensemble", "pretrain ensemble"):
            ensemble = RewardEnsemble(members[name], lam=config.uwo_lambda)
            for how in AGGREGATIONS:
                scorers[f"{name} {how}"] = ensemble.score(flat_prompts, flat_texts, batch_size=1024, aggregate=how)
        curves = {name: OptimizationCurve.from_best_of_n(values.double().numpy().reshape(gold.shape), {"gold": gold},
                                                         setup.bon_n_max) for name, values in scorers.items()}
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
        verdicts = {}
        for name in combined["minus_single_at_n_max"]:
            values = [run[label_set]["minus_single_at_n_max"][name]["value"] for run in runs]
            if len(values) < 2:
                verdicts[name] = f"{NOT_RESOLVED} (one seed)"
                continue
            estimate = t_interval(values)
            verdicts[name] = ("raises gold at the largest n" if estimate.above(0.0) else
                              "lowers gold at the largest n" if estimate.below(0.0) else NOT_RESOLVED)
        results[label_set] = combined | {"verdicts": verdicts}
    return results
