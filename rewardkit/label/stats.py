"""The dashboard's numbers: throughput, agreement between annotators, Krippendorff's alpha, time per item, and the
reward model's agreement with each annotator.

Every ranking is read as its C(K,2) pairwise labels (1.0: the first response of the pair placed above the second,
0.0: below, 0.5: tied), the unit InstructGPT's agreement figure counts:

- pairwise agreement of annotators A and B: the share of response pairs, over the items both ranked, on which
  they gave the same label (tie included), as in `rewardkit.evaluation.agreement`;
- each annotator against the majority of the *others* who ranked the same item (pairs where that majority has a
  winner; the annotator's tie counts half); the RM against each annotator on the pairs the annotator decided;
- Krippendorff's alpha with the interval metric over the same pairwise labels (units = response pairs, each in
  both orientations; coders = annotators): 1 is perfect agreement, 0 is what chance gives, below 0 systematic
  disagreement.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Mapping, Sequence
from itertools import combinations
from typing import Any

import numpy as np

from rewardkit.data.formats import places_from_ranking
from rewardkit.evaluation.agreement import majority
from rewardkit.label.store import ItemRow, JudgementRow


# ------------------------------------------------------------------------------------------ Krippendorff
def krippendorff_alpha(data: np.ndarray, metric: str = "interval") -> float:
    """Krippendorff's alpha of a coders x units array (NaN = no value), metric nominal / ordinal / interval.

    From the coincidence matrix o (Krippendorff 2011, "Computing Krippendorff's alpha-reliability"):
    alpha = 1 - (n - 1) * sum(o_vw * d_vw) / sum(n_v * n_w * d_vw), over units with at least two values.
    """
    data = np.asarray(data, dtype=np.float64)
    values = np.unique(data[~np.isnan(data)])
    if len(values) < 2:
        return float("nan")  # one value only: no variation to agree on
    counts = np.stack([(data == v).sum(axis=0) for v in values], axis=1).astype(np.float64)  # units x values
    pairable = counts.sum(axis=1)
    counts, pairable = counts[pairable >= 2], pairable[pairable >= 2]
    if len(counts) == 0:
        return float("nan")
    weighted = counts / (pairable - 1)[:, None]
    coincidences = weighted.T @ counts - np.diag(weighted.sum(axis=0))
    n_v = coincidences.sum(axis=1)
    n = n_v.sum()
    if metric == "nominal":
        distance = 1.0 - np.eye(len(values))
    elif metric == "interval":
        distance = (values[:, None] - values[None, :]) ** 2
    elif metric == "ordinal":
        cumulative = np.cumsum(n_v)
        g_low = np.minimum.outer(np.arange(len(values)), np.arange(len(values)))
        g_high = np.maximum.outer(np.arange(len(values)), np.arange(len(values)))
        between = cumulative[g_high] - np.where(g_low > 0, cumulative[np.maximum(g_low - 1, 0)], 0.0)
        distance = (between - (n_v[g_low] + n_v[g_high]) / 2) ** 2
    else:
        raise ValueError(f"unknown metric {metric!r}; expected nominal, ordinal or interval")
    expected = (np.outer(n_v, n_v) * distance).sum()
    if expected == 0:
        return float("nan")
    return float(1.0 - (n - 1) * (coincidences * distance).sum() / expected)


# ------------------------------------------------------------------------------------------ pairwise labels
def pair_labels(ranking: Sequence[Any], k: int) -> np.ndarray:
    """C(K,2) labels, pairs (i, j) with i < j in `combinations` order: 1.0 i above j, 0.0 below, 0.5 tied."""
    places = places_from_ranking(list(ranking), k, "ranking")
    return np.array([1.0 if places[i] < places[j] else 0.0 if places[i] > places[j] else 0.5
                     for i, j in combinations(range(k), 2)])


def reward_labels(rewards: Sequence[float]) -> np.ndarray:
    """The RM's own pairwise labels: which response of each pair it rewards more (0.5 for equal rewards)."""
    r = np.asarray(rewards, dtype=np.float64)
    i, j = np.array(list(combinations(range(len(r)), 2))).T
    return np.where(r[i] > r[j], 1.0, np.where(r[i] < r[j], 0.0, 0.5))


def _mean(values: list[float]) -> float | None:
    return float(np.mean(values)) if values else None


# ------------------------------------------------------------------------------------------ the dashboard
def project_stats(items: Sequence[ItemRow], judgements: Sequence[JudgementRow],
                  rewards: Mapping[int, Sequence[float]] | None = None) -> dict[str, Any]:
    """Every figure the dashboard shows, as plain JSON-able values (None where there is nothing to measure)."""
    k_of = {item.id: len(item.responses) for item in items}
    rankings = [j for j in judgements if j.ranking is not None]
    labels: dict[int, dict[str, np.ndarray]] = defaultdict(dict)  # item -> annotator -> pairwise labels
    for j in rankings:
        labels[j.item_id][j.annotator] = pair_labels(j.ranking, k_of[j.item_id])
    names = sorted({j.annotator for j in judgements})

    # pairwise agreement, each annotator against the majority of the others, and the RM against each annotator
    agree: dict[tuple[str, str], list[float]] = defaultdict(list)
    versus_others: dict[str, list[float]] = defaultdict(list)
    versus_rm: dict[str, list[float]] = defaultdict(list)
    for item_id, by_annotator in labels.items():
        for a, b in combinations(sorted(by_annotator), 2):
            agree[a, b].extend((by_annotator[a] == by_annotator[b]).astype(float))
        if len(by_annotator) >= 2:
            for a, mine in by_annotator.items():
                others = np.stack([v for name, v in by_annotator.items() if name != a], axis=1)
                reference = np.array([np.nan if (m := majority(row)) is None else m for row in others])
                decisive = np.isin(reference, (0.0, 1.0))
                versus_others[a].extend(1.0 - np.abs(mine[decisive] - reference[decisive]))
        if rewards is not None and item_id in rewards:
            rm = reward_labels(rewards[item_id])
            for a, mine in by_annotator.items():
                decided = np.isin(mine, (0.0, 1.0))  # the RM's tie counts half, as an annotator's does
                versus_rm[a].extend(1.0 - np.abs(rm[decided] - mine[decided]))

    matrix = [[None if a == b else _mean(agree[tuple(sorted((a, b)))]) for b in names] for a in names]
    pair_counts = [[0 if a == b else len(agree[tuple(sorted((a, b)))]) for b in names] for a in names]
    all_pairs = [x for values in agree.values() for x in values]

    # Krippendorff's alpha over response pairs of items with at least two rankings
    units = [(item_id, by) for item_id, by in labels.items() if len(by) >= 2]
    alpha, alpha_units = float("nan"), 0
    if units:
        columns = []
        for _, by in units:
            block = np.full((len(names), len(next(iter(by.values())))), np.nan)
            for name, values in by.items():
                block[names.index(name)] = values
            columns.append(block)
        data = np.concatenate(columns, axis=1)
        # Each pair in both orientations (labels l and 1 - l): which response of a pair is "first" is an accident
        # of the item's response order, and must not move alpha (with informative orders it would, through the
        # label marginals that alpha's chance agreement is computed from).
        alpha, alpha_units = krippendorff_alpha(np.concatenate([data, 1.0 - data], axis=1), "interval"), data.shape[1]

    per_annotator = []
    for name in names:
        mine = [j for j in judgements if j.annotator == name]
        ranked = [j for j in mine if j.ranking is not None]
        seconds = [j.seconds for j in ranked]
        times = sorted(j.created_at for j in ranked)
        span_hours = (times[-1] - times[0]).total_seconds() / 3600 if len(times) > 1 else 0.0
        per_annotator.append({
            "name": name,
            "rankings": len(ranked),
            "skips": sum(j.skip_reason is not None for j in mine),
            "unsafe_flags": sum(j.unsafe for j in mine),
            "median_seconds": float(np.median(seconds)) if seconds else None,
            "per_hour": (len(times) - 1) / span_hours if span_hours > 0 else None,
            "vs_others_majority": _mean(versus_others[name]),
            "pairs_vs_majority": len(versus_others[name]),
            "rm_agreement": _mean(versus_rm[name]),
            "pairs_vs_rm": len(versus_rm[name]),
        })

    judged_items = {j.item_id for j in rankings}
    return {
        "items": len(items),
        "items_complete": sum(item.completed >= item.target for item in items),
        "items_judged": len(judged_items),
        "rankings_wanted": sum(item.target for item in items),
        "rankings": len(rankings),
        "skips": sum(j.skip_reason is not None for j in judgements),
        "unsafe_flags": sum(j.unsafe for j in judgements),
        "overlap_items": len(units),
        "annotators": per_annotator,
        "pairwise": {"names": names, "agreement": matrix, "pairs": pair_counts},
        "mean_pairwise_agreement": _mean(all_pairs),
        "krippendorff_alpha": None if math.isnan(alpha) else alpha,
        "alpha_units": alpha_units,
        "rm_loaded": rewards is not None,
        "rm_agreement": _mean([x for values in versus_rm.values() for x in values]),
        "timeline": {name: [j.created_at.isoformat() for j in rankings if j.annotator == name] for name in names},
        "seconds": {name: [j.seconds for j in rankings if j.annotator == name] for name in names},
    }
