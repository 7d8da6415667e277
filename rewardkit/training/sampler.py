"""Which prompt groups go into which step: a seeded shuffle per epoch, addressable by step number.

Because the order is a pure function of (seed, epoch), a resumed run rebuilds exactly the batches an
uninterrupted run would have seen, without saving any sampler state.
"""

from __future__ import annotations

import math

import torch


class GroupBatchSchedule:
    def __init__(self, num_groups: int, batch_size: int, accumulation: int, seed: int):
        if num_groups == 0:
            raise ValueError("no training groups")
        self.num_groups = num_groups
        self.batch_size = batch_size
        self.accumulation = accumulation
        self.seed = seed
        self.groups_per_step = batch_size * accumulation
        self.steps_per_epoch = math.ceil(num_groups / self.groups_per_step)

    def total_steps(self, epochs: float, max_steps: int | None) -> int:
        return max_steps if max_steps is not None else max(1, math.ceil(epochs * self.steps_per_epoch))

    def _epoch_order(self, epoch: int) -> list[int]:
        generator = torch.Generator().manual_seed(self.seed * 100_003 + epoch)
        return torch.randperm(self.num_groups, generator=generator).tolist()

    def micro_batches(self, step: int) -> list[list[int]]:
        """The group indices of each micro-batch of optimizer step `step` (0-based)."""
        epoch, position = divmod(step, self.steps_per_epoch)
        order = self._epoch_order(epoch)
        chosen = order[position * self.groups_per_step : (position + 1) * self.groups_per_step]
        return [chosen[i : i + self.batch_size] for i in range(0, len(chosen), self.batch_size)]

    def epoch_of(self, step: int) -> float:
        return step / self.steps_per_epoch
