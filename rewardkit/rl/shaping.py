"""KL-shaped reward of Ziegler et al. 2019 / InstructGPT: R(x, y) = r(x, y) - beta * KL(pi || pi_sft).

The KL term is paid per token (so the critic can attribute it), the reward model's score once, at the last
response token (it judges the whole response).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


def shaped_rewards(scores: torch.Tensor, kl: torch.Tensor, response_mask: torch.Tensor, beta: float) -> torch.Tensor:
    """Per-token rewards [B, R]: -beta * kl_t on every response token, plus `scores` [B] on the last one.

    `kl` is the per-token estimate [B, R]; `response_mask` [B, R] is right-padded (response tokens first).
    """
    mask = response_mask.to(kl.dtype)
    rewards = -beta * kl * mask
    last = (mask.sum(-1).long() - 1).clamp(min=0)  # index of the last response token of each row
    rewards[torch.arange(len(rewards), device=rewards.device), last] += scores.to(rewards.dtype)
    return rewards


@dataclass
class FixedKLController:
    """Constant beta."""

    beta: float

    def update(self, current_kl: float, n_steps: int) -> None:
        pass


@dataclass
class AdaptiveKLController:
    """Ziegler et al. 2019: steer the sequence KL towards `target` with a clipped proportional controller.

        e_t = clip(KL_t / KL_target - 1, -0.2, 0.2)
        beta_{t+1} = beta_t * (1 + e_t * n_steps / horizon)

    `n_steps` is the number of samples in the batch; `horizon` (in samples) sets how fast beta reacts.
    Clipping keeps one noisy KL estimate from moving beta by more than 20% of n_steps / horizon.
    """

    beta: float
    target: float
    horizon: int = 10_000

    def update(self, current_kl: float, n_steps: int) -> None:
        error = min(max(current_kl / self.target - 1.0, -0.2), 0.2)
        self.beta *= 1.0 + error * n_steps / self.horizon
