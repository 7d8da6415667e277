"""Bradley-Terry reward-model training."""

from rewardkit.training.config import TrainConfig
from rewardkit.training.trainer import TrainingDivergedError, TrainResult, train

__all__ = ["TrainConfig", "TrainResult", "TrainingDivergedError", "train"]
