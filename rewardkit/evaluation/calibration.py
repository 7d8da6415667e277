"""Is P(w beats l) = sigmoid((r_w - r_l) / T) a probability one can trust?

The observed outcome of a comparison is its label probability: 1.0 for a hard label, the soft label otherwise
(AlpacaEval's judge probability, PandaLM's vote share), 0.5 for a tie. Every comparison enters in both
orientations ((p, y) and (1 - p, 1 - y)), so the numbers do not depend on which response is called "better" and the
reliability diagram covers [0, 1]. Metrics:

- ECE: the bin-count-weighted mean |mean predicted - mean observed| over equal-width bins;
- Brier score: mean (p - y)^2;  log-loss: mean cross-entropy -(y log p + (1 - y) log(1 - p)).

A single temperature T (Gao et al. 2022 fit one on validation data) rescales reward differences; it is fitted by
minimizing log-loss on held-out comparisons. The log-loss is convex in 1/T, so a golden-section search over
log(1/T) finds the minimum. T = 1000 (the search bound) means the reward differences carry no information about
the outcome: the best-calibrated forecast is then 0.5 for every pair.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import numpy as np

_EPS = 1e-7


@dataclass
class Calibration:
    temperature: float
    ece: float
    brier: float
    log_loss: float
    num_comparisons: int
    bins: list[dict] = field(default_factory=list)  # per bin: low, high, mean_predicted, mean_observed, count

    def to_dict(self) -> dict:
        return asdict(self)


def implied_probability(differences: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.asarray(differences, dtype=np.float64) / temperature))


def calibration(
    differences: np.ndarray, observed: np.ndarray, temperature: float = 1.0, num_bins: int = 10
) -> Calibration:
    """ECE, Brier and log-loss of sigmoid(differences / T) against observed outcomes (both orientations)."""
    p = implied_probability(differences, temperature)
    y = np.asarray(observed, dtype=np.float64)
    p, y = np.concatenate([p, 1.0 - p]), np.concatenate([y, 1.0 - y])
    if len(p) == 0:
        nan = float("nan")
        return Calibration(temperature, nan, nan, nan, 0)
    clipped = np.clip(p, _EPS, 1.0 - _EPS)
    log_loss = -np.mean(y * np.log(clipped) + (1.0 - y) * np.log(1.0 - clipped))
    index = np.minimum((p * num_bins).astype(int), num_bins - 1)
    bins, ece = [], 0.0
    for b in range(num_bins):
        mask = index == b
        if not mask.any():
            continue
        predicted, seen = float(p[mask].mean()), float(y[mask].mean())
        ece += mask.mean() * abs(predicted - seen)
        bins.append({"low": b / num_bins, "high": (b + 1) / num_bins, "mean_predicted": predicted,
                     "mean_observed": seen, "count": int(mask.sum())})
    return Calibration(
        temperature=float(temperature),
        ece=float(ece),
        brier=float(np.mean((p - y) ** 2)),
        log_loss=float(log_loss),
        num_comparisons=len(p) // 2,
        bins=bins,
    )


def fit_temperature(differences: np.ndarray, observed: np.ndarray, iterations: int = 100) -> float:
    """The T > 0 minimizing the log-loss of sigmoid(differences / T); searched over 1/T in [1e-3, 1e3]."""
    d = np.asarray(differences, dtype=np.float64)
    y = np.asarray(observed, dtype=np.float64)
    if len(d) == 0 or not np.any(d):
        return 1.0

    def loss(log_beta: float) -> float:
        logits = d * math.exp(log_beta)
        # -(y log s(z) + (1-y) log s(-z)) = softplus(z) - y z, computed stably
        return float(np.mean(np.logaddexp(0.0, logits) - y * logits))

    low, high = math.log(1e-3), math.log(1e3)
    ratio = (math.sqrt(5) - 1) / 2
    a, b = high - ratio * (high - low), low + ratio * (high - low)
    fa, fb = loss(a), loss(b)
    for _ in range(iterations):
        if fa < fb:
            high, b, fb = b, a, fa
            a = high - ratio * (high - low)
            fa = loss(a)
        else:
            low, a, fa = a, b, fb
            b = low + ratio * (high - low)
            fb = loss(b)
    return float(math.exp(-(low + high) / 2))

