"""Bootstrap confidence intervals that resample prompts, not comparisons.

Comparisons of one prompt are not independent (a K-wise group has C(K,2) of them; AlpacaEval compares many
response pairs per instruction), so whole prompts are drawn with replacement and the statistic is recomputed:
the percentile interval of those draws is reported. Seeded, so the same data gives the same interval.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np


@dataclass(frozen=True)
class Interval:
    low: float
    high: float
    confidence: float

    def to_dict(self) -> dict:
        return asdict(self)


def bootstrap_mean(
    values: np.ndarray,
    clusters: np.ndarray,
    num_samples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> Interval:
    """Percentile interval of mean(values) when whole clusters (prompts) are resampled with replacement."""
    values = np.asarray(values, dtype=np.float64)
    if len(values) == 0:
        return Interval(float("nan"), float("nan"), confidence)
    _, cluster = np.unique(np.asarray(clusters), return_inverse=True)
    sums = np.bincount(cluster, weights=values)
    counts = np.bincount(cluster).astype(np.float64)
    rng = np.random.default_rng(seed)
    means = []
    for start in range(0, num_samples, 200):  # chunks keep memory at 200 x num_clusters
        draws = rng.integers(0, len(sums), size=(min(200, num_samples - start), len(sums)))
        means.append(sums[draws].sum(axis=1) / counts[draws].sum(axis=1))
    low, high = np.quantile(np.concatenate(means), [(1 - confidence) / 2, (1 + confidence) / 2])
    return Interval(float(low), float(high), confidence)
