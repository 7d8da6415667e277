"""The demo's figures, drawn from `results.json`-shaped dictionaries (PNG files, no display needed)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from rewardkit.rl.overoptimization import OveroptimizationFit  # noqa: E402

_PPO_COLOURS = ["tab:red", "tab:blue", "tab:green", "tab:purple"]


def _fit_line(ax, fit: dict, d_max: float, colour: str, label: str) -> None:
    model = OveroptimizationFit(**fit)
    d = np.linspace(1e-3, d_max, 200)
    ax.plot(d, model.predict(d), linestyle="--", color=colour, alpha=0.8, label=f"{label} fit (R²={fit['r2']:.2f})")


def plot_best_of_n(best_of_n: dict, path: Path) -> Path:
    curve = best_of_n["curve"]
    d = [row["sqrt_kl"] for row in curve]
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    ax.plot(d, [row["proxy"] for row in curve], "o-", color="tab:orange", label="proxy reward (RM)")
    ax.plot(d, [row["gold"] for row in curve], "o-", color="tab:green", label="gold reward")
    _fit_line(ax, best_of_n["gold_fit"], max(d), "tab:green", "gold")
    for row in curve[:: max(1, len(curve) // 5)]:
        ax.annotate(f"n={row['n']}", (row["sqrt_kl"], row["proxy"]), textcoords="offset points", xytext=(2, 5),
                    fontsize=7)
    ax.axhline(0, color="grey", linewidth=0.6)
    ax.set(xlabel="√KL(best-of-n ‖ SFT)  (nats^½)", ylabel="reward (centred: SFT = 0)",
           title="Best-of-n against the reward model")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def plot_ppo(ppo_runs: dict[str, dict], path: Path) -> Path:
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), sharey=True)
    for colour, (name, run) in zip(_PPO_COLOURS, ppo_runs.items(), strict=False):
        d = [np.sqrt(max(row["kl"], 0.0)) for row in run["eval"]]
        axes[0].plot(d, [row["proxy"] for row in run["eval"]], "o-", color=colour, label=name, markersize=3)
        axes[1].plot(d, [row["gold"] for row in run["eval"]], "o-", color=colour, label=name, markersize=3)
        if run.get("gold_fit"):
            _fit_line(axes[1], run["gold_fit"], max(d), colour, name)
    for ax, what in zip(axes, ("proxy reward (RM)", "gold reward"), strict=True):
        ax.axhline(0, color="grey", linewidth=0.6)
        ax.set(xlabel="√KL(π ‖ π_SFT)  (nats^½)", title=f"PPO: {what}")
        ax.legend(fontsize=8)
    axes[0].set_ylabel("reward (centred: SFT = 0)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def plot_ppo_features(ppo_runs: dict[str, dict], path: Path) -> Path:
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.0))
    for colour, (name, run) in zip(_PPO_COLOURS, ppo_runs.items(), strict=False):
        steps = [row["step"] for row in run["eval"]]
        axes[0].plot(steps, [row["length"] for row in run["eval"]], "o-", color=colour, label=name, markersize=3)
        axes[1].plot(steps, [row["format_rate"] for row in run["eval"]], "o-", color=colour, label=name,
                     markersize=3)
    axes[0].set(xlabel="PPO step", ylabel="response length (content words + markers)", title="Length grows")
    axes[1].set(xlabel="PPO step", ylabel="share of list-marker tokens", title="Format markers grow")
    for ax in axes:
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def plot_reward_models(reward_models: dict, agreement: float, path: Path) -> Path:
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.0))
    names = list(reward_models["final"])
    x = np.arange(len(names))
    labels = [reward_models["final"][n]["accuracy_vs_labels"] for n in names]
    gold = [reward_models["final"][n]["accuracy_vs_gold"] for n in names]
    axes[0].bar(x - 0.18, labels, 0.36, label="vs held-out labels")
    axes[0].bar(x + 0.18, gold, 0.36, label="vs gold reward")
    axes[0].axhline(agreement, color="black", linestyle=":", label=f"labeller agreement {agreement:.2f}")
    axes[0].axhline(0.5, color="grey", linewidth=0.6)
    axes[0].set_xticks(x, names)
    axes[0].set(ylim=(0.4, 1.0), ylabel="pairwise accuracy", title="Reward-model accuracy")
    axes[0].legend(fontsize=8)

    for name, marker in zip(names, ("o-", "s--"), strict=False):
        points = reward_models["data_scaling"][name]
        axes[1].plot([p["comparisons"] for p in points], [p["accuracy_vs_gold"] for p in points], marker, label=name)
    axes[1].axhline(0.5, color="grey", linewidth=0.6)
    axes[1].set(xscale="log", xlabel="training comparisons", ylabel="accuracy vs gold",
                title="Accuracy against gold vs data: SFT vs random init")
    axes[1].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
