"""`rewardkit demo`: the whole life of a reward model in a synthetic world whose true (gold) reward is known.

Per seed, top to bottom in `run_seed` (each seed is an independent world, in its own directory seed-N/):

    1. SFT policy    a tiny Llama imitates the world's demonstrations                        (rewardkit.world)
    2. preferences   it answers each prompt K = 4..9 times; a biased, noisy labeller ranks    (rewardkit.world)
    3. RMs           the RM from the SFT checkpoint, SFT vs random init at several data sizes, and the
                     controls' RMs: on gold labels (Gao et al.'s setting) and on unbiased noisy labels
    4. ceilings      RM accuracy next to the Bayes ceiling, labeller agreement, the noise-free labeller utility and
                     the length-only rule, on held-out rankings                                  (world.ceilings)
    5. best-of-n     one held-out sample set from SFT, re-ranked by the RM and by every control
    6. PPO           one run per KL penalty β against the RM, evaluated on fresh samples for the held-out prompts at
                     fixed steps, centred on SFT's samples for the same prompts             (rl.evaluation)
    7. controls      PPO at β = 0 against each control (the noise-free biased utility, the gold-label RM, the
                     unbiased-label RM) for `control_ppo_steps`

`run_demo` runs it for each seed, writes seed-N/results.json, and combines the seeds (every estimate becomes a mean
with a t interval over seeds) into results.json; `rewardkit.demo.report` writes the report from that. results.json
holds no timings: the same seed on the same machine writes the same file (timings go to timings.json).
"""

from __future__ import annotations

import json
import math
import os
import platform
from collections.abc import Sequence
from concurrent.futures import Executor
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from rewardkit.data import load_preferences
from rewardkit.demo.config import DemoConfig
from rewardkit.demo.ppo_runs import (
    CONTROLS,
    DEFAULT_RM,
    GOLD_RM,
    UNBIASED_RM,
    UTILITY,
    PPOJob,
    labeller_utility,
    reward_model_dir,
    run_ppo_jobs,
    worker_pool,
)
from rewardkit.model import RewardModel
from rewardkit.progress import Console, format_seconds, quiet_libraries
from rewardkit.rl import BestOfNConfig
from rewardkit.rl.best_of_n import sample_and_score
from rewardkit.rl.curves import OptimizationCurve, paired_difference, summarize_curve
from rewardkit.rl.statistics import bootstrap, over_seeds
from rewardkit.training import TrainConfig, train
from rewardkit.world import (
    Labeller,
    World,
    calibrate_temperature,
    collect_rankings,
    estimate_gold_offset,
    expected_agreement,
    format_prompt,
    format_rate,
    rank_by_gold,
    relabel,
    response_length,
    save_policy,
    train_sft_policy,
    write_rankings,
)
from rewardkit.world.ceilings import LENGTH_RULE, accuracy_by_length, ceilings_and_baselines, held_out_pairs


def run_demo(config: DemoConfig, output_dir: str | Path, seeds: Sequence[int] | None = None,
             console: Console | None = None, progress: bool = True, workers: int = 1) -> dict:
    """Run every stage for each seed (default: `config.seed`), write seed-N/results.json and the combined
    results.json (and timings.json) into `output_dir`; return the combined results. `workers` processes run the
    PPO runs of a seed side by side (the results do not depend on it)."""
    output_dir = Path(output_dir)
    seeds = list(seeds) if seeds is not None else [config.seed]
    if len(set(seeds)) != len(seeds):
        raise ValueError(f"seeds must be distinct, got {seeds}")
    console = console or Console(enabled=progress)
    output_dir.mkdir(parents=True, exist_ok=True)
    runs, timings = [], {}
    # The models are tiny: one thread avoids thread hand-off costs that dominate at this size (a tiny PPO run took 7x
    # longer with 2 threads on a busy 2-core machine), and a fixed thread count keeps float sums in one order.
    threads, deterministic = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True, warn_only=True)
    try:
        with quiet_libraries(), worker_pool(workers) as pool:
            for number, seed in enumerate(seeds, 1):
                label = f"seed {seed}" + (f", {number} of {len(seeds)}" if len(seeds) > 1 else "")
                seed_console = Console(console.enabled, console.stream, prefix=f"[{label}] ")
                runs.append(run_seed(replace(config, seed=seed), output_dir / f"seed-{seed}", seed_console, pool))
                timings[str(seed)] = seed_console.seconds | {"total": round(sum(seed_console.seconds.values()), 2)}
                _print_time_left(console, timings, len(seeds) - number)
    finally:
        torch.set_num_threads(threads)
        torch.use_deterministic_algorithms(deterministic)
    results = combine_seeds(runs, config)
    (output_dir / "results.json").write_text(to_json(results))
    (output_dir / "timings.json").write_text(json.dumps(machine_timings(timings), indent=2))
    return results


def _print_time_left(console: Console, timings: dict, remaining: int) -> None:
    done = [t["total"] for t in timings.values()]
    if remaining:
        console.print(f"{len(done)} seed(s) done in {format_seconds(sum(done))}; about "
                      f"{format_seconds(remaining * float(np.mean(done)))} left for {remaining} more")


def run_seed(config: DemoConfig, output_dir: Path, console: Console, pool: Executor | None = None) -> dict:
    """Every stage for one seed; writes results.json (and checkpoints, data) into `output_dir`; the PPO runs go to
    `pool`'s worker processes when there is one."""
    output_dir.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(config.seed)
    world = World(config.world)
    results: dict = {"seed": config.seed, "config": config.to_dict()}

    def stage(name: str, detail: str):
        return console.stage(name, detail, total=6)

    with stage("SFT policy", f"{config.sft.num_demonstrations:,} demonstrations, {config.sft.steps} steps"):
        policy, tokenizer = train_sft_policy(world, config.sft, progress=console.enabled)
        world.gold_offset = estimate_gold_offset(world, policy, tokenizer, seed=config.stage_seed("gold-offset"))
        sft_dir = output_dir / "sft-policy"
        save_policy(policy, tokenizer, world, str(sft_dir))
        policy.requires_grad_(False)

    with stage("Preferences", f"{config.train_prompts:,} + {config.val_prompts:,} prompts, K = "
                              f"{config.k_range[0]}..{config.k_range[1]} responses each"):
        results["data"], labeller, val_records = collect_preferences(world, policy, tokenizer, config,
                                                                      output_dir / "data", console)

    rm_runs = 2 * len(config.data_fractions) + 2
    with stage("Reward models", f"{rm_runs} runs"):
        results["reward_models"], models = train_reward_models(sft_dir, config, output_dir, console)

    with stage("Ceilings and baselines", f"{len(val_records)} held-out rankings"):
        scores = {name: [_score(model, r["prompt"], r["responses"]) for r in val_records]
                  for name, model in models.items()}
        pairs = held_out_pairs(world, labeller, val_records, scores)
        results["ceilings"] = ceilings_and_baselines(pairs, seed=config.stage_seed("bootstrap"))
        results["accuracy_by_length"] = {name: accuracy_by_length(pairs, name, config.stage_seed("bootstrap"))
                                         for name in (DEFAULT_RM, LENGTH_RULE)}
        flat = [(r["prompt"], x) for r in val_records for x in r["responses"]]
        rm_scores = np.concatenate(scores[DEFAULT_RM])
        results["reward_models"]["length_correlation"] = float(
            np.corrcoef(rm_scores, response_length([x for _, x in flat]))[0, 1])

    proxies = {DEFAULT_RM: models[DEFAULT_RM].score, UTILITY: labeller_utility(world, labeller),
               GOLD_RM: models[GOLD_RM].score, UNBIASED_RM: models[UNBIASED_RM].score}
    eval_prompts = [format_prompt(p) for p in
                    world.prompts(config.eval_prompts, split="test", seed=config.stage_seed("eval-prompts"))]
    with stage("Best-of-n", f"{config.eval_prompts} held-out prompts x {config.bon_samples} samples, "
                            f"re-ranked by the RM and {len(proxies) - 1} controls"):
        results["best_of_n"], sft_scores, bon_curves = run_best_of_n(world, policy, tokenizer, eval_prompts,
                                                                     proxies, config, console)
        (output_dir / "sft-reference.json").write_text(json.dumps(  # the centre for later runs (--mitigations)
            {"prompts": eval_prompts, "means": {name: values.tolist() for name, values in sft_scores.items()}}))

    jobs = [PPOJob(DEFAULT_RM, beta, config.ppo_steps) for beta in config.ppo_betas]
    if config.control_ppo_steps:
        jobs += [PPOJob(name, 0.0, config.control_ppo_steps) for name in CONTROLS
                 if name != DEFAULT_RM or 0.0 not in config.ppo_betas]
    betas = ", ".join(f"{b:g}" for b in config.ppo_betas)
    controls = f"; β = 0 against each control for {config.control_ppo_steps} steps" if config.control_ppo_steps else ""
    side_by_side = " side by side in worker processes" if pool is not None else ""
    with stage("PPO", f"β = {betas} against the RM for {config.ppo_steps} steps{controls}: {len(jobs)} runs"
                      f"{side_by_side}, held-out evaluation at fixed steps"):
        labeller = {key: results["data"][f"labeller_{key}"] for key in ("temperature", "length_bias", "format_bias")}
        curves = run_ppo_jobs(jobs, output_dir, config, eval_prompts, sft_scores, labeller, console.enabled, pool)
    ppo_curves = {job.beta: curve for job, curve in curves.items() if job.proxy == DEFAULT_RM and
                  job.steps == config.ppo_steps}
    results["ppo"] = {f"β={beta:g}": summarize(curve, config) for beta, curve in ppo_curves.items()}
    if 0.0 in ppo_curves:
        results["ppo_comparisons"] = {
            f"β={beta:g} minus β=0, gold at the end": paired_difference(
                ppo_curves[0.0], curve, seed=config.stage_seed("bootstrap"))
            for beta, curve in ppo_curves.items() if beta != 0.0}
    results["controls"] = {"best_of_n": control_differences(bon_curves, config)}
    if config.control_ppo_steps:
        control_curves = {job.proxy: curve for job, curve in curves.items() if job.steps == config.control_ppo_steps
                          and job.beta == 0.0}
        if DEFAULT_RM not in control_curves:  # the main β = 0 run, at equal steps
            control_curves[DEFAULT_RM] = ppo_curves[0.0].up_to(config.control_ppo_steps)
        results["controls_ppo"] = {name: summarize(control_curves[name], config) for name in CONTROLS}
        results["controls"]["ppo"] = control_differences(control_curves, config)
        full_runs = {**control_curves, DEFAULT_RM: ppo_curves.get(0.0, control_curves[DEFAULT_RM])}
        results["controls"]["ppo_matched_kl"] = matched_kl_differences(full_runs, config)
        # the utility moves the policy slowest; the reward models alone meet at a larger KL, past gold's peak
        results["controls"]["ppo_matched_kl_reward_models"] = matched_kl_differences(
            {name: curve for name, curve in full_runs.items() if name != UTILITY}, config)
    (output_dir / "results.json").write_text(to_json(results))
    return results


# ------------------------------------------------------------------------------------------------ stages
def collect_preferences(world: World, policy, tokenizer, config: DemoConfig, data_dir: Path,
                        console: Console) -> tuple[dict, Labeller, list[dict]]:
    """K-wise rankings for training and validation in rewardkit's ranking format, plus the controls' relabellings
    of the training responses: by gold (noise-free) and by an unbiased labeller as noisy as the biased one."""
    labeller = Labeller(world, seed=config.stage_seed("labeller"))
    with console.bar(2, f"sampling and ranking, seed {config.seed}", unit="splits") as bar:
        train = collect_rankings(world, policy, tokenizer, config.train_prompts, config.k_range, labeller,
                                 seed=config.stage_seed("collect-train"), split="train",
                                 max_new_tokens=config.max_new_tokens)
        bar.update()
        val = collect_rankings(world, policy, tokenizer, config.val_prompts, config.k_range, labeller,
                               seed=config.stage_seed("collect-val"), split="test",
                               max_new_tokens=config.max_new_tokens)
        bar.update()
    for record in train + val:  # the policy's own input format, so RM and policy read the same text
        record["prompt"] = format_prompt(record["prompt"])
    groups = [(r["prompt"], r["responses"]) for r in train]
    agreement = expected_agreement(world, groups, labeller.temperature, labeller.length_bias, labeller.format_bias)
    unbiased = Labeller(world, calibrate_temperature(world, groups, agreement, 0.0, 0.0), 0.0, 0.0,
                        seed=config.stage_seed("unbiased-labeller"))
    write_rankings(train, str(data_dir / "train.jsonl"))
    write_rankings(val, str(data_dir / "val.jsonl"))
    write_rankings(rank_by_gold(world, train), str(data_dir / "train-gold-labels.jsonl"))
    write_rankings(relabel(train, unbiased), str(data_dir / "train-unbiased-labels.jsonl"))
    sizes = [len(r["responses"]) for r in train]
    return {
        "train_prompts": len(train),
        "val_prompts": len(val),
        "train_comparisons": sum(k * (k - 1) // 2 for k in sizes),
        "mean_k": float(np.mean(sizes)),
        "labeller_temperature": labeller.temperature,
        "labeller_length_bias": labeller.length_bias,
        "labeller_format_bias": labeller.format_bias,
        "labeller_agreement_train": agreement,
        "unbiased_labeller_temperature": unbiased.temperature,
        "sft_mean_length": float(np.mean([len(x.split()) for r in train for x in r["responses"]])),
        "sft_format_rate": float(np.mean([f for r in train for f in format_rate(r["responses"])])),
    }, labeller, val


def train_reward_models(sft_dir: Path, config: DemoConfig, output_dir: Path,
                        console: Console) -> tuple[dict, dict[str, RewardModel]]:
    """The RM from SFT on all rankings, the SFT-vs-random-init data-scaling runs and the controls' two RMs; every
    run with the same seed, steps per epoch and learning rate. Returns per-run facts and the models by name."""
    data_dir = output_dir / "data"
    train_records = [json.loads(line) for line in (data_dir / "train.jsonl").read_text().splitlines()]

    def fit(data: Path, description: str, save_to: Path, random_init: bool = False) -> tuple[RewardModel, dict]:
        num_groups = sum(1 for line in data.read_text().splitlines() if line.strip())
        dataset = load_preferences(data, format="ranking")
        steps = max(20, int(config.rm_epochs * math.ceil(num_groups / config.rm_batch_size)))
        bar = console.bar(steps, f"{description}, {dataset.num_comparisons:,} comparisons, seed {config.seed}")
        result = train(TrainConfig(
            model=str(sft_dir), data=[str(data)], eval_data=[str(data_dir / "val.jsonl")], format="ranking",
            output_dir=str(save_to), random_init=random_init,
            batch_size=config.rm_batch_size, learning_rate=config.rm_learning_rate, warmup_ratio=0.05,
            seed=config.stage_seed("rm"), max_steps=steps, eval_steps=10**9, save_steps=10**9, logging_steps=10,
            progress_bar=False,
        ), callbacks=[lambda step, metrics, model: bar.update(loss=f"{metrics['loss']:.3f}")])
        bar.close()
        return result.model.eval(), {"comparisons": result.summary["train_comparisons"], "steps": result.steps}

    models: dict[str, RewardModel] = {}
    facts: dict[str, dict] = {}
    for fraction in config.data_fractions:
        count = min(len(train_records), max(8, int(round(fraction * len(train_records)))))
        path = data_dir / "train.jsonl"
        if count < len(train_records):
            path = data_dir / f"train-first-{count}.jsonl"
            write_rankings(train_records[:count], str(path))
        for init, random_init in (("SFT", False), ("random init", True)):
            full = count == len(train_records)
            name = DEFAULT_RM if full and not random_init else f"RM from {init}, {count} prompts"
            save_to = reward_model_dir(output_dir, name) if name == DEFAULT_RM else \
                output_dir / f"rm-runs/{'random' if random_init else 'sft'}-init-{count}"
            models[name], facts[name] = fit(path, f"RM from {init}", save_to, random_init)
            facts[name] |= {"init": init, "prompts": count, "labels": "biased noisy labeller"}
    for name, file, labels in ((GOLD_RM, "train-gold-labels.jsonl", "gold (noise-free)"),
                               (UNBIASED_RM, "train-unbiased-labels.jsonl", "unbiased noisy labeller")):
        models[name], facts[name] = fit(data_dir / file, f"{name} from SFT", reward_model_dir(output_dir, name))
        facts[name] |= {"init": "SFT", "prompts": len(train_records), "labels": labels}
    return {"runs": facts}, models


def run_best_of_n(world: World, policy, tokenizer, prompts: list[str], proxies: dict, config: DemoConfig,
                  console: Console) -> tuple[dict, dict[str, np.ndarray], dict[str, OptimizationCurve]]:
    """One sample set (N per held-out prompt) from SFT, scored once by every proxy and by gold; each proxy's best-of-n
    curve re-ranks the same samples. Also returns SFT's per-prompt means (the centre for PPO's evaluation)."""
    bon = BestOfNConfig(n_max=config.bon_n_max, num_samples=config.bon_samples, max_new_tokens=config.max_new_tokens,
                        sample_batch_size=1024, score_batch_size=4096, seed=config.stage_seed("best-of-n"),
                        progress=console.enabled)
    responses, scores = sample_and_score(policy, tokenizer, prompts, {"gold": world.gold_reward, **proxies},
                                         config.bon_samples, bon)
    flat_prompts = [p for p, texts in zip(prompts, responses, strict=True) for _ in texts]
    measures = world.measure(flat_prompts, [t for texts in responses for t in texts])
    metrics = {"gold": scores["gold"]} | {name: v.reshape(len(prompts), -1) for name, v in measures.items()}
    curves = {name: OptimizationCurve.from_best_of_n(scores[name], metrics, config.bon_n_max) for name in proxies}
    sft_means = {name: values.mean(axis=1) for name, values in {**scores, **metrics}.items()}
    return {name: summarize(curve, config) for name, curve in curves.items()}, sft_means, curves


def summarize(curve: OptimizationCurve, config: DemoConfig) -> dict:
    return summarize_curve(curve, num_bootstrap=config.bootstrap_samples, seed=config.stage_seed("bootstrap"))


def control_differences(curves: dict[str, OptimizationCurve], config: DemoConfig) -> dict:
    """Gold at the end under each control minus under the default RM (paired: same prompts, for best-of-n the
    same samples)."""
    return {name: paired_difference(curves[DEFAULT_RM], curves[name], num_bootstrap=config.bootstrap_samples,
                                    seed=config.stage_seed("bootstrap"))
            for name in curves if name != DEFAULT_RM}


def matched_kl_differences(curves: dict[str, OptimizationCurve], config: DemoConfig) -> dict:
    """The controls at equal KL instead of equal steps (each proxy moves the policy at its own rate): every PPO
    curve read at the largest √KL that all of them reached (interpolated between checkpoints), gold there with an
    interval, and each control minus the default RM, paired over prompts."""
    sqrt_kl = min(curve.max_sqrt_kl() for curve in curves.values())
    at = {name: curve.at_sqrt_kl(sqrt_kl) for name, curve in curves.items()}

    def gold(curve: OptimizationCurve) -> dict:
        values = curve.metrics["gold"][0]
        return bootstrap(lambda idx: {"gold": values[idx].mean()}, len(values), config.bootstrap_samples,
                         config.stage_seed("bootstrap"))["gold"].to_dict()

    return {"sqrt_kl": sqrt_kl, "gold": {name: gold(curve) for name, curve in at.items()},
            "differences": control_differences(at, config)}


# ------------------------------------------------------------------------------------------------ helpers
def _score(model: RewardModel, prompt: str, responses: list[str]) -> np.ndarray:
    return model.score([prompt] * len(responses), responses, batch_size=256).double().numpy()


def combine_seeds(runs: list[dict], config: DemoConfig) -> dict:
    """One results tree for all seeds: estimates become means with t intervals over seeds (one seed: unchanged,
    its intervals then cover evaluation noise only)."""
    seeds = [run["seed"] for run in runs]
    science = [{key: value for key, value in run.items() if key not in ("seed", "config")} for run in runs]
    over = (f"t interval over {len(seeds)} seeds (independent worlds, policies, labels and reward models)"
            if len(seeds) > 1 else
            f"one seed: bootstrap over the held-out prompts ({config.eval_prompts} for best-of-n and PPO, "
            f"{config.val_prompts} rankings for accuracy), i.e. evaluation noise only, not the variation between "
            "training runs; run with --seeds 0 1 2 for that")
    return {"seeds": seeds, "intervals": over, "config": replace(config, seed=seeds[0]).to_dict(),
            **over_seeds(science)}


def machine_timings(timings: dict) -> dict:
    """Per-seed stage seconds with the machine they were measured on (they vary between runs; results do not)."""
    return {"seconds": timings, "total": round(sum(t["total"] for t in timings.values()), 1),
            "cpu": _cpu_model(), "cpu_count": os.cpu_count(), "torch_threads": 1,
            "load_average": [round(x, 2) for x in os.getloadavg()], "python": platform.python_version(),
            "torch": torch.__version__}


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def to_json(value) -> str:
    return json.dumps(finite_json(value), indent=1, ensure_ascii=False) + "\n"


def finite_json(value):
    """JSON has no inf/nan: write inf as the strings "inf"/"-inf" (a fitted peak that does not exist), nan as null;
    floats with 6 significant digits (far below every interval's width)."""
    if isinstance(value, float):
        if math.isnan(value):
            return None
        return float(f"{value:.6g}") if math.isfinite(value) else ("inf" if value > 0 else "-inf")
    if isinstance(value, np.floating | np.integer):
        return finite_json(value.item())
    if isinstance(value, dict):
        return {k: finite_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [finite_json(v) for v in value]
    return value
