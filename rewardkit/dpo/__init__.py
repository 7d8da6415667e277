"""DPO as a baseline next to RM + RL: train a policy directly on preferences, and score data with its implicit
reward beta * log(pi / pi_ref) (or RewardBench's reference-free variants) through the same pairwise evaluation.

    from rewardkit.dpo import DPOConfig, DPOScorer, train_dpo
    train_dpo(policy, sft, tokenizer, load_preferences("prefs.jsonl"), DPOConfig(beta=0.1))
    DPOScorer(policy, tokenizer, ref=sft, beta=0.1).evaluate(load_preferences("val.jsonl")).accuracy
"""

from rewardkit.dpo.encode import encode_for_policy, encode_preferences_for_policy
from rewardkit.dpo.logprobs import batched_sequence_logprobs, sequence_logprobs
from rewardkit.dpo.loss import dpo_loss, implicit_rewards
from rewardkit.dpo.scorer import MODES, DPOScorer
from rewardkit.dpo.trainer import DPOConfig, DPOResult, train_dpo

__all__ = [
    "MODES",
    "DPOConfig",
    "DPOResult",
    "DPOScorer",
    "batched_sequence_logprobs",
    "dpo_loss",
    "encode_for_policy",
    "encode_preferences_for_policy",
    "implicit_rewards",
    "sequence_logprobs",
    "train_dpo",
]
