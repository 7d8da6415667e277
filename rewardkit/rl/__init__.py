"""Policy optimisation against a reward model: sampling, KL, best-of-n, PPO, RLOO and GRPO, over-optimization fits,
and the held-out evaluation of an optimized policy with intervals (evaluation.py, curves.py, statistics.py).

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
from rewardkit.rl.critic_free import (
    CriticFreeResult,
    GRPOConfig,
    RLOOConfig,
    group_normalized_advantages,
    rloo_advantages,
    train_grpo,
    train_rloo,
)
from rewardkit.rl.curves import OptimizationCurve, paired_difference, summarize_curve
from rewardkit.rl.evaluation import HeldOutEvaluation
from rewardkit.rl.kl import kl_k1, kl_k3, kl_per_token, sequence_kl
from rewardkit.rl.overoptimization import OveroptimizationFit, fit_best_of_n, fit_overoptimization, fit_rl
from rewardkit.rl.ppo import PPOConfig, PPOResult, ValueModel, train_ppo
from rewardkit.rl.rewards import RewardFn, penalize_missing_eos, score_responses
from rewardkit.rl.shaping import AdaptiveKLController, FixedKLController, shaped_rewards
from rewardkit.rl.statistics import NOT_RESOLVED, Estimate, bootstrap, over_seeds, t_interval, verdict

__all__ = [
    "NOT_RESOLVED",
    "AdaptiveKLController",
    "BestOfNConfig",
    "BestOfNResult",
    "CriticFreeResult",
    "Estimate",
    "FixedKLController",
    "GRPOConfig",
    "HeldOutEvaluation",
    "OptimizationCurve",
    "OveroptimizationFit",
    "PPOConfig",
    "PPOResult",
    "RLOOConfig",
    "RewardFn",
    "Samples",
    "ValueModel",
    "best_of_n_curve",
    "best_of_n_estimates",
    "best_of_n_select",
    "best_of_n_weights",
    "bootstrap",
    "doubling_ns",
    "expected_best_of_n",
    "fit_best_of_n",
    "fit_overoptimization",
    "fit_rl",
    "group_normalized_advantages",
    "kl_best_of_n",
    "kl_k1",
    "kl_k3",
    "kl_per_token",
    "over_seeds",
    "paired_difference",
    "penalize_missing_eos",
    "response_logprobs",
    "rloo_advantages",
    "sample_responses",
    "score_responses",
    "sequence_kl",
    "shaped_rewards",
    "summarize_curve",
    "t_interval",
    "train_grpo",
    "train_ppo",
    "train_rloo",
    "verdict",
]
