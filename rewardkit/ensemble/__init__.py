"""Reward-model ensembles: train N members, score with mean / worst-case / uncertainty-weighted aggregation.

    from rewardkit.ensemble import EnsembleConfig, RewardEnsemble, train_ensemble
    train_ensemble(TrainConfig(model=SFT, data=[...], output_dir="ens"), EnsembleConfig(members=4, bootstrap=True))
    ensemble = RewardEnsemble.from_pretrained("ens")
    out = ensemble.score(prompts, responses, aggregate="uwo", lam=0.5, return_details=True)  # out.std: disagreement

Names (but the light `aggregate`) are imported on first use, so `rewardkit ensemble --help` does not wait for torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

# Eager: `aggregate` is also the name of its module, which would shadow a lazily imported function (it is light).
from rewardkit.ensemble.aggregate import aggregate, disagreement
from rewardkit.lazy import lazy_exports

_EXPORTS = {
    "AGGREGATES": "rewardkit.ensemble.config",
    "bootstrap_indices": "rewardkit.ensemble.bootstrap",
    "EnsembleScoreOutput": "rewardkit.ensemble.ensemble",
    "RewardEnsemble": "rewardkit.ensemble.ensemble",
    "evaluate_ensemble": "rewardkit.ensemble.evaluation",
    "mean_disagreement": "rewardkit.ensemble.evaluation",
    "member_group_rewards": "rewardkit.ensemble.evaluation",
    "EnsembleConfig": "rewardkit.ensemble.config",
    "EnsembleTrainResult": "rewardkit.ensemble.train",
    "train_ensemble": "rewardkit.ensemble.train",
}

__all__ = [
    "AGGREGATES",
    "EnsembleConfig",
    "EnsembleScoreOutput",
    "EnsembleTrainResult",
    "RewardEnsemble",
    "aggregate",
    "bootstrap_indices",
    "disagreement",
    "evaluate_ensemble",
    "mean_disagreement",
    "member_group_rewards",
    "train_ensemble",
]

if TYPE_CHECKING:
    from rewardkit.ensemble.bootstrap import bootstrap_indices
    from rewardkit.ensemble.config import AGGREGATES, EnsembleConfig
    from rewardkit.ensemble.ensemble import EnsembleScoreOutput, RewardEnsemble
    from rewardkit.ensemble.evaluation import evaluate_ensemble, mean_disagreement, member_group_rewards
    from rewardkit.ensemble.train import EnsembleTrainResult, train_ensemble

__getattr__ = lazy_exports(__name__, _EXPORTS)
