"""The dashboard's plots as PNG bytes, drawn from `project_stats` (matplotlib's object API: safe in server threads)."""

from __future__ import annotations

import io
from datetime import datetime
from typing import Any

import numpy as np
from matplotlib.figure import Figure

PLOTS = ("throughput", "agreement", "time")


def _png(fig: Figure) -> bytes:
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    return buffer.getvalue()


def _empty(ax, text: str) -> None:
    ax.text(0.5, 0.5, text, ha="center", va="center", color="grey", transform=ax.transAxes)
    ax.set_xticks([])
    ax.set_yticks([])


def plot_throughput(stats: dict[str, Any]) -> bytes:
    """Cumulative rankings over time, one line per annotator."""
    fig = Figure(figsize=(6.4, 3.4))
    ax = fig.add_subplot()
    lines = {name: [datetime.fromisoformat(t) for t in times] for name, times in stats["timeline"].items() if times}
    if not lines:
        _empty(ax, "no rankings yet")
    for name, times in sorted(lines.items()):
        ax.step(times + [times[-1]], list(range(1, len(times) + 1)) + [len(times)], where="post", label=name)
    if lines:
        ax.set(ylabel="rankings (cumulative)", title="Throughput per annotator")
        ax.legend(fontsize=8, loc="upper left", ncol=2)
        fig.autofmt_xdate()
    return _png(fig)


def plot_agreement(stats: dict[str, Any]) -> bytes:
    """Pairwise agreement between annotators (heat map), and each one's agreement with the others' majority and
    with the reward model (bars)."""
    fig = Figure(figsize=(9.6, 3.8))
    left, right = fig.add_subplot(1, 2, 1), fig.add_subplot(1, 2, 2)
    names = stats["pairwise"]["names"]
    matrix = np.array([[np.nan if v is None else v for v in row] for row in stats["pairwise"]["agreement"]],
                      dtype=float).reshape(len(names), len(names))
    if np.isfinite(matrix).any():
        image = left.imshow(matrix, vmin=0.5, vmax=1.0, cmap="viridis")
        left.set_xticks(range(len(names)), names, rotation=45, ha="right", fontsize=8)
        left.set_yticks(range(len(names)), names, fontsize=8)
        for (row, column), value in np.ndenumerate(matrix):
            if np.isfinite(value):
                left.text(column, row, f"{value:.0%}", ha="center", va="center", fontsize=7,
                          color="white" if value < 0.8 else "black")
        fig.colorbar(image, ax=left, fraction=0.046)
        left.set_title("Pairwise agreement (shared items)")
    else:
        _empty(left, "no item ranked by two annotators yet")
    rows = [a for a in stats["annotators"] if a["vs_others_majority"] is not None or a["rm_agreement"] is not None]
    if rows:
        y = np.arange(len(rows))
        human = [a["vs_others_majority"] if a["vs_others_majority"] is not None else np.nan for a in rows]
        right.barh(y - 0.2, human, height=0.4, label="vs majority of others")
        if stats["rm_loaded"]:
            rm = [a["rm_agreement"] if a["rm_agreement"] is not None else np.nan for a in rows]
            right.barh(y + 0.2, rm, height=0.4, label="reward model vs annotator")
        right.axvline(0.5, color="grey", linewidth=0.8, linestyle="--")
        right.set_yticks(y, [a["name"] for a in rows], fontsize=8)
        right.set(xlim=(0, 1), xlabel="agreement on pairs", title="Agreement per annotator")
        right.invert_yaxis()
        right.legend(fontsize=8, loc="lower right")
    else:
        _empty(right, "no overlapping rankings yet")
    return _png(fig)


def plot_time(stats: dict[str, Any]) -> bytes:
    """Seconds per ranked item, one box per annotator."""
    fig = Figure(figsize=(6.4, 3.4))
    ax = fig.add_subplot()
    seconds = {name: values for name, values in stats["seconds"].items() if values}
    if not seconds:
        _empty(ax, "no rankings yet")
        return _png(fig)
    names = sorted(seconds)
    ax.boxplot([seconds[n] for n in names], showfliers=True)
    ax.set_xticks(range(1, len(names) + 1), names, fontsize=8, rotation=45 if len(names) > 8 else 0)
    ax.set_yscale("log")
    ax.set(ylabel="seconds per item (log scale)", title="Time per item")
    return _png(fig)


def plot(kind: str, stats: dict[str, Any]) -> bytes:
    return {"throughput": plot_throughput, "agreement": plot_agreement, "time": plot_time}[kind](stats)
