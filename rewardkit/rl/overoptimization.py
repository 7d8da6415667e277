"""Gao, Schulman & Hilton 2022 functional forms for gold reward versus d = sqrt(KL(pi || pi_init)).

    best-of-n:  R_bon(d) = d (alpha - beta d)        peak at d* = alpha / (2 beta)
    RL:         R_RL(d)  = d (alpha - beta log d)    peak at d* = exp(alpha / beta - 1)

Both are linear in (alpha, beta) with no intercept (R(0) = 0 once rewards are centred on the initial policy),
so they are fitted by ordinary least squares on the features [d, -d^2] and [d, -d log d].
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np

Form = Literal["bon", "rl"]


@dataclass
class OveroptimizationFit:
    form: Form
    alpha: float
    beta: float
    r2: float  # 1 - SS_res / SS_tot, SS_tot about the mean of R
    d_peak: float  # argmax_d R(d); inf when beta <= 0 (no over-optimization within the form)
    r_peak: float  # R(d_peak)

    def predict(self, d: np.ndarray | float) -> np.ndarray:
        d = np.asarray(d, dtype=float)
        return _features(self.form, d) @ np.array([self.alpha, self.beta])


def _d_log_d(d: np.ndarray) -> np.ndarray:
    """d log d with its limit 0 at d = 0, so points at the initial policy (KL = 0) stay usable."""
    safe = np.where(d > 0, d, 1.0)
    return np.where(d > 0, d * np.log(safe), 0.0)


def _features(form: Form, d: np.ndarray) -> np.ndarray:
    if form == "bon":
        return np.stack([d, -(d**2)], axis=-1)
    if form == "rl":
        return np.stack([d, -_d_log_d(d)], axis=-1)
    raise ValueError(f"unknown form {form!r}; expected 'bon' or 'rl'")


def _peak(form: Form, alpha: float, beta: float) -> tuple[float, float]:
    """(d*, R(d*)): where dR/dd = 0. bon: alpha^2 / (4 beta) at alpha / (2 beta); rl: beta d* at d*."""
    if beta <= 0:
        return math.inf, math.inf
    if form == "bon":
        return alpha / (2 * beta), alpha**2 / (4 * beta)
    if alpha / beta - 1 > 700:  # exp would overflow a float: the peak is beyond any reachable KL
        return math.inf, math.inf
    d_peak = math.exp(alpha / beta - 1)
    return d_peak, beta * d_peak


def fit_overoptimization(d: np.ndarray, gold: np.ndarray, form: Form) -> OveroptimizationFit:
    """Least-squares (alpha, beta) of `form` to gold rewards `gold` observed at distances `d` = sqrt(KL)."""
    d, gold = np.asarray(d, dtype=float), np.asarray(gold, dtype=float)
    if d.shape != gold.shape or d.ndim != 1:
        raise ValueError("d and gold must be 1-D arrays of the same length")
    if (d < 0).any():
        raise ValueError("d = sqrt(KL) must be non-negative")
    features = _features(form, d)
    (alpha, beta), *_ = np.linalg.lstsq(features, gold, rcond=None)
    residual = gold - features @ np.array([alpha, beta])
    total = ((gold - gold.mean()) ** 2).sum()
    r2 = 1.0 - (residual**2).sum() / total if total > 0 else float("nan")
    d_peak, r_peak = _peak(form, float(alpha), float(beta))
    return OveroptimizationFit(form, float(alpha), float(beta), float(r2), d_peak, r_peak)


def fit_best_of_n(d: np.ndarray, gold: np.ndarray) -> OveroptimizationFit:
    """Fit R(d) = d (alpha - beta d)."""
    return fit_overoptimization(d, gold, "bon")


def fit_rl(d: np.ndarray, gold: np.ndarray) -> OveroptimizationFit:
    """Fit R(d) = d (alpha - beta log d)."""
    return fit_overoptimization(d, gold, "rl")
