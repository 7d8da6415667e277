"""Curves of an optimized policy: cross-fitted peaks that are not fooled by noise, fits judged on held-out points."""

from __future__ import annotations

import math

import numpy as np
import pytest

from rewardkit.rl.best_of_n import doubling_ns, kl_best_of_n
from rewardkit.rl.curves import OptimizationCurve, paired_difference, summarize_curve
from rewardkit.rl.overoptimization import fit_best_of_n, fit_rl


def rl_curve(gold_mean: np.ndarray, noise: float, prompts: int = 64, seed: int = 0) -> OptimizationCurve:
    rng = np.random.default_rng(seed)
    steps = list(range(len(gold_mean)))
    kl = np.repeat(np.linspace(0.0, 9.0, len(steps))[:, None], prompts, axis=1)
    gold = gold_mean[:, None] + rng.normal(0.0, noise, size=(len(steps), prompts))
    return OptimizationCurve("rl", steps, kl, {"gold": gold, "proxy": kl.copy()})


def test_a_flat_noisy_curve_gets_no_verdict_a_peaked_one_does():
    flat = summarize_curve(rl_curve(np.zeros(12), noise=1.0), num_bootstrap=300)
    drop = flat["drop_after_peak"]
    assert drop["low"] < 0 < drop["high"]  # max-minus-last of noisy points would be > 0 by construction
    d = np.sqrt(np.linspace(0.0, 9.0, 12))
    peaked = summarize_curve(rl_curve(2 * d - d**2, noise=1.0), num_bootstrap=300)
    assert peaked["drop_after_peak"]["low"] > 0 and peaked["gain_at_peak"]["low"] > 0
    assert peaked["end"]["gold"]["high"] < 0
    assert peaked["peak"]["step"] in (1, 2, 3)


def test_summary_holds_points_fit_peak_and_end_with_intervals():
    ns = doubling_ns(64)
    d = np.array([math.sqrt(kl_best_of_n(n)) for n in ns])
    rng = np.random.default_rng(1)
    gold = (d * (1.0 - 0.4 * d))[:, None] + rng.normal(0.0, 0.3, size=(len(ns), 50))
    gold -= gold[:1]
    curve = OptimizationCurve("bon", ns, np.repeat((d**2)[:, None], 50, axis=1), {"gold": gold})
    summary = summarize_curve(curve, num_bootstrap=200)
    assert [p["n"] for p in summary["points"]] == ns and summary["checkpoint"] == "n"
    fit = summary["fit"]
    assert fit["alpha"]["low"] < 1.0 < fit["alpha"]["high"] and fit["beta"]["low"] < 0.4 < fit["beta"]["high"]
    assert fit["sqrt_kl_peak"]["low"] < 1.25 < fit["sqrt_kl_peak"]["high"]  # alpha / (2 beta)
    assert 0.5 < fit["r2_cv"] <= fit["r2"] <= 1.0
    assert summary["end"]["n"] == 64 and set(summary["end"]) >= {"gold", "sqrt_kl"}


def test_fits_recover_alpha_beta_and_are_judged_on_held_out_points():
    ns = doubling_ns(1024)
    d = np.array([math.sqrt(kl_best_of_n(n)) for n in ns])
    rng = np.random.default_rng(2)
    fit = fit_best_of_n(d, d * (1.2 - 0.3 * d) + rng.normal(0.0, 0.02, size=d.shape))
    assert fit.alpha == pytest.approx(1.2, abs=0.05) and fit.beta == pytest.approx(0.3, abs=0.03)
    assert 0.95 < fit.r2_cv < fit.r2 <= 1.0
    # the wrong form: RL's d(α − β log d) through a best-of-n curve that turns down hard
    d_rl = np.linspace(0.0, 4.0, 12)
    turning = d_rl * (1.2 - 0.6 * d_rl)
    wrong, right = fit_rl(d_rl, turning), fit_best_of_n(d_rl, turning)
    assert right.r2_cv == pytest.approx(1.0) and wrong.r2_cv < wrong.r2 < 1.0 and wrong.r2_cv < 0.97


def test_rl_fit_recovers_alpha_beta_and_its_peak_from_noisy_points():
    d = np.sqrt(np.linspace(0.0, 30.0, 14))
    rng = np.random.default_rng(4)
    gold = d * (0.5 - 0.3 * np.log(np.where(d > 0, d, 1.0))) + rng.normal(0.0, 0.02, size=d.shape)
    fit = fit_rl(d, gold)
    assert fit.alpha == pytest.approx(0.5, abs=0.05) and fit.beta == pytest.approx(0.3, abs=0.03)
    assert fit.d_peak == pytest.approx(math.exp(0.5 / 0.3 - 1), rel=0.15)  # exp(α/β − 1)
    assert 0.9 < fit.r2_cv < fit.r2 <= 1.0
    flat = fit_rl(d, rng.normal(0.0, 0.3, size=d.shape))  # noise alone: the held-out R² says the form explains nothing
    assert flat.r2_cv < 0.2 and flat.r2_cv < flat.r2


def test_best_of_n_curve_is_centred_per_prompt_and_differences_are_paired():
    rng = np.random.default_rng(3)
    proxy, gold = rng.normal(size=(20, 32)), rng.normal(size=(20, 32))
    curve = OptimizationCurve.from_best_of_n(proxy, {"gold": gold}, n_max=16)
    assert curve.checkpoints == [1, 2, 4, 8, 16] and np.allclose(curve.metrics["gold"][0], 0.0)
    same = paired_difference(curve, curve, num_bootstrap=100)
    assert same == {"value": 0.0, "low": 0.0, "high": 0.0}
    assert curve.up_to(4).checkpoints == [1, 2, 4]


def test_a_curve_read_at_a_matched_kl_interpolates_between_checkpoints():
    # KL 0, 1, 4 nats (√KL 0, 1, 2) on two prompts; gold is linear in √KL with slopes 1 and 3
    kl = np.array([[0.0, 0.0], [1.0, 1.0], [4.0, 4.0]])
    gold = np.array([[0.0, 0.0], [1.0, 3.0], [2.0, 6.0]])
    curve = OptimizationCurve("rl", [0, 10, 20], kl, {"gold": gold})
    assert curve.max_sqrt_kl() == pytest.approx(2.0)
    at = curve.at_sqrt_kl(1.5)
    assert at.checkpoints == [20]
    np.testing.assert_allclose(at.metrics["gold"], [[1.5, 4.5]])
    np.testing.assert_allclose(at.kl, [[2.5, 2.5]])  # KL blended with the same weight as every metric
    np.testing.assert_allclose(curve.at_sqrt_kl(0.0).metrics["gold"], [[0.0, 0.0]])
    with pytest.raises(ValueError, match="reaches √KL 2.000 at most"):
        curve.at_sqrt_kl(2.5)
    # paired differences at a matched KL: a faster proxy (twice the √KL per step) read at the same √KL
    faster = OptimizationCurve("rl", [0, 10], np.array([[0.0, 0.0], [4.0, 4.0]]), {"gold": np.array([[0.0, 0.0],
                                                                                                    [1.0, 1.0]])})
    difference = paired_difference(curve.at_sqrt_kl(1.0), faster.at_sqrt_kl(1.0), num_bootstrap=50)
    assert difference["value"] == pytest.approx(0.5 - 2.0)
