"""Ceilings and baselines for a reward model's accuracy, from what the world knows and a real study cannot.

Every response pair (i, j) of held-out rankings is judged by:

    the recorded label       one noisy draw of the labeller (the ranking the RM is scored against)
    the labeller's p         its true P(i above j) = sigmoid((u_i - u_j) / T): known here, never in a real study
    gold                     the gold reward's order
    judges                   the noise-free labeller utility u, the length-only rule (longer wins), each RM

and these are reported side by side (InstructGPT's ceilings, Ouyang et al. 2022 appendix; Singhal et al. 2023):

    Bayes ceiling        mean max(p, 1 - p): the best any model can do against one noisy label per pair
    labeller agreement   mean p² + (1 - p)²: how often two labellers agree; below the ceiling, so an RM may beat it
    expected accuracy    a judge's accuracy against a fresh label, p or 1 - p per pair: the recorded labels' accuracy
                         without their draw noise (the noise-free utility reaches the Bayes ceiling exactly)
    gaps                 a judge minus the Bayes ceiling, minus the length-only rule: paired, pair by pair
    accuracy vs gold     pairs that gold ties are left out; a judge that ties a pair scores 1/2 on it, both ways

Intervals are percentile bootstraps over prompts (a ranking's pairs are not independent).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from rewardkit.evaluation.bootstrap import bootstrap_mean
from rewardkit.evaluation.pairwise import outcomes
from rewardkit.world.features import response_length
from rewardkit.world.labeller import Labeller, utilities
from rewardkit.world.world import World

UTILITY = "noise-free labeller utility"
LENGTH_RULE = "length-only rule (longer wins)"


@dataclass
class HeldOutPairs:
    """Every pair i < j of every held-out ranking, with each judge's view of it ([M] arrays)."""

    group: np.ndarray  # which ranking (prompt) the pair comes from
    label: np.ndarray  # +1 when the recorded ranking puts i above j, -1 when below
    prob: np.ndarray  # the labeller's true P(i above j)
    gold: np.ndarray  # g_i - g_j
    longer: np.ndarray  # len_i - len_j, in words
    differences: dict[str, np.ndarray]  # judge -> score_i - score_j

    @property
    def num_prompts(self) -> int:
        return len(np.unique(self.group))


def held_out_pairs(
    world: World, labeller: Labeller, records: list[dict], scores: dict[str, list[np.ndarray]] | None = None
) -> HeldOutPairs:
    """Pairs of `records` ({"prompt", "responses", "ranking"}, ranked by `labeller`), judged by the labeller's
    noise-free utility, the length-only rule and each entry of `scores` (one score per response of each record)."""
    columns: dict[str, list[np.ndarray]] = {key: [] for key in ("group", "label", "prob", "gold", "longer")}
    judged: dict[str, list[np.ndarray]] = {UTILITY: [], LENGTH_RULE: [], **{name: [] for name in scores or {}}}
    for g, record in enumerate(records):
        prompt, responses = record["prompt"], record["responses"]
        i, j = np.triu_indices(len(responses), k=1)
        position = np.argsort(record["ranking"])  # response index -> place in the ranking, 0 = best
        gold = world.gold_reward([prompt] * len(responses), responses).double().numpy()
        length = np.array(response_length(responses), dtype=float)
        utility = utilities(world, prompt, responses, labeller.length_bias, labeller.format_bias)
        columns["group"].append(np.full(len(i), g))
        columns["label"].append(np.where(position[i] < position[j], 1.0, -1.0))
        columns["prob"].append(labeller.preference_matrix(prompt, responses)[i, j])
        columns["gold"].append(gold[i] - gold[j])
        columns["longer"].append(length[i] - length[j])
        judged[UTILITY].append(utility[i] - utility[j])
        judged[LENGTH_RULE].append(length[i] - length[j])
        for name, values in (scores or {}).items():
            values = np.asarray(values[g], dtype=float)
            judged[name].append(values[i] - values[j])
    joined = {key: np.concatenate(parts) for key, parts in columns.items()}
    return HeldOutPairs(**joined, differences={name: np.concatenate(parts) for name, parts in judged.items()})


def _estimate(values: np.ndarray, groups: np.ndarray, seed: int) -> dict:
    if len(values) == 0:
        return {"value": None, "low": None, "high": None}
    interval = bootstrap_mean(values, groups, seed=seed)
    return {"value": float(np.mean(values)), "low": interval.low, "high": interval.high}


def ceilings_and_baselines(pairs: HeldOutPairs, seed: int = 0) -> dict:
    """Ceilings (Bayes, agreement, labels vs gold) and every judge's accuracy against the held-out labels, expected
    against a fresh label, and against gold; each with a bootstrap interval over prompts."""
    p, label, group = pairs.prob, pairs.label, pairs.group
    distinct_gold = pairs.gold != 0
    gold_sign = np.sign(pairs.gold)

    def estimate(values: np.ndarray, where: np.ndarray | None = None) -> dict:
        where = np.ones(len(values), dtype=bool) if where is None else where
        return _estimate(values[where], group[where], seed)

    def expected(difference: np.ndarray) -> np.ndarray:
        return p * (difference > 0) + (1 - p) * (difference < 0) + 0.5 * (difference == 0)

    length_rule = pairs.differences[LENGTH_RULE]

    def judge(difference: np.ndarray) -> dict:
        return {
            "vs_labels": estimate(outcomes(difference * label)),
            "expected_vs_labels": estimate(expected(difference)),
            "vs_gold": estimate(outcomes(difference * gold_sign), distinct_gold),
            # paired, pair by pair: how far below the Bayes ceiling, how far above the length-only rule
            "expected_minus_bayes": estimate(expected(difference) - np.maximum(p, 1 - p)),
            "expected_minus_length_rule": estimate(expected(difference) - expected(length_rule)),
            "vs_gold_minus_length_rule": estimate(outcomes(difference * gold_sign) - outcomes(length_rule * gold_sign),
                                                  distinct_gold),
        }

    return {
        "pairs": len(p),
        "prompts": pairs.num_prompts,
        "gold_ties": int((~distinct_gold).sum()),
        "bayes_ceiling": estimate(np.maximum(p, 1 - p)),
        "labeller_agreement": estimate(p**2 + (1 - p) ** 2),
        "labels_vs_gold": estimate(outcomes(label * gold_sign), distinct_gold),
        "judges": {name: judge(difference) for name, difference in pairs.differences.items()},
    }


def accuracy_by_length(pairs: HeldOutPairs, judge: str, seed: int = 0) -> dict:
    """A judge's accuracy against the held-out labels when the labelled-better response is longer, shorter or as
    long as the other: a length detector is right on the first and wrong on the second."""
    difference = pairs.differences[judge] * pairs.label
    better_longer = pairs.longer * pairs.label
    cases: dict[str, Callable[[np.ndarray], np.ndarray]] = {
        "better is longer": lambda x: x > 0, "better is shorter": lambda x: x < 0, "same length": lambda x: x == 0}
    result = {}
    for case, select in cases.items():
        where = select(better_longer)
        result[case] = {"share": float(where.mean()),
                        "accuracy": _estimate(outcomes(difference[where]), pairs.group[where], seed)}
    return result
