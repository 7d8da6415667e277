"""One seed's world for an experiment, built as the demo builds it: the SFT policy, the biased labeller's rankings and
the reward model trained on them from the SFT checkpoint (`rewardkit.demo`'s stages, at a `DemoConfig`'s sizes).

    seed_dir/sft-policy/      the SFT policy, its tokenizer and the world's config (load_world reads it back)
    seed_dir/data/            train.jsonl, val.jsonl (K-wise rankings by the biased noisy labeller) and relabellings
    seed_dir/reward-model/    the RM from SFT on train.jsonl
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

from rewardkit.data import load_preferences
from rewardkit.demo.config import DemoConfig
from rewardkit.demo.pipeline import collect_preferences
from rewardkit.progress import Console
from rewardkit.rl import BestOfNConfig
from rewardkit.rl.best_of_n import sample_and_score
from rewardkit.rl.curves import OptimizationCurve
from rewardkit.training import TrainConfig, train
from rewardkit.world import (
    Labeller,
    World,
    estimate_gold_offset,
    format_prompt,
    read_rankings,
    save_policy,
    train_sft_policy,
)


@dataclass
class SeedWorld:
    world: World
    policy: object  # the SFT policy (frozen)
    tokenizer: object
    labeller: Labeller
    val_records: list[dict]  # the held-out rankings
    facts: dict  # JSON-ready: data sizes, the labeller, the RM's held-out accuracy


def quick_setup() -> DemoConfig:
    """The --quick world of scaling, ensembles and length: the demo's --quick world (400 training prompts), pinned
    where the demo's own --quick has shrunk since for its 2-minute target, with the best-of-n set these experiments
    re-rank (128 samples per prompt, n up to 64) and 200 bootstrap resamples."""
    return replace(DemoConfig.quick(), ppo_steps=32, control_ppo_steps=16, bon_samples=128, bon_n_max=64,
                   bootstrap_samples=200)


def build_world(config: DemoConfig, seed_dir: Path, console: Console, reward_model: bool = True) -> SeedWorld:
    """SFT policy, preferences and (unless not `reward_model`) the RM for `config.seed` into `seed_dir`."""
    seed_dir.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(config.seed)
    world = World(config.world)
    with console.stage("SFT policy", f"{config.sft.num_demonstrations:,} demonstrations, {config.sft.steps} steps"):
        policy, tokenizer = train_sft_policy(world, config.sft, progress=console.enabled)
        world.gold_offset = estimate_gold_offset(world, policy, tokenizer, seed=config.stage_seed("gold-offset"))
        save_policy(policy, tokenizer, world, str(seed_dir / "sft-policy"))
        policy.requires_grad_(False)
    with console.stage("Preferences", f"{config.train_prompts:,} + {config.val_prompts:,} prompts"):
        data, labeller, val_records = collect_preferences(world, policy, tokenizer, config, seed_dir / "data",
                                                          console)
    if reward_model:
        with console.stage("Reward model", f"from SFT, {data['train_comparisons']:,} comparisons"):
            data["reward_model"] = train_reward_model(seed_dir / "sft-policy", seed_dir / "data" / "train.jsonl",
                                                      seed_dir / "data" / "val.jsonl", seed_dir / "reward-model",
                                                      config, console)
    return SeedWorld(world, policy, tokenizer, labeller, val_records, data)


def seed_world(setup: DemoConfig, seed: int, seed_dir: Path,
               console: Console) -> tuple[DemoConfig, SeedWorld, list[dict]]:
    """An experiment's world for `seed` without the demo's RM: `setup` at that seed, the world, and its training
    rankings (seed_dir/data/train.jsonl)."""
    setup = replace(setup, seed=seed)
    built = build_world(setup, seed_dir, console, reward_model=False)
    return setup, built, read_rankings(str(seed_dir / "data" / "train.jsonl"))


def train_reward_model(model: Path | str, data: Path, eval_data: Path, output_dir: Path, config: DemoConfig,
                       console: Console, random_init: bool = False, seed: int | None = None,
                       description: str = "RM") -> dict:
    """One RM on `data` (rankings, or pairs) with the demo's RM settings (epochs, prompts per step, learning rate);
    returns its held-out accuracy against the labels and its steps. `seed` defaults to the demo's RM stream.

    Pairs are batched by prompt as rankings are: a step holds `rm_batch_size` prompts' worth of pairs, so the same
    comparisons as rankings or as pairs give the same number of steps."""
    records = [json.loads(line) for line in data.read_text().splitlines() if line.strip()]
    data_format = "ranking" if "ranking" in records[0] else "pairs"
    groups = len(records) if data_format == "ranking" else len({record["prompt"] for record in records})
    batch_size = config.rm_batch_size * (1 if data_format == "ranking" else math.ceil(len(records) / groups))
    steps = max(20, int(config.rm_epochs * math.ceil(groups / config.rm_batch_size)))
    comparisons = load_preferences(data, format=data_format).num_comparisons
    train_format = data_format if data_format == "ranking" else "auto"  # pairs to train on, rankings to validate on
    bar = console.bar(steps, f"{description}, {comparisons:,} comparisons, seed {config.seed}")
    result = train(TrainConfig(
        model=str(model), data=[str(data)], eval_data=[str(eval_data)], format=train_format,
        output_dir=str(output_dir), random_init=random_init, batch_size=batch_size,
        learning_rate=config.rm_learning_rate, warmup_ratio=0.05,
        seed=config.stage_seed("rm") if seed is None else seed, max_steps=steps,
        eval_steps=10**9, save_steps=10**9, logging_steps=10, progress_bar=False,
    ), callbacks=[lambda step, metrics, model: bar.update(loss=f"{metrics['loss']:.3f}")])
    bar.close()
    return {"comparisons": comparisons, "steps": result.steps,
            "accuracy": float((result.eval_metrics or {}).get("accuracy", np.nan))}


@dataclass
class SampleSet:
    """N samples per held-out prompt from the SFT policy, flattened prompt by prompt, with their gold [P, N]."""

    prompts: list[str]  # one per sample
    texts: list[str]
    gold: np.ndarray

    def reshape(self, scores: np.ndarray) -> np.ndarray:
        """A scorer's flat scores as [P, N], like `gold`."""
        return np.asarray(scores).reshape(self.gold.shape)


def shared_samples(built: SeedWorld, config: DemoConfig, console: Console) -> SampleSet:
    """ONE best-of-n sample set for the seed's held-out prompts (`bon_samples` each), for every scorer to re-rank."""
    with console.stage("Best-of-n samples", f"{config.eval_prompts} held-out prompts x {config.bon_samples} samples"):
        return policy_samples(built.world, built.policy, built.tokenizer, config, console.enabled)


def policy_samples(world: World, policy: object, tokenizer: object, config: DemoConfig,
                   progress: bool = False) -> SampleSet:
    """`bon_samples` samples from `policy` for each of the seed's held-out prompts, gold-scored (the best-of-n
    stream's seed, so the SFT policy's set is the shared one)."""
    prompts = held_out_prompts(world, config)
    bon = BestOfNConfig(n_max=config.bon_n_max, num_samples=config.bon_samples, max_new_tokens=config.max_new_tokens,
                        sample_batch_size=1024, score_batch_size=4096, seed=config.stage_seed("best-of-n"),
                        progress=progress)
    responses, scores = sample_and_score(policy, tokenizer, prompts, {"gold": world.gold_reward}, config.bon_samples,
                                         bon)
    return SampleSet([p for p, texts in zip(prompts, responses, strict=True) for _ in texts],
                     [t for texts in responses for t in texts], scores["gold"])


def best_of_n_curve(samples: SampleSet, scores: np.ndarray, config: DemoConfig) -> OptimizationCurve:
    """The gold curve of best-of-n ranked by `scores` (flat, one per sample), n up to `bon_n_max`."""
    return OptimizationCurve.from_best_of_n(samples.reshape(scores), {"gold": samples.gold}, config.bon_n_max)


def held_out_prompts(world: World, config: DemoConfig) -> list[str]:
    """The demo's held-out evaluation prompts for this seed (test split, formatted as the policy reads them)."""
    return [format_prompt(p) for p in
            world.prompts(config.eval_prompts, split="test", seed=config.stage_seed("eval-prompts"))]
