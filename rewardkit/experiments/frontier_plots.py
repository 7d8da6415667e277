"""The frontier experiment's figures: gold and proxy against √KL per method, bands over seeds (PNG, no display)."""

from __future__ import annotations

from pathlib import Path

from rewardkit.demo.plots import series
from rewardkit.plotting import plt, save_figure

_STYLES = {"ppo": "o-", "rloo": "s--", "grpo": "^--"}


def _algorithm(name: str) -> str:
    return name.split()[0].lower()


def plot_frontier(results: dict, plots_dir: Path) -> dict[str, Path]:
    """frontier.png (gold) and frontier_proxy.png (RM reward) against √KL; returns their paths."""
    colours = plt.get_cmap("tab10")
    paths = {}
    for key, metric, label in (("frontier", "gold", "gold reward (centred on SFT)"),
                               ("proxy", "proxy", "RM reward (centred on SFT)")):
        fig, ax = plt.subplots(figsize=(7.2, 4.8))
        for i, (name, method) in enumerate(results["methods"].items()):
            points = method["points"]
            x = [point["sqrt_kl"] for point in points]
            values, low, high = series(points, metric)
            colour = colours(i % 10)
            ax.plot(x, values, _STYLES.get(_algorithm(name), "o-"), color=colour, label=name, markersize=3)
            if low is not None:
                ax.fill_between(x, low, high, color=colour, alpha=0.12, linewidth=0)
        ax.axhline(0.0, color="grey", linewidth=0.6)
        ax.set(xlabel="√KL(π ‖ π_SFT) on held-out prompts (√nats)", ylabel=label,
               title=f"{metric.capitalize()} against √KL, {_seeds(results['seeds'])}")
        ax.legend(fontsize=7, ncol=2)
        paths[key] = save_figure(fig, plots_dir / f"{'frontier' if key == 'frontier' else 'frontier_proxy'}.png")
    return paths


def _seeds(seeds: list[int]) -> str:
    return f"seed {seeds[0]}" if len(seeds) == 1 else f"mean over seeds {', '.join(map(str, seeds))}"
