"""PRM vs ORM at equal labelling budget, in the step world (`rewardkit experiment prm`).

Setup (`rewardkit.world.steps`): an SFT policy (a tiny Llama) solves running-sum problems step by step and
slips; every step's gold value and every answer's correctness are known. Its solutions to training prompts are
labelled three ways, and a reward model is trained on each with `rewardkit.training.train` from the policy's own
weights (token-classification head, step separator):

- **PRM (human)**: process labels up to the first error (PRM800K-style, a labeller that misses 10% of wrong steps
  and flags 3% of right ones); solutions are labelled until `budget` steps have been read.
- **ORM**: outcome labels (5% flipped) on `budget / outcome_cost` solutions, read at the last step only
  (Lightman et al.'s outcome-supervised RM: the same model and loss, supervision on the answer only).
- **PRM (Monte-Carlo)**: Math-Shepherd labels on the PRM arm's solutions: per step, the share of `rollouts`
  policy continuations that reach the right answer (no human cost; its policy samples are reported).

The slips are carry slips (an addition off by 10, `StepWorldConfig.slip_sizes`): with slips of 1-2 no reward model
of the policy's size learns to find them (held-out step AUROC 0.45-0.53 even from 2,000 gold-labelled solutions and
1,500 optimizer steps, while the policy's own log-probabilities rank them at 0.998), because the 2-layer SFT model
computes a sum only in its last layer at the `=` token, out of reach of the reward read at the step's end; an error
of 10 is checked by size. Every RM trains for the same `rm_steps` optimizer steps whatever its number of labelled
solutions (a few epochs of ~200 solutions, ~26 steps, left the RMs at chance).

Measured against gold on fresh solutions to held-out prompts: AUROC of the solution score (PRM: min and product of
step probabilities; ORM: its last-step probability) for a right answer, step AUROC for on-track steps, and
best-of-n: the expected gold accuracy of the solution each scorer picks from n samples (Gao et al.'s unbiased
estimator). Over-optimization: PPO from the SFT policy against each RM's solution score (PRM min, ORM), the
gold share of right answers tracked against KL. Every figure is a mean over `seeds` runs (labelling draws,
solution order, RM training) with a 95% t-interval; the SFT policy and the test samples are the same across seeds.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from rewardkit.model import RewardModel
from rewardkit.model.step_metrics import auroc
from rewardkit.rl.best_of_n import doubling_ns, expected_best_of_n
from rewardkit.rl.prm_search import solution_scores
from rewardkit.rl.statistics import NOT_RESOLVED, t_interval
from rewardkit.training import TrainConfig, train
from rewardkit.world.policy import SFTConfig, sample_responses, save_policy, train_sft_policy
from rewardkit.world.steps import (
    StepLabeller,
    StepWorld,
    StepWorldConfig,
    monte_carlo_labels,
    split_solution,
    step_tokenizer,
)

ARMS = ("prm", "orm", "prm_mc")
SCORERS = {"PRM min": ("prm", "min"), "PRM product": ("prm", "product"), "ORM": ("orm", "last"),
           "PRM (Monte-Carlo) min": ("prm_mc", "min")}


@dataclass
class PRMExperimentConfig:
    seed: int = 0  # the world, the SFT policy and the test samples
    seeds: int = 3  # labelling + RM training repeats, for the intervals
    world: StepWorldConfig = field(default_factory=lambda: StepWorldConfig(num_terms=(3, 4), slip_sizes=(10,)))
    sft: SFTConfig = field(default_factory=lambda: SFTConfig(hidden_size=128, intermediate_size=256, num_layers=2,
                                                             steps=800, num_demonstrations=20_000, max_new_tokens=32))
    labeller: StepLabeller = field(default_factory=StepLabeller)
    budget: float = 1200.0  # label units: one step read, or `outcome_cost` per outcome label
    rollouts: int = 4  # Monte-Carlo continuations per step
    rm_steps: int = 300  # optimizer steps for every RM (equal optimisation for every arm)
    rm_batch_size: int = 16
    rm_learning_rate: float = 1e-3
    test_prompts: int = 200
    samples_per_prompt: int = 16  # best-of-n up to this n
    ppo_steps: int = 40  # PPO against each RM (0: skip), gold tracked against KL
    ppo_batch_size: int = 32
    # 3e-4 (the demo's quick value) broke the policy at once (gold 0.62 -> 0.19 after one step, ~0.05 after 20), and
    # without the missing-EOS penalty 47% of its solutions went unfinished by step 20, which the PRM's min scored high
    # (examples/prm_ppo_missing_eos.py); at 3e-5 gold first rises, then falls as KL grows (the over-optimization to
    # watch).
    ppo_learning_rate: float = 3e-5
    ppo_beta: float = 0.0  # no KL penalty: over-optimization shows soonest
    # Both RM scores are probabilities in [0, 1]; a solution cut at max_new_tokens gets score - 1 <= 0, below every
    # finished one. Without it a PRM's min over the steps so far scores an unfinished solution as high as a finished
    # one (nothing wrong yet), and PPO learns to stop before answering.
    ppo_missing_eos_penalty: float | None = 1.0

    @classmethod
    def quick(cls) -> PRMExperimentConfig:
        sft = SFTConfig(hidden_size=128, intermediate_size=256, num_layers=2, steps=400, num_demonstrations=10_000,
                        max_new_tokens=32)
        return cls(seeds=3, sft=sft, budget=1000.0, test_prompts=100, samples_per_prompt=8, ppo_steps=20)


def mean_interval(values: list[float]) -> dict:
    """Mean and 95% t-interval over seeds (no interval from one seed), with the per-seed values (for paired
    comparisons: every arm of a seed shares its world samples and labelling seed)."""
    per_seed = [float(v) for v in values]
    if len(per_seed) < 2:
        return {"mean": per_seed[0], "low": float("nan"), "high": float("nan"), "seeds": 1, "per_seed": per_seed}
    estimate = t_interval(per_seed)
    return {"mean": estimate.value, "low": estimate.low, "high": estimate.high, "seeds": len(per_seed),
            "per_seed": per_seed}


def machine() -> dict:
    """The CPU (model and the flags that decide its speed) and the torch threads the run used."""
    import torch

    from rewardkit.device import cpu_flags, cpu_model_name

    flags = sorted(cpu_flags() & {"avx2", "fma", "avx512f", "avx512_bf16", "amx_bf16"})
    return {"cpu_model": cpu_model_name(), "cpu_flags": " ".join(flags), "threads": torch.get_num_threads()}


def run_prm_experiment(
    config: PRMExperimentConfig, output_dir: str | Path, progress: bool = True, command: str | None = None
) -> dict:
    output = Path(output_dir)
    output.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    world = StepWorld(config.world)
    policy, tokenizer = train_sft_policy(world, config.sft, progress=progress, tokenizer=step_tokenizer())
    save_policy(policy, tokenizer, world, str(output / "sft"))

    # The pool labellers draw from (enough for the ORM arm) and the test samples, from the SFT policy.
    pool_size = int(config.budget / config.labeller.outcome_cost)
    pool_prompts = world.prompts(pool_size, "train", seed=config.seed)
    pool = [split_solution(r) or ["answer 0"] for r in sample_responses(policy, tokenizer, pool_prompts,
                                                                       config.sft.max_new_tokens, seed=config.seed)]
    test_prompts = [p for p in world.prompts(config.test_prompts, "test", seed=config.seed)
                    for _ in range(config.samples_per_prompt)]  # fmt: skip
    test = [split_solution(r) or ["answer 0"] for r in sample_responses(
        policy, tokenizer, test_prompts, config.sft.max_new_tokens, seed=config.seed + 1)]
    gold_final = np.array([world.final_correct(p, s) for p, s in zip(test_prompts, test, strict=True)])
    gold_steps = [world.step_values(p, s) for p, s in zip(test_prompts, test, strict=True)]

    runs = [_one_seed(config, world, policy, tokenizer, output, seed, pool_prompts, pool, test_prompts, test,
                      gold_final, gold_steps) for seed in range(config.seeds)]  # fmt: skip
    results = {
        "command": command,
        "config": _jsonable(asdict(config)),
        "policy": {"test_solutions": len(test), "gold_final_accuracy": float(gold_final.mean()),
                   "gold_process_correct": float(np.mean([v[-1] == 1.0 for v in gold_steps]))},
        "runs": runs,
        "summary": _summarize(runs),
        "seconds": time.perf_counter() - started,
        "load_average": os.getloadavg(),
        "machine": machine(),
    }
    (output / "results.json").write_text(json.dumps(results, indent=2))
    return results


def _one_seed(config, world, policy, tokenizer, output, seed, pool_prompts, pool, test_prompts, test, gold_final,
              gold_steps) -> dict:
    rng = np.random.default_rng([seed, 11])
    order = rng.permutation(len(pool))
    process_records, spent = [], 0.0
    for i in order:
        if spent >= config.budget:
            break
        label, read = config.labeller.process_label(world, pool_prompts[i], pool[i], rng)
        spent += read
        process_records.append({"problem": pool_prompts[i], "steps": pool[i], "label": label})
    outcome_records = [{"problem": pool_prompts[i], "steps": pool[i],
                        "step_labels": [None] * (len(pool[i]) - 1)
                        + [config.labeller.outcome_label(world, pool_prompts[i], pool[i], rng)]}
                       for i in order[: int(config.budget / config.labeller.outcome_cost)]]  # fmt: skip
    chosen = [(r["problem"], r["steps"]) for r in process_records]
    mc = monte_carlo_labels(world, policy, tokenizer, [p for p, _ in chosen], [s for _, s in chosen],
                            config.rollouts, seed=seed)
    mc_records = [{"problem": p, "steps": s, "step_labels": labels} for (p, s), labels in zip(chosen, mc, strict=True)]
    data = {"prm": process_records, "orm": outcome_records, "prm_mc": mc_records}
    models = {}
    for arm in ARMS:
        path = output / f"seed-{seed}" / f"{arm}.jsonl"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("".join(json.dumps(r) + "\n" for r in data[arm]))
        models[arm] = train_reward_model(config, output / "sft", path, seed)
    scores = {name: solution_scores(models[arm], test_prompts, test, how).numpy()
              for name, (arm, how) in SCORERS.items()}
    step_auroc = {}
    for arm in ARMS:
        step_rewards = models[arm].score_steps(test_prompts, test, normalize=False).raw_rewards
        values = np.concatenate([r.numpy() for r in step_rewards])
        on_track = np.concatenate([v[: len(r)] for v, r in zip(gold_steps, step_rewards, strict=True)]) == 1.0
        step_auroc[arm] = auroc(values, on_track)
    prompts_count = len(test) // config.samples_per_prompt
    shape = (prompts_count, config.samples_per_prompt)
    gold = gold_final.reshape(shape).astype(float)
    best_of_n = {name: [float(np.mean([expected_best_of_n(s[p], gold[p], n) for p in range(prompts_count)]))
                        for n in doubling_ns(config.samples_per_prompt)]
                 for name, s in ((name, np.nan_to_num(v, nan=-1.0).reshape(shape)) for name, v in scores.items())}
    ppo = {name: ppo_against(config, world, policy, tokenizer, models[arm], how, seed)
           for name, (arm, how) in (("PRM min", SCORERS["PRM min"]), ("ORM", SCORERS["ORM"]))} \
        if config.ppo_steps else {}  # fmt: skip
    return {
        "seed": seed,
        "ppo": ppo,
        "labels": {"prm_solutions": len(process_records), "prm_steps_read": spent,
                   "orm_solutions": len(outcome_records), "mc_solutions": len(mc_records),
                   "mc_policy_samples": config.rollouts * sum(len(s) - 1 for _, s in chosen)},
        "solution_auroc": {name: auroc(s, gold_final) for name, s in scores.items()},
        "step_auroc": step_auroc,
        "best_of_n": {"n": doubling_ns(config.samples_per_prompt), **best_of_n},
    }


def train_reward_model(config: PRMExperimentConfig, sft_dir: str | Path, data: str | Path, seed: int) -> RewardModel:
    """A process RM (token-classification head, step separator) from the SFT policy on step records in `data`,
    for `config.rm_steps` optimizer steps; it is written beside `data` (the file name without its suffix)."""
    data = Path(data)
    train_config = TrainConfig(model=str(sft_dir), data=[str(data)], output_dir=str(data.with_suffix("")),
                               objective="steps", max_steps=config.rm_steps, batch_size=config.rm_batch_size,
                               learning_rate=config.rm_learning_rate, eval_fraction=0.0, save_steps=10**9,
                               seed=seed, progress_bar=False, normalize_rewards=False)
    return train(train_config).model


def ppo_against(config, world, policy, tokenizer, model, aggregation: str, seed: int) -> list[dict]:
    """PPO from the SFT policy against one RM's solution score; per step: KL to the SFT policy, the RM's reward and
    the gold share of right answers of the step's rollouts."""
    import copy

    from rewardkit.rl.ppo import PPOConfig, train_ppo
    from rewardkit.rl.prm_search import prm_reward_fn
    from rewardkit.world.tokenizer import format_prompt

    def problem(prompt: str) -> str:
        return prompt.removesuffix(" <sep>")

    prompts = [format_prompt(p) for p in world.prompts(world.num_prompts("train"), "train", seed=seed)]
    reward = prm_reward_fn(model, split_solution, aggregation, prm_prompt=problem)
    result = train_ppo(
        copy.deepcopy(policy).requires_grad_(True), policy, tokenizer, prompts, reward,
        PPOConfig(steps=config.ppo_steps, batch_size=config.ppo_batch_size, learning_rate=config.ppo_learning_rate,
                  beta=config.ppo_beta, max_new_tokens=config.sft.max_new_tokens, seed=seed, progress=False,
                  missing_eos_penalty=config.ppo_missing_eos_penalty),
        metrics={"gold": lambda ps, rs: world.gold_reward([problem(p) for p in ps], rs)},
    )
    return [{"step": row["step"], "kl": row["kl"], "proxy": row["proxy_reward"], "gold": row["gold"],
             "unfinished": row["unfinished"]} for row in result.log]


def _summarize(runs: list[dict]) -> dict:
    ns = runs[0]["best_of_n"]["n"]
    return {
        "solution_auroc": {name: mean_interval([r["solution_auroc"][name] for r in runs]) for name in SCORERS},
        "step_auroc": {arm: mean_interval([r["step_auroc"][arm] for r in runs]) for arm in ARMS},
        "best_of_n": {name: [{"n": n, **mean_interval([r["best_of_n"][name][i] for r in runs])}
                             for i, n in enumerate(ns)] for name in SCORERS},
        "labels": {key: mean_interval([r["labels"][key] for r in runs]) for key in runs[0]["labels"]},
        "ppo": {name: [{"step": row["step"], **{key: mean_interval([r["ppo"][name][i][key] for r in runs])
                                                 for key in ("kl", "proxy", "gold", "unfinished")}}
                       for i, row in enumerate(runs[0]["ppo"][name])] for name in runs[0]["ppo"]},
    }


def _jsonable(value):
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, tuple | list):
        return [_jsonable(v) for v in value]
    return value


def verdict(summary: dict, a: str, b: str, metric: str = "solution_auroc") -> str:
    """`paired_verdict` of scorers `a` and `b` on a metric of the summary."""
    return paired_verdict(a, summary[metric][a], b, summary[metric][b])


def paired_verdict(a: str, a_entry: dict, b: str, b_entry: dict) -> str:
    """'a > b' or 'a < b' when the 95% t-interval of the paired difference a - b over seeds (both measured on each
    seed's labels and samples) lies above or below 0; otherwise not resolved."""
    x, y = a_entry["per_seed"], b_entry["per_seed"]
    if len(x) < 2:
        return f"{NOT_RESOLVED} (one seed)"
    difference = t_interval(np.subtract(x, y))
    text = f"{a} − {b} = {difference.format('+.3f')}"
    if difference.above(0):
        return f"{a} > {b} ({text})"
    if difference.below(0):
        return f"{a} < {b} ({text})"
    return f"{NOT_RESOLVED} ({text})"
