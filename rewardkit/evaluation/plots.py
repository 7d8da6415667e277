"""The evaluation report's figures, drawn from `summarize` results (PNG files, no display needed)."""

from __future__ import annotations

from pathlib import Path

from rewardkit.plotting import plt, save_figure, wrap_title


def accuracy_figure(results: dict[str, dict]):
    """Accuracy per dataset with its bootstrap interval, and the length-only baseline beside it; every dataset
    named in full, the legend beside the axes where it covers no interval."""
    names = list(results)
    fig, ax = plt.subplots(figsize=(7, 1.2 + 0.55 * len(names)))
    for row, name in enumerate(names):
        r = results[name]
        ci = r["accuracy_ci"]
        ax.errorbar(r["accuracy"], row, xerr=[[r["accuracy"] - ci["low"]], [ci["high"] - r["accuracy"]]],
                    fmt="o", color="tab:blue", capsize=4, label="reward model (95% CI)" if row == 0 else None)
        ax.plot(r["length"]["length_only_accuracy"], row, "x", color="tab:red",
                label="length-only baseline" if row == 0 else None)
    ax.axvline(0.5, color="grey", linewidth=0.8, linestyle="--")
    ax.set_yticks(range(len(names)), names, fontsize=8)
    ax.set(xlabel="pairwise accuracy", xlim=(0, 1), ylim=(len(names) - 0.5, -0.5), title="Accuracy per dataset")
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.02, 1.0), frameon=False)
    return fig


def plot_accuracy(results: dict[str, dict], path: Path) -> Path:
    return save_figure(accuracy_figure(results), path)


def plot_reliability(name: str, report: dict, path: Path) -> Path:
    """Reliability diagram: mean observed outcome against mean predicted P(w beats l), per bin."""
    fig, ax = plt.subplots(figsize=(4.8, 4.6))
    ax.plot([0, 1], [0, 1], color="grey", linewidth=0.8, linestyle="--", label="perfect calibration")
    curves = [("before", "T = 1", "tab:orange")]
    if report.get("after"):
        curves.append(("after", f"T = {report['temperature']:.2f}", "tab:blue"))
    for key, label, colour in curves:
        bins = report[key]["bins"]
        ax.plot([b["mean_predicted"] for b in bins], [b["mean_observed"] for b in bins], "o-", color=colour,
                label=f"{label} (ECE {report[key]['ece']:.3f})", markersize=4)
    ax.set(xlabel="predicted P(w beats l) = σ((r_w − r_l)/T)", ylabel="observed outcome", xlim=(0, 1), ylim=(0, 1),
           title=f"Reliability: {wrap_title(name, 40)}")
    ax.legend(fontsize=8)
    return save_figure(fig, path)


def plot_length(name: str, length: dict, path: Path) -> Path:
    """Mean reward per length decile, and accuracy when the favoured response is the longer vs the shorter."""
    fig, (left, right) = plt.subplots(1, 2, figsize=(9.5, 3.8))
    bins = length["reward_by_length"]
    left.plot([(b["tokens_low"] + b["tokens_high"]) / 2 for b in bins], [b["mean_reward"] for b in bins], "o-",
              color="tab:purple")
    left.set(xlabel="response length (tokens, decile midpoints)", ylabel="mean raw reward",
             title=f"Spearman ρ(reward, tokens) = {length['spearman_tokens']:.2f}")
    labels = ["chosen longer", "chosen shorter", "length-only RM"]
    values = [length["accuracy_chosen_longer"], length["accuracy_chosen_shorter"], length["length_only_accuracy"]]
    right.bar(labels, [0 if v != v else v for v in values], color=["tab:green", "tab:red", "tab:grey"])
    right.axhline(0.5, color="grey", linewidth=0.8, linestyle="--")
    right.set(ylim=(0, 1), ylabel="accuracy", title=f"RM prefers the longer in {length['rm_prefers_longer']:.0%}")
    fig.suptitle(wrap_title(name, 100), fontsize=9)
    return save_figure(fig, path)


def plot_subsets(name: str, result: dict, path: Path, max_subsets: int = 30) -> Path:
    """Accuracy per subset (the largest `max_subsets` by prompt count)."""
    subsets = sorted(result["subsets"].items(), key=lambda item: -item[1]["num_prompts"])[:max_subsets]
    fig, ax = plt.subplots(figsize=(7, 1.0 + 0.3 * len(subsets)))
    ax.barh([s for s, _ in subsets], [v["accuracy"] for _, v in subsets], color="tab:blue")
    ax.axvline(0.5, color="grey", linewidth=0.8, linestyle="--")
    ax.set(xlim=(0, 1), xlabel="accuracy", title=f"Per subset: {wrap_title(name, 60)}")
    ax.invert_yaxis()
    return save_figure(fig, path)
