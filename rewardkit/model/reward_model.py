"""The reward model: a Hugging Face sequence-classification model with one output, plus its tokenizer.

`RewardModel.from_sft(path)` starts from a causal LM (the SFT model): the backbone keeps its weights and the
vocabulary head is replaced by a fresh linear head to one scalar (`AutoModelForSequenceClassification`,
`num_labels=1`). For decoder backbones the scalar is read at the last real token; encoder backbones (BERT-like)
use their own [CLS] pooling. What `save_pretrained` writes is a plain transformers checkpoint (safetensors),
so transformers, TRL, OpenRLHF or vLLM load it and compute the same raw reward.

Reward normalization (InstructGPT adds a bias so demonstrations score 0): an offset and scale, measured after
training, live in `config.rewardkit` and are applied by `score` unless `normalize=False`.
"""

from __future__ import annotations

import contextlib
import copy
import os
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn
from tqdm.auto import tqdm
from transformers import (
    AutoConfig,
    AutoModelForSequenceClassification,
    AutoTokenizer,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)
from transformers.utils import logging as hf_logging

from rewardkit.data.collate import pad_sequences
from rewardkit.data.records import Text
from rewardkit.data.tokenize import EncodedSequence, encode_pair, encode_pairs
from rewardkit.errors import RewardkitError, model_source_error
from rewardkit.model.pooling import last_token_index, position_ids_from_mask
from rewardkit.model.prefix_sharing import packed_rewards, scoring_batches, supports_packing, unpad

PAD_TOKEN = "<|rewardkit_pad|>"
DEFAULT_MAX_LENGTH = 512
# Decoder batches with more padding than this are packed (several sequences per row, no padding computed): the
# same rewards for less work. Random batches of HH-RLHF dialogues are about half padding.
PACK_ABOVE_PADDING = 0.1


@dataclass
class ScoreOutput:
    rewards: torch.Tensor  # normalized when the model has normalization and normalize=True
    raw_rewards: torch.Tensor
    truncated: list[bool]
    num_tokens: list[int]


def _load_tokenizer(path: str | os.PathLike) -> PreTrainedTokenizerBase:
    try:
        return AutoTokenizer.from_pretrained(path)
    except (OSError, ValueError) as error:  # ValueError: a directory without a tokenizer in it
        raise model_source_error(path, error, "tokenizer") from error


def _ensure_distinct_pad_token(tokenizer: PreTrainedTokenizerBase) -> bool:
    """Give the tokenizer a pad token that is not EOS. Returns True when a token was added.

    transformers' sequence-classification heads find the score token as the rightmost token != pad_token_id;
    with pad == eos a response ending in EOS is read at the wrong position by every tool that loads the
    checkpoint. A dedicated pad token makes the saved model correct everywhere.
    """
    if tokenizer.pad_token_id is not None and tokenizer.pad_token_id != tokenizer.eos_token_id:
        return False
    tokenizer.add_special_tokens({"pad_token": PAD_TOKEN})
    return True


@contextlib.contextmanager
def _quiet_transformers():
    """Hide the expected 'score.weight newly initialized' warning (the head is replaced on purpose) and the
    per-file loading bars, which say nothing for models this size."""
    previous = hf_logging.get_verbosity()
    bars = hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        hf_logging.set_verbosity(previous)
        if bars:
            hf_logging.enable_progress_bar()


class RewardModel(nn.Module):
    def __init__(self, model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, max_length: int | None = None):
        super().__init__()
        self.model = model
        self.tokenizer = tokenizer
        settings = dict(getattr(model.config, "rewardkit", None) or {})
        if max_length is not None:
            settings["max_length"] = max_length
        settings.setdefault("max_length", DEFAULT_MAX_LENGTH)
        model.config.rewardkit = settings
        model.config.pad_token_id = tokenizer.pad_token_id

    # ----------------------------------------------------------------------------------------------- loading
    @classmethod
    def from_sft(
        cls,
        path: str | os.PathLike,
        *,
        max_length: int | None = None,
        random_init: bool = False,
        dtype: torch.dtype | None = None,
    ) -> RewardModel:
        """Build an RM from a causal LM checkpoint (local dir or hub id); the vocabulary head is dropped.

        With `random_init=True` the same architecture starts from random weights (for the SFT-vs-scratch
        comparison of the demo).
        """
        tokenizer = _load_tokenizer(path)
        added_pad = _ensure_distinct_pad_token(tokenizer)
        with _quiet_transformers():
            if random_init:
                config = AutoConfig.from_pretrained(path, num_labels=1)
                model = AutoModelForSequenceClassification.from_config(config, dtype=dtype)
            else:
                model = AutoModelForSequenceClassification.from_pretrained(path, num_labels=1, dtype=dtype)
        if added_pad:
            model.resize_token_embeddings(len(tokenizer), mean_resizing=False)
        model.config.problem_type = "regression"
        return cls(model, tokenizer, max_length=max_length or _model_max_length(tokenizer, model))

    @classmethod
    def from_pretrained(
        cls, path: str | os.PathLike, *, max_length: int | None = None, dtype: torch.dtype | None = None
    ) -> RewardModel:
        """Load a reward model saved by `save_pretrained` (or any `num_labels=1` classification checkpoint)."""
        tokenizer = _load_tokenizer(path)
        with _quiet_transformers():
            model = AutoModelForSequenceClassification.from_pretrained(path, dtype=dtype)
        if model.config.num_labels != 1:
            raise RewardkitError(
                f"'{path}' has num_labels={model.config.num_labels}; a reward model has exactly one output. "
                "To start from a causal LM, use RewardModel.from_sft or `rewardkit train --model`."
            )
        if tokenizer.pad_token_id is None:
            _ensure_distinct_pad_token(tokenizer)
            model.resize_token_embeddings(len(tokenizer), mean_resizing=False)
        return cls(model, tokenizer, max_length=max_length)

    def save_pretrained(self, directory: str | os.PathLike) -> None:
        """Write a standard transformers checkpoint (safetensors) and the tokenizer.

        A LoRA-wrapped model is merged into a copy first, so the checkpoint never needs peft to load.
        """
        model = self.model
        if hasattr(model, "merge_and_unload"):
            model = copy.deepcopy(model).merge_and_unload()
        with _quiet_transformers():
            model.save_pretrained(directory)
        self.tokenizer.save_pretrained(directory)

    # ----------------------------------------------------------------------------------------------- settings
    @property
    def settings(self) -> dict:
        return self.model.config.rewardkit

    @property
    def max_length(self) -> int:
        return int(self.settings["max_length"])

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def is_decoder(self) -> bool:
        """Decoder heads (`score`) read the last token; encoder heads pool [CLS] themselves."""
        return hasattr(self.hf_model, "score")

    @property
    def hf_model(self) -> PreTrainedModel:
        """The transformers model underneath, also when wrapped by peft."""
        return self.model.get_base_model() if hasattr(self.model, "get_base_model") else self.model

    @property
    def normalization(self) -> tuple[float, float] | None:
        if "reward_offset" not in self.settings:
            return None
        return float(self.settings["reward_offset"]), float(self.settings["reward_scale"])

    def set_normalization(self, offset: float, scale: float) -> None:
        if not scale > 0:
            raise RewardkitError(f"reward scale must be positive, got {scale}")
        self.settings.update(reward_offset=float(offset), reward_scale=float(scale))

    def normalize(self, raw_rewards: torch.Tensor) -> torch.Tensor:
        if self.normalization is None:
            return raw_rewards
        offset, scale = self.normalization
        return (raw_rewards - offset) / scale

    # ----------------------------------------------------------------------------------------------- forward
    def forward(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, share_prefix: bool | None = None
    ) -> torch.Tensor:
        """Raw rewards, one per row, for left- or right-padded batches.

        Decoder rows that share a prefix (a prompt with several responses) can have it computed once, and batches
        that are mostly padding are packed into one forward without the padding (`prefix_sharing`). Rewards and
        gradients equal the padded forward's up to float rounding. `share_prefix=None` shares when no gradient is
        recorded (scoring, evaluation, serving); training passes True to share too.
        """
        share = not torch.is_grad_enabled() if share_prefix is None else share_prefix
        if supports_packing(self) and (share or _padding_share(attention_mask) > PACK_ABOVE_PADDING):
            return packed_rewards(self, unpad(input_ids, attention_mask), share_prefix=share)
        return self.padded_forward(input_ids, attention_mask)

    def padded_forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """The plain forward over the padded batch (the reference the packed forward is tested against)."""
        if not self.is_decoder:
            return self.model(input_ids=input_ids, attention_mask=attention_mask).logits.squeeze(-1)
        hf_model = self.hf_model
        backbone = getattr(hf_model, hf_model.base_model_prefix)
        hidden = backbone(
            input_ids=input_ids,
            attention_mask=attention_mask,
            position_ids=position_ids_from_mask(attention_mask),
            use_cache=False,
        ).last_hidden_state
        rows = torch.arange(hidden.shape[0], device=hidden.device)
        pooled = hidden[rows, last_token_index(attention_mask)]
        return hf_model.score(pooled).squeeze(-1)

    # ----------------------------------------------------------------------------------------------- scoring
    def encode(self, prompt: Text, response: Text) -> EncodedSequence:
        return encode_pair(prompt, response, self.tokenizer, self.max_length)

    @torch.inference_mode()
    def score_encoded(
        self,
        sequences: Sequence[Sequence[int]],
        batch_size: int = 32,
        autocast_dtype: torch.dtype | None = None,
        progress: bool | str = False,
    ) -> torch.Tensor:
        """Raw rewards for token-id sequences, in input order, at most `batch_size` sequences per forward.
        `progress`: a bar, named "scoring" or by the given text.

        Decoder batches keep sequences that share a prefix together (a prompt scored with several responses), so
        the forward computes it once, and group sequences of similar length (`prefix_sharing.scoring_batches`);
        other models get length-sorted padded batches.
        """
        was_training = self.training
        self.eval()
        if supports_packing(self):  # prompts shared across the batch's sequences are computed once (forward)
            batches = scoring_batches(self, sequences, batch_size)
        else:
            order = sorted(range(len(sequences)), key=lambda i: len(sequences[i]))
            batches = [order[start : start + batch_size] for start in range(0, len(order), batch_size)]
        rewards = torch.empty(len(sequences), dtype=torch.float32)
        device = self.device
        name = progress if isinstance(progress, str) else "scoring"
        bar = tqdm(total=len(sequences), desc=name, unit="seq", disable=not progress)
        for rows in batches:
            input_ids, attention_mask = pad_sequences([sequences[i] for i in rows], self.tokenizer.pad_token_id)
            with torch.autocast(device.type, dtype=autocast_dtype, enabled=autocast_dtype is not None):
                batch_rewards = self(input_ids.to(device), attention_mask.to(device))
            rewards[rows] = batch_rewards.float().cpu()
            bar.update(len(rows))
        bar.close()
        self.train(was_training)
        return rewards

    def score(
        self,
        prompts: Sequence[Text],
        responses: Sequence[Text],
        batch_size: int = 32,
        normalize: bool = True,
        return_details: bool = False,
        progress: bool = False,
    ) -> torch.Tensor | ScoreOutput:
        """Rewards for (prompt, response) pairs, normalized with the checkpoint's offset/scale by default."""
        if len(prompts) != len(responses):
            raise RewardkitError(f"got {len(prompts)} prompts but {len(responses)} responses; pass one per response")
        encoded = encode_pairs(list(zip(prompts, responses, strict=True)), self.tokenizer, self.max_length)
        raw = self.score_encoded([e.input_ids for e in encoded], batch_size=batch_size, progress=progress)
        rewards = self.normalize(raw) if normalize else raw
        if not return_details:
            return rewards
        return ScoreOutput(rewards, raw, [e.truncated for e in encoded], [len(e.input_ids) for e in encoded])


def _padding_share(attention_mask: torch.Tensor) -> float:
    return 1.0 - attention_mask.sum().item() / max(attention_mask.numel(), 1)


def _model_max_length(tokenizer: PreTrainedTokenizerBase, model: PreTrainedModel) -> int:
    """The smaller of what the tokenizer and the position embeddings allow, capped at the default."""
    limits = [DEFAULT_MAX_LENGTH]
    if isinstance(tokenizer.model_max_length, int) and tokenizer.model_max_length < 1_000_000:
        limits.append(tokenizer.model_max_length)
    if getattr(model.config, "max_position_embeddings", None):
        limits.append(int(model.config.max_position_embeddings))
    return min(limits)

