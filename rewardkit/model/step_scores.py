"""Step rewards of solutions and the solution scores built from them (for best-of-n, search and evaluation).

A process RM's step reward r is a logit: sigma(r) is the probability that the step is correct. A solution's score
aggregates those probabilities:

- `min`: the weakest step (Math-Shepherd; Lightman et al. find it close to product);
- `product`: the probability that every step is correct, if steps were independent (Lightman et al.);
- `last`: the last step's (an outcome-like score: the solution as a whole, read at its end);
- `mean`: the average step.

A solution with no scored step (all cut by truncation) scores NaN.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

AGGREGATIONS = ("min", "product", "last", "mean")


def aggregate_steps(step_rewards: torch.Tensor, how: str) -> float:
    """One solution's score from its step rewards (logits), in probability space."""
    if how not in AGGREGATIONS:
        raise ValueError(f"unknown aggregation {how!r}; expected one of: {', '.join(AGGREGATIONS)}")
    if step_rewards.numel() == 0:
        return float("nan")
    probabilities = torch.sigmoid(step_rewards.double())
    if how == "min":
        return float(probabilities.min())
    if how == "product":
        return float(torch.exp(torch.nn.functional.logsigmoid(step_rewards.double()).sum()))
    if how == "last":
        return float(probabilities[-1])
    return float(probabilities.mean())


@dataclass
class StepScores:
    """Per solution, one reward per scored step (normalized when the model has a normalization)."""

    rewards: list[torch.Tensor]
    raw_rewards: list[torch.Tensor]
    num_steps: list[int]  # steps given; those past len(rewards[i]) were cut off by truncation
    truncated: list[bool]

    def __len__(self) -> int:
        return len(self.rewards)

    def aggregate(self, how: str) -> torch.Tensor:
        """Each solution's score by `how` (one of `AGGREGATIONS`)."""
        return torch.tensor([aggregate_steps(r, how) for r in self.rewards], dtype=torch.float64)

    def aggregates(self, hows: Sequence[str] = AGGREGATIONS) -> dict[str, torch.Tensor]:
        return {how: self.aggregate(how) for how in hows}
