import pytest
import torch

from rewardkit.rl.rewards import penalize_missing_eos
from rewardkit.rl.shaping import AdaptiveKLController, FixedKLController, shaped_rewards


def test_kl_penalty_on_every_response_token_and_score_on_the_last():
    kl = torch.tensor([[0.1, 0.2, 0.3, 0.4], [0.5, -0.1, 0.7, 0.8]])
    mask = torch.tensor([[1, 1, 1, 0], [1, 1, 0, 0]], dtype=torch.bool)
    rewards = shaped_rewards(torch.tensor([2.0, -1.0]), kl, mask, beta=0.5)
    expected = torch.tensor([[-0.05, -0.1, -0.15 + 2.0, 0.0], [-0.25, 0.05 - 1.0, 0.0, 0.0]])
    assert torch.allclose(rewards, expected)
    # summed over tokens: R = r - beta * KL
    assert torch.allclose(rewards.sum(-1), torch.tensor([2.0 - 0.5 * 0.6, -1.0 - 0.5 * 0.4]))


def test_full_length_response_gets_its_score_on_the_final_column():
    rewards = shaped_rewards(torch.tensor([1.0]), torch.zeros(1, 3), torch.ones(1, 3, dtype=torch.bool), beta=0.1)
    assert rewards.tolist() == [[0.0, 0.0, 1.0]]


def test_adaptive_controller_moves_beta_towards_the_target_with_clipped_error():
    controller = AdaptiveKLController(beta=0.1, target=6.0, horizon=1000)
    controller.update(current_kl=60.0, n_steps=100)  # error 9 clipped to 0.2
    assert controller.beta == pytest.approx(0.1 * (1 + 0.2 * 100 / 1000))
    controller = AdaptiveKLController(beta=0.1, target=6.0, horizon=1000)
    controller.update(current_kl=5.4, n_steps=100)  # error -0.1, inside the clip
    assert controller.beta == pytest.approx(0.1 * (1 - 0.1 * 100 / 1000))
    fixed = FixedKLController(beta=0.1)
    fixed.update(current_kl=60.0, n_steps=100)
    assert fixed.beta == 0.1


def test_missing_eos_penalty_only_on_unfinished_responses():
    scores, finished = torch.tensor([0.5, 0.5, -1.0]), torch.tensor([True, False, False])
    assert torch.equal(penalize_missing_eos(scores, finished, None), scores)
    assert torch.allclose(penalize_missing_eos(scores, finished, 2.0), torch.tensor([0.5, -1.5, -3.0]))
    with pytest.raises(ValueError, match="missing_eos_penalty"):
        penalize_missing_eos(scores, finished, -1.0)
