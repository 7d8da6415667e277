"""`rewardkit experiment scaling`: options, the run, and its report (Markdown, HTML, PNG, results.json)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from rewardkit.experiments import Experiment
from rewardkit.experiments.options import add_shared_arguments, check_shared_arguments

if TYPE_CHECKING:
    from rewardkit.reporting import Document

PANELS = (("accuracy_vs_gold", "accuracy against gold"), ("accuracy_vs_labels", "accuracy against held-out labels"),
          ("alpha", "Gao α (best-of-n)"), ("beta", "Gao β (best-of-n)"), ("gain_at_peak", "gold at the peak "
                                                                                          "(cross-fitted)"))


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_shared_arguments(p, "scaling", "the demo's --quick world and 128 best-of-n samples per prompt")
    p.add_argument("--sizes", type=int, nargs="+", help="RM hidden sizes (16 32 64 128: ~1.6 decades of parameters)")
    p.add_argument("--fractions", type=float, nargs="+", help="shares of the training rankings (0.125 0.25 0.5 1)")
    p.add_argument("--policy-sizes", type=int, nargs="+",
                   help="SFT policies' hidden sizes for best-of-n against one fixed RM (16 32 64 128)")


def run(args: argparse.Namespace) -> int:
    from rewardkit.errors import RewardkitError

    check_shared_arguments(args)
    for flag, sizes in (("--sizes", args.sizes), ("--policy-sizes", args.policy_sizes)):
        if sizes is not None and any(size < 4 or size % 4 for size in sizes):
            raise RewardkitError(f"{flag} must be multiples of 4, at least 4, got {' '.join(map(str, sizes))}")
    if args.fractions is not None and any(not 0 < f <= 1 for f in args.fractions):
        raise RewardkitError(f"--fractions must lie in (0, 1], got {' '.join(map(str, args.fractions))}")

    from rewardkit.experiments.common import command_config, report_line, run_command
    from rewardkit.experiments.scaling import ScalingConfig, run_scaling

    config = command_config(ScalingConfig, args, rm_sizes=args.sizes, data_fractions=args.fractions,
                            policy_sizes=args.policy_sizes)
    results, timings, files = run_command(
        args, config, f"RM scaling: {len(config.rm_sizes)} sizes x {len(config.data_fractions)} data sizes x "
        f"{len(config.seeds)} seeds, and {len(config.policy_sizes)} policy sizes at one fixed RM", run_scaling,
        write_report)
    for entry in results["policy_sizes"]["largest_minus_smallest"].values():
        if isinstance(entry, dict):
            print(f"- largest minus smallest policy, {entry['statistic']}: {entry['verdict']}")
    print(f"- {len(results['cells'])} fitted cells; {report_line(files, timings)}")
    return 0


def write_report(results: dict, timings: dict, output_dir: str | Path) -> dict[str, Path]:
    from rewardkit.experiments.common import report_document, save_report, value
    from rewardkit.rl.statistics import Estimate

    document, output = report_document("Reward-model scaling: size and data (Gao et al. 2022, in the demo world)",
                                       output_dir)
    plots = plot_scaling(results, output / "plots")
    setup = results["config"]["setup"]
    document.paragraph(
        f"Seeds {', '.join(map(str, results['seeds']))}, each an independent world (SFT policy, biased noisy "
        "labeller). Each RM size starts from a language model of that width trained on the world's demonstrations "
        "(the SFT recipe); each data size is the first share of the training rankings. Every RM re-ranks ONE shared "
        f"best-of-n sample set per seed ({setup['eval_prompts']} held-out prompts x {setup['bon_samples']} samples, "
        f"n up to {setup['bon_n_max']}); Gao's form d(α − β d) is fitted to each RM's gold curve, with bootstrap "
        "intervals over prompts per cell and t intervals over seeds in the table; held-out R² is leave-one-point-out.")
    rows = []
    for cell in results["summary"]:
        rows.append([cell["hidden_size"], f"{value(cell['parameters']):,.0f}", cell["data_prompts"],
                     *(Estimate.from_dict(cell[key]).format(".3f")
                       for key in ("accuracy_vs_labels", "accuracy_vs_gold")),
                     *(Estimate.from_dict(cell[key]).format("+.2f") for key in ("alpha", "beta", "gain_at_peak")),
                     f"{value(cell['r2_cv']):.2f}"])
    document.table(["hidden", "parameters", "training prompts", "accuracy vs labels", "accuracy vs gold", "α", "β",
                    "gold at peak (cross-fitted)", "held-out R²"], rows)
    trends = results.get("largest_minus_smallest", {})
    if trends:
        document.paragraph("The largest minus the smallest RM, and the most minus the least data, per seed (paired: "
                           "the same world and sample set); a verdict only where the t interval over seeds excludes "
                           "0.")
        comparison_table(document, trends["rm_size"], f"hidden {{larger}} minus hidden {{smaller}}, "
                                                      f"{trends['rm_size']['at']}")
        comparison_table(document, trends["data"], f"{{larger}} minus {{smaller}} training prompts, "
                                                   f"{trends['data']['at']}")
    for path, caption in plots:
        document.image(f"plots/{path.name}", caption)
    policy_section(document, results, plots_dir=output / "plots")
    return save_report(document, output, timings, lead=f"{len(results['cells'])} fitted cells (one per size, data "
                       "size and seed) are in results.json under \"cells\". ")


def comparison_table(document: Document, comparison: dict, heading: str) -> None:
    """One row per statistic: the larger minus the smaller setting (`heading` names them), its t interval over
    seeds, the per-seed differences, what Gao et al. found and the verdict here."""
    from rewardkit.rl.statistics import Estimate

    if not comparison:
        return
    document.table([heading.format(**comparison), "difference (t over seeds)", "per seed", "Gao et al. found",
                    "this world"],
                   [[entry["statistic"], Estimate.from_dict(entry).format("+.3f") if "value" in entry else "–",
                     ", ".join(f"{x:+.3f}" for x in entry["per_seed"]), entry["gao"], entry["verdict"]]
                    for entry in comparison.values() if isinstance(entry, dict)])


def policy_section(document: Document, results: dict, plots_dir: Path) -> None:
    """Policy size at one fixed RM (Gao et al. 2022 §3.4): a row per policy size, the largest minus the smallest
    with verdicts, and gold gain against √KL per policy size."""
    from rewardkit.demo.plots import series
    from rewardkit.experiments.common import value
    from rewardkit.plotting import plt, save_figure
    from rewardkit.rl.statistics import Estimate

    section, setup = results["policy_sizes"], results["config"]["setup"]
    fixed = section["fixed_rm"]
    document.heading("Policy size at a fixed RM")
    document.paragraph(
        f"One RM per seed, the cells' RM of hidden size {fixed['hidden_size']} on all {fixed['data_prompts']} "
        "training rankings (the same checkpoint, not retrained), re-ranks a best-of-n sample set drawn from each SFT "
        "policy's own samples for the held-out prompts (KL of best-of-n = log n − (n − 1)/n). Gold at n = 1 is where "
        f"the policy starts (centred on the hidden-{setup['sft']['hidden_size']} SFT policy); the gains and Gao's "
        "fit are relative to that start. The proxy−gold gap is the RM's gain minus gold's gain at the largest n, the "
        "RM's scores put in gold units by one scale per seed (gold's spread over the RM's on the SFT policy's "
        "samples). Deviation from Gao et al. (§3.4): their policies were pretrained at each size; ours are SFT'd on "
        "the world's demonstrations only, with the SFT recipe at each width.")
    rows = [[entry["policy_size"], f"{value(entry['policy_parameters']):,.0f}",
             *(Estimate.from_dict(entry[key]).format("+.2f") for key in
               ("gold_at_start", "gold_gain_at_n_max", "alpha", "beta", "peak_gold", "proxy_gold_gap_at_n_max")),
             f"{value(entry['r2_cv']):.2f}"] for entry in section["summary"]]
    document.table(["policy hidden", "parameters", "gold at n = 1", f"gold gain at n = {setup['bon_n_max']}", "α",
                    "β", "observed peak gain", "proxy − gold gap", "held-out R²"], rows)
    comparison_table(document, section["largest_minus_smallest"], "hidden {larger} minus hidden {smaller}")
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for entry in section["summary"]:
        x = [point["sqrt_kl"] for point in entry["points"]]
        values, low, high = series(entry["points"], "gold")
        ax.plot(x, values, "o-", markersize=3, label=f"policy hidden {entry['policy_size']}")
        if low is not None:
            ax.fill_between(x, low, high, alpha=0.15, linewidth=0)
    ax.set(xlabel="√KL (nats^½, best-of-n)", ylabel="gold gain over n = 1",
           title=f"Best-of-n against one RM (hidden {fixed['hidden_size']})")
    ax.axhline(0.0, color="grey", linewidth=0.6)
    ax.legend(fontsize=8)
    save_figure(fig, plots_dir / "policy_sizes.png")
    document.image("plots/policy_sizes.png", "Gold gain against √KL per policy size, one fixed RM (mean over seeds, "
                   "95% band)")


def plot_scaling(results: dict, plots_dir: Path) -> list[tuple[Path, str]]:
    """Each panel's statistic against log parameters (a line per data size) and against log data (a line per
    RM size), bands over seeds."""
    from rewardkit.demo.plots import series
    from rewardkit.experiments.common import value
    from rewardkit.plotting import plt, save_figure

    summary, written = results["summary"], []
    for x_key, line_key, x_label, name in (("parameters", "data_prompts", "RM parameters", "scaling_parameters.png"),
                                           ("data_prompts", "hidden_size", "training prompts (rankings)",
                                            "scaling_data.png")):
        fig, axes = plt.subplots(1, len(PANELS), figsize=(4.0 * len(PANELS), 3.6))
        for ax, (key, title) in zip(axes, PANELS, strict=True):
            for line in sorted({cell[line_key] for cell in summary}):
                cells = sorted((c for c in summary if c[line_key] == line), key=lambda c: value(c[x_key]))
                x = [value(c[x_key]) for c in cells]
                values, low, high = series(cells, key)
                ax.plot(x, values, "o-", markersize=3, label=f"{line_key.replace('_', ' ')} {line}")
                if low is not None:
                    ax.fill_between(x, low, high, alpha=0.15, linewidth=0)
            ax.set(xscale="log", xlabel=x_label, title=title)
        axes[0].legend(fontsize=7)
        fig.tight_layout()
        written.append((save_figure(fig, plots_dir / name), f"Accuracy, Gao α and β and peak gold against log "
                        f"{x_label} (mean over seeds, 95% band)"))
    return written


EXPERIMENT = Experiment(
    help="RM size x data size x seeds: accuracy and Gao's best-of-n α, β per cell (with intervals over seeds)",
    description="Train reward models of several sizes on several amounts of comparison data in the demo world, "
    "re-rank one shared best-of-n sample set with each, and fit Gao et al.'s over-optimization form per cell.",
    add_arguments=add_arguments,
    run=run,
)
