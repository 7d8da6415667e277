"""Intervals and verdicts: a bootstrap over prompts, a t interval over seeds, verdicts withheld when they straddle."""

from __future__ import annotations

import math

import numpy as np
import pytest

from rewardkit.rl.statistics import NOT_RESOLVED, Estimate, bootstrap, over_seeds, t_interval, verdict


def test_verdict_is_withheld_when_the_interval_straddles_zero():
    assert verdict(Estimate(0.3, 0.1, 0.5), "fell", "rose") == "fell"
    assert verdict(Estimate(-0.3, -0.5, -0.1), "fell", "rose") == "rose"
    assert verdict(Estimate(0.3, -0.1, 0.7), "fell", "rose") == NOT_RESOLVED
    assert verdict(Estimate(0.3, 0.1, 0.5), "above", "below", threshold=0.2) == NOT_RESOLVED


def test_t_interval_matches_the_textbook_and_widens_with_few_seeds():
    values = [1.0, 2.0, 3.0]
    est = t_interval(values)
    half = 4.303 * 1.0 / math.sqrt(3)  # t_{0.975, 2} * s / sqrt(k)
    assert (est.value, est.low, est.high) == pytest.approx((2.0, 2.0 - half, 2.0 + half))
    many = t_interval([1.0, 2.0, 3.0] * 4)
    assert many.high - many.low < est.high - est.low
    with pytest.raises(ValueError):
        t_interval([1.0])


def test_bootstrap_covers_the_mean_and_is_seeded():
    rng = np.random.default_rng(0)
    values = rng.normal(1.0, 1.0, size=400)
    first = bootstrap(lambda idx: {"mean": values[idx].mean()}, len(values), num_samples=300, seed=1)["mean"]
    again = bootstrap(lambda idx: {"mean": values[idx].mean()}, len(values), num_samples=300, seed=1)["mean"]
    assert first == again and first.value == pytest.approx(values.mean())
    standard_error = values.std() / math.sqrt(len(values))
    assert first.low < values.mean() < first.high
    assert first.high - first.low == pytest.approx(2 * 1.96 * standard_error, rel=0.25)


def test_over_seeds_turns_estimates_into_t_intervals_and_keeps_the_rest():
    runs = [{"gold": {"value": v, "low": v - 0.1, "high": v + 0.1}, "n": 4, "name": "x", "points": [{"kl": k}]}
            for v, k in ((1.0, 2.0), (2.0, 2.0), (3.0, 5.0))]
    combined = over_seeds(runs)
    assert combined["gold"]["value"] == pytest.approx(2.0) and combined["gold"]["per_seed"] == [1.0, 2.0, 3.0]
    assert combined["gold"]["low"] < 1.0  # the spread between seeds, not the within-seed intervals
    assert combined["n"] == 4 and combined["name"] == "x" and combined["points"][0]["kl"] == pytest.approx(3.0)
    assert over_seeds(runs[:1]) is runs[0]
