import itertools
import math

import numpy as np
import pytest

from rewardkit.rl.best_of_n import (
    BestOfNConfig,
    best_of_n_curve,
    best_of_n_estimates,
    best_of_n_select,
    best_of_n_weights,
    doubling_ns,
    expected_best_of_n,
    kl_best_of_n,
    sample_and_score,
)


def test_kl_of_best_of_n_matches_gao_et_al():
    assert kl_best_of_n(1) == 0.0
    assert round(kl_best_of_n(2), 2) == 0.19
    assert round(kl_best_of_n(16), 2) == 1.84
    assert round(kl_best_of_n(1000), 2) == 5.91


def test_unbiased_estimator_equals_the_average_over_all_n_subsets():
    rng = np.random.default_rng(0)
    proxy, gold = rng.normal(size=9), rng.normal(size=9)
    for n in range(1, 10):
        subsets = itertools.combinations(range(9), n)
        brute_force = np.mean([gold[max(subset, key=lambda i: proxy[i])] for subset in subsets])
        assert expected_best_of_n(proxy, gold, n) == pytest.approx(brute_force, abs=1e-12)


def test_weights_stay_finite_for_thousands_of_samples():
    weights = best_of_n_weights(4096, 256)
    assert np.isfinite(weights).all() and weights.sum() == pytest.approx(1.0)
    assert (weights[:255] == 0).all() and (np.diff(weights) >= 0).all()
    for i in (1000, 3000, 4096):  # exact big-integer combinatorics for reference
        assert weights[i - 1] == pytest.approx(math.comb(i - 1, 255) / math.comb(4096, 256), rel=1e-9)
    assert np.allclose(best_of_n_weights(10, 1), 0.1)
    assert best_of_n_weights(10, 10).tolist() == [0.0] * 9 + [1.0]
    with pytest.raises(ValueError):
        best_of_n_weights(4, 5)


def test_doubling_ns():
    assert doubling_ns(256) == [1, 2, 4, 8, 16, 32, 64, 128, 256]
    assert doubling_ns(300)[-2:] == [256, 300]


def test_curve_from_scores_rises_with_n_and_carries_kl():
    rng = np.random.default_rng(0)
    proxy = rng.normal(size=(3, 512))
    gold = proxy - 0.3 * proxy**2  # correlated with the proxy, but over-optimised at large proxy
    rows = best_of_n_estimates(proxy, {"gold": gold}, doubling_ns(256))
    assert [row["n"] for row in rows] == doubling_ns(256)
    assert np.all(np.diff([row["proxy"] for row in rows]) > 0)
    assert rows[0]["proxy"] == pytest.approx(proxy.mean())
    assert rows[-1]["sqrt_kl_bon"] == pytest.approx(np.sqrt(kl_best_of_n(256)))
    golds = [row["gold"] for row in rows]
    assert max(golds) > golds[0] and golds[-1] < max(golds)  # rises, then falls: over-optimization


def test_best_of_n_curve_on_a_tiny_policy(policy, tokenizer, happy_reward):
    config = BestOfNConfig(n_max=8, num_samples=16, max_new_tokens=6, sample_batch_size=16, progress=False)
    length = {"length": lambda prompts, texts: np.array([len(t.split()) for t in texts])}
    result = best_of_n_curve(policy, tokenizer, ["the cat", "a dog"], happy_reward, config, metrics=length)
    assert [row["n"] for row in result.curve] == [1, 2, 4, 8]
    assert result.proxy_scores.shape == (2, 16) and result.metric_scores["length"].shape == (2, 16)
    assert len(result.responses) == 2 and len(result.responses[0]) == 16
    proxies = [row["proxy"] for row in result.curve]
    assert proxies == sorted(proxies) and proxies[-1] > proxies[0]
    with pytest.raises(ValueError):
        best_of_n_curve(policy, tokenizer, ["the cat"], happy_reward, BestOfNConfig(n_max=8, num_samples=4))


def test_best_of_n_select_returns_the_top_scoring_sample(policy, tokenizer, happy_reward):
    config = BestOfNConfig(max_new_tokens=6, seed=5, progress=False)
    best = best_of_n_select(policy, tokenizer, ["the cat", "a dog"], happy_reward, n=8, config=config)
    responses, scores = sample_and_score(policy, tokenizer, ["the cat", "a dog"], {"r": happy_reward}, 8, config)
    for prompt in range(2):
        assert best[prompt] in responses[prompt]
        assert happy_reward([""], [best[prompt]]).item() == scores["r"][prompt].max()
