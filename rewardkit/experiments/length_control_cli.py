"""`rewardkit experiment length`: options, the run, and its report (Markdown, HTML, PNG, results.json)."""

from __future__ import annotations

import argparse
from pathlib import Path

from rewardkit.experiments import Experiment
from rewardkit.experiments.options import add_shared_arguments, check_shared_arguments


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_shared_arguments(p, "length", "the demo's --quick world, 128 best-of-n samples per prompt")


def run(args: argparse.Namespace) -> int:
    check_shared_arguments(args)

    from rewardkit.experiments.common import command_config, report_line, run_command
    from rewardkit.experiments.length_control import LengthControlConfig, run_length_control

    config = command_config(LengthControlConfig, args)
    results, timings, files = run_command(
        args, config, f"Length-controlled RM (ODIN) vs the plain RM and the length-only rule, {len(config.seeds)} "
        "seeds", run_length_control, write_report)
    for name, verdict in results["verdicts"].items():
        print(f"- ODIN minus the {name}: {verdict}")
    print(report_line(files, timings))
    return 0


def write_report(results: dict, timings: dict, output_dir: str | Path) -> dict[str, Path]:
    from rewardkit.demo.plots import series
    from rewardkit.experiments.common import report_document, save_report
    from rewardkit.plotting import plt, save_figure
    from rewardkit.rl.statistics import Estimate

    document, output = report_document("Length-controlled reward model (ODIN) in the demo world", output_dir)
    config, setup = results["config"], results["config"]["setup"]
    document.paragraph(
        f"Seeds {', '.join(map(str, results['seeds']))}. ODIN (Chen et al. 2024): a quality head and a length head "
        f"on one backbone, Bradley-Terry on their sum, the length head pulled towards length (λ_L = "
        f"{config['lambda_length']:g}), the quality head decorrelated from it (λ_Q = {config['lambda_quality']:g}), "
        f"the heads orthogonal (λ_O = {config['lambda_orthogonal']:g}); only the quality head is used. The plain RM is "
        "the same loop without those terms. Best-of-n re-ranks one shared sample set per seed "
        f"({setup['eval_prompts']} held-out prompts x {setup['bon_samples']} samples, n up to {setup['bon_n_max']}). "
        "Intervals over seeds (t); a verdict only where the interval excludes 0.")
    document.table(["judge", "accuracy vs held-out labels", "accuracy vs gold"],
                   [[name, Estimate.from_dict(entry["vs_labels"]).format(".3f"),
                     Estimate.from_dict(entry["vs_gold"]).format(".3f")]
                    for name, entry in results["accuracy"].items()])
    document.table(["reward", "Pearson r with length (held-out responses)"],
                   [[name, f"{value['value'] if isinstance(value, dict) else value:+.2f}"]
                    for name, value in results["length_correlation"].items()])
    rows = []
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for name, summary in results["best_of_n"].items():
        ns = [point["n"] for point in summary["points"]]
        values, low, high = series(summary["points"], "gold")
        ax.plot(ns, values, "o-", markersize=3, label=name)
        if low is not None:
            ax.fill_between(ns, low, high, alpha=0.15, linewidth=0)
        difference = results["odin_minus_at_n_max"].get(name)
        rows.append([name, Estimate.from_dict(summary["end"]["gold"]).format(),
                     Estimate.from_dict(summary["gain_at_peak"]).format(),
                     Estimate.from_dict(difference).format() if difference else "–",
                     results["verdicts"].get(name, "")])
    document.table(["best-of-n ranked by", f"gold at n = {setup['bon_n_max']}", "gold at the peak (cross-fitted)",
                    "ODIN minus this, at the largest n", "verdict"], rows)
    ax.set(xscale="log", xlabel="n (best of n)", ylabel="gold (centred on SFT)", title="Best-of-n gold")
    ax.axhline(0.0, color="grey", linewidth=0.6)
    ax.legend(fontsize=8)
    save_figure(fig, output / "plots" / "length_control.png")
    document.image("plots/length_control.png", "Best-of-n gold by ranker (mean over seeds, 95% band)")
    return save_report(document, output, timings)


EXPERIMENT = Experiment(
    help="a length-controlled RM (ODIN's quality head) vs the plain RM and the length-only rule (best-of-n gold)",
    description="Train ODIN's two-head reward model and the same model without its disentangling terms in the demo "
    "world, and compare accuracy and best-of-n gold with the length-only rule, with intervals over seeds.",
    add_arguments=add_arguments,
    run=run,
)
