"""`rewardkit experiment frontier`: options, the run, and its report (Markdown, HTML, PNG, results.json)."""

from __future__ import annotations

import argparse
from pathlib import Path

from rewardkit.experiments import Experiment
from rewardkit.experiments.options import add_shared_arguments, check_shared_arguments


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_shared_arguments(p, "frontier", "the demo's --quick world, 40 steps of 32 responses (about 5 minutes on 2 "
                         "idle cores)", "independent worlds and runs for the intervals (0 1 2)", seed_workers=False)
    p.add_argument("--steps", type=int, help="optimizer steps of every method (150; --quick: 40)")
    p.add_argument("--workers", type=int, help="runs side by side in worker processes (2; 1: in this process)")
    p.add_argument("--resume", action="store_true", help="reuse the seeds an earlier run with the same settings "
                   "finished in --output (e.g. after a timeout)")


def run(args: argparse.Namespace) -> int:
    from rewardkit.errors import RewardkitError

    check_shared_arguments(args)  # also checks --workers
    if args.steps is not None and args.steps < 1:
        raise RewardkitError(f"--steps must be at least 1, got {args.steps}")

    from functools import partial

    from rewardkit.experiments.common import command_config, report_line, run_command
    from rewardkit.experiments.frontier import FrontierConfig, run_frontier

    config = command_config(FrontierConfig, args, rl_steps=args.steps, workers=args.workers)
    results, timings, files = run_command(
        args, config, f"KL frontier: {len(config.methods())} methods x {len(config.seeds)} seeds, "
        f"{config.rl_steps} steps of {config.rl_batch_size} responses each", partial(run_frontier, resume=args.resume),
        write_report)
    for line in summary_lines(results):
        print(f"- {line}")
    print(report_line(files, timings))
    return 0


def summary_lines(results: dict) -> list[str]:
    from rewardkit.rl.statistics import Estimate

    lines = []
    for name, method in results["methods"].items():
        gold = Estimate.from_dict(method["end"]["gold"]).format()
        lines.append(f"{name}: gold at the end {gold} at √KL {method['end']['sqrt_kl']:.2f}")
    lines += [f"{name} at matched KL: {entry['verdict']}" for name, entry in results["matched_kl_vs_ppo_beta_0"].items()
              if not entry["verdict"].startswith(name)]
    lines += [entry["verdict"] for name, entry in results["matched_kl_vs_ppo_beta_0"].items()
              if entry["verdict"].startswith(name)]
    return lines


def write_report(results: dict, timings: dict, output_dir: str | Path) -> dict[str, Path]:
    from rewardkit.experiments.common import report_document, save_report, value
    from rewardkit.experiments.frontier_plots import plot_frontier
    from rewardkit.rl.statistics import Estimate

    document, output = report_document("KL frontier: the KL penalty, early stopping, RLOO and GRPO", output_dir)
    config, setup = results["config"], results["config"]["setup"]
    plots = plot_frontier(results, output / "plots")
    world = results["world"]
    document.paragraph(
        f"Seeds {', '.join(map(str, results['seeds']))}: each an independent demo world (SFT policy, biased noisy "
        f"labeller, RM from SFT on {value(world['train_comparisons']):,.0f} comparisons, held-out accuracy "
        f"{value(world['reward_model']['accuracy']):.1%} against labels). Every method runs {config['rl_steps']} "
        f"steps of {config['rl_batch_size']} responses (the same sample budget; RLOO and GRPO: "
        f"{config['rl_batch_size'] // config['group_size']} prompts x k = {config['group_size']}) with PPO's update "
        f"schedule, and is evaluated on {setup['ppo_eval_samples']} fresh samples for each of "
        f"{setup['eval_prompts']} held-out prompts at steps {', '.join(map(str, _steps(results)))}, centred on the "
        f"SFT policy's samples (SFT = 0). Intervals: {results['intervals']}.")
    rows = []
    for name, method in results["methods"].items():
        end = method["end"]
        rows.append([name, f"{end['sqrt_kl']:.2f}", Estimate.from_dict(end["gold"]).format(),
                     Estimate.from_dict(end["proxy"]).format(), Estimate.from_dict(method["gain_at_peak"]).format(),
                     _training_seconds(timings, name)])
    document.table(["method", "√KL at the end", "gold at the end", "proxy at the end",
                    "gold at the peak (cross-fitted)", "training time (mean s)"], rows)
    document.image(f"plots/{plots['frontier'].name}", "Gold against √KL per method: mean over seeds, 95% band")
    document.image(f"plots/{plots['proxy'].name}", "RM reward (proxy) against √KL per method")
    document.heading("At matched KL: each method against PPO β=0 (early stopping)")
    document.paragraph(
        "Gao et al. (2022) found that a KL penalty moves a run along the β = 0 frontier rather than above it: it acts "
        "like stopping early. For each method and seed: its gold at the last checkpoint minus PPO β=0's gold at the "
        "same √KL (β=0's checkpoints interpolated in √KL). A verdict is stated only where the interval excludes 0.")
    matched_rows = []
    for name, entry in results["matched_kl_vs_ppo_beta_0"].items():
        difference = Estimate.from_dict(entry["difference"]).format() if entry["difference"] else "–"
        per_seed = ", ".join("–" if row["difference"] is None else f"{row['difference']:+.2f}"
                             for row in entry["per_seed"])
        matched_rows.append([name, difference, per_seed, entry["seeds_within_reach"], entry["verdict"]])
    document.table(["method", "gold minus PPO β=0 at the same KL", "per seed", "seeds within β=0's reach",
                    "verdict"], matched_rows)
    document.heading("Machine")
    document.paragraph(
        f"{timings['cpu']}, {timings['cpu_count']} CPUs, 1 torch thread per run, {timings['workers']} runs side by "
        f"side (their times include sharing the cores); load average {timings['load_average']}; "
        f"{timings['total']:.0f} s for seed(s) {', '.join(timings['seconds']) or '–'} (a seed reused with --resume "
        "from a run that kept no timings is not counted). Training time excludes the held-out evaluations.")
    return save_report(document, output)


def _steps(results: dict) -> list[int]:
    return [point["step"] for point in next(iter(results["methods"].values()))["points"]]


def _training_seconds(timings: dict, name: str) -> str:
    values = [seed[name]["training"] for seed in timings["seconds"].values()]
    return f"{sum(values) / len(values):.0f}" if values else "–"


EXPERIMENT = Experiment(
    help="β sweep, adaptive KL, RLOO and GRPO as gold-vs-√KL frontiers (with intervals over seeds)",
    description="PPO at several KL penalties and with the adaptive controller, RLOO and GRPO, all against the "
    "demo world's reward model with the same sample budget; held-out gold against √KL with intervals over seeds, "
    "each method compared with PPO β=0 at matched KL, and wall-clock per method.",
    add_arguments=add_arguments,
    run=run,
)
