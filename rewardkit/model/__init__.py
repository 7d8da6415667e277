"""The reward model: an HF classification model with one output, read at the last real token (outcome RMs) or at
the token ending each step (process RMs)."""

from rewardkit.model.reward_model import RewardModel, ScoreOutput
from rewardkit.model.step_scores import AGGREGATIONS, StepScores

__all__ = ["AGGREGATIONS", "RewardModel", "ScoreOutput", "StepScores"]
