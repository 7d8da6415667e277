"""Per-token KL estimators between a policy and its reference (Schulman, "Approximating KL divergence", 2020).

For a token y sampled from the policy p, with r = p_ref(y) / p(y):
    k1 = log p(y) - log p_ref(y) = -log r      unbiased for KL(p || p_ref), can be negative per token
    k3 = (r - 1) - log r                        unbiased as well, always >= 0, lower variance when p ~ p_ref
Summing k1 over the response tokens gives an unbiased estimate of the sequence-level KL(pi || pi_ref), the
quantity on the x-axis (as sqrt) of Gao et al.'s over-optimization curves.
"""

from __future__ import annotations

from typing import Literal

import torch
from transformers import PreTrainedModel

from rewardkit.lm import response_logprobs

KLEstimator = Literal["k1", "k3"]


def kl_k1(logp: torch.Tensor, logp_ref: torch.Tensor) -> torch.Tensor:
    """k1 = log p - log p_ref, per sampled token."""
    return logp - logp_ref


def kl_k3(logp: torch.Tensor, logp_ref: torch.Tensor) -> torch.Tensor:
    """k3 = (r - 1) - log r with r = p_ref / p, per sampled token; never negative."""
    log_r = logp_ref - logp
    return torch.expm1(log_r) - log_r  # expm1: exact near r = 1, where the two terms nearly cancel


def kl_per_token(logp: torch.Tensor, logp_ref: torch.Tensor, estimator: KLEstimator = "k1") -> torch.Tensor:
    if estimator == "k1":
        return kl_k1(logp, logp_ref)
    if estimator == "k3":
        return kl_k3(logp, logp_ref)
    raise ValueError(f"unknown KL estimator {estimator!r}; expected 'k1' or 'k3'")


@torch.no_grad()
def sequence_kl(
    model: PreTrainedModel,
    ref_model: PreTrainedModel,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    response_mask: torch.Tensor,
    estimator: KLEstimator = "k1",
    temperature: float = 1.0,
) -> torch.Tensor:
    """Sequence-level KL estimate per sample, shape [B]: the per-token estimate summed over the response.

    Average it over responses sampled from `model` to estimate KL(pi || pi_ref).
    """
    logp = response_logprobs(model, input_ids, attention_mask, response_mask, temperature)
    logp_ref = response_logprobs(ref_model, input_ids, attention_mask, response_mask, temperature)
    return (kl_per_token(logp, logp_ref, estimator) * response_mask.to(logp.dtype)).sum(-1)
