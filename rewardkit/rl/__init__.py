"""Policy optimisation against a reward model: sampling, KL, best-of-n, PPO, and over-optimization fits.

A reward function is any `Callable[[list[str], list[str]], torch.Tensor]` mapping (prompts, responses) to one
score per response; the reward model and the gold reward are both adapted to it.
"""

from rewardkit.lm import Samples, response_logprobs, sample_responses
from rewardkit.rl.best_of_n import (
    BestOfNConfig,
    BestOfNResult,
    best_of_n_curve,
    best_of_n_estimates,
    best_of_n_select,
    best_of_n_weights,
    doubling_ns,
    expected_best_of_n,
    kl_best_of_n,
)
from rewardkit.rl.kl import kl_k1, kl_k3, kl_per_token, sequence_kl
from rewardkit.rl.overoptimization import OveroptimizationFit, fit_best_of_n, fit_overoptimization, fit_rl
from rewardkit.rl.ppo import PPOConfig, PPOResult, ValueModel, train_ppo
from rewardkit.rl.rewards import RewardFn, score_responses
from rewardkit.rl.shaping import AdaptiveKLController, FixedKLController, shaped_rewards

__all__ = [
    "AdaptiveKLController",
    "BestOfNConfig",
    "BestOfNResult",
    "FixedKLController",
    "OveroptimizationFit",
    "PPOConfig",
    "PPOResult",
    "RewardFn",
    "Samples",
    "ValueModel",
    "best_of_n_curve",
    "best_of_n_estimates",
    "best_of_n_select",
    "best_of_n_weights",
    "doubling_ns",
    "expected_best_of_n",
    "fit_best_of_n",
    "fit_overoptimization",
    "fit_rl",
    "kl_best_of_n",
    "kl_k1",
    "kl_k3",
    "kl_per_token",
    "response_logprobs",
    "sample_responses",
    "score_responses",
    "sequence_kl",
    "shaped_rewards",
    "train_ppo",
]
