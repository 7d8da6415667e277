"""The Bradley-Terry pairwise loss, InstructGPT-style: all comparisons of a prompt form one batch element.

    loss = -1/G * sum_groups 1/C(K,2) * sum_{(w,l) in group} weight * [ p log sigma(r_w - r_l - m)
                                                                        + (1 - p) log sigma(r_l - r_w) ]

p is the probability that w beats l (1 for a hard label, 0.5 for a tie, in between for labeller disagreement),
m a per-pair margin (Llama 2), and an optional centering penalty c * (r_w + r_l)^2 keeps rewards near zero
(Eisenstein et al. 2023).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass
class PairwiseStats:
    loss: torch.Tensor
    accuracy: torch.Tensor  # share of hard-labelled comparisons ordered correctly (ties in reward count half)
    margin: torch.Tensor  # mean r_w - r_l
    num_comparisons: int


def bradley_terry_loss(
    rewards: torch.Tensor, batch: dict[str, torch.Tensor], center_coefficient: float = 0.0
) -> PairwiseStats:
    """`rewards` holds one reward per unique row of the batch; `batch` comes from `collate_groups`."""
    rewards = rewards.float()  # keep the loss in fp32 under bf16 autocast
    r_better, r_worse = rewards[batch["better"]], rewards[batch["worse"]]
    prob, weight, group = batch["prob"], batch["weight"], batch["group"]
    difference = r_better - r_worse

    per_comparison = -(prob * F.logsigmoid(difference - batch["margin"]) + (1 - prob) * F.logsigmoid(-difference))
    if center_coefficient:
        per_comparison = per_comparison + center_coefficient * (r_better + r_worse) ** 2

    # Average within each group (1/C(K,2)), then over groups, so a K=9 prompt counts as much as a pair.
    num_groups = int(group.max()) + 1
    comparisons_per_group = torch.bincount(group, minlength=num_groups).float()
    loss = (weight * per_comparison / comparisons_per_group[group]).sum() / num_groups

    with torch.no_grad():
        hard = prob != 0.5
        correct = (difference > 0).float() + 0.5 * (difference == 0).float()
        accuracy = correct[hard].mean() if hard.any() else torch.tensor(float("nan"))
        margin = difference.mean()
    return PairwiseStats(loss, accuracy, margin, int(difference.numel()))
