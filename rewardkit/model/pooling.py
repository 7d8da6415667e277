"""Where a decoder reward model reads its score: the last real (non-padding) token of each row.

Found from the attention mask, never from `input_ids != pad_token_id`: with tokenizers whose pad token is the EOS
token, a sequence that ends in EOS would otherwise be read one token too early. The same trick handles left and
right padding: the rightmost position whose mask is 1.
"""

from __future__ import annotations

import torch


def last_token_index(attention_mask: torch.Tensor) -> torch.Tensor:
    positions = torch.arange(attention_mask.shape[-1], device=attention_mask.device)
    return (positions * attention_mask.to(positions.dtype)).argmax(dim=-1)


def position_ids_from_mask(attention_mask: torch.Tensor) -> torch.Tensor:
    """Positions that start at 0 on the first real token, so left-padded rows get the same positions as
    right-padded ones (Llama-style models otherwise count the padding)."""
    return (attention_mask.long().cumsum(dim=-1) - 1).clamp(min=0)
