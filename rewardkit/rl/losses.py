"""The losses of rewardkit's RL algorithms, together: PPO's clipped surrogate (also RLOO's and GRPO's) and value
loss, and the token and sequence means they are averaged with. (GRPO's in-loss KL term is `rl.kl.kl_k3`.)

Shapes: per-token tensors are [B, R] over right-padded responses, with `mask` 1 on response tokens.
"""

from __future__ import annotations

import torch


def masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean over the masked tokens of the whole batch (every token weighs the same)."""
    return (x * mask).sum() / mask.sum().clamp(min=1)


def sequence_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean over each response's tokens, then over responses (every response weighs the same; GRPO's 1/|o_i|)."""
    return ((x * mask).sum(-1) / mask.sum(-1).clamp(min=1)).mean()


def masked_whiten(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    mean = masked_mean(x, mask)
    var = masked_mean((x - mean) ** 2, mask)
    return (x - mean) * torch.rsqrt(var + 1e-8) * mask


def clipped_surrogate(logp: torch.Tensor, logp_old: torch.Tensor, advantages: torch.Tensor,
                      clip_range: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-token PPO-clip loss (Schulman et al. 2017) and whether each token's ratio was clipped.

        ratio = pi(y_t | s_t) / pi_old(y_t | s_t)
        L_clip = max(-A ratio, -A clip(ratio, 1 - eps, 1 + eps))
    """
    ratio = torch.exp(logp - logp_old)
    losses = torch.max(-advantages * ratio, -advantages * ratio.clamp(1 - clip_range, 1 + clip_range))
    clipped = ((ratio - 1).abs() > clip_range).float()
    return losses, clipped


def clipped_value_loss(values: torch.Tensor, values_old: torch.Tensor, returns: torch.Tensor,
                       clip_range: float | None) -> torch.Tensor:
    """Per-token 0.5 max((V - returns)^2, (V_old + clip(V - V_old, -eps_v, eps_v) - returns)^2); unclipped for None."""
    losses = (values - returns) ** 2
    if clip_range is not None:
        values_clipped = values_old + (values - values_old).clamp(-clip_range, clip_range)
        losses = torch.max(losses, (values_clipped - returns) ** 2)
    return 0.5 * losses

