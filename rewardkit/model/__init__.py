"""The reward model: an HF sequence-classification model with one output, read at the last real token."""

from rewardkit.model.reward_model import RewardModel, ScoreOutput

__all__ = ["RewardModel", "ScoreOutput"]
