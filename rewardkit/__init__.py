"""rewardkit: train, evaluate, audit and serve RLHF reward models.

    from rewardkit import RewardModel, TrainConfig, load_preferences, train

Names are imported on first use, so `import rewardkit` (and `rewardkit --help`) stays fast.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from rewardkit.lazy import lazy_exports

__version__ = "0.1.0"

_EXPORTS = {
    "RewardModel": "rewardkit.model.reward_model",
    "ScoreOutput": "rewardkit.model.reward_model",
    "TrainConfig": "rewardkit.training.config",
    "train": "rewardkit.training.trainer",
    "TrainResult": "rewardkit.training.trainer",
    "TrainingDivergedError": "rewardkit.training.trainer",
    "load_preferences": "rewardkit.data.loading",
    "split_dataset": "rewardkit.data.loading",
    "PreferenceDataset": "rewardkit.data.records",
    "PreferenceGroup": "rewardkit.data.records",
    "Comparison": "rewardkit.data.records",
    "DataError": "rewardkit.data.errors",
    "RewardkitError": "rewardkit.errors",
}

__all__ = [
    "Comparison",
    "DataError",
    "PreferenceDataset",
    "PreferenceGroup",
    "RewardModel",
    "RewardkitError",
    "ScoreOutput",
    "TrainConfig",
    "TrainResult",
    "TrainingDivergedError",
    "__version__",
    "load_preferences",
    "split_dataset",
    "train",
]

if TYPE_CHECKING:
    from rewardkit.data.errors import DataError
    from rewardkit.data.loading import load_preferences, split_dataset
    from rewardkit.data.records import Comparison, PreferenceDataset, PreferenceGroup
    from rewardkit.errors import RewardkitError
    from rewardkit.model.reward_model import RewardModel, ScoreOutput
    from rewardkit.training.config import TrainConfig
    from rewardkit.training.trainer import TrainingDivergedError, TrainResult, train

__getattr__ = lazy_exports(__name__, _EXPORTS)
