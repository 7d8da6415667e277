import copy

import numpy as np
import pytest
import torch

from rewardkit.rl import (
    GRPOConfig,
    HeldOutEvaluation,
    RLOOConfig,
    group_normalized_advantages,
    rloo_advantages,
    train_grpo,
    train_rloo,
)
from rewardkit.rl.losses import clipped_surrogate, sequence_mean

STEPS = 30


def test_rloo_advantages_equal_leave_one_out_by_hand():
    rewards = torch.tensor([[1.0, 2.0, 6.0], [0.0, 0.0, 3.0]])
    # first prompt: 1 - (2 + 6) / 2 = -3, 2 - (1 + 6) / 2 = -1.5, 6 - (1 + 2) / 2 = 4.5
    expected = torch.tensor([[-3.0, -1.5, 4.5], [-1.5, -1.5, 3.0]])
    assert torch.allclose(rloo_advantages(rewards), expected)
    # equivalently k / (k - 1) (R_i - mean R), and they sum to 0 per prompt
    assert torch.allclose(rloo_advantages(rewards), 1.5 * (rewards - rewards.mean(-1, keepdim=True)))


def test_group_normalized_advantages_by_hand():
    rewards = torch.tensor([[1.0, 3.0], [2.0, 2.0], [0.0, 1.0]])
    # mean 2, sample std sqrt(2): (1 - 2) / sqrt(2)
    s = 2 ** -0.5
    expected = torch.tensor([[-s, s], [0.0, 0.0], [-s, s]])
    assert torch.allclose(group_normalized_advantages(rewards, eps=0.0).nan_to_num(0.0), expected, atol=1e-6)
    assert torch.equal(group_normalized_advantages(rewards)[1], torch.zeros(2))  # equal rewards: no signal, no nan
    k4 = group_normalized_advantages(torch.tensor([[0.0, 0.0, 0.0, 4.0]]), eps=0.0)
    assert torch.allclose(k4, torch.tensor([[-0.5, -0.5, -0.5, 1.5]]))  # mean 1, std 2


def test_clipped_surrogate_and_sequence_mean_by_hand():
    logp_old = torch.zeros(1, 3)
    logp = torch.log(torch.tensor([[1.5, 0.9, 1.0]]))
    losses, clipped = clipped_surrogate(logp, logp_old, torch.tensor([[1.0, -1.0, 2.0]]), 0.2)
    # A > 0, ratio 1.5 -> clipped at 1.2; A < 0, ratio 0.9 -> unclipped -(-1)(0.9); ratio 1 -> -2
    assert torch.allclose(losses, torch.tensor([[-1.2, 0.9, -2.0]]))
    assert clipped.tolist() == [[1.0, 0.0, 0.0]]
    x, mask = torch.tensor([[1.0, 3.0, 9.0], [4.0, 0.0, 0.0]]), torch.tensor([[1.0, 1.0, 0.0], [1.0, 0.0, 0.0]])
    assert sequence_mean(x, mask).item() == pytest.approx((2.0 + 4.0) / 2)  # each response weighs the same


def test_configs_check_group_sizes():
    with pytest.raises(ValueError, match="multiple of group_size"):
        RLOOConfig(batch_size=30, group_size=4)
    with pytest.raises(ValueError, match="at least 2"):
        GRPOConfig(group_size=1)


def config(cls, beta: float, **overrides):
    settings = dict(steps=STEPS, batch_size=32, group_size=4, num_mini_batches=2, epochs=2, learning_rate=3e-3,
                    beta=beta, max_new_tokens=8, progress=False)
    return cls(**(settings | overrides))


@pytest.fixture(scope="module")
def runs(policy_factory, tokenizer, prompts, happy_reward):
    results = {}
    for name, train, cls in (("rloo", train_rloo, RLOOConfig), ("grpo", train_grpo, GRPOConfig)):
        policy, ref = policy_factory(seed=0), policy_factory(seed=0)
        ref_before = copy.deepcopy(ref.state_dict())
        results[name] = train(policy, ref, tokenizer, prompts, happy_reward, config(cls, 0.0))
        assert all(torch.equal(ref_before[k], v) for k, v in ref.state_dict().items())  # reference stays frozen
    return results


@pytest.mark.parametrize("name", ["rloo", "grpo"])
def test_few_steps_raise_the_proxy(runs, name):
    log = runs[name].log
    assert len(log) == STEPS
    assert log[0]["kl"] == pytest.approx(0.0, abs=1e-5)  # policy == reference before the first update
    first, last = np.mean([r["proxy_reward"] for r in log[:3]]), np.mean([r["proxy_reward"] for r in log[-5:]])
    assert last > first + 1.0
    assert np.mean([r["kl"] for r in log[-5:]]) > 1.0
    assert all(0.0 <= row["clip_fraction"] <= 1.0 and np.isfinite(row["policy_loss"]) for row in log)


def test_grpo_kl_in_the_loss_keeps_kl_smaller(policy_factory, tokenizer, prompts, happy_reward, runs):
    policy, ref = policy_factory(seed=0), policy_factory(seed=0)
    result = train_grpo(policy, ref, tokenizer, prompts, happy_reward, config(GRPOConfig, 1.0))
    assert all("kl_loss" in row and row["kl_loss"] >= 0.0 for row in result.log)
    final_kl = {beta: np.mean([r["kl"] for r in run.log[-5:]]) for beta, run in ((0.0, runs["grpo"]), (1.0, result))}
    assert final_kl[1.0] < 0.5 * final_kl[0.0]


def test_same_seed_same_run_and_held_out_callback(policy_factory, tokenizer, prompts, happy_reward):
    logs = []
    for _ in range(2):
        policy, ref = policy_factory(seed=0), policy_factory(seed=0)
        evaluation = HeldOutEvaluation(ref, tokenizer, prompts[:3], {"happy": happy_reward}, samples_per_prompt=2,
                                       max_new_tokens=8)
        evaluation.evaluate(policy, 0)
        result = train_rloo(policy, ref, tokenizer, prompts, happy_reward,
                            config(RLOOConfig, 0.1, steps=4, batch_size=8), callback=evaluation.callback([2, 4]))
        assert evaluation.checkpoints == [0, 2, 4]
        logs.append(result.log)
    assert logs[0] == logs[1]


def test_rloo_missing_eos_penalty_teaches_the_policy_to_finish(policy_factory, tokenizer, prompts):
    policy, ref = policy_factory(seed=0), policy_factory(seed=0)
    config_ = config(RLOOConfig, 0.0, steps=12, max_new_tokens=3, missing_eos_penalty=1.0)
    log = train_rloo(policy, ref, tokenizer, prompts, lambda p, r: torch.zeros(len(r)), config_).log
    assert np.mean([r["unfinished"] for r in log[-3:]]) < 0.5 * np.mean([r["unfinished"] for r in log[:3]])
