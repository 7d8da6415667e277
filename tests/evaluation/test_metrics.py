"""Every evaluation metric on hand-made data whose answer is known (no model needed)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from rewardkit.data.formats import comparisons_from_places
from rewardkit.data.records import Comparison, PreferenceGroup
from rewardkit.errors import RewardkitError
from rewardkit.evaluation.bootstrap import bootstrap_mean
from rewardkit.evaluation.calibration import calibration, fit_temperature
from rewardkit.evaluation.ranking import kendall_tau_b, ranking_metrics
from rewardkit.evaluation.scored import ScoredDataset
from rewardkit.evaluation.subsets import load_sections, section_scores, subset_accuracy
from rewardkit.evaluation.suite import EvalOptions, summarize


def pair(prompt: str, prob: float = 1.0, subset: str | None = None, responses=("good one", "bad")) -> PreferenceGroup:
    return PreferenceGroup(prompt, list(responses), [Comparison(0, 1, prob)], subset=subset)


def scored(groups: list[PreferenceGroup], rewards, tokens=None) -> ScoredDataset:
    """A ScoredDataset with given rewards; lengths default to word counts."""
    tokens = tokens or [[len(r.split()) for r in g.responses] for g in groups]
    return ScoredDataset("hand", groups, [np.asarray(r, dtype=float) for r in rewards],
                         [np.asarray(t) for t in tokens], [np.asarray([len(r) for r in g.responses]) for g in groups])


def test_accuracy_counts_equal_rewards_half_and_leaves_labelled_ties_out():
    groups = [pair("right"), pair("wrong"), pair("equal"), pair("tie label", prob=0.5)]
    result = summarize(scored(groups, [[2, 1], [0, 1], [3, 3], [0, 5]]), EvalOptions(bootstrap_samples=200))
    assert result["accuracy"] == pytest.approx((1 + 0 + 0.5) / 3)
    assert (result["num_comparisons"], result["num_tied_labels"]) == (3, 1)
    assert result["accuracy_ci"]["low"] <= result["accuracy"] <= result["accuracy_ci"]["high"]
    assert "subsets" not in result and "ranking" not in result and "agreement" not in result


def test_bootstrap_interval_contains_the_estimate_shrinks_with_data_and_resamples_prompts():
    rng = np.random.default_rng(0)
    small, large = ((rng.random(n) < 0.7).astype(float) for n in (50, 800))
    widths = {}
    for name, values in (("small", small), ("large", large)):
        interval = bootstrap_mean(values, np.arange(len(values)), seed=1)
        assert interval.low <= values.mean() <= interval.high
        widths[name] = interval.high - interval.low
    assert widths["large"] < 0.5 * widths["small"]  # 16x the prompts: about a quarter of the width
    assert bootstrap_mean(large, np.arange(800), seed=1) == bootstrap_mean(large, np.arange(800), seed=1)

    # Ten identical comparisons per prompt carry no more information than one: resampling prompts sees that,
    # resampling comparisons would not.
    values = (rng.random(100) < 0.6).astype(float)
    per_prompt = bootstrap_mean(np.repeat(values, 10), np.repeat(np.arange(100), 10), seed=2)
    assert per_prompt == bootstrap_mean(values, np.arange(100), seed=2)
    naive = bootstrap_mean(np.repeat(values, 10), np.arange(1000), seed=2)
    assert naive.high - naive.low < 0.5 * (per_prompt.high - per_prompt.low)


def test_rewardbench_sections_weight_subsets_by_prompts_and_average_sections(tmp_path):
    # chat-easy: 10 prompts all right; chat-hard: 30 prompts, half right; safety: 5 prompts, 4 right.
    groups, rewards = [], []
    for subset, n, right in (("chat-easy", 10, 10), ("chat-hard", 30, 15), ("safety", 5, 4)):
        for i in range(n):
            groups.append(pair(f"{subset} {i}", subset=subset))
            rewards.append([1, 0] if i < right else [0, 1])
    subsets = subset_accuracy(scored(groups, rewards).pairs())
    assert {name: (s.accuracy, s.num_prompts) for name, s in subsets.items()} == {
        "chat-easy": (1.0, 10), "chat-hard": (0.5, 30), "safety": (0.8, 5)}

    sections, overall = section_scores(subsets, {"Chat": ["chat-easy", "chat-hard"], "Safety": ["safety"]})
    assert sections == pytest.approx({"Chat": (10 * 1.0 + 30 * 0.5) / 40, "Safety": 0.8})
    assert overall == pytest.approx((0.625 + 0.8) / 2)
    sections, overall = section_scores(subsets)  # default: each subset is its own section
    assert overall == pytest.approx((1.0 + 0.5 + 0.8) / 3)

    (tmp_path / "sections.yaml").write_text("Chat:\n  - chat-easy\n  - chat-hard\nSafety: [safety]\n")
    (tmp_path / "sections.json").write_text(json.dumps({"Chat": ["chat-easy", "chat-hard"], "Safety": ["safety"]}))
    assert load_sections(tmp_path / "sections.yaml") == load_sections(tmp_path / "sections.json")
    result = summarize(scored(groups, rewards), EvalOptions(sections=load_sections(tmp_path / "sections.yaml")))
    assert result["overall"] == pytest.approx(0.7125)
    (tmp_path / "bad.yaml").write_text("A: [x]\nB: [x]\n")
    with pytest.raises(RewardkitError, match="'x' is in both 'A' and 'B'"):
        load_sections(tmp_path / "bad.yaml")


def test_kendall_tau_and_top1_on_hand_rankings():
    four = comparisons_from_places([0, 1, 2, 3])  # response 0 best ... 3 worst
    # One adjacent swap (2 <-> 3): 5 concordant, 1 discordant pair -> tau 4/6; the best response is on top.
    assert kendall_tau_b([4, 3, 2, 1], [4, 3, 1, 2]) == pytest.approx(4 / 6)
    one_swap = ranking_metrics([four], [np.array([4.0, 3.0, 1.0, 2.0])])
    assert (one_swap.top1_accuracy, one_swap.kendall_tau) == (1.0, pytest.approx(2 / 3))
    # Best response ranked last of the top: 3 concordant, 3 discordant -> tau 0, and top-1 is wrong.
    both = ranking_metrics([four, four], [np.array([4.0, 3.0, 1.0, 2.0]), np.array([1.0, 4.0, 3.0, 2.0])])
    assert (both.num_groups, both.top1_accuracy, both.kendall_tau) == (2, 0.5, pytest.approx(1 / 3))
    # Tied places: responses 0 and 1 share first place; tau-b = 2 / sqrt(2 * 3); either tied best counts as top-1.
    tied = ranking_metrics([comparisons_from_places([0, 0, 1])], [np.array([1.0, 2.0, 0.0])])
    assert (tied.top1_accuracy, tied.kendall_tau) == (1.0, pytest.approx(2 / np.sqrt(6)))
    # Pairs (K = 2) are not rankings.
    assert ranking_metrics([[Comparison(0, 1)]], [np.array([1.0, 0.0])]) is None

    group = PreferenceGroup("q", ["a", "b", "c", "d"], four)
    result = summarize(scored([group], [[4, 3, 1, 2]]), EvalOptions(bootstrap_samples=100))
    assert result["ranking"] == {"num_groups": 1, "top1_accuracy": 1.0, "kendall_tau": pytest.approx(2 / 3)}
    assert result["accuracy"] == pytest.approx(5 / 6)  # the same group as pairs


def test_calibration_is_zero_when_calibrated_larger_when_overconfident_and_temperature_fixes_it():
    rng = np.random.default_rng(0)
    d = rng.normal(0.0, 2.0, 20_000)
    p = 1 / (1 + np.exp(-d))
    exact = calibration(d, p)  # soft labels equal to the implied probability
    assert exact.ece == pytest.approx(0.0, abs=1e-12)
    assert exact.brier == pytest.approx(0.0, abs=1e-12)
    entropy = -np.mean(p * np.log(p) + (1 - p) * np.log(1 - p))
    assert exact.log_loss == pytest.approx(entropy, rel=1e-4)  # the labels' own uncertainty is all that is left

    outcome = (rng.random(len(d)) < p).astype(float)  # sampled hard outcomes
    calibrated = calibration(d, outcome)
    overconfident = calibration(3 * d, outcome)  # the same rewards, three times too far apart
    assert calibrated.ece < 0.02
    assert overconfident.ece > calibrated.ece + 0.08
    assert overconfident.log_loss > calibrated.log_loss and overconfident.brier > calibrated.brier

    temperature = fit_temperature(3 * d, outcome)
    assert temperature == pytest.approx(3.0, rel=0.1)
    fixed = calibration(3 * d, outcome, temperature)
    assert fixed.ece < 0.02 and fixed.log_loss < overconfident.log_loss
    assert sum(b["count"] for b in fixed.bins) == 2 * len(d)  # both orientations of every comparison


def test_temperature_fitted_on_a_held_out_fraction_reduces_ece():
    rng = np.random.default_rng(1)
    d = rng.normal(0.0, 1.5, 400)
    groups = [pair(f"q{i}", prob=max(q, 1 - q), responses=("a", "b")) for i, q in enumerate(1 / (1 + np.exp(-d)))]
    rewards = [[3 * abs(x), 0.0] for x in d]  # favoured side is response 0, three times overconfident
    report = summarize(scored(groups, rewards), EvalOptions(calibrate_fraction=0.3, bootstrap_samples=100))
    c = report["calibration"]
    assert c["temperature"] == pytest.approx(3.0, rel=0.05)
    assert c["after"]["ece"] < 0.01 < c["before"]["ece"]
    assert c["before"]["num_comparisons"] == c["after"]["num_comparisons"] < 400 * 0.8  # measured on the rest
    with pytest.raises(RewardkitError, match="not both"):
        summarize(scored(groups, rewards), EvalOptions(calibrate_fraction=0.3, temperature=2.0))


def test_length_bias_of_a_reward_that_counts_words():
    responses = [("one two three", "one"), ("a b c d", "a b"), ("x", "x y z"), ("p q", "p q r s t")]
    groups = [pair(f"q{i}", responses=r) for i, r in enumerate(responses)]
    lengths = [[len(r.split()) for r in g.responses] for g in groups]
    result = summarize(scored(groups, lengths), EvalOptions(bootstrap_samples=100))["length"]
    assert result["pearson_tokens"] == pytest.approx(1.0) and result["spearman_tokens"] == pytest.approx(1.0)
    assert (result["accuracy_chosen_longer"], result["accuracy_chosen_shorter"]) == (1.0, 0.0)
    assert (result["num_chosen_longer"], result["num_chosen_shorter"]) == (2, 2)
    assert result["rm_prefers_longer"] == 1.0
    assert result["length_only_accuracy"] == 0.5  # half the chosen responses are the longer ones

    shortest = summarize(scored(groups, [[-n for n in row] for row in lengths]), EvalOptions(bootstrap_samples=100))
    assert shortest["length"]["spearman_tokens"] == pytest.approx(-1.0)
    assert shortest["length"]["rm_prefers_longer"] == 0.0
