"""`rewardkit experiment ensembles`: options, the run, and its report (Markdown, HTML, PNG, results.json)."""

from __future__ import annotations

import argparse
from pathlib import Path

from rewardkit.experiments import Experiment
from rewardkit.experiments.options import add_shared_arguments, check_shared_arguments


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_shared_arguments(p, "ensembles", "the demo's --quick world, 3 members, 128 best-of-n samples per prompt")
    p.add_argument("--members", type=int, help="members per ensemble (4; --quick: 3)")


def run(args: argparse.Namespace) -> int:
    from rewardkit.errors import RewardkitError

    check_shared_arguments(args)
    if args.members is not None and args.members < 2:
        raise RewardkitError(f"--members must be at least 2, got {args.members}")

    from rewardkit.experiments.common import command_config, report_line, run_command
    from rewardkit.experiments.ensembles import EnsemblesConfig, run_ensembles

    config = command_config(EnsemblesConfig, args, members=args.members)
    results, timings, files = run_command(
        args, config, f"Ensembles: pretrain and fine-tune ensembles of {config.members} vs one RM, clean and "
        f"{config.label_flip:.0%}-flipped labels, {len(config.seeds)} seeds", run_ensembles, write_report)
    for label_set, verdicts in ((k, results[k]["verdicts"]) for k in _label_sets()):
        for name, verdict in verdicts.items():
            print(f"- {label_set}, {name}: {verdict}")
    print(report_line(files, timings))
    return 0


def _label_sets() -> tuple[str, ...]:
    from rewardkit.experiments.ensembles import LABEL_SETS

    return LABEL_SETS


def write_report(results: dict, timings: dict, output_dir: str | Path) -> dict[str, Path]:
    from rewardkit.demo.plots import series
    from rewardkit.experiments.common import report_document, save_report
    from rewardkit.plotting import plt, save_figure
    from rewardkit.rl.statistics import Estimate

    document, output = report_document("Reward-model ensembles as the literature built them", output_dir)
    config, setup = results["config"], results["config"]["setup"]
    document.paragraph(
        f"Seeds {', '.join(map(str, results['seeds']))}, each an independent world. Pretrain ensemble: "
        f"{config['members']} RMs from language models trained from different seeds (Eisenstein et al. 2023); "
        f"fine-tune ensemble: {config['members']} RMs from the SFT policy on bootstrap resamples (Coste et al. 2023); "
        f"each aggregated by mean, min and mean − {config['uwo_lambda']:g}·std. Label noise: the same comparisons "
        f"with {config['label_flip']:.0%} of pair labels flipped. Every scorer re-ranks one shared best-of-n set "
        f"per seed ({setup['eval_prompts']} held-out prompts x {setup['bon_samples']} samples, n up to "
        f"{setup['bon_n_max']}); intervals over seeds (t), a verdict only where the interval excludes 0.")
    fig, axes = plt.subplots(1, len(_label_sets()), figsize=(6.0 * len(_label_sets()), 4.2), sharey=True)
    for ax, label_set in zip(axes, _label_sets(), strict=True):
        entry = results[label_set]
        rows = []
        for name, summary in entry["best_of_n"].items():
            difference = entry["minus_single_at_n_max"].get(name)
            rows.append([name, Estimate.from_dict(summary["end"]["gold"]).format(),
                         Estimate.from_dict(summary["gain_at_peak"]).format(),
                         Estimate.from_dict(difference).format() if difference else "–",
                         entry["verdicts"].get(name, "baseline")])
            values, low, high = series(summary["points"], "gold")
            ns = [point["n"] for point in summary["points"]]
            ax.plot(ns, values, "o-" if name == "single RM" else ".--", markersize=3, label=name)
            if low is not None and name == "single RM":
                ax.fill_between(ns, low, high, alpha=0.15, linewidth=0)
        document.heading(label_set)
        document.table(["scorer", f"gold at n = {setup['bon_n_max']}", "gold at the peak (cross-fitted)",
                        "minus single RM at the largest n", "verdict"], rows)
        ax.set(xscale="log", xlabel="n (best of n)", ylabel="gold (centred on SFT)", title=label_set)
        ax.axhline(0.0, color="grey", linewidth=0.6)
    axes[0].legend(fontsize=7)
    save_figure(fig, output / "plots" / "ensembles.png")
    document.image("plots/ensembles.png", "Best-of-n gold per scorer (mean over seeds; band: the single RM's)")
    return save_report(document, output, timings)


EXPERIMENT = Experiment(
    help="pretrain vs fine-tune (bootstrap) ensembles and 25%% label flips: best-of-n gold at high KL vs one RM",
    description="Build reward-model ensembles as Eisenstein et al. (differently seeded pretraining) and Coste et al. "
    "(bootstrap resamples, 25% label noise) did, re-rank one shared best-of-n sample set with each, and compare "
    "gold at the largest n with a single RM, with intervals over seeds.",
    add_arguments=add_arguments,
    run=run,
)
