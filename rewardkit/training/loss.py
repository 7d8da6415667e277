"""The losses: Bradley-Terry for outcome reward models, step classification for process reward models.

Bradley-Terry, InstructGPT-style: all comparisons of a prompt form one batch element.

    loss = -1/G * sum_groups 1/C(K,2) * sum_{(w,l) in group} weight * [ p log sigma(r_w - r_l - m)
                                                                        + (1 - p) log sigma(r_l - r_w) ]

p is the probability that w beats l (1 for a hard label, 0.5 for a tie, in between for labeller disagreement),
m a per-pair margin (Llama 2), and an optional centering penalty c * (r_w + r_l)^2 keeps rewards near zero
(Eisenstein et al. 2023).

Step classification (process RMs): each labelled step's reward r is a logit, sigma(r) the probability that the
step is correct, and the label y its target (1 right, 0 wrong, a Monte-Carlo estimate in between):

    loss = -1/G * sum_groups 1/S_g * sum_{steps in group} [ y log sigma(r) + (1 - y) log sigma(-r) ]

averaged within each group (a problem's labelled steps over all its solutions), then over groups, as above.
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


@dataclass
class StepStats:
    loss: torch.Tensor
    accuracy: torch.Tensor  # share of steps with a decisive label (y != 0.5) on the right side of sigma(r) = 0.5
    num_steps: int  # labelled steps


def step_classification_loss(rewards: torch.Tensor, batch: dict) -> StepStats:
    """`rewards` holds one reward per entry of `batch["labels"]`; `batch` comes from `collate_steps`."""
    labels, group = batch["labels"], batch["group"]
    labelled = ~labels.isnan()
    logits, targets, group = rewards.float()[labelled], labels[labelled], group[labelled]
    per_step = F.binary_cross_entropy_with_logits(logits, targets, reduction="none")
    _, group = torch.unique(group, return_inverse=True)  # groups without a labelled step drop out
    num_groups = int(group.max()) + 1
    steps_per_group = torch.bincount(group, minlength=num_groups).float()
    loss = (per_step / steps_per_group[group]).sum() / num_groups

    with torch.no_grad():
        decisive = targets != 0.5
        right = torch.where(logits == 0, 0.5, ((logits > 0) == (targets > 0.5)).float())
        accuracy = right[decisive].mean() if decisive.any() else torch.tensor(float("nan"))
    return StepStats(loss, accuracy, int(targets.numel()))
