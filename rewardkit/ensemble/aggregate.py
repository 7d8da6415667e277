"""How an ensemble turns its members' rewards into one reward (Coste et al. 2023, Eisenstein et al. 2023).

    mean   r = mean_m r_m                       the plain ensemble: averages out each member's idiosyncrasies
    min    r = min_m r_m                        worst-case optimization: only what every member likes counts
    uwo    r = mean_m r_m - lambda * std_m r_m  uncertainty-weighted: pay for disagreement

Disagreement is the standard deviation over members (with Bessel's correction; 0 for a single member). Coste
et al. penalize the variance; the standard deviation is used here because it is in reward units, so lambda
does not depend on the reward scale. Members must be on a common scale: use normalized rewards.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from rewardkit.ensemble.config import AGGREGATES
from rewardkit.errors import RewardkitError

if TYPE_CHECKING:
    import torch

__all__ = ["AGGREGATES", "aggregate", "disagreement"]


def disagreement(member_rewards: torch.Tensor) -> torch.Tensor:
    """Standard deviation over members (dim 0); zeros when there is one member."""
    if member_rewards.shape[0] < 2:
        return member_rewards[0].new_zeros(member_rewards[0].shape)
    return member_rewards.std(dim=0)


def aggregate(member_rewards: torch.Tensor, method: str = "mean", lam: float = 0.5) -> torch.Tensor:
    """One reward per example from `member_rewards` [M, ...] (members on dim 0)."""
    if member_rewards.ndim == 0 or member_rewards.shape[0] == 0:
        raise RewardkitError("an ensemble needs at least one member's rewards (members on dim 0)")
    if method == "mean":
        return member_rewards.mean(dim=0)
    if method == "min":
        return member_rewards.min(dim=0).values
    if method == "uwo":
        return member_rewards.mean(dim=0) - lam * disagreement(member_rewards)
    raise RewardkitError(f"unknown aggregation {method!r}; expected one of: {', '.join(AGGREGATES)}")
