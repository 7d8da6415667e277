"""The report's sentences state a verdict only when its interval lies on one side of zero."""

from __future__ import annotations

from rewardkit.demo.report import _curve_verdicts, _fit_text, claim
from rewardkit.rl.statistics import NOT_RESOLVED


def est(value: float, low: float, high: float) -> dict:
    return {"value": value, "low": low, "high": high}


def curve(gain: dict, drop: dict, end: dict) -> dict:
    return {"gain_at_peak": gain, "drop_after_peak": drop, "end": {"gold": end}}


def test_a_straddling_interval_gets_no_verdict_and_a_clear_one_does():
    assert claim(est(0.3, -0.1, 0.7), "gold fell", "gold rose", "gold fell") == \
        f"whether gold fell is {NOT_RESOLVED} (+0.30 [-0.10, +0.70])"
    assert claim(est(0.3, 0.1, 0.5), "gold fell", "gold rose", "gold fell", "drop") == \
        "gold fell (drop: +0.30 [+0.10, +0.50])"
    assert claim(est(-0.3, -0.5, -0.1), "gold fell", "gold rose", "gold fell").startswith("gold rose")


def test_curve_verdicts_follow_each_interval_separately():
    clear = _curve_verdicts(curve(est(0.3, 0.2, 0.4), est(1.0, 0.5, 1.5), est(-0.7, -1.0, -0.4)), "step 150")
    assert "gold first rose" in clear and "then fell" in clear and "ended below SFT at step 150" in clear
    assert NOT_RESOLVED not in clear
    straddled = _curve_verdicts(curve(est(0.3, 0.2, 0.4), est(0.1, -0.2, 0.4), est(0.2, -0.1, 0.5)), "step 150")
    assert "gold first rose" in straddled and "then fell" not in straddled
    assert straddled.count(NOT_RESOLVED) == 2  # the drop and the end both straddle zero


def test_fit_text_puts_the_held_out_r2_and_the_fitted_peak_next_to_the_observed_one():
    fit = {"form": "rl", "alpha": est(0.5, 0.4, 0.6), "beta": est(0.3, 0.2, 0.4), "r2": 0.95, "r2_cv": 0.81,
           "sqrt_kl_peak": est(1.95, 1.5, 2.6)}
    text = _fit_text({"fit": fit, "peak": {"sqrt_kl": est(2.4, 1.0, 3.0)}})
    assert "0.95 on the fitted points, 0.81 held out (leave-one-point-out)" in text
    assert "fitted peak at √KL = 1.95 [1.50, 2.60], observed peak at √KL = 2.40 [1.00, 3.00]" in text
