"""`rewardkit eval --report DIR` on step data: report.md, report.html, plots/*.png and metrics.json."""

from __future__ import annotations

import re
from pathlib import Path

from rewardkit.evaluation.report import write_documents
from rewardkit.plotting import plt, save_figure, wrap_title
from rewardkit.reporting import Document

HOW_TO_READ = [
    "**F1** (ProcessBench): a solution's predicted first error is its first step whose probability σ(reward) falls "
    "below the threshold; `acc. erroneous` is the share of solutions with an error whose first error is found "
    "exactly, `acc. correct` the share of correct solutions predicted to have none, F1 their harmonic mean.",
    "**threshold**: chosen by F1 where it says (a validation split of other problems, or other data) and measured "
    "on solutions it was not chosen on. The **oracle** F1 tunes the threshold on the measured solutions themselves: "
    "an upper bound, not a result.",
    "**step AUROC**: the probability that a correct step gets a higher reward than a wrong one (labelled steps only).",
    "**solution AUROC**: how well min / product / last / mean of the step probabilities tell solutions without a "
    "wrong step from those with one (what best-of-n selection by a process RM relies on).",
    "**[low, high]**: 95% percentile bootstrap intervals resampling whole problems (seeded).",
]


def _interval(ci: dict) -> str:
    return f"[{ci['low']:.3f}, {ci['high']:.3f}]"


def _slug(index: int, name: str) -> str:
    return f"{index}-{re.sub(r'[^A-Za-z0-9]+', '-', Path(name).name).strip('-')[:40]}"


def write_process_report(results: dict[str, dict], output_dir: str | Path, model: str = "") -> dict[str, Path]:
    output_dir = Path(output_dir)
    plots = output_dir / "plots"
    plots.mkdir(parents=True, exist_ok=True)
    document = Document("Process reward model evaluation")
    document.paragraph(f"Model `{model}` on {len(results)} step-labelled dataset(s)." if model else "")
    document.bullets(HOW_TO_READ)
    with_first_error = {name: r for name, r in results.items() if "first_error" in r}
    if with_first_error:
        document.table(
            ["dataset", "solutions", "F1", "95% CI", "acc. erroneous", "acc. correct", "threshold",
             "oracle F1 (upper bound)", "step AUROC"],
            [[name, r["num_solutions"], r["first_error"]["f1"], _interval(r["first_error"]["f1_ci"]),
              r["first_error"]["accuracy_erroneous"], r["first_error"]["accuracy_correct"],
              r["first_error"]["threshold"], r["oracle"]["f1"], r["step"]["auroc"]]
             for name, r in with_first_error.items()],
        )
    files: dict[str, Path] = {}
    for index, (name, result) in enumerate(results.items()):
        files |= _dataset_section(document, name, result, plots, _slug(index, name))
    return files | write_documents(document, results, output_dir)


def _dataset_section(document: Document, name: str, r: dict, plots: Path, slug: str) -> dict[str, Path]:
    document.heading(name)
    step = r["step"]
    rows = [
        ["solutions / problems", f"{r['num_solutions']} / {r['num_problems']}"],
        ["labelled steps (correct / wrong)", f"{step['num_steps']} ({step['num_correct_steps']} / "
                                             f"{step['num_wrong_steps']})"],
        ["steps cut off by max_length (no reward)", r["steps_cut"]],
        ["step AUROC [95% CI]", f"{step['auroc']:.3f} {_interval(step['auroc_ci'])}"],
        ["step accuracy (σ(r) > 0.5)", step["accuracy"]],
        ["step log-loss", step["log_loss"]],
    ]
    if "first_error" in r:
        f = r["first_error"]
        rows += [
            ["measured on", r.get("measured_on", "")],
            ["threshold", f"{f['threshold']:.4f} ({f['threshold_source']})"],
            ["F1 [95% CI]", f"{f['f1']:.3f} {_interval(f['f1_ci'])}"],
            ["acc. erroneous [95% CI]", f"{f['accuracy_erroneous']:.3f} {_interval(f['accuracy_erroneous_ci'])} "
                                        f"({f['num_erroneous']} solutions)"],
            ["acc. correct [95% CI]", f"{f['accuracy_correct']:.3f} {_interval(f['accuracy_correct_ci'])} "
                                      f"({f['num_correct']} solutions)"],
            ["oracle F1 (threshold tuned on these solutions: upper bound)",
             f"{r['oracle']['f1']:.3f} at {r['oracle']['threshold']:.4f}"],
        ]
    document.table(["metric", "value"], rows)
    files = {f"steps-{slug}": plot_step_histogram(name, step["histogram"], plots / f"steps-{slug}.png")}
    document.image(f"plots/steps-{slug}.png", "Step probability σ(reward) of correct and wrong steps")
    if "first_error" in r:
        files[f"threshold-{slug}"] = plot_threshold_curve(name, r, plots / f"threshold-{slug}.png")
        document.image(f"plots/threshold-{slug}.png", "ProcessBench scores against the threshold")
        document.table(
            ["solution score", "AUROC: no wrong step", "95% CI", "AUROC: final answer right"],
            [[how, s["auroc_no_error"], _interval(s["auroc_no_error_ci"]), s.get("auroc_final_answer", "")]
             for how, s in r["solution"].items()],
        )
    return files


def plot_threshold_curve(name: str, result: dict, path: Path) -> Path:
    curve = result["curve"]
    thresholds = [c["threshold"] for c in curve]
    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    ax.plot(thresholds, [c["f1"] for c in curve], color="tab:blue", label="F1")
    ax.plot(thresholds, [c["accuracy_erroneous"] for c in curve], color="tab:red", linewidth=0.9,
            label="acc. erroneous")
    ax.plot(thresholds, [c["accuracy_correct"] for c in curve], color="tab:green", linewidth=0.9,
            label="acc. correct")
    ax.axvline(result["first_error"]["threshold"], color="black", linestyle="--", linewidth=0.9,
               label=f"chosen threshold (F1 {result['first_error']['f1']:.3f})")
    ax.axvline(result["oracle"]["threshold"], color="grey", linestyle=":", linewidth=0.9,
               label=f"oracle threshold (F1 {result['oracle']['f1']:.3f}, upper bound)")
    ax.set(xlabel="threshold on σ(step reward)", ylabel="score", xlim=(0, 1), ylim=(0, 1),
           title=f"First-error detection: {wrap_title(name, 40)}")
    ax.legend(fontsize=7, loc="best")
    return save_figure(fig, path)


def plot_step_histogram(name: str, histogram: dict, path: Path) -> Path:
    edges = histogram["edges"]
    centres = [(a + b) / 2 for a, b in zip(edges, edges[1:], strict=False)]
    width = edges[1] - edges[0]
    fig, ax = plt.subplots(figsize=(6.4, 3.6))
    for key, colour in (("correct", "tab:green"), ("wrong", "tab:red")):
        counts = histogram[key]
        total = max(sum(counts), 1)
        ax.bar(centres, [c / total for c in counts], width=width, alpha=0.5, color=colour,
               label=f"{key} steps ({sum(counts)})")
    ax.set(xlabel="σ(step reward)", ylabel="share of steps", xlim=(0, 1), title=f"Step rewards: {wrap_title(name, 40)}")
    ax.legend(fontsize=8)
    return save_figure(fig, path)
