"""`rewardkit experiment scaling`: options, the run, and its report (Markdown, HTML, PNG, results.json)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from rewardkit.experiments import Experiment
from rewardkit.experiments.options import add_shared_arguments, check_shared_arguments

PANELS = (("accuracy_vs_gold", "accuracy against gold"), ("accuracy_vs_labels", "accuracy against held-out labels"),
          ("alpha", "Gao α (best-of-n)"), ("beta", "Gao β (best-of-n)"), ("gain_at_peak", "gold at the peak "
                                                                                          "(cross-fitted)"))


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_shared_arguments(p, "scaling", "the demo's --quick world and 128 best-of-n samples per prompt")
    p.add_argument("--sizes", type=int, nargs="+", help="RM hidden sizes (16 32 64 128: ~1.6 decades of parameters)")
    p.add_argument("--fractions", type=float, nargs="+", help="shares of the training rankings (0.125 0.25 0.5 1)")


def run(args: argparse.Namespace) -> int:
    from rewardkit.errors import RewardkitError

    output = check_shared_arguments(args)
    if args.sizes is not None and any(size < 4 or size % 4 for size in args.sizes):
        raise RewardkitError(f"--sizes must be multiples of 4, at least 4, got {' '.join(map(str, args.sizes))}")
    if args.fractions is not None and any(not 0 < f <= 1 for f in args.fractions):
        raise RewardkitError(f"--fractions must lie in (0, 1], got {' '.join(map(str, args.fractions))}")

    from dataclasses import replace

    from rewardkit.experiments.scaling import ScalingConfig, run_scaling
    from rewardkit.progress import Console, format_seconds

    config = ScalingConfig.quick() if args.quick else ScalingConfig()
    overrides = {"seeds": args.seeds, "rm_sizes": args.sizes, "data_fractions": args.fractions}
    config = replace(config, **{key: tuple(value) for key, value in overrides.items() if value is not None})
    console = Console(args.progress)
    console.print(f"RM scaling: {len(config.rm_sizes)} sizes x {len(config.data_fractions)} data sizes x "
                  f"{len(config.seeds)} seeds")
    results = run_scaling(config, output, console)
    timings = json.loads((output / "timings.json").read_text())
    files = write_report(results, timings, output)
    print(f"- {len(results['cells'])} fitted cells; report: {files['markdown']} (and report.html, plots/, "
          f"results.json) in {format_seconds(timings['total'])}")
    return 0


def write_report(results: dict, timings: dict, output_dir: str | Path) -> dict[str, Path]:
    from rewardkit.experiments.common import save_report, value
    from rewardkit.reporting import Document
    from rewardkit.rl.statistics import Estimate

    output = Path(output_dir)
    (output / "plots").mkdir(parents=True, exist_ok=True)
    plots = plot_scaling(results, output / "plots")
    setup = results["config"]["setup"]
    document = Document("Reward-model scaling: size and data (Gao et al. 2022, in the demo world)")
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
    for path, caption in plots:
        document.image(f"plots/{path.name}", caption)
    document.paragraph(f"{len(results['cells'])} fitted cells (one per size, data size and seed) are in results.json "
                       f"under \"cells\". Machine: {timings['cpu']}, load average {timings['load_average']}, total "
                       f"{timings['total']:.0f} s.")
    return save_report(document, output)



def plot_scaling(results: dict, plots_dir: Path) -> list[tuple[Path, str]]:
    """Each panel's statistic against log parameters (a line per data size) and against log data (a line per
    RM size), bands over seeds."""
    from rewardkit.demo.plots import _save, plt, series
    from rewardkit.experiments.common import value

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
        written.append((_save(fig, plots_dir / name), f"Accuracy, Gao α and β and peak gold against log "
                        f"{x_label} (mean over seeds, 95% band)"))
    return written


EXPERIMENT = Experiment(
    help="RM size x data size x seeds: accuracy and Gao's best-of-n α, β per cell (with intervals over seeds)",
    description="Train reward models of several sizes on several amounts of comparison data in the demo world, "
    "re-rank one shared best-of-n sample set with each, and fit Gao et al.'s over-optimization form per cell.",
    add_arguments=add_arguments,
    run=run,
)
