"""Held-out evaluation at fixed checkpoints: fresh seeded samples, KL to the reference, curves centred on it."""

from __future__ import annotations

import copy
import warnings

import numpy as np

from rewardkit.lm import sample_responses
from rewardkit.rl import PPOConfig, train_ppo
from rewardkit.rl.curves import summarize_curve
from rewardkit.rl.evaluation import HeldOutEvaluation


def length_of(prompts: list[str], texts: list[str]) -> list[float]:
    return [float(len(t.split())) for t in texts]


def test_checkpoints_during_ppo_are_fresh_seeded_and_centred(policy_factory, tokenizer, prompts, happy_reward):
    reference = policy_factory(0).requires_grad_(False)
    evaluation = HeldOutEvaluation(reference, tokenizer, prompts[:4], {"happy": happy_reward, "length": length_of},
                                   samples_per_prompt=3, max_new_tokens=6, seed=5)
    at_start = evaluation.evaluate(reference, 0)
    assert at_start["kl"] == 0.0  # the reference against itself
    policy = copy.deepcopy(reference).requires_grad_(True)
    train_ppo(policy, reference, tokenizer, prompts, happy_reward,
              PPOConfig(steps=3, batch_size=8, num_mini_batches=2, learning_rate=1e-3, max_new_tokens=6,
                        progress=False),
              callback=evaluation.callback([1, 3]))
    assert evaluation.checkpoints == [0, 1, 3]
    curve = evaluation.curve({name: values[0] for name, values in evaluation.values.items()})
    assert curve.kl.shape == (3, 4) and curve.metrics["happy"].shape == (3, 4)
    assert np.allclose(curve.metrics["length"][0], 0.0)  # centred on step 0's own per-prompt means
    assert (curve.kl[1:] != 0).any()
    summary = summarize_curve(curve, target="happy", num_bootstrap=50)
    assert [p["step"] for p in summary["points"]] == [0, 1, 3]

    again = HeldOutEvaluation(reference, tokenizer, prompts[:4], {"length": length_of}, samples_per_prompt=3,
                              max_new_tokens=6, seed=5)
    again.evaluate(reference, 0)
    assert np.array_equal(again.values["length"][0], evaluation.values["length"][0])  # same seed, same samples


def test_sampling_uses_the_current_cache_argument_without_deprecation_warnings(policy, tokenizer, prompts):
    with warnings.catch_warnings():
        warnings.simplefilter("error", FutureWarning)
        samples = sample_responses(policy, tokenizer, prompts, max_new_tokens=5, seed=0)
    assert len(samples.texts) == len(prompts)
