"""`rewardkit demo`: the whole life of a reward model in a synthetic world whose true (gold) reward is known.

    1. SFT        a tiny Llama imitates the world's demonstrations                       (rewardkit.world)
    2. collect    it answers each prompt K = 4..9 times; biased, noisy labellers rank     (rewardkit.world)
    3. RM         a reward model is trained from the SFT checkpoint (and one from random
                  init, at several data sizes) on the rankings                           (rewardkit.training)
    4. evaluate   accuracy against held-out labels and against gold; labeller agreement   (rewardkit.evaluation)
    5. optimize   best-of-n (n = 1..256) and PPO at two KL penalties against the RM      (rewardkit.rl)
    6. report     proxy and gold reward against sqrt(KL), Gao et al. fits, length/format growth

Nothing is scripted: over-optimization shows up only if the reward model learned the labellers' biases and the
optimizer found them.
"""

from __future__ import annotations

import copy
import json
import math
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch

from rewardkit.data import load_preferences
from rewardkit.data.collate import encode_dataset
from rewardkit.demo.config import DemoConfig
from rewardkit.evaluation.pairwise import score_encoded_dataset
from rewardkit.model import RewardModel
from rewardkit.rl import BestOfNConfig, PPOConfig, best_of_n_curve, fit_best_of_n, fit_rl, train_ppo
from rewardkit.training import TrainConfig, train
from rewardkit.world import (
    Labeller,
    World,
    collect_rankings,
    estimate_gold_offset,
    format_prompt,
    format_rate,
    pairwise_agreement,
    response_length,
    save_policy,
    train_sft_policy,
    write_rankings,
)


class Stopwatch:
    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    @contextmanager
    def stage(self, name: str):
        start = time.perf_counter()
        yield
        self.seconds[name] = round(time.perf_counter() - start, 2)


def run_demo(config: DemoConfig, output_dir: str | Path, progress: bool = True) -> dict:
    """Run every stage, write `results.json` (and the SFT/RM checkpoints and data) into `output_dir`."""
    # The models are tiny: one thread avoids thread hand-off costs that dominate at this size (measured: a tiny
    # PPO run took 7x longer with 2 threads on a busy 2-core machine).
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _run_stages(config, Path(output_dir), progress)
    finally:
        torch.set_num_threads(threads)


def _run_stages(config: DemoConfig, output_dir: Path, progress: bool) -> dict:
    output_dir.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(config.seed)
    clock = Stopwatch()
    world = World(config.world)
    results: dict = {"config": config.to_dict()}

    with clock.stage("sft"):
        policy, tokenizer = train_sft_policy(world, config.sft, progress=progress)
        world.gold_offset = estimate_gold_offset(world, policy, tokenizer, seed=config.seed)
        sft_dir = output_dir / "sft-policy"
        save_policy(policy, tokenizer, world, str(sft_dir))

    with clock.stage("collect"):
        results["data"] = collect_preferences(world, policy, tokenizer, config, output_dir / "data")

    with clock.stage("reward_models"):
        results["reward_models"], reward_model = train_reward_models(world, sft_dir, config, output_dir, progress)
    results["data"]["labeller_accuracy_vs_gold"] = results["reward_models"]["labeller_accuracy_vs_gold"]

    def proxy(prompts: list[str], responses: list[str]) -> torch.Tensor:
        return reward_model.score(prompts, responses, batch_size=256)

    observed = {
        "gold": world.gold_reward,
        "length": lambda p, r: torch.tensor(response_length(r), dtype=torch.float32),
        "format_rate": lambda p, r: torch.tensor(format_rate(r), dtype=torch.float32),
    }
    with clock.stage("best_of_n"):
        results["best_of_n"] = run_best_of_n(world, policy, tokenizer, proxy, observed, config, progress)
    with clock.stage("ppo"):
        results["ppo"] = {
            f"PPO β={beta:g}": run_ppo(world, policy, tokenizer, proxy, observed, config, beta, progress)
            for beta in config.ppo_betas
        }
    results["seconds"] = clock.seconds
    results["seconds"]["total"] = round(sum(clock.seconds.values()), 2)
    (output_dir / "results.json").write_text(json.dumps(finite_json(results), indent=2))
    return results


# ------------------------------------------------------------------------------------------------ stages
def collect_preferences(world: World, policy, tokenizer, config: DemoConfig, data_dir: Path) -> dict:
    """K-wise rankings for training and validation, written in rewardkit's ranking format."""
    labeller = Labeller(world, seed=config.seed)
    train = collect_rankings(world, policy, tokenizer, config.train_prompts, config.k_range, labeller,
                             seed=config.seed, split="train", max_new_tokens=config.max_new_tokens)
    val = collect_rankings(world, policy, tokenizer, config.val_prompts, config.k_range, labeller,
                           seed=config.seed + 1, split="test", max_new_tokens=config.max_new_tokens)
    for record in train + val:  # the policy's own input format, so RM and policy read the same text
        record["prompt"] = format_prompt(record["prompt"])
    write_rankings(train, str(data_dir / "train.jsonl"))
    write_rankings(val, str(data_dir / "val.jsonl"))

    groups = [(r["prompt"], r["responses"]) for r in val]
    agreement = pairwise_agreement(Labeller(world, seed=config.seed + 101), Labeller(world, seed=config.seed + 102),
                                   groups)
    sizes = [len(r["responses"]) for r in train]
    return {
        "train_prompts": len(train),
        "val_prompts": len(val),
        "train_comparisons": sum(k * (k - 1) // 2 for k in sizes),
        "mean_k": float(np.mean(sizes)),
        "labeller_temperature": labeller.temperature,
        "labeller_length_bias": labeller.length_bias,
        "labeller_format_bias": labeller.format_bias,
        "labeller_agreement": agreement,
        "sft_mean_length": float(np.mean([len(x.split()) for r in train for x in r["responses"]])),
        "sft_format_rate": float(np.mean([f for r in train for f in format_rate(r["responses"])])),
    }


def train_reward_models(world: World, sft_dir: Path, config: DemoConfig, output_dir: Path, progress: bool):
    """The main RM (from SFT, all data) plus the SFT-vs-random-init data-scaling comparison."""
    data_dir = output_dir / "data"
    train_records = [json.loads(line) for line in (data_dir / "train.jsonl").read_text().splitlines()]
    val = load_preferences(data_dir / "val.jsonl", format="ranking")

    def fit(fraction: float, random_init: bool) -> tuple[RewardModel, dict]:
        count = min(len(train_records), max(8, int(round(fraction * len(train_records)))))
        path = data_dir / ("train.jsonl" if count == len(train_records) else f"train-first-{count}.jsonl")
        if count < len(train_records):
            write_rankings(train_records[:count], str(path))
        name = f"{'random' if random_init else 'sft'}-init-{count}"
        keep = fraction == 1.0 and not random_init
        steps_per_epoch = math.ceil(count / config.rm_batch_size)
        result = train(TrainConfig(
            model=str(sft_dir), data=[str(path)], eval_data=[str(data_dir / "val.jsonl")], format="ranking",
            output_dir=str(output_dir / ("reward-model" if keep else f"rm-runs/{name}")),
            random_init=random_init, epochs=config.rm_epochs, batch_size=config.rm_batch_size,
            learning_rate=config.rm_learning_rate, warmup_ratio=0.05, seed=config.seed,
            max_steps=max(20, int(config.rm_epochs * steps_per_epoch)),
            eval_steps=10**9, save_steps=10**9, logging_steps=10, progress_bar=progress,
        ))
        return result.model, {
            "comparisons": result.summary["train_comparisons"],
            "accuracy_vs_labels": result.eval_metrics["accuracy"],
            "accuracy_vs_gold": accuracy_against_gold(world, result.model, val),
            "seconds": result.summary["seconds"],
        }

    scaling: dict[str, list[dict]] = {"SFT init": [], "random init": []}
    final: dict[str, dict] = {}
    main_model = None
    for fraction in config.data_fractions:
        for label, random_init in (("SFT init", False), ("random init", True)):
            model, metrics = fit(fraction, random_init)
            scaling[label].append(metrics)
            if fraction == 1.0:
                final[label] = metrics
                if not random_init:
                    main_model = model
    main_model.eval()
    return {
        "final": final,
        "data_scaling": scaling,
        "labeller_accuracy_vs_gold": labeller_accuracy_against_gold(world, val, config.seed),
        "length_correlation": reward_length_correlation(main_model, val),
    }, main_model


def accuracy_against_gold(world: World, model: RewardModel, dataset) -> float:
    """Share of response pairs (distinct gold) that the RM orders as the gold reward does."""
    encoded = encode_dataset(dataset, model.tokenizer, model.max_length)
    rewards = score_encoded_dataset(model, encoded, batch_size=256)
    correct = total = 0.0
    for group, r in zip(dataset.groups, rewards, strict=True):
        gold = world.gold_reward([group.prompt] * len(group.responses), group.responses)
        i, j = np.triu_indices(len(group.responses), k=1)
        differs = (gold[i] != gold[j]).numpy()
        agree = ((gold[i] > gold[j]) == (r[i] > r[j])).numpy().astype(float) + 0.5 * (r[i] == r[j]).numpy()
        correct += float(np.minimum(agree, 1.0)[differs].sum())
        total += float(differs.sum())
    return correct / total


def labeller_accuracy_against_gold(world: World, dataset, seed: int) -> float:
    """How often a fresh labeller's ranking orders a pair as gold does: what the labels themselves can teach."""
    labeller = Labeller(world, seed=seed + 103)
    correct = total = 0
    for group in dataset.groups:
        gold = world.gold_reward([group.prompt] * len(group.responses), group.responses).numpy()
        position = np.argsort(labeller.rank(group.prompt, group.responses))
        i, j = np.triu_indices(len(group.responses), k=1)
        differs = gold[i] != gold[j]
        correct += int(((gold[i] > gold[j]) == (position[i] < position[j]))[differs].sum())
        total += int(differs.sum())
    return correct / total


def reward_length_correlation(model: RewardModel, dataset) -> float:
    prompts = [g.prompt for g in dataset.groups for _ in g.responses]
    responses = [r for g in dataset.groups for r in g.responses]
    rewards = model.score(prompts, responses, batch_size=256).numpy()
    return float(np.corrcoef(rewards, response_length(responses))[0, 1])


def run_best_of_n(world: World, policy, tokenizer, proxy, observed, config: DemoConfig, progress: bool) -> dict:
    prompts = [format_prompt(p) for p in world.prompts(config.bon_prompts, split="test", seed=config.seed + 2)]
    result = best_of_n_curve(
        policy, tokenizer, prompts, proxy,
        BestOfNConfig(n_max=config.bon_n_max, num_samples=config.bon_samples, max_new_tokens=config.max_new_tokens,
                      sample_batch_size=1024, score_batch_size=4096, seed=config.seed, progress=progress),
        metrics=observed,
    )
    # Centred so that the n = 1 policy (plain SFT sampling) scores 0, as in Gao et al.
    start = result.curve[0]
    curve = [
        {**row, "sqrt_kl": row["sqrt_kl_bon"], "kl": row["kl_bon"], "proxy": row["proxy"] - start["proxy"],
         "gold": row["gold"] - start["gold"]}
        for row in result.curve
    ]
    d, gold = np.array([row["sqrt_kl"] for row in curve]), np.array([row["gold"] for row in curve])
    return {"curve": curve, "gold_fit": fit_to_dict(fit_best_of_n(d, gold)), "peak": gold_peak(curve, "n"),
            "sft_proxy": start["proxy"], "sft_gold": start["gold"]}


def run_ppo(world, sft_policy, tokenizer, proxy, observed, config: DemoConfig, beta: float, progress: bool) -> dict:
    policy = copy.deepcopy(sft_policy).requires_grad_(True)  # the SFT model is frozen: it is PPO's reference
    prompts = [format_prompt(p) for p in world.prompts(world.num_prompts("train"), split="train")]
    result = train_ppo(
        policy, sft_policy, tokenizer, prompts, proxy,
        PPOConfig(steps=config.ppo_steps, batch_size=config.ppo_batch_size, learning_rate=config.ppo_learning_rate,
                  beta=beta, max_new_tokens=config.max_new_tokens, seed=config.seed, progress=progress),
        metrics=observed,
    )
    # Rollout statistics: the first step alone (the SFT policy itself), then averages over windows of steps.
    window = max(1, (len(result.log) - 1) // config.ppo_eval_points)
    windows = [result.log[:1]] + [result.log[i : i + window] for i in range(1, len(result.log), window)]
    points = [
        {
            "step": rows[-1]["step"],
            "proxy": float(np.mean([r["proxy_reward"] for r in rows])),
            "gold": float(np.mean([r["gold"] for r in rows])),
            "kl": float(np.mean([r["kl"] for r in rows])),
            "length": float(np.mean([r["length"] for r in rows])),
            "format_rate": float(np.mean([r["format_rate"] for r in rows])),
        }
        for rows in windows
    ]
    d = np.sqrt(np.maximum([p["kl"] for p in points], 0.0))
    fit = fit_rl(d, np.array([p["gold"] for p in points]))
    return {"beta": beta, "eval": points, "log": result.log, "gold_fit": fit_to_dict(fit),
            "peak": gold_peak(points, "step")}


# ------------------------------------------------------------------------------------------------ helpers
def gold_peak(curve: list[dict], key: str) -> dict:
    best = max(range(len(curve)), key=lambda i: curve[i]["gold"])
    return {
        key: curve[best][key],
        "gold_at_peak": curve[best]["gold"],
        "sqrt_kl_at_peak": math.sqrt(max(curve[best]["kl"], 0.0)),
        "gold_at_end": curve[-1]["gold"],
        "proxy_at_peak": curve[best]["proxy"],
        "proxy_at_end": curve[-1]["proxy"],
        # "fell" means by more than noise: 0.1 gold units (SFT samples' gold has a std of about 0.7)
        "gold_fell_after_peak": curve[best]["gold"] - curve[-1]["gold"] > 0.1,
    }


def fit_to_dict(fit) -> dict:
    return {"form": fit.form, "alpha": fit.alpha, "beta": fit.beta, "r2": fit.r2, "d_peak": fit.d_peak,
            "r_peak": fit.r_peak}


def finite_json(value):
    """JSON has no inf/nan: write them as null."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: finite_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [finite_json(v) for v in value]
    return value
