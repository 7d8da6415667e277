"""What the fast forward paths need from a reward model: a structural type, so that they do not import
`reward_model.py` (which imports them)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase


class RewardBackbone(Protocol):
    """A transformers classification model with one output and its tokenizer (`RewardModel` is one)."""

    @property
    def hf_model(self) -> PreTrainedModel: ...

    @property
    def tokenizer(self) -> PreTrainedTokenizerBase: ...

    @property
    def device(self) -> torch.device: ...

    @property
    def max_length(self) -> int: ...

    @property
    def is_decoder(self) -> bool: ...

    def __call__(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        share_prefix: bool | None = None,
        reward_positions: Sequence[Sequence[int]] | None = None,
    ) -> torch.Tensor: ...
