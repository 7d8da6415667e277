"""Where a reward model reads its rewards: the last real (non-padding) token of each row, or given positions.

Found from the attention mask, never from `input_ids != pad_token_id`: with tokenizers whose pad token is the EOS
token, a sequence that ends in EOS would otherwise be read one token too early. The same trick handles left and
right padding: the rightmost position whose mask is 1. Positions given per row (the token ending each step of a
solution) count from the row's first real token, so they too mean the same under left and right padding.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch


def last_token_index(attention_mask: torch.Tensor) -> torch.Tensor:
    positions = torch.arange(attention_mask.shape[-1], device=attention_mask.device)
    return (positions * attention_mask.to(positions.dtype)).argmax(dim=-1)


def position_ids_from_mask(attention_mask: torch.Tensor) -> torch.Tensor:
    """Positions that start at 0 on the first real token, so left-padded rows get the same positions as
    right-padded ones (Llama-style models otherwise count the padding)."""
    return (attention_mask.long().cumsum(dim=-1) - 1).clamp(min=0)


def reward_coordinates(
    attention_mask: torch.Tensor, reward_positions: Sequence[Sequence[int]] | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """(rows, columns) of every reward of a padded batch, row by row: each row's last real token, or, with
    `reward_positions`, each given offset from the row's first real token."""
    device = attention_mask.device
    if reward_positions is None:
        return torch.arange(attention_mask.shape[0], device=device), last_token_index(attention_mask)
    first = attention_mask.long().argmax(dim=-1)  # the first real token: 0 unless left-padded
    counts = torch.tensor([len(p) for p in reward_positions], device=device)
    rows = torch.repeat_interleave(torch.arange(len(reward_positions), device=device), counts)
    offsets = torch.tensor([p for row in reward_positions for p in row], dtype=torch.long, device=device)
    return rows, first[rows] + offsets


def decoder_head(hf_model: torch.nn.Module, hidden: torch.Tensor) -> torch.Tensor:
    """A decoder's scalar head on hidden states [..., hidden] -> [...]: `score`, after the dropout that token
    classification heads apply first (sequence classification heads have none)."""
    dropout = getattr(hf_model, "dropout", None)
    return hf_model.score(dropout(hidden) if dropout is not None else hidden).squeeze(-1)
