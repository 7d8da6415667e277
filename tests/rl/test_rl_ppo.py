import copy

import numpy as np
import pytest
import torch
from transformers import LlamaForCausalLM

from rewardkit.rl.ppo import PPOConfig, generalized_advantages, train_ppo

STEPS = 30


def ppo_config(beta: float, **overrides) -> PPOConfig:
    settings = dict(
        steps=STEPS,
        batch_size=32,
        num_mini_batches=2,
        ppo_epochs=2,
        learning_rate=3e-3,
        beta=beta,
        max_new_tokens=8,
        progress=False,
    )
    return PPOConfig(**(settings | overrides))


def words(prompts: list[str], texts: list[str]) -> torch.Tensor:
    return torch.tensor([len(text.split()) for text in texts], dtype=torch.float)


@pytest.fixture(scope="module")
def runs(policy_factory, tokenizer, prompts, happy_reward):
    """Two PPO runs from the same initial policy and seed: no KL penalty, and a large one."""
    results = {}
    for beta in (0.0, 1.0):
        policy = policy_factory(seed=0)
        ref = copy.deepcopy(policy)
        ref_before = copy.deepcopy(ref.state_dict())
        result = train_ppo(policy, ref, tokenizer, prompts, happy_reward, ppo_config(beta), metrics={"words": words})
        assert all(torch.equal(ref_before[k], v) for k, v in ref.state_dict().items())  # reference stays frozen
        results[beta] = result
    return results


def test_ppo_increases_reward_while_kl_grows_from_zero(runs):
    log = runs[0.0].log
    assert len(log) == STEPS
    assert log[0]["kl"] == pytest.approx(0.0, abs=1e-5)  # policy == reference before the first update
    first, last = np.mean([r["proxy_reward"] for r in log[:3]]), np.mean([r["proxy_reward"] for r in log[-5:]])
    assert last > first + 1.0
    assert np.mean([r["kl"] for r in log[-5:]]) > 1.0


def test_large_beta_keeps_kl_smaller(runs):
    final_kl = {beta: np.mean([r["kl"] for r in run.log[-5:]]) for beta, run in runs.items()}
    assert final_kl[1.0] < 0.5 * final_kl[0.0]


def test_log_rows_hold_losses_beta_and_metrics(runs):
    for row in runs[1.0].log:
        assert row["beta"] == 1.0
        assert 0.0 <= row["clip_fraction"] <= 1.0
        assert 1.0 <= row["response_length"] <= 8.0
        assert 0.0 <= row["words"] <= 8.0
        assert all(np.isfinite(row[key]) for key in ("policy_loss", "value_loss", "approx_kl"))


def test_trained_policy_saves_and_reloads(runs, tmp_path, tokenizer):
    policy = runs[0.0].policy
    policy.save_pretrained(tmp_path)
    reloaded = LlamaForCausalLM.from_pretrained(tmp_path).eval()
    ids = tokenizer(["the cat sat"], return_tensors="pt")["input_ids"]
    with torch.no_grad():
        assert torch.allclose(policy(ids).logits, reloaded(ids).logits, atol=1e-5)


def test_adaptive_kl_k3_value_init_and_early_stop(policy_factory, tokenizer, prompts, happy_reward):
    config = ppo_config(0.5, steps=10, batch_size=8, adaptive_kl=True, kl_target=5.0, kl_horizon=40, kl_estimator="k3")
    stopped_at = []

    def stop_after_three(row, policy):
        stopped_at.append(row["step"])
        return row["step"] == 2

    result = train_ppo(
        policy_factory(0),
        None,
        tokenizer,
        prompts,
        happy_reward,
        config,
        callback=stop_after_three,
        value_init=policy_factory(1),
    )
    assert len(result.log) == 3 and stopped_at == [0, 1, 2]
    # KL starts below target, so the controller lowers beta by the clipped 20% * batch / horizon
    assert result.log[1]["beta"] == pytest.approx(0.5 * (1 - 0.2 * 8 / 40))
    with pytest.raises(ValueError, match="clash"):
        train_ppo(policy_factory(0), None, tokenizer, prompts, happy_reward, config, metrics={"kl": words})


def test_gae_reduces_to_rewards_to_go_and_td_error():
    rewards = torch.tensor([[1.0, 0.0, 2.0, 0.0]])
    values = torch.tensor([[0.5, 1.0, 0.5, 0.0]])  # 0 on the padded last token
    advantages, returns = generalized_advantages(rewards, values, gamma=1.0, gae_lambda=1.0)
    assert torch.allclose(returns, torch.tensor([[3.0, 2.0, 2.0, 0.0]]))  # Monte-Carlo rewards-to-go
    advantages, _ = generalized_advantages(rewards, values, gamma=1.0, gae_lambda=0.0)
    assert torch.allclose(advantages, torch.tensor([[1.5, -0.5, 1.5, 0.0]]))  # one-step TD errors


def test_missing_eos_penalty_teaches_the_policy_to_finish(policy_factory, tokenizer, prompts):
    """A reward that never changes, -1 for a response cut at max_new_tokens: the policy learns to stop."""
    config = ppo_config(0.0, steps=12, max_new_tokens=3, missing_eos_penalty=1.0)
    log = train_ppo(policy_factory(seed=0), None, tokenizer, prompts, lambda p, r: torch.zeros(len(r)), config).log
    assert all(row["proxy_reward"] == 0.0 for row in log)  # the logged proxy is the reward function's, unpenalised
    assert np.mean([r["unfinished"] for r in log[-3:]]) < 0.5 * np.mean([r["unfinished"] for r in log[:3]])
