"""The issue's key test: an RM trained on length-biased AlpacaEval judgments shows a length bias that one trained on
length-balanced pairs does not. Both are measured on the same held-out, length-balanced pairs (half of the chosen
responses are the shorter one), so the data itself favours neither length."""

from __future__ import annotations

import pytest

from rewardkit.data import load_preferences
from rewardkit.evaluation.suite import EvalOptions, evaluate_dataset
from rewardkit.model import RewardModel


@pytest.fixture(scope="module")
def length_results(length_models) -> dict[str, dict]:
    test = load_preferences(length_models["test"])
    return {name: evaluate_dataset(RewardModel.from_pretrained(length_models[name]), test,
                                   EvalOptions(bootstrap_samples=200))["length"]
            for name in ("alpaca", "balanced")}


def test_rm_trained_on_alpacaeval_is_length_biased_and_the_balanced_one_is_not(length_results):
    biased, balanced = length_results["alpaca"], length_results["balanced"]
    assert biased["length_only_accuracy"] == pytest.approx(0.5, abs=0.05)  # the test data is balanced
    # Reward follows length for the AlpacaEval RM, not for the balanced one.
    assert biased["spearman_tokens"] > 0.3 and biased["pearson_characters"] > 0.3
    assert abs(balanced["spearman_tokens"]) < 0.2
    assert biased["spearman_tokens"] > balanced["spearman_tokens"] + 0.3
    # It decides more pairs by length: it picks the longer response more often, so it is right when the
    # chosen one is longer and wrong when it is shorter.
    assert biased["rm_prefers_longer"] > balanced["rm_prefers_longer"] + 0.1
    biased_gap = biased["accuracy_chosen_longer"] - biased["accuracy_chosen_shorter"]
    balanced_gap = balanced["accuracy_chosen_longer"] - balanced["accuracy_chosen_shorter"]
    assert biased_gap > balanced_gap + 0.2
