"""Pairwise metrics of a reward model on labelled comparisons (here, below training and distributed, which use them;
`rewardkit.evaluation.pairwise` is the evaluation layer's name for the same functions).

Accuracy counts a comparison as correct when the favoured response gets the higher reward, and as half when the
two rewards are equal. Comparisons labelled as ties (prob = 0.5) have no right answer and are left out of the
accuracy (their count is reported).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np
import torch

from rewardkit.data.collate import EncodedDataset
from rewardkit.data.records import Comparison
from rewardkit.model.reward_model import RewardModel


@dataclass
class PairwiseMetrics:
    accuracy: float
    mean_margin: float  # mean of r(better) - r(worse) over hard-labelled comparisons
    better_reward_mean: float
    worse_reward_mean: float
    num_comparisons: int  # hard-labelled comparisons scored
    num_tied_labels: int  # comparisons labelled as ties, excluded from accuracy
    num_groups: int
    num_responses: int

    def to_dict(self) -> dict:
        return asdict(self)


def score_encoded_dataset(
    model: RewardModel, encoded: EncodedDataset, batch_size: int = 32, normalize: bool = False
) -> list[torch.Tensor]:
    """Rewards for every response of every group (each distinct sequence scored once)."""
    row_of: dict[tuple[int, ...], int] = {}
    for group in encoded.groups:
        for sequence in group.sequences:
            row_of.setdefault(sequence.input_ids, len(row_of))
    rewards = model.score_encoded(list(row_of), batch_size=batch_size)
    if normalize:
        rewards = model.normalize(rewards)
    return [torch.stack([rewards[row_of[s.input_ids]] for s in group.sequences]) for group in encoded.groups]


def outcomes(differences: np.ndarray | torch.Tensor) -> np.ndarray:
    """Per comparison, r(better) - r(worse) -> 1.0 (right), 0.5 (equal rewards) or 0.0 (wrong)."""
    d = np.asarray(differences, dtype=np.float64)
    return (d > 0) + 0.5 * (d == 0)


def pairwise_metrics(encoded: EncodedDataset, group_rewards: list[torch.Tensor]) -> PairwiseMetrics:
    comparisons = [group.comparisons for group in encoded.groups]
    return comparison_metrics(comparisons, group_rewards, encoded.num_sequences)


def comparison_metrics(
    comparisons: Sequence[Sequence[Comparison]], group_rewards: Sequence[torch.Tensor], num_responses: int
) -> PairwiseMetrics:
    """`pairwise_metrics` for any groups' comparisons (encoded or not), with one reward per response."""
    better, worse, tied = [], [], 0
    for group_comparisons, rewards in zip(comparisons, group_rewards, strict=True):
        for comparison in group_comparisons:
            if comparison.prob == 0.5:
                tied += 1
                continue
            better.append(rewards[comparison.better])
            worse.append(rewards[comparison.worse])
    if not better:
        nan = float("nan")
        return PairwiseMetrics(nan, nan, nan, nan, 0, tied, len(comparisons), num_responses)
    better_t, worse_t = torch.stack(better), torch.stack(worse)
    differences = better_t - worse_t
    return PairwiseMetrics(
        accuracy=float(outcomes(differences.detach().cpu()).mean()),
        mean_margin=differences.mean().item(),
        better_reward_mean=better_t.mean().item(),
        worse_reward_mean=worse_t.mean().item(),
        num_comparisons=len(differences),
        num_tied_labels=tied,
        num_groups=len(comparisons),
        num_responses=num_responses,
    )


def evaluate(model: RewardModel, encoded: EncodedDataset, batch_size: int = 32) -> PairwiseMetrics:
    return pairwise_metrics(encoded, score_encoded_dataset(model, encoded, batch_size=batch_size))
