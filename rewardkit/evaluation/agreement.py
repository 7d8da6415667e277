"""The agreement ceiling: how often labellers agree with each other, next to how often the RM agrees with them.

InstructGPT reports labeller agreement (~73%) beside RM accuracy (~72%): an RM cannot be judged against labels
that people themselves disagree on. With several labels per pair (PandaLM's three annotators, kept in
`Comparison.annotator_labels` as 1.0 = better wins, 0.0 = worse wins, 0.5 = tie) this reports:

- pairwise agreement: the share of comparisons on which two annotators gave the same label (tie included);
- each annotator against the majority of the *others*, and the RM against that same majority on the same pairs,
  so the two are directly comparable (the ceiling);
- the RM against the majority of all annotators and against each annotator.

Scored against a reference, only pairs where the reference has a winner count; a tie from the one being scored
(an annotator's tie, equal rewards) counts half. A majority is the most frequent label; when the most frequent
labels are equally frequent (1 vs 1) there is no majority and the pair is left out.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from itertools import combinations

import numpy as np


def majority(labels: Sequence[float]) -> float | None:
    """The most frequent label, or None when two labels are equally frequent."""
    ranked = Counter(labels).most_common()
    if not ranked or (len(ranked) > 1 and ranked[0][1] == ranked[1][1]):
        return None
    return ranked[0][0]


def agreement_score(labels: np.ndarray, reference: np.ndarray) -> tuple[float, int]:
    """(agreement, pairs) of `labels` (1 / 0.5 / 0) with a reference, over pairs where the reference has a winner."""
    mask = np.isin(reference, (0.0, 1.0))
    if not mask.any():
        return float("nan"), 0
    score = 1.0 - np.abs(labels[mask] - reference[mask])  # same winner 1, tie 0.5, opposite 0
    return float(score.mean()), int(mask.sum())


def _as_array(values: Sequence[float | None]) -> np.ndarray:
    return np.asarray([np.nan if v is None else v for v in values], dtype=np.float64)


def agreement_ceiling(annotator_labels: Sequence[Sequence[float]], rm_outcomes: np.ndarray) -> dict | None:
    """Labeller agreement and RM agreement side by side; None with fewer than 2 labels per comparison.

    `annotator_labels[i]` holds comparison i's labels, one per annotator; `rm_outcomes[i]` is 1.0 / 0.5 / 0.0 as
    the RM rewards the better response higher / equally / lower. Comparisons with a different number of labels
    than the most common number are left out.
    """
    counts = Counter(len(labels) for labels in annotator_labels)
    if not counts or counts.most_common(1)[0][0] < 2:
        return None
    num_annotators = counts.most_common(1)[0][0]
    keep = [i for i, labels in enumerate(annotator_labels) if len(labels) == num_annotators]
    labels = np.asarray([annotator_labels[i] for i in keep], dtype=np.float64)
    rm = np.asarray(rm_outcomes, dtype=np.float64)[keep]
    names = [f"annotator {a + 1}" for a in range(num_annotators)]

    pairwise = {
        f"{names[a]} / {names[b]}": float(np.mean(labels[:, a] == labels[:, b]))
        for a, b in combinations(range(num_annotators), 2)
    }
    rows = []
    for a in range(num_annotators):
        others = np.delete(labels, a, axis=1)
        reference = _as_array([majority(row) for row in others])
        human, n = agreement_score(labels[:, a], reference)
        model, _ = agreement_score(rm, reference)
        versus_annotator, n_annotator = agreement_score(rm, labels[:, a])
        rows.append({
            "annotator": names[a],
            "annotator_vs_others_majority": human,
            "rm_vs_others_majority": model,
            "num_pairs": n,
            "rm_vs_annotator": versus_annotator,
            "num_pairs_annotator_decisive": n_annotator,
        })
    rm_majority, n_majority = agreement_score(rm, _as_array([majority(row) for row in labels]))
    return {
        "num_comparisons": len(keep),
        "num_annotators": num_annotators,
        "pairwise_agreement": pairwise,
        "mean_pairwise_agreement": float(np.mean(list(pairwise.values()))),
        "per_annotator": rows,
        "annotator_ceiling": float(np.nanmean([r["annotator_vs_others_majority"] for r in rows])),
        "rm_vs_others_majority": float(np.nanmean([r["rm_vs_others_majority"] for r in rows])),
        "rm_vs_majority": rm_majority,
        "num_pairs_majority_decisive": n_majority,
    }
