"""K-wise data judged as whole rankings: top-1 accuracy and Kendall's tau per prompt.

Pairwise accuracy on a K-wise group counts its C(K,2) pairs; these ask instead whether the RM's best response is
the labellers' best (top-1) and how well its whole order matches theirs (tau-b, which handles tied places). The
labelled order is recovered from the comparisons as each response's expected number of wins (a Borda count: a win
counts 1, a tie 1/2, a soft label its probability), which is exactly the ranking's order for complete rankings.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np

from rewardkit.data.records import Comparison


@dataclass(frozen=True)
class RankingMetrics:
    num_groups: int  # groups with K >= 3 responses
    top1_accuracy: float  # share of groups whose highest-reward response is a labelled best one
    kendall_tau: float  # mean over groups of tau-b(labelled order, reward order)

    def to_dict(self) -> dict:
        return asdict(self)


def label_scores(comparisons: Sequence[Comparison], k: int) -> np.ndarray:
    """Expected wins per response (Borda count): higher is better, equal means tied."""
    wins = np.zeros(k)
    for c in comparisons:
        wins[c.better] += c.prob
        wins[c.worse] += 1.0 - c.prob
    return wins


def kendall_tau_b(x: np.ndarray, y: np.ndarray) -> float:
    """Kendall's tau-b: (concordant - discordant) / sqrt((n0 - ties in x) (n0 - ties in y)); nan if x or y is
    constant."""
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    i, j = np.triu_indices(len(x), k=1)
    sx, sy = np.sign(x[i] - x[j]), np.sign(y[i] - y[j])
    denominator = np.sqrt(np.count_nonzero(sx) * np.count_nonzero(sy))
    return float((sx * sy).sum() / denominator) if denominator else float("nan")


def top1_hit(labels: np.ndarray, rewards: np.ndarray) -> float:
    """Share of the highest-reward responses (several when rewards tie) that are among the labelled best."""
    best = labels == labels.max()
    top = rewards == rewards.max()
    return float(best[top].mean())


def ranking_metrics(
    comparisons: Sequence[Sequence[Comparison]], rewards: Sequence[np.ndarray]
) -> RankingMetrics | None:
    """Ranking metrics over the groups with at least 3 responses; None when there are none."""
    hits, taus = [], []
    for group_comparisons, group_rewards in zip(comparisons, rewards, strict=True):
        if len(group_rewards) < 3 or not group_comparisons:
            continue
        labels = label_scores(group_comparisons, len(group_rewards))
        hits.append(top1_hit(labels, np.asarray(group_rewards)))
        taus.append(kendall_tau_b(labels, group_rewards))
    if not hits:
        return None
    valid = [t for t in taus if not np.isnan(t)]
    return RankingMetrics(len(hits), float(np.mean(hits)), float(np.mean(valid)) if valid else float("nan"))
