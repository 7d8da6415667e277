"""`rewardkit eval` on step-labelled data: ProcessBench's protocol, step AUROC and solution scores, with intervals.

Per dataset (e.g. ProcessBench's gsm8k and math subsets, one file each):

- **First-error F1** (Zheng et al. 2024): the predicted first error is the first step whose sigma(reward) falls
  below a threshold. acc_err (exact index on solutions with an error), acc_cor (correct solutions predicted to have
  none), F1 their harmonic mean. The threshold is chosen where it may be: given (`threshold`), chosen on another
  dataset (`--threshold-data`, as the paper picks one on GSM8K), or by default chosen by F1 on a seeded split of
  this dataset's problems (`validation_fraction`) and measured on the other problems only. The **oracle** figure,
  the threshold tuned on the measured solutions themselves, is an upper bound and labelled as such.
- **Step AUROC**: P(a correct step outscores a wrong one), with step accuracy and log-loss (`step_metrics`).
- **Solution scores** by `min`, `product`, `last` and `mean` of the step probabilities: AUROC for telling
  solutions without an error from those with one (and from ProcessBench's final-answer label when present), the
  way a best-of-n selector would use them.

Intervals are percentile bootstraps that resample whole problems (seeded).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch

from rewardkit.data.steps import StepDataset, split_steps
from rewardkit.errors import RewardkitError
from rewardkit.evaluation.options import ProcessEvalOptions
from rewardkit.model.reward_model import RewardModel
from rewardkit.model.step_metrics import (
    auroc,
    best_threshold,
    first_error_scores,
    predicted_first_errors,
    right_intervals,
    scores_at,
    step_metrics,
)
from rewardkit.model.step_scores import AGGREGATIONS, aggregate_steps

ORACLE_NOTE = "threshold tuned on the evaluated solutions themselves: an upper bound, not a held-out figure"


@dataclass
class ScoredSteps:
    """Every solution of a dataset with its step rewards (normalized), labels and problem."""

    name: str
    rewards: list[torch.Tensor]
    labels: list[list[float | None]]
    first_errors: np.ndarray  # -1: no error; solutions without a known first error are left out
    problem: np.ndarray  # the group (problem) index of each solution
    final_answer_correct: np.ndarray | None = None
    steps_cut: int = 0
    meta: list[dict] = field(default_factory=list)

    def subset(self, rows: np.ndarray) -> ScoredSteps:
        return ScoredSteps(
            self.name, [self.rewards[i] for i in rows], [self.labels[i] for i in rows], self.first_errors[rows],
            self.problem[rows], None if self.final_answer_correct is None else self.final_answer_correct[rows],
            self.steps_cut, [self.meta[i] for i in rows] if self.meta else [],
        )  # fmt: skip


def score_step_dataset(
    model: RewardModel, dataset: StepDataset, batch_size: int = 32, progress: bool = False
) -> ScoredSteps:
    """Score every solution's steps (the scoring shared by all launched processes)."""
    from rewardkit.distributed import ShardedScorer  # the model layer's helpers, imported when scoring

    rows = [(g, group.prompt, solution) for g, group in enumerate(dataset.groups) for solution in group.solutions]
    encoded = model.encode_steps([prompt for _, prompt, _ in rows], [solution.steps for _, _, solution in rows])
    raw = ShardedScorer(model, progress=progress).score_encoded_steps(
        [e.input_ids for e in encoded], [e.reward_positions for e in encoded], batch_size)
    rewards = [model.normalize(r) for r in raw]
    finals = [solution.meta.get("final_answer_correct") for _, _, solution in rows]
    return ScoredSteps(
        name=dataset.name,
        rewards=rewards,
        labels=[solution.labels[: len(r)] for (_, _, solution), r in zip(rows, rewards, strict=True)],
        first_errors=np.array([-2 if s.first_error is None else s.first_error for _, _, s in rows]),
        problem=np.array([g for g, _, _ in rows]),
        final_answer_correct=np.array(finals, dtype=bool) if all(f is not None for f in finals) else None,
        steps_cut=sum(len(s.steps) - len(r) for (_, _, s), r in zip(rows, rewards, strict=True)),
        meta=[{"problem": g, **solution.meta} for g, _, solution in rows],
    )


def bootstrap_interval(
    clusters: np.ndarray,
    statistic: Callable[[np.ndarray], float],
    num_samples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> dict:
    """Percentile interval of `statistic(rows)` over resamples of whole clusters (problems), with replacement."""
    unique, inverse = np.unique(clusters, return_inverse=True)
    members = [np.flatnonzero(inverse == c) for c in range(len(unique))]
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(num_samples):
        drawn = rng.integers(0, len(unique), size=len(unique))
        value = statistic(np.concatenate([members[c] for c in drawn]))
        if np.isfinite(value):
            values.append(value)
    if not values:
        return {"low": float("nan"), "high": float("nan"), "confidence": confidence}
    low, high = np.quantile(values, [(1 - confidence) / 2, (1 + confidence) / 2])
    return {"low": float(low), "high": float(high), "confidence": confidence}


def first_error_report(scored: ScoredSteps, threshold: float, options: ProcessEvalOptions) -> dict:
    """acc_err, acc_cor and F1 at a fixed threshold, each with a bootstrap interval over problems."""
    erroneous = scored.first_errors >= 0
    low, high = right_intervals(scored.rewards, scored.first_errors)
    right = (low < threshold) & (threshold <= high)

    def interval(statistic: Callable[[np.ndarray], float]) -> dict:
        return bootstrap_interval(scored.problem, statistic, options.bootstrap_samples, options.confidence,
                                  options.seed)

    def mean(values: np.ndarray) -> float:
        return float(values.mean()) if len(values) else float("nan")

    def f1(rows: np.ndarray) -> float:
        err, cor = right[rows][erroneous[rows]], right[rows][~erroneous[rows]]
        if not len(err) or not len(cor):
            return float("nan")
        a, c = err.mean(), cor.mean()
        return 2 * a * c / (a + c) if a + c > 0 else 0.0

    scores = first_error_scores(predicted_first_errors(scored.rewards, threshold), scored.first_errors)
    return {
        **scores.to_dict(),
        "threshold": threshold,
        "accuracy_erroneous_ci": interval(lambda rows: mean(right[rows][erroneous[rows]])),
        "accuracy_correct_ci": interval(lambda rows: mean(right[rows][~erroneous[rows]])),
        "f1_ci": interval(f1),
    }


def threshold_curve(scored: ScoredSteps, points: int = 200) -> list[dict]:
    """F1, acc_err and acc_cor against the threshold (for the report's plot)."""
    thresholds = np.linspace(0.0, 1.0, points + 1)
    low, high = right_intervals(scored.rewards, scored.first_errors)
    acc_err, acc_cor, f1 = scores_at(low, high, scored.first_errors >= 0, thresholds)
    return [{"threshold": float(t), "f1": float(f), "accuracy_erroneous": float(a), "accuracy_correct": float(c)}
            for t, f, a, c in zip(thresholds, f1, acc_err, acc_cor, strict=True)]


def solution_scores(scored: ScoredSteps, options: ProcessEvalOptions) -> dict:
    """Per aggregation: AUROC of the solution score for 'no wrong step' (and for a correct final answer)."""
    no_error = scored.first_errors == -1
    result = {}
    for how in AGGREGATIONS:
        score = np.array([aggregate_steps(r, how) for r in scored.rewards])
        entry = {"auroc_no_error": auroc(score, no_error),
                 "auroc_no_error_ci": bootstrap_interval(
                     scored.problem, lambda rows, s=score: auroc(s[rows], no_error[rows]), options.bootstrap_samples,
                     options.confidence, options.seed)}  # fmt: skip
        if scored.final_answer_correct is not None:
            entry["auroc_final_answer"] = auroc(score, scored.final_answer_correct)
        result[how] = entry
    return result


def summarize_steps(scored: ScoredSteps, options: ProcessEvalOptions, threshold_from: ScoredSteps | None) -> dict:
    """Every figure of one dataset. `threshold_from`: solutions to choose the threshold on (None: the threshold
    is given in `options`)."""
    metrics = step_metrics(scored.rewards, scored.labels)
    step_rewards, step_correct, steps_of = [], [], []
    for rewards, labels in zip(scored.rewards, scored.labels, strict=True):
        decisive = [(r, y > 0.5) for r, y in zip(rewards.tolist(), labels, strict=False) if y is not None and y != 0.5]
        steps_of.append(np.arange(len(step_rewards), len(step_rewards) + len(decisive)))
        step_rewards += [r for r, _ in decisive]
        step_correct += [c for _, c in decisive]
    step_rewards, step_correct = np.array(step_rewards), np.array(step_correct, dtype=bool)

    def step_auroc(rows: np.ndarray) -> float:  # the steps of the drawn solutions, as often as they were drawn
        steps = np.concatenate([steps_of[row] for row in rows])
        return auroc(step_rewards[steps], step_correct[steps])

    probabilities, edges = 1 / (1 + np.exp(-step_rewards)), np.linspace(0, 1, 21)
    histogram = {"edges": edges.tolist(), "correct": np.histogram(probabilities[step_correct], edges)[0].tolist(),
                 "wrong": np.histogram(probabilities[~step_correct], edges)[0].tolist()}
    result = {
        "num_solutions": len(scored.rewards),
        "num_problems": int(len(np.unique(scored.problem))),
        "steps_cut": scored.steps_cut,
        "step": {**metrics.to_dict(), "auroc_ci": bootstrap_interval(
            scored.problem, step_auroc, options.bootstrap_samples, options.confidence, options.seed),
            "histogram": histogram},
    }
    if (scored.first_errors < -1).any():  # soft labels: no first error to find
        return result
    if threshold_from is not None:
        threshold, validation = best_threshold(threshold_from.rewards, threshold_from.first_errors)
        source = options.threshold_source or f"chosen by F1 on {len(threshold_from.rewards)} validation solutions"
        validation_scores: dict | None = {**validation.to_dict(), "num_solutions": len(threshold_from.rewards)}
    else:
        threshold, source, validation_scores = float(options.threshold), options.threshold_source, None
    oracle_threshold, oracle = best_threshold(scored.rewards, scored.first_errors)
    return {
        **result,
        "first_error": {
            **first_error_report(scored, threshold, options),
            "threshold_source": source,
            "validation": validation_scores,
        },
        "oracle": {"threshold": oracle_threshold, **oracle.to_dict(), "note": ORACLE_NOTE},
        "curve": threshold_curve(scored),
        "solution": solution_scores(scored, options),
    }


def evaluate_steps(
    model: RewardModel,
    dataset: StepDataset,
    options: ProcessEvalOptions | None = None,
    threshold_data: ScoredSteps | None = None,
) -> dict:
    """ProcessBench's protocol and the step metrics on one dataset (see the module docstring)."""
    options = options or ProcessEvalOptions()
    if options.threshold is not None or threshold_data is not None:
        scored = score_step_dataset(model, dataset, options.batch_size, options.progress)
        return {"measured_on": f"all {len(scored.rewards)} solutions",
                **summarize_steps(scored, options, threshold_data)}
    try:
        rest, validation = split_steps(dataset, options.validation_fraction, options.seed)
    except ValueError as error:
        raise RewardkitError(f"cannot hold out a validation split to choose the threshold: {error}") from error
    measured = score_step_dataset(model, rest, options.batch_size, options.progress)
    chosen_on = score_step_dataset(model, validation, options.batch_size, options.progress)
    options.threshold_source = (f"chosen by F1 on a {options.validation_fraction:.0%} validation split of the "
                                f"problems ({len(chosen_on.rewards)} solutions, seed {options.seed})")
    return {"measured_on": f"the other {len(measured.rewards)} solutions",
            **summarize_steps(measured, options, chosen_on)}


def scored_threshold_data(model: RewardModel, dataset: StepDataset, options: ProcessEvalOptions) -> ScoredSteps:
    """Solutions of another dataset to choose the threshold on (`--threshold-data`)."""
    scored = score_step_dataset(model, dataset, options.batch_size, options.progress)
    options.threshold_source = f"chosen by F1 on {dataset.name} ({len(scored.rewards)} solutions)"
    return scored
