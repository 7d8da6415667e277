"""Pairwise accuracy of every member and every aggregation of an ensemble, from one scoring pass per member."""

from __future__ import annotations

import torch

from rewardkit.data.collate import EncodedDataset
from rewardkit.ensemble.aggregate import AGGREGATES, aggregate, disagreement
from rewardkit.ensemble.ensemble import RewardEnsemble
from rewardkit.evaluation.pairwise import PairwiseMetrics, pairwise_metrics, score_encoded_dataset


def member_group_rewards(ensemble: RewardEnsemble, encoded: EncodedDataset, batch_size: int = 32) -> list[torch.Tensor]:
    """Normalized rewards of every member for every group's responses: one [M, K] tensor per group."""
    per_member = [score_encoded_dataset(member, encoded, batch_size, normalize=True) for member in ensemble.members]
    return [torch.stack(group) for group in zip(*per_member, strict=True)]


def evaluate_ensemble(
    ensemble: RewardEnsemble, encoded: EncodedDataset, batch_size: int = 32, lam: float | None = None
) -> dict[str, PairwiseMetrics]:
    """{"member-0": ..., "member-1": ..., "mean": ..., "min": ..., "uwo": ...}."""
    lam = ensemble.lam if lam is None else lam
    groups = member_group_rewards(ensemble, encoded, batch_size)
    results = {f"member-{m}": pairwise_metrics(encoded, [g[m] for g in groups]) for m in range(len(ensemble.members))}
    for method in AGGREGATES:
        results[method] = pairwise_metrics(encoded, [aggregate(g, method, lam) for g in groups])
    return results


def mean_disagreement(ensemble: RewardEnsemble, encoded: EncodedDataset, batch_size: int = 32) -> float:
    """Average over responses of the members' standard deviation."""
    groups = member_group_rewards(ensemble, encoded, batch_size)
    return torch.cat([disagreement(g) for g in groups]).mean().item()
