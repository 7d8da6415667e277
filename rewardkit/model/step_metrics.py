"""Metrics of step rewards against step labels, and ProcessBench's first-error protocol.

A step reward r is a logit, sigma(r) the probability that the step is correct; a label is that probability's
target (1 right, 0 wrong, soft in between, None unlabelled).

- step accuracy: labelled steps with y != 0.5 on the right side of sigma(r) = 1/2;
- step AUROC: P(a correct step outscores a wrong one), ties half (labels > 0.5 vs < 0.5);
- log-loss: binary cross-entropy of sigma(r) against y;
- ProcessBench (Zheng et al. 2024): the predicted first error of a solution is its first step whose sigma(r) falls
  below a threshold (-1: none does). acc_err = exact match of that index on solutions with an error, acc_cor =
  share of correct solutions predicted -1, F1 = their harmonic mean.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np
import torch


def auroc(scores: np.ndarray, positive: np.ndarray) -> float:
    """Area under the ROC curve (Mann-Whitney U / (n+ n-)), ties counted half; NaN without both classes."""
    scores, positive = np.asarray(scores, dtype=np.float64), np.asarray(positive, dtype=bool)
    num_positive, num_negative = int(positive.sum()), int((~positive).sum())
    if num_positive == 0 or num_negative == 0:
        return float("nan")
    order = np.argsort(scores, kind="mergesort")
    ranks = np.empty(len(scores))
    sorted_scores = scores[order]
    # Average ranks over ties (1-based).
    starts = np.flatnonzero(np.r_[True, sorted_scores[1:] != sorted_scores[:-1]])
    ends = np.r_[starts[1:], len(scores)]
    for start, end in zip(starts, ends, strict=True):
        ranks[order[start:end]] = (start + end + 1) / 2
    u = ranks[positive].sum() - num_positive * (num_positive + 1) / 2
    return float(u / (num_positive * num_negative))


def labelled_steps(
    rewards: Sequence[torch.Tensor], labels: Sequence[Sequence[float | None]]
) -> tuple[np.ndarray, np.ndarray]:
    """(rewards, labels) of every labelled step, flattened."""
    pairs = [(float(r), y) for solution, solution_labels in zip(rewards, labels, strict=True)
             for r, y in zip(solution.tolist(), solution_labels, strict=False) if y is not None]  # fmt: skip
    if not pairs:
        return np.zeros(0), np.zeros(0)
    values, targets = zip(*pairs, strict=True)
    return np.array(values), np.array(targets, dtype=np.float64)


@dataclass
class StepMetrics:
    accuracy: float
    auroc: float
    log_loss: float
    num_steps: int  # labelled steps scored
    num_correct_steps: int  # labels > 0.5
    num_wrong_steps: int  # labels < 0.5
    num_solutions: int

    def to_dict(self) -> dict:
        return asdict(self)


def step_metrics(rewards: Sequence[torch.Tensor], labels: Sequence[Sequence[float | None]]) -> StepMetrics:
    values, targets = labelled_steps(rewards, labels)
    decisive = targets != 0.5
    right = np.where(values == 0, 0.5, (values > 0) == (targets > 0.5))
    log_loss = np.mean(np.logaddexp(0.0, values) - targets * values) if len(values) else float("nan")
    return StepMetrics(
        accuracy=float(right[decisive].mean()) if decisive.any() else float("nan"),
        auroc=auroc(values[decisive], targets[decisive] > 0.5),
        log_loss=float(log_loss),
        num_steps=len(values),
        num_correct_steps=int((targets > 0.5).sum()),
        num_wrong_steps=int((targets < 0.5).sum()),
        num_solutions=len(rewards),
    )


# --------------------------------------------------------------------------------------------------- ProcessBench
def predicted_first_errors(rewards: Sequence[torch.Tensor], threshold: float) -> np.ndarray:
    """Per solution, the first step with sigma(r) < threshold, or -1."""
    predictions = []
    for solution in rewards:
        below = (torch.sigmoid(solution.double()) < threshold).nonzero()
        predictions.append(int(below[0]) if len(below) else -1)
    return np.array(predictions, dtype=np.int64)


@dataclass
class FirstErrorScores:
    accuracy_erroneous: float  # acc_err
    accuracy_correct: float  # acc_cor
    f1: float
    num_erroneous: int
    num_correct: int

    def to_dict(self) -> dict:
        return asdict(self)


def first_error_scores(predicted: np.ndarray, first_errors: np.ndarray) -> FirstErrorScores:
    """ProcessBench's acc_err, acc_cor and their harmonic mean (F1)."""
    predicted, first_errors = np.asarray(predicted), np.asarray(first_errors)
    erroneous = first_errors >= 0
    acc_err = float((predicted[erroneous] == first_errors[erroneous]).mean()) if erroneous.any() else float("nan")
    acc_cor = float((predicted[~erroneous] == -1).mean()) if (~erroneous).any() else float("nan")
    f1 = 2 * acc_err * acc_cor / (acc_err + acc_cor) if acc_err + acc_cor > 0 else 0.0
    return FirstErrorScores(acc_err, acc_cor, float(f1), int(erroneous.sum()), int((~erroneous).sum()))


def right_intervals(rewards: Sequence[torch.Tensor], first_errors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per solution, the thresholds t in (low, high] for which its predicted first error is right.

    With p_k = sigma(r_k) and m_k = min(p_0..p_k): a solution whose first error is e is predicted right iff
    p_e < t <= m_(e-1) (m_(-1) = +inf); a correct one iff t <= m_last. An error at a step truncation cut off can
    never be found (an empty interval)."""
    low, high = np.full(len(rewards), np.inf), np.full(len(rewards), -np.inf)
    for i, (solution, error) in enumerate(zip(rewards, first_errors, strict=True)):
        p = torch.sigmoid(solution.double()).numpy()
        running_min = np.minimum.accumulate(p) if len(p) else p
        if error < 0:
            low[i], high[i] = -np.inf, running_min[-1] if len(p) else np.inf
        elif error < len(p):
            low[i], high[i] = p[error], running_min[error - 1] if error > 0 else np.inf
    return low, high


def scores_at(
    low: np.ndarray, high: np.ndarray, erroneous: np.ndarray, thresholds: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(acc_err, acc_cor, F1) at each threshold, vectorized over thresholds."""
    right = (low[:, None] < thresholds[None, :]) & (thresholds[None, :] <= high[:, None])
    acc_err = right[erroneous].mean(axis=0) if erroneous.any() else np.full(len(thresholds), np.nan)
    acc_cor = right[~erroneous].mean(axis=0) if (~erroneous).any() else np.full(len(thresholds), np.nan)
    total = acc_err + acc_cor
    f1 = np.where(total > 0, 2 * acc_err * acc_cor / np.where(total > 0, total, 1.0), 0.0)
    return acc_err, acc_cor, f1


def threshold_grid(rewards: Sequence[torch.Tensor]) -> np.ndarray:
    """Candidate thresholds on sigma(r): every distinct step probability and one above the largest, so that the
    best threshold over the grid is the best over all thresholds."""
    values = np.unique(torch.sigmoid(torch.cat([r.double() for r in rewards])).numpy()) if rewards else np.zeros(0)
    return np.r_[values, np.nextafter(values[-1], 2.0)] if len(values) else np.array([0.5])


def best_threshold(rewards: Sequence[torch.Tensor], first_errors: np.ndarray) -> tuple[float, FirstErrorScores]:
    """The threshold with the highest F1 on these solutions (ties: the one closest to 0.5), and its scores."""
    first_errors = np.asarray(first_errors)
    thresholds = threshold_grid(rewards)
    low, high = right_intervals(rewards, first_errors)
    _, _, f1 = scores_at(low, high, first_errors >= 0, thresholds)
    best = max(range(len(thresholds)), key=lambda t: (f1[t], -abs(thresholds[t] - 0.5)))
    threshold = float(thresholds[best])
    return threshold, first_error_scores(predicted_first_errors(rewards, threshold), first_errors)


def fit_platt(rewards: np.ndarray, labels: np.ndarray, iterations: int = 50) -> tuple[float, float]:
    """(offset, scale) such that sigmoid((r - offset) / scale) best fits the labels (Platt scaling: logistic
    regression of the labels on the rewards, by Newton's method). (0, 1) when the rewards say nothing (a scale
    that would have to be negative or infinite)."""
    r, y = np.asarray(rewards, dtype=np.float64), np.asarray(labels, dtype=np.float64)
    if len(r) < 2 or np.ptp(r) == 0:
        return 0.0, 1.0
    features = np.stack([r, np.ones_like(r)], axis=1)
    weights = np.array([1.0, 0.0])  # slope a, intercept b: p = sigmoid(a r + b)
    for _ in range(iterations):
        p = 1.0 / (1.0 + np.exp(-np.clip(features @ weights, -50, 50)))
        gradient = features.T @ (p - y)
        hessian = features.T @ (features * (p * (1 - p))[:, None]) + 1e-9 * np.eye(2)
        step = np.linalg.solve(hessian, gradient)
        weights -= step
        if np.abs(step).max() < 1e-10:
            break
    slope, intercept = weights
    if not np.isfinite(weights).all() or slope <= 1e-6:
        return 0.0, 1.0
    return float(-intercept / slope), float(1.0 / slope)
