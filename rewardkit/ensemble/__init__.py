"""Reward-model ensembles: train N members, score with mean / worst-case / uncertainty-weighted aggregation.

    from rewardkit.ensemble import EnsembleConfig, RewardEnsemble, train_ensemble
    train_ensemble(TrainConfig(model=SFT, data=[...], output_dir="ens"), EnsembleConfig(members=4, bootstrap=True))
    ensemble = RewardEnsemble.from_pretrained("ens")
    out = ensemble.score(prompts, responses, aggregate="uwo", lam=0.5, return_details=True)  # out.std: disagreement
"""

from rewardkit.ensemble.aggregate import AGGREGATES, aggregate, disagreement
from rewardkit.ensemble.bootstrap import bootstrap_indices
from rewardkit.ensemble.ensemble import EnsembleScoreOutput, RewardEnsemble
from rewardkit.ensemble.evaluation import evaluate_ensemble, mean_disagreement, member_group_rewards
from rewardkit.ensemble.train import EnsembleConfig, EnsembleTrainResult, train_ensemble

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
