"""`rewardkit experiment frontier`: is the KL penalty more than early stopping, and how do RLOO and GRPO compare
with PPO, against the same reward model with the same sample budget?

Per seed (an independent world, SFT policy, labels and RM, built as the demo builds them: `experiments.worlds`):

    1. world       SFT policy, the biased labeller's rankings, the RM from SFT
    2. methods     PPO at each fixed β, PPO with Ziegler et al.'s adaptive controller, RLOO and GRPO; every run
                   `rl_steps` steps of `rl_batch_size` responses (the same samples), evaluated on fresh samples for
                   the held-out prompts at fixed steps, centred on the SFT policy's samples (step 0), timed

Then per method, over seeds: the frontier (gold against √KL at each checkpoint) with t intervals, the gold and KL at
the end, the cross-fitted peak gold, and gold at the end minus PPO β = 0's gold at the same KL (its frontier
interpolated in √KL): Gao et al. (2022) found a KL penalty behaves like early stopping, i.e. this difference is 0.
A verdict is stated only where the interval over seeds excludes 0.

results.json holds no timings (the same seeds on the same machine write the same file); timings.json holds the
wall-clock of every run, the machine and its load.
"""

from __future__ import annotations

import copy
import json
import time
from concurrent.futures import Executor
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
from transformers import AutoModelForCausalLM, AutoTokenizer

from rewardkit.demo.config import DemoConfig
from rewardkit.demo.pipeline import to_json
from rewardkit.demo.ppo_runs import worker_pool
from rewardkit.experiments.common import experiment_run, finished_seed, seed_consoles, value, write_results
from rewardkit.experiments.worlds import build_world, held_out_prompts
from rewardkit.model import RewardModel
from rewardkit.progress import Console
from rewardkit.rl import GRPOConfig, PPOConfig, RLOOConfig, train_grpo, train_ppo, train_rloo
from rewardkit.rl.curves import summarize_curve
from rewardkit.rl.evaluation import HeldOutEvaluation
from rewardkit.rl.statistics import NOT_RESOLVED, Estimate, over_seeds, t_interval
from rewardkit.world import format_prompt, load_world

BASELINE = "PPO β=0"


@dataclass(frozen=True)
class Method:
    name: str
    algorithm: str  # "ppo", "rloo" or "grpo"
    beta: float  # the KL coefficient (the adaptive controller's initial one)
    adaptive: bool = False


@dataclass
class FrontierConfig:
    seeds: tuple[int, ...] = (0, 1, 2)
    setup: DemoConfig = field(default_factory=DemoConfig)  # world, SFT, preferences, RM and evaluation sizes
    ppo_betas: tuple[float, ...] = (0.0, 0.01, 0.02, 0.05, 0.1)
    adaptive_initial_beta: float = 0.05
    adaptive_kl_target: float = 4.0  # nats of sequence KL the controller steers to
    adaptive_kl_horizon: int = 1000  # samples: beta can move ~1.3% per step of 64
    rloo_beta: float = 0.05  # in the reward (TRL's RLOO default)
    grpo_beta: float = 0.04  # in the loss (DeepSeekMath)
    group_size: int = 4  # RLOO's and GRPO's k responses per prompt
    rl_steps: int = 150
    rl_batch_size: int = 64  # responses per step, for every method
    rl_learning_rate: float = 3e-5
    checkpoints: int = 8  # held-out evaluations after step 0, denser early
    workers: int = 2

    @classmethod
    def quick(cls) -> FrontierConfig:
        """About 5 minutes on 2 idle cores (272 s measured): the demo's --quick world, 40 steps of 32 responses."""
        # the world of the committed 3-seed run, pinned: the demo's --quick has shrunk since (its 2-minute target)
        setup = replace(DemoConfig.quick(), train_prompts=500, bon_samples=256, bon_n_max=128, ppo_steps=40,
                        control_ppo_steps=16, ppo_eval_samples=4, eval_prompts=32, bootstrap_samples=200)
        return cls(setup=setup, rl_steps=40, rl_batch_size=32, rl_learning_rate=3e-4, checkpoints=5,
                   adaptive_kl_horizon=256)

    def methods(self) -> list[Method]:
        return [*(Method(f"PPO β={beta:g}", "ppo", beta) for beta in self.ppo_betas),
                Method(f"PPO adaptive (KL target {self.adaptive_kl_target:g})", "ppo", self.adaptive_initial_beta,
                       adaptive=True),
                Method(f"RLOO k={self.group_size} β={self.rloo_beta:g}", "rloo", self.rloo_beta),
                Method(f"GRPO k={self.group_size} β={self.grpo_beta:g}", "grpo", self.grpo_beta)]

    def checkpoint_steps(self) -> list[int]:
        """0, then `checkpoints` steps up to `rl_steps` spaced as k^1.5 (denser early, where gold peaks)."""
        return sorted({round(self.rl_steps * (k / self.checkpoints) ** 1.5) for k in range(self.checkpoints + 1)})

    def to_dict(self) -> dict:
        return asdict(self)


def run_frontier(config: FrontierConfig, output_dir: str | Path, console: Console | None = None,
                 resume: bool = False) -> dict:
    """Every seed's world and every method's run; writes results.json and timings.json; returns the results.
    `resume`: a seed whose seed-N/results.json an earlier run with the same config finished is read, not rerun."""
    console = console or Console()
    runs, timings = [], {}
    with experiment_run(config.seeds, output_dir) as output_dir, worker_pool(config.workers) as pool:
        for seed, seed_console in seed_consoles(config.seeds, console):
            finished = finished_seed(output_dir / f"seed-{seed}", config.to_dict()) if resume else None
            if finished is not None:
                seed_console.print("finished by an earlier run: its results are reused")
                run, seconds = finished
            else:
                run, seconds = run_seed(config, seed, output_dir / f"seed-{seed}", seed_console, pool)
            runs.append(run)
            if seconds is not None:
                timings[str(seed)] = seconds
    results = combine(runs, config)
    write_results(output_dir, results, timings, workers=config.workers)
    return results


def run_seed(config: FrontierConfig, seed: int, seed_dir: Path, console: Console,
             pool: Executor | None) -> tuple[dict, dict]:
    """The world and every method for one seed; returns (results, timings) and writes seed_dir/results.json."""
    setup = replace(config.setup, seed=seed)
    started = time.perf_counter()
    world_facts = build_world(setup, seed_dir, console).facts
    methods = config.methods()
    with console.stage("Policy optimization", f"{len(methods)} runs of {config.rl_steps} steps x "
                       f"{config.rl_batch_size} responses, held-out evaluation at steps "
                       f"{', '.join(map(str, config.checkpoint_steps()))}"):
        args = (seed_dir, config, seed, console.enabled)
        if pool is None:
            outcomes = {m: run_method(m, *args) for m in methods}
        else:
            futures = {m: pool.submit(run_method, m, *args) for m in methods}
            outcomes = {m: futures[m].result() for m in methods}
    results = {"seed": seed, "config": config.to_dict(), "world": world_facts,
               "methods": {m.name: outcome["summary"] for m, outcome in outcomes.items()}}
    (seed_dir / "results.json").write_text(to_json(results))
    seconds = {m.name: outcome["seconds"] for m, outcome in outcomes.items()}
    seconds |= {"stages": console.seconds, "total": round(time.perf_counter() - started, 2)}
    (seed_dir / "timings.json").write_text(json.dumps(seconds, indent=2))
    return json.loads(to_json(results)), seconds  # as written: a resumed run combines exactly the same numbers


def run_method(method: Method, seed_dir: Path, config: FrontierConfig, seed: int, progress: bool) -> dict:
    """One method's run of a finished world: its summarized held-out curve and its seconds (training, evaluation)."""
    setup = replace(config.setup, seed=seed)
    sft_dir = seed_dir / "sft-policy"
    world = load_world(str(sft_dir))
    tokenizer = AutoTokenizer.from_pretrained(sft_dir)
    sft = AutoModelForCausalLM.from_pretrained(sft_dir).eval().requires_grad_(False)
    proxy = RewardModel.from_pretrained(seed_dir / "reward-model").eval().score
    policy = copy.deepcopy(sft).requires_grad_(True)
    train_prompts = [format_prompt(p) for p in world.prompts(world.num_prompts("train"), split="train")]
    evaluation = HeldOutEvaluation(sft, tokenizer, held_out_prompts(world, setup),
                                   {"gold": world.gold_reward, "proxy": proxy},
                                   samples_per_prompt=setup.ppo_eval_samples, max_new_tokens=setup.max_new_tokens,
                                   seed=setup.stage_seed("evaluation"))
    evaluation.evaluate(sft, 0)  # also the centre: every run of a seed draws the same step-0 samples
    evaluate_at = evaluation.callback(config.checkpoint_steps()[1:])
    evaluation_seconds = 0.0

    def timed_evaluation(row: dict, trained) -> None:
        nonlocal evaluation_seconds
        started = time.perf_counter()
        evaluate_at(row, trained)
        evaluation_seconds += time.perf_counter() - started

    shared = dict(steps=config.rl_steps, batch_size=config.rl_batch_size, learning_rate=config.rl_learning_rate,
                  beta=method.beta, max_new_tokens=setup.max_new_tokens, seed=setup.stage_seed(method.algorithm),
                  progress=progress, progress_desc=f"{method.name}, seed {seed}")
    started = time.perf_counter()
    if method.algorithm == "ppo":
        train_ppo(policy, sft, tokenizer, train_prompts, proxy, callback=timed_evaluation,
                  config=PPOConfig(**shared, adaptive_kl=method.adaptive, kl_target=config.adaptive_kl_target,
                                   kl_horizon=config.adaptive_kl_horizon))
    elif method.algorithm == "rloo":
        train_rloo(policy, sft, tokenizer, train_prompts, proxy, RLOOConfig(**shared, group_size=config.group_size),
                   callback=timed_evaluation)
    else:
        train_grpo(policy, sft, tokenizer, train_prompts, proxy, GRPOConfig(**shared, group_size=config.group_size),
                   callback=timed_evaluation)
    total = time.perf_counter() - started
    start = {name: values[0] for name, values in evaluation.values.items()}
    summary = summarize_curve(evaluation.curve(start), num_bootstrap=setup.bootstrap_samples,
                              seed=setup.stage_seed("bootstrap"))
    return {"summary": summary, "seconds": {"training": round(total - evaluation_seconds, 2),
                                            "evaluation": round(evaluation_seconds, 2)}}


# ---------------------------------------------------------------------------------------------- over seeds
def gold_at_matched_kl(points: list[dict], baseline: list[dict]) -> dict:
    """Gold at this run's last checkpoint minus the baseline run's gold at the same √KL (its checkpoints
    interpolated linearly in √KL; None when that √KL lies beyond the baseline's reach). Point values only."""
    end = points[-1]
    d = np.array([p["sqrt_kl"] for p in baseline])
    gold = np.array([value(p["gold"]) for p in baseline])
    order = np.argsort(d)
    inside = d.min() <= end["sqrt_kl"] <= d.max()
    reference = float(np.interp(end["sqrt_kl"], d[order], gold[order])) if inside else None
    return {"sqrt_kl": end["sqrt_kl"], "gold": value(end["gold"]), "baseline_gold": reference,
            "difference": None if reference is None else value(end["gold"]) - reference}


def combine(runs: list[dict], config: FrontierConfig) -> dict:
    """Estimates over seeds (t intervals), per method; the matched-KL differences and their verdicts."""
    seeds = [run["seed"] for run in runs]
    methods = list(runs[0]["methods"])
    combined = over_seeds([run["methods"] for run in runs])
    matched = {}
    for name in methods:
        if name == BASELINE:
            continue
        per_seed = [gold_at_matched_kl(run["methods"][name]["points"], run["methods"][BASELINE]["points"])
                    for run in runs]
        differences = [row["difference"] for row in per_seed if row["difference"] is not None]
        estimate = t_interval(differences) if len(differences) >= 2 else None
        matched[name] = {"per_seed": per_seed, "seeds_within_reach": len(differences),
                         "difference": None if estimate is None else estimate.to_dict(),
                         "verdict": _matched_verdict(name, estimate)}
    intervals = (f"t interval over {len(seeds)} seeds (independent worlds, policies, labels, reward models and RL "
                 "runs)" if len(seeds) > 1 else "one seed: bootstrap over held-out prompts (evaluation noise only)")
    return {"seeds": seeds, "intervals": intervals, "config": config.to_dict(),
            "world": over_seeds([run["world"] for run in runs]), "methods": combined,
            "matched_kl_vs_ppo_beta_0": matched}


def _matched_verdict(name: str, estimate: Estimate | None) -> str:
    if estimate is None:
        return f"{NOT_RESOLVED} (an interval needs a matched point on 2 or more seeds)"
    if estimate.above(0.0):
        return f"{name} ends above PPO β=0's frontier at the same KL: more than early stopping"
    if estimate.below(0.0):
        return f"{name} ends below PPO β=0's frontier at the same KL: worse than early stopping"
    return f"{NOT_RESOLVED}: no difference from early stopping (PPO β=0 at the same KL) resolved"

