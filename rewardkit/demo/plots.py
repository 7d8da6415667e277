"""The demo's figures, drawn from the combined results (PNG files, no display needed).

Every curve is drawn with a band: its 95% interval over seeds, or with one seed over held-out prompts.
"""

from __future__ import annotations

import math
import textwrap
from pathlib import Path

import numpy as np  # noqa: E402

from rewardkit.plotting import plt, save_figure
from rewardkit.rl.best_of_n import kl_best_of_n  # noqa: E402
from rewardkit.rl.overoptimization import OveroptimizationFit  # noqa: E402

_COLOURS = ["tab:red", "tab:blue", "tab:green", "tab:purple", "tab:brown", "tab:olive"]
CONTROL_COLOURS = {"noise-free biased utility": "tab:purple", "RM on gold labels": "tab:green",
                   "RM on unbiased noisy labels": "tab:blue", "RM (biased noisy labels)": "tab:red"}
GOLD_TERMS = ("coverage", "keywords", "topicality", "repetition", "length", "markers")


def number(value) -> float:
    """A results value as a float: estimates by their value; "inf" strings and None as inf and nan."""
    if isinstance(value, dict):
        value = value["value"]
    return math.nan if value is None else float(value)


def series(points: list[dict], key: str) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
    """Values of `key` along a curve, and its interval bounds when the points carry estimates."""
    values = np.array([number(p[key]) for p in points])
    if not isinstance(points[0][key], dict):
        return values, None, None
    return values, np.array([number(p[key]["low"]) for p in points]), np.array([number(p[key]["high"]) for p in points])


def _line_with_band(ax, x, points: list[dict], key: str, colour: str, label: str, marker: str = "o-") -> None:
    """The curve with its interval: a band where x only grows (n, steps), error bars where it turns back (√KL of an
    RL run, which a KL penalty holds in place), since a band drawn back and forth hides the curve."""
    values, low, high = series(points, key)
    ax.plot(x, values, marker, color=colour, label=label, markersize=3)
    if low is None:
        return
    if np.all(np.diff(np.asarray(x, dtype=float)) >= 0):
        ax.fill_between(x, low, high, color=colour, alpha=0.18, linewidth=0)
    else:
        ax.errorbar(x, values, yerr=[values - low, high - values], fmt="none", ecolor=colour, alpha=0.45,
                    capsize=2, linewidth=0.8)


def _fit_line(ax, fit: dict, d_max: float, colour: str) -> None:
    model = OveroptimizationFit(fit["form"], number(fit["alpha"]), number(fit["beta"]), number(fit["r2"]),
                                number(fit["r2_cv"]), math.inf, math.inf)
    d = np.linspace(1e-3, d_max, 200)
    r2_cv = number(fit["r2_cv"])
    ax.plot(d, model.predict(d), linestyle="--", color=colour, alpha=0.8,
            label=f"fit d(α − β{'d' if fit['form'] == 'bon' else ' log d'}), held-out R² = {r2_cv:.2f}")


def plot_best_of_n(best_of_n: dict, path: Path) -> Path:
    """Proxy and gold reward of best-of-n against √KL_bon, n marked on a top axis."""
    points = best_of_n["points"]
    d = np.array([p["sqrt_kl"] for p in points])
    fig, ax = plt.subplots(figsize=(7.2, 4.6))
    _line_with_band(ax, d, points, "proxy", "tab:orange", "proxy reward (the RM)")
    _line_with_band(ax, d, points, "gold", "tab:green", "gold reward")
    _fit_line(ax, best_of_n["fit"], float(d.max()), "tab:green")
    ax.axhline(0, color="grey", linewidth=0.6)
    ax.set(xlabel="√KL(best-of-n ‖ SFT)  (nats^½)", ylabel="reward (centred: SFT = 0)",
           xlim=(-0.05, float(d.max()) * 1.04))
    top = ax.secondary_xaxis("top")
    ns = [p["n"] for p in points]
    top.set_xticks([math.sqrt(kl_best_of_n(n)) for n in ns], [str(n) for n in ns], fontsize=7)
    top.set_xlabel("n", fontsize=8)
    ax.set_title("Best-of-n against the reward model (held-out prompts)", pad=24)
    ax.legend(fontsize=8, loc="lower left")
    return save_figure(fig, path)


def plot_ppo(ppo_runs: dict[str, dict], path: Path) -> Path:
    """Proxy and gold against √KL for every β; a third panel follows the runs a KL penalty kept close to SFT step by
    step (gold with its band, √KL on the right axis), which on the shared √KL axis would be squeezed into a corner."""
    penalized = {name: run for name, run in ppo_runs.items() if not name.endswith("=0")}
    panels = 3 if penalized else 2
    fig, axes = plt.subplots(1, panels, figsize=(5.0 * panels, 4.3))
    kl_axis = axes[2].twinx() if penalized else None
    for colour, (name, run) in zip(_COLOURS, ppo_runs.items(), strict=False):
        d = np.array([p["sqrt_kl"] for p in run["points"]])
        _line_with_band(axes[0], d, run["points"], "proxy", colour, f"PPO {name}")
        _line_with_band(axes[1], d, run["points"], "gold", colour, f"PPO {name}")
        _fit_line(axes[1], run["fit"], float(d.max()), colour)
        if name in penalized:
            steps = [p["step"] for p in run["points"]]
            _line_with_band(axes[2], steps, run["points"], "gold", colour, f"PPO {name}: gold")
            kl_axis.plot(steps, d, ":", color=colour, label=f"PPO {name}: √KL (right axis)")
    for ax, title in zip(axes[:2], ("PPO: proxy reward (the RM)", "PPO: gold reward"), strict=True):
        ax.set(xlabel="√KL(π ‖ π_SFT)  (nats^½, held-out prompts)", title=title)
    if penalized:
        axes[2].set(xlabel="PPO step", title="PPO with a KL penalty: gold by step")
        kl_axis.set_ylabel("√KL(π ‖ π_SFT)  (nats^½)")
        kl_axis.set_ylim(bottom=0)
        handles = [h for ax in (axes[2], kl_axis) for h in ax.get_legend_handles_labels()[0]]
        axes[2].legend(handles=handles, fontsize=7, loc="lower right")
    for ax in axes:
        ax.axhline(0, color="grey", linewidth=0.6)
    for ax in axes[:2]:
        ax.legend(fontsize=7)
    axes[0].set_ylabel("reward (centred: SFT = 0)")
    fig.tight_layout()
    return save_figure(fig, path)


def plot_ppo_features(ppo_runs: dict[str, dict], path: Path) -> Path:
    """What PPO changes in the responses (length, list markers, coverage, topicality, repetition, keywords)."""
    features = (("length", "length (words, change from SFT)"), ("format_rate", "share of list markers (change)"),
                ("coverage", "coverage of distinct on-topic words"), ("topicality", "topicality"),
                ("repetition", "repetition"), ("keywords", "requested words mentioned"))
    fig, axes = plt.subplots(2, 3, figsize=(13, 6.4))
    for colour, (name, run) in zip(_COLOURS, ppo_runs.items(), strict=False):
        steps = [p["step"] for p in run["points"]]
        for ax, (key, _) in zip(axes.flat, features, strict=True):
            _line_with_band(ax, steps, run["points"], key, colour, f"PPO {name}")
    for ax, (_, label) in zip(axes.flat, features, strict=True):
        ax.axhline(0, color="grey", linewidth=0.6)
        ax.set(xlabel="PPO step", title=label)
        ax.title.set_fontsize(9)
    axes.flat[0].legend(fontsize=8)
    fig.suptitle("What PPO changes in the responses (held-out prompts, centred on SFT)")
    fig.tight_layout()
    return save_figure(fig, path)


def plot_reward_models(ceilings: dict, runs: dict, path: Path) -> Path:
    """Accuracy of each judge against held-out labels (expected against a fresh label) and against gold, with the
    Bayes ceiling and the labeller agreement; and accuracy against gold as data grows, SFT vs random init."""
    fig, axes = plt.subplots(1, 2, figsize=(13, 4.8), gridspec_kw={"width_ratios": [1.5, 1]})
    judges = [name for name in ceilings["judges"] if name not in runs or runs[name]["prompts"] == _full(runs)]
    x = np.arange(len(judges))
    for offset, key, label in ((-0.18, "expected_vs_labels", "vs a held-out label (expected)"),
                               (0.18, "vs_gold", "vs gold")):
        estimates = [ceilings["judges"][name][key] for name in judges]
        values = np.array([number(e) for e in estimates])
        errors = np.abs(np.array([[number(e["low"]) for e in estimates], [number(e["high"]) for e in estimates]])
                        - values)
        axes[0].bar(x + offset, values, 0.36, yerr=errors, capsize=2, label=label)
    for key, style, label in (("bayes_ceiling", "--", "Bayes ceiling mean max(p, 1−p)"),
                              ("labeller_agreement", ":", "two labellers agree, mean p² + (1−p)²")):
        axes[0].axhline(number(ceilings[key]), color="black", linestyle=style, linewidth=1,
                        label=f"{label}: {number(ceilings[key]):.3f}")
    axes[0].axhline(0.5, color="grey", linewidth=0.6)
    axes[0].set_xticks(x, [textwrap.fill(name, 16) for name in judges], fontsize=7)  # long names side by side
    axes[0].set(ylim=(0.4, 1.0), ylabel="pairwise accuracy", title="Accuracy on held-out rankings")
    axes[0].legend(fontsize=7, loc="upper left", ncol=2)

    for init, marker in (("SFT", "o-"), ("random init", "s--")):
        names = sorted((name for name, run in runs.items() if run["init"] == init and
                        run["labels"] == "biased noisy labeller"), key=lambda name: runs[name]["comparisons"])
        comparisons = [number(runs[name]["comparisons"]) for name in names]
        estimates = [ceilings["judges"][name]["vs_gold"] for name in names]
        values = np.array([number(e) for e in estimates])
        axes[1].errorbar(comparisons, values, yerr=np.abs(np.array(
            [[number(e["low"]) for e in estimates], [number(e["high"]) for e in estimates]]) - values),
            fmt=marker, capsize=2, label=f"RM from {init}")
    axes[1].axhline(number(ceilings["judges"]["length-only rule (longer wins)"]["vs_gold"]), color="grey",
                    linestyle=":", label="length-only rule")
    axes[1].set(xscale="log", xlabel="training comparisons", ylabel="accuracy vs gold",
                title="Accuracy against gold as data grows")
    axes[1].legend(fontsize=8)
    fig.tight_layout()
    return save_figure(fig, path)


def _full(runs: dict) -> int:
    return max(run["prompts"] for run in runs.values())


def plot_controls(best_of_n: dict, controls_ppo: dict | None, path: Path) -> Path:
    """Gold under each proxy: best-of-n (same samples re-ranked) and PPO at β = 0; and where the gold change at the
    end comes from, term by term."""
    panels = 3 if controls_ppo else 2
    fig, axes = plt.subplots(1, panels, figsize=(5.4 * panels, 4.6))
    for name, colour in CONTROL_COLOURS.items():
        curve = best_of_n[name]["points"]
        _line_with_band(axes[0], [p["sqrt_kl"] for p in curve], curve, "gold", colour, name)
        if controls_ppo:
            curve = controls_ppo[name]["points"]
            _line_with_band(axes[1], [p["sqrt_kl"] for p in curve], curve, "gold", colour, name)
    axes[0].set(xlabel="√KL_bon (nats^½)", ylabel="gold reward (SFT = 0)",
                title="Best-of-n, the same samples re-ranked")
    if controls_ppo:
        axes[1].set(xlabel="√KL(π ‖ π_SFT) (nats^½)", title="PPO β = 0 against each proxy")
    for ax in axes[: panels - 1]:
        ax.axhline(0, color="grey", linewidth=0.6)
        ax.legend(fontsize=7)
    source, where = (controls_ppo, "PPO, last step") if controls_ppo else (best_of_n, "best-of-n, largest n")
    ax = axes[-1]
    width = 0.8 / len(CONTROL_COLOURS)
    x = np.arange(len(GOLD_TERMS))
    for i, (name, colour) in enumerate(CONTROL_COLOURS.items()):
        estimates = [source[name]["end"][f"gold:{term}"] for term in GOLD_TERMS]
        values = np.array([number(e) for e in estimates])
        errors = np.abs(np.array([[number(e["low"]) for e in estimates], [number(e["high"]) for e in estimates]])
                        - values)
        ax.bar(x + (i - 1.5) * width, values, width, yerr=errors, capsize=1.5, color=colour, label=name)
    ax.axhline(0, color="grey", linewidth=0.6)
    ax.set_xticks(x, GOLD_TERMS, fontsize=8)
    ax.set(ylabel="change in gold from SFT", title=f"Where the gold change comes from ({where})")
    ax.legend(fontsize=7)
    fig.tight_layout()
    return save_figure(fig, path)
