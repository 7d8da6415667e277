"""The DPO loss (Rafailov et al. 2023) is the Bradley-Terry loss on the policy's implicit reward.

    r(x, y) = beta * (log pi(y|x) - log pi_ref(y|x))        (sums over response tokens)
    loss    = -log sigmoid(r(x, y_w) - r(x, y_l))
            = -log sigmoid(beta * ((logp_w - logp_ref_w) - (logp_l - logp_ref_l)))

so it reuses `bradley_terry_loss`: all C(K,2) comparisons of a K-wise ranking are one batch element (averaged
within the group, then over groups), and soft labels, margins and weights work as for reward models.
"""

from __future__ import annotations

import torch

from rewardkit.training.loss import PairwiseStats, bradley_terry_loss


def implicit_rewards(policy_logps: torch.Tensor, ref_logps: torch.Tensor, beta: float) -> torch.Tensor:
    return beta * (policy_logps - ref_logps)


def dpo_loss(
    policy_logps: torch.Tensor, ref_logps: torch.Tensor, batch: dict[str, torch.Tensor], beta: float
) -> PairwiseStats:
    """`policy_logps` / `ref_logps`: log pi(y|x) per unique row of `batch` (from `collate_groups`)."""
    return bradley_terry_loss(implicit_rewards(policy_logps, ref_logps, beta), batch)
