"""Gao, Schulman & Hilton 2022 functional forms for gold reward versus d = sqrt(KL(pi || pi_init)).

    best-of-n:  R_bon(d) = d (alpha - beta d)        peak at d* = alpha / (2 beta)
    RL:         R_RL(d)  = d (alpha - beta log d)    peak at d* = exp(alpha / beta - 1)

Both are linear in (alpha, beta) with no intercept (R(0) = 0 once rewards are centred on the initial policy),
so they are fitted by ordinary least squares on the features [d, -d^2] and [d, -d log d].

A fit is judged on points it was not fitted to: `r2_cv` is the leave-one-point-out R² (each point predicted by the
fit to all the others; exact for least squares through the hat matrix: residual_i / (1 - h_ii)). It drops far
below the in-sample `r2` when the form does not follow the curve's shape, e.g. when the peak it implies is not
where the points peak.
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
    r2: float  # 1 - SS_res / SS_tot, SS_tot about the mean of R, on the fitted points
    r2_cv: float  # the same with each point's residual from the fit that left it out (nan with < 4 points)
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
    return OveroptimizationFit(form, float(alpha), float(beta), float(r2), _r2_cv(features, residual, total),
                               d_peak, r_peak)


def _r2_cv(features: np.ndarray, residual: np.ndarray, total: float) -> float:
    """Leave-one-out R²: 1 - PRESS / SS_tot, PRESS = sum (residual_i / (1 - h_ii))^2."""
    if len(residual) < 4 or total <= 0:  # two parameters: with fewer than 4 points nothing is left to judge
        return float("nan")
    leverage = np.einsum("ij,jk,ik->i", features, np.linalg.pinv(features.T @ features), features)
    if (leverage > 1 - 1e-9).any():  # a point only it determines: it cannot be predicted from the others
        return float("nan")
    return float(1.0 - ((residual / (1.0 - leverage)) ** 2).sum() / total)


def fit_best_of_n(d: np.ndarray, gold: np.ndarray) -> OveroptimizationFit:
    """Fit R(d) = d (alpha - beta d)."""
    return fit_overoptimization(d, gold, "bon")


def fit_rl(d: np.ndarray, gold: np.ndarray) -> OveroptimizationFit:
    """Fit R(d) = d (alpha - beta log d)."""
    return fit_overoptimization(d, gold, "rl")
