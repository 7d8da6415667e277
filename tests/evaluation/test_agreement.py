"""The agreement ceiling equals a direct count of the raw PandaLM votes."""

from __future__ import annotations

import json

import numpy as np
import pytest

from rewardkit.data import load_preferences
from rewardkit.evaluation.agreement import agreement_ceiling, majority
from rewardkit.evaluation.scored import ScoredDataset
from rewardkit.evaluation.suite import EvalOptions, summarize

N = 300  # the first 300 records: 43 with disagreement, including ties against a winner


def _count_against(votes: list[int], reference: list[int | None]) -> float:
    """Agreement with a reference winner (1 or 2), where it has one: same vote 1, a tie (0) 1/2, opposite 0."""
    scores = [1.0 if v == r else 0.5 if v == 0 else 0.0 for v, r in zip(votes, reference, strict=True) if r]
    return sum(scores) / len(scores)


def _majority_of(votes: tuple[int, ...]) -> int | None:
    """Written out for 2 and 3 voters: a vote shared by more voters than any other."""
    if len(votes) == 2:
        return votes[0] if votes[0] == votes[1] else None
    a, b, c = votes
    return a if a in (b, c) else b if b == c else None


def test_agreement_on_pandalm_equals_a_direct_count_of_the_votes(shared_data):
    path = shared_data / "pandalm-human" / "testset-v1.json"
    raw = json.loads(path.read_text())[:N]
    dataset = load_preferences(path, format="pandalm", limit=N)
    # A made-up RM: it prefers response2 except on every third record.
    rm_votes = [1 if i % 3 == 0 else 2 for i in range(N)]
    rewards = [np.array([1.0, 0.0]) if vote == 1 else np.array([0.0, 1.0]) for vote in rm_votes]
    lengths = [np.array([1, 1]) for _ in range(N)]
    result = summarize(ScoredDataset("pandalm", dataset.groups, rewards, lengths, lengths),
                       EvalOptions(bootstrap_samples=100))["agreement"]

    votes = [[record[f"annotator{a}"] for record in raw] for a in (1, 2, 3)]
    assert result["num_comparisons"] == N and result["num_annotators"] == 3
    for (a, b), key in zip([(0, 1), (0, 2), (1, 2)], result["pairwise_agreement"], strict=True):
        assert result["pairwise_agreement"][key] == pytest.approx(np.mean(np.equal(votes[a], votes[b])))
    for a, row in enumerate(result["per_annotator"]):
        others = [_majority_of(tuple(votes[o][i] for o in range(3) if o != a)) for i in range(N)]
        others = [m if m != 0 else None for m in others]  # a shared tie has no winner
        assert row["annotator_vs_others_majority"] == pytest.approx(_count_against(votes[a], others))
        assert row["rm_vs_others_majority"] == pytest.approx(_count_against(rm_votes, others))
        assert row["num_pairs"] == sum(m is not None for m in others)
        own = [v if v != 0 else None for v in votes[a]]
        assert row["rm_vs_annotator"] == pytest.approx(_count_against(rm_votes, own))
    everyone = [_majority_of(tuple(votes[o][i] for o in range(3))) for i in range(N)]
    everyone = [m if m != 0 else None for m in everyone]
    assert result["rm_vs_majority"] == pytest.approx(_count_against(rm_votes, everyone))
    assert result["annotator_ceiling"] > 0.9 > result["rm_vs_others_majority"]  # humans agree; this RM does not


def test_no_majority_and_tied_majority_are_left_out():
    assert majority([1.0, 0.0, 0.5]) is None and majority([1.0, 1.0, 0.0]) == 1.0
    labels = [(1.0, 1.0, 1.0), (1.0, 0.0, 0.5), (0.5, 0.5, 1.0), (0.0, 0.0, 1.0)]
    result = agreement_ceiling(labels, np.array([1.0, 1.0, 1.0, 0.0]))
    # Majority of all: 1.0, none, 0.5 (a tie: no winner), 0.0 -> the RM is right on both pairs that count.
    assert (result["rm_vs_majority"], result["num_pairs_majority_decisive"]) == (1.0, 2)
    # Annotator 3 against annotators 1 and 2: majorities 1.0, none, 0.5 (no winner), 0.0 -> 1 and 0 -> 0.5.
    assert result["per_annotator"][2]["annotator_vs_others_majority"] == 0.5
    assert result["per_annotator"][2]["num_pairs"] == 2
    assert agreement_ceiling([(1.0,), (0.0,)], np.array([1.0, 0.0])) is None  # one label is no ceiling
