"""DPO as a baseline next to RM + RL: train a policy directly on preferences, and score data with its implicit
reward beta * log(pi / pi_ref) (or RewardBench's reference-free variants) through the same pairwise evaluation.

    from rewardkit.dpo import DPOConfig, DPOScorer, train_dpo
    train_dpo(policy, sft, tokenizer, load_preferences("prefs.jsonl"), DPOConfig(beta=0.1))
    DPOScorer(policy, tokenizer, ref=sft, beta=0.1).evaluate(load_preferences("val.jsonl")).accuracy

Names are imported on first use, so `rewardkit dpo --help` does not wait for torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from rewardkit.lazy import lazy_exports

_EXPORTS = {
    "encode_for_policy": "rewardkit.dpo.encode",
    "encode_preferences_for_policy": "rewardkit.dpo.encode",
    "batched_sequence_logprobs": "rewardkit.dpo.logprobs",
    "sequence_logprobs": "rewardkit.dpo.logprobs",
    "dpo_loss": "rewardkit.dpo.loss",
    "implicit_rewards": "rewardkit.dpo.loss",
    "MODES": "rewardkit.dpo.modes",
    "DPOScorer": "rewardkit.dpo.scorer",
    "DPOConfig": "rewardkit.dpo.trainer",
    "DPOResult": "rewardkit.dpo.trainer",
    "train_dpo": "rewardkit.dpo.trainer",
}

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

if TYPE_CHECKING:
    from rewardkit.dpo.encode import encode_for_policy, encode_preferences_for_policy
    from rewardkit.dpo.logprobs import batched_sequence_logprobs, sequence_logprobs
    from rewardkit.dpo.loss import dpo_loss, implicit_rewards
    from rewardkit.dpo.modes import MODES
    from rewardkit.dpo.scorer import DPOScorer
    from rewardkit.dpo.trainer import DPOConfig, DPOResult, train_dpo

__getattr__ = lazy_exports(__name__, _EXPORTS)
