"""Bradley-Terry reward-model training.

Names are imported on first use, so reading `TrainConfig` (as `rewardkit train --help` does) does not wait for torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from rewardkit.lazy import lazy_exports

_EXPORTS = {
    "TrainConfig": "rewardkit.training.config",
    "TrainResult": "rewardkit.training.trainer",
    "TrainingDivergedError": "rewardkit.training.trainer",
    "train": "rewardkit.training.trainer",
}

__all__ = ["TrainConfig", "TrainResult", "TrainingDivergedError", "train"]

if TYPE_CHECKING:
    from rewardkit.training.config import TrainConfig
    from rewardkit.training.trainer import TrainingDivergedError, TrainResult, train

__getattr__ = lazy_exports(__name__, _EXPORTS)
