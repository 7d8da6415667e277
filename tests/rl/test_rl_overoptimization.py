import math

import numpy as np
import pytest

from rewardkit.rl.best_of_n import doubling_ns, kl_best_of_n
from rewardkit.rl.overoptimization import fit_best_of_n, fit_rl


def test_best_of_n_fit_recovers_alpha_beta_and_peak():
    d = np.array([math.sqrt(kl_best_of_n(n)) for n in doubling_ns(1024)])  # includes d = 0 at n = 1
    gold = d * (1.2 - 0.3 * d)
    fit = fit_best_of_n(d, gold)
    assert (fit.alpha, fit.beta) == pytest.approx((1.2, 0.3))
    assert fit.r2 == pytest.approx(1.0)
    assert fit.d_peak == pytest.approx(2.0) and fit.r_peak == pytest.approx(1.2)
    assert np.allclose(fit.predict(d), gold)


def test_rl_fit_recovers_alpha_beta_and_handles_d_zero():
    d = np.linspace(0.0, 4.0, 25)
    gold = np.where(d > 0, d * (1.0 - 0.5 * np.log(np.where(d > 0, d, 1.0))), 0.0)
    fit = fit_rl(d, gold)
    assert (fit.alpha, fit.beta) == pytest.approx((1.0, 0.5))
    assert fit.r2 == pytest.approx(1.0)
    assert fit.d_peak == pytest.approx(math.e)  # exp(alpha / beta - 1)
    assert fit.predict(0.0) == 0.0 and np.isfinite(fit.predict(d)).all()


def test_noisy_fit_is_close_and_bad_input_is_rejected():
    rng = np.random.default_rng(0)
    d = np.linspace(0.0, 3.0, 200)
    gold = d * (1.0 - 0.25 * d) + rng.normal(scale=0.02, size=d.shape)
    fit = fit_best_of_n(d, gold)
    assert fit.alpha == pytest.approx(1.0, abs=0.05) and fit.beta == pytest.approx(0.25, abs=0.05)
    assert 0.95 < fit.r2 < 1.0
    assert math.isinf(fit_best_of_n(d, d).d_peak)  # no over-optimization: beta <= 0
    with pytest.raises(ValueError):
        fit_rl(np.array([-1.0, 1.0]), np.array([0.0, 1.0]))
