"""Forward-pass helpers shared by sampling, KL measurement and PPO.

Sequences in `rewardkit.rl` are laid out as `[left-padded prompt | right-padded response]`, so every response
starts at the same column and the response occupies the last R columns of `input_ids`.
"""

from __future__ import annotations

import inspect

import torch
from transformers import PreTrainedModel


def position_ids_from_mask(attention_mask: torch.Tensor) -> torch.Tensor:
    """Positions counted over real tokens only, so a left-padded prompt starts at position 0."""
    return (attention_mask.long().cumsum(-1) - 1).clamp(min=0)


def _accepts_logits_to_keep(model: PreTrainedModel) -> bool:
    return "logits_to_keep" in inspect.signature(model.forward).parameters


def causal_lm_logits(
    model: PreTrainedModel,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    keep_last: int,
) -> torch.Tensor:
    """Float32 logits of the last `keep_last` positions, shape [B, keep_last, V].

    Why `logits_to_keep`: a full forward would materialise [B, T, V] logits, which dominates memory for real
    vocabularies when only the response positions are needed.
    """
    kwargs = {"logits_to_keep": keep_last} if _accepts_logits_to_keep(model) else {}
    out = model(
        input_ids=input_ids,
        attention_mask=attention_mask,
        position_ids=position_ids_from_mask(attention_mask),
        use_cache=False,
        **kwargs,
    )
    return out.logits[:, -keep_last:].float()
