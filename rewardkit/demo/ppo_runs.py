"""The demo's PPO runs: each evaluated on fresh samples for held-out prompts at fixed steps, run side by side.

A run is a `PPOJob` (which proxy, which β, how many steps). `run_ppo_jobs` runs a seed's jobs in this process or
in a pool of worker processes (`worker_pool`): the models are tiny and run single-threaded, so on a machine with two
cores two runs take about the time of one. Every run loads the SFT policy and its proxy from the seed's
directory and draws from its own seeded streams, so the results are the same however many workers run them
(tests/demo checks this byte for byte).
"""

from __future__ import annotations

import copy
import json
import multiprocessing
from collections.abc import Iterator
from concurrent.futures import Executor, ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from rewardkit.demo.config import DemoConfig
from rewardkit.model import RewardModel
from rewardkit.progress import Console, use_plain_lines
from rewardkit.rl import PPOConfig, train_ppo
from rewardkit.rl.curves import OptimizationCurve
from rewardkit.rl.evaluation import HeldOutEvaluation
from rewardkit.world import Labeller, World, format_prompt, load_world, utilities

DEFAULT_RM = "RM (biased noisy labels)"
UTILITY = "noise-free biased utility"
GOLD_RM = "RM on gold labels"
UNBIASED_RM = "RM on unbiased noisy labels"
CONTROLS = (UTILITY, GOLD_RM, UNBIASED_RM, DEFAULT_RM)  # the mechanism controls, the default last


@dataclass(frozen=True)
class PPOJob:
    proxy: str  # one of CONTROLS
    beta: float
    steps: int


def reward_model_dir(seed_dir: Path, name: str) -> Path:
    """Where the demo saves the reward model called `name`."""
    return seed_dir / ("reward-model" if name == DEFAULT_RM else f"rm-runs/{slug(name)}")


def slug(name: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in name.lower()).strip("-")


def labeller_utility(world: World, labeller: Labeller):
    """The labeller's noise-free utility u = gold + length and format bonuses, as a reward function."""

    def utility(prompts: list[str], responses: list[str]) -> torch.Tensor:
        return torch.tensor([utilities(world, p, [r], labeller.length_bias, labeller.format_bias)[0]
                             for p, r in zip(prompts, responses, strict=True)], dtype=torch.float32)

    return utility


def load_proxy(seed_dir: Path, name: str, world: World, labeller: dict):
    """The proxy `name` of a finished seed as a reward function (`labeller`: the labeller's temperature and
    biases, for the utility)."""
    if name == UTILITY:
        return labeller_utility(world, Labeller(world, labeller["temperature"], labeller["length_bias"],
                                                labeller["format_bias"]))
    return RewardModel.from_pretrained(reward_model_dir(seed_dir, name)).eval().score


def run_ppo(world: World, sft_policy, tokenizer, proxy, reference: dict[str, np.ndarray], eval_prompts: list[str],
            config: DemoConfig, beta: float, steps: int, description: str, console: Console,
            log_path: Path | None = None, metrics: dict | None = None) -> OptimizationCurve:
    """PPO from the SFT policy against `proxy` for `steps` steps, evaluated on fresh samples for `eval_prompts` at
    `config.checkpoint_steps()` up to `steps` (and at `steps`); the curve is centred on `reference`, SFT's per-prompt
    means (for the proxy, when `reference` has none: SFT's fresh samples at step 0). `metrics` are measured too."""
    policy = copy.deepcopy(sft_policy).requires_grad_(True)  # the SFT model stays frozen: it is PPO's reference
    train_prompts = [format_prompt(p) for p in world.prompts(world.num_prompts("train"), split="train")]
    evaluation = HeldOutEvaluation(sft_policy, tokenizer, eval_prompts,
                                   {"gold": world.gold_reward, "proxy": proxy, **(metrics or {})},
                                   describe=world.measure, samples_per_prompt=config.ppo_eval_samples,
                                   max_new_tokens=config.max_new_tokens, seed=config.stage_seed("evaluation"))
    checkpoints = sorted({step for step in config.checkpoint_steps() if step <= steps} | {0, steps})
    evaluation.evaluate(sft_policy, 0)
    result = train_ppo(
        policy, sft_policy, tokenizer, train_prompts, proxy,
        PPOConfig(steps=steps, batch_size=config.ppo_batch_size, learning_rate=config.ppo_learning_rate, beta=beta,
                  max_new_tokens=config.max_new_tokens, seed=config.stage_seed("ppo"), progress=console.enabled,
                  progress_desc=description),
        callback=evaluation.callback(checkpoints[1:]),
    )
    if log_path is not None:
        log_path.parent.mkdir(parents=True, exist_ok=True)
        log_path.write_text("".join(json.dumps(row) + "\n" for row in result.log))
    return evaluation.curve({"proxy": evaluation.values["proxy"][0], **reference})


def run_job(seed_dir: Path, config: DemoConfig, job: PPOJob, eval_prompts: list[str],
            reference: dict[str, np.ndarray], labeller: dict, progress: bool) -> OptimizationCurve:
    """One PPO job of a finished seed, everything loaded from `seed_dir`."""
    sft_dir = seed_dir / "sft-policy"
    world = load_world(str(sft_dir))
    tokenizer = AutoTokenizer.from_pretrained(sft_dir)
    sft = AutoModelForCausalLM.from_pretrained(sft_dir).eval().requires_grad_(False)
    proxy = load_proxy(seed_dir, job.proxy, world, labeller)
    description = f"PPO β={job.beta:g} against the {job.proxy}, seed {config.seed}"
    return run_ppo(world, sft, tokenizer, proxy, {**reference, "proxy": reference[job.proxy]}, eval_prompts, config,
                   job.beta, job.steps, description, Console(progress),
                   seed_dir / "training-logs" / f"ppo-{slug(job.proxy)}-beta-{job.beta:g}.jsonl")


def _start_worker() -> None:
    from transformers.utils import logging as transformers_logging

    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True, warn_only=True)
    transformers_logging.disable_progress_bar()
    use_plain_lines()  # several processes share one terminal


@contextmanager
def worker_pool(workers: int) -> Iterator[Executor | None]:
    """`with worker_pool(workers) as pool`: `workers` processes for `run_ppo_jobs` (None for 1: run in this
    process). Leaving the block normally waits for the jobs; an error or an interruption (Ctrl-C, or SIGTERM,
    which the CLI raises as one) ends the worker processes at once instead of leaving them running."""
    if workers <= 1:
        yield None
        return
    context = multiprocessing.get_context("spawn")  # a clean interpreter: no forked torch or thread state
    pool = ProcessPoolExecutor(workers, mp_context=context, initializer=_start_worker)
    try:
        yield pool
    except BaseException:
        _end_workers(pool)
        raise
    pool.shutdown()


def _end_workers(pool: ProcessPoolExecutor) -> None:
    # shutdown() alone would wait for the running jobs (minutes of PPO each), and the workers ignore a dead parent
    processes = list((pool._processes or {}).values())  # private, but Python 3.11 has no terminate_workers()
    pool.shutdown(wait=False, cancel_futures=True)
    for process in processes:
        process.terminate()
    for process in processes:
        process.join(timeout=10)


def run_ppo_jobs(jobs: list[PPOJob], seed_dir: Path, config: DemoConfig, eval_prompts: list[str],
                 reference: dict[str, np.ndarray], labeller: dict, progress: bool,
                 pool: Executor | None = None) -> dict[PPOJob, OptimizationCurve]:
    """Every job, in this process (no `pool`) or in the pool's processes, longest first."""
    shared = (eval_prompts, reference, labeller, progress)
    if pool is None:
        return {job: run_job(seed_dir, config, job, *shared) for job in jobs}
    futures = {job: pool.submit(run_job, seed_dir, config, job, *shared)
               for job in sorted(jobs, key=lambda job: -job.steps)}
    return {job: futures[job].result() for job in jobs}
