"""The reward model: a Hugging Face classification model with one output, plus its tokenizer.

`RewardModel.from_sft(path)` starts from a causal LM (the SFT model): the backbone keeps its weights and the
vocabulary head is replaced by a fresh linear head to one scalar. An outcome RM is a sequence-classification model
(`AutoModelForSequenceClassification`, `num_labels=1`): decoder backbones read the scalar at the last real token,
encoder backbones (BERT-like) use their own [CLS] pooling. What `save_pretrained` writes is a plain transformers
checkpoint (safetensors), so transformers, TRL, OpenRLHF or vLLM load it and compute the same raw reward.

A process RM (`from_sft(path, process=True)`) rates every step of a solution. Its checkpoint is a token-
classification model (`AutoModelForTokenClassification`, `num_labels=1`: the per-token scalar head TRL's PRM
recipe and vLLM's step pooling read), and a dedicated step separator token is added to the tokenizer and recorded
in `config.rewardkit["step_separator"]`. A step's reward is the head's output at the separator that ends it:

    logits = AutoModelForTokenClassification.from_pretrained(d)(**tokenizer(text, return_tensors="pt")).logits
    step_rewards = logits[0, ids == tokenizer.convert_tokens_to_ids(config.rewardkit["step_separator"]), 0]

with `text` rendered by `rewardkit.data.steps.render_steps` (tested to 1e-4 in tests/model). For a causal decoder
that is exactly the reward of the solution cut after that step; an encoder sees the whole solution when it rates
a step.

Reward normalization: an offset and scale, measured after training (InstructGPT adds a bias so demonstrations
score 0; for a process RM a Platt fit, so that sigmoid(normalized reward) is a calibrated probability that the
step is correct), live in `config.rewardkit` and are applied by `score` unless `normalize=False`.
"""

from __future__ import annotations

import contextlib
import copy
import os
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from tokenizers import AddedToken
from torch import nn
from transformers import (
    AutoConfig,
    AutoModelForSequenceClassification,
    AutoModelForTokenClassification,
    AutoTokenizer,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)
from transformers.utils import logging as hf_logging

from rewardkit.data.collate import pad_sequences
from rewardkit.data.records import Text
from rewardkit.data.step_encoding import encode_solutions
from rewardkit.data.steps import STEP_SEPARATOR
from rewardkit.data.tokenize import EncodedSequence, encode_pair, encode_pairs
from rewardkit.device import precision_dtype
from rewardkit.errors import RewardkitError, model_source_error
from rewardkit.model.encoder_packing import encoder_rewards, is_token_level
from rewardkit.model.pooling import decoder_head, position_ids_from_mask, reward_coordinates
from rewardkit.model.prefix_sharing import packed_rewards, scoring_batches, supports_packing, unpad
from rewardkit.model.step_scores import StepScores
from rewardkit.progress import progress_bar

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


def _add_step_separator(tokenizer: PreTrainedTokenizerBase) -> bool:
    """Add the step separator as one atomic token (special: never split, never normalized). True when added."""
    if STEP_SEPARATOR in tokenizer.get_vocab():
        return False
    tokenizer.add_tokens([AddedToken(STEP_SEPARATOR, special=True, normalized=False)])
    return True


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
        # Scoring precision (not saved: it belongs to the machine): "auto" = bf16 autocast where the device computes
        # bf16 fast (rewardkit.device), "fp32" or "bf16" to force one. Training sets its own --precision here.
        self.precision = "auto"

    # ----------------------------------------------------------------------------------------------- loading
    @classmethod
    def from_sft(
        cls,
        path: str | os.PathLike,
        *,
        max_length: int | None = None,
        random_init: bool = False,
        dtype: torch.dtype | None = None,
        process: bool = False,
    ) -> RewardModel:
        """Build an RM from a causal LM checkpoint (local dir or hub id); the vocabulary head is dropped.

        `process=True` builds a process RM: a token-classification head and the step separator token. With
        `random_init=True` the same architecture starts from random weights (for the SFT-vs-scratch comparison
        of the demo).
        """
        tokenizer = _load_tokenizer(path)
        added_pad = _ensure_distinct_pad_token(tokenizer)
        added_separator = process and _add_step_separator(tokenizer)
        auto_class = AutoModelForTokenClassification if process else AutoModelForSequenceClassification
        config = AutoConfig.from_pretrained(path, num_labels=1)
        if process and getattr(config, "classifier_dropout", None) is None:
            config.classifier_dropout = 0.0  # the outcome RM's head has no dropout either
        with _quiet_transformers():
            if random_init:
                model = auto_class.from_config(config, dtype=dtype)
            else:
                model = auto_class.from_pretrained(path, config=config, dtype=dtype)
            if added_pad or added_separator:
                # The separator's embedding starts at the mean of the others (the pad's is never used).
                model.resize_token_embeddings(len(tokenizer), mean_resizing=added_separator)
        model.config.problem_type = "regression"
        reward_model = cls(model, tokenizer, max_length=max_length or _model_max_length(tokenizer, model))
        if process:
            reward_model.settings.update(step_separator=STEP_SEPARATOR,
                                         step_separator_id=tokenizer.convert_tokens_to_ids(STEP_SEPARATOR))
        return reward_model

    @classmethod
    def from_pretrained(
        cls, path: str | os.PathLike, *, max_length: int | None = None, dtype: torch.dtype | None = None
    ) -> RewardModel:
        """Load a reward model saved by `save_pretrained` (or any `num_labels=1` classification checkpoint:
        sequence classification for an outcome RM, token classification for a process RM)."""
        tokenizer = _load_tokenizer(path)
        config = AutoConfig.from_pretrained(path)
        token_level = any(name.endswith("ForTokenClassification") for name in config.architectures or ())
        auto_class = AutoModelForTokenClassification if token_level else AutoModelForSequenceClassification
        with _quiet_transformers():
            model = auto_class.from_pretrained(path, dtype=dtype)
        if model.config.num_labels != 1:
            raise RewardkitError(
                f"'{path}' has num_labels={model.config.num_labels}; a reward model has exactly one output. "
                "To start from a causal LM, use RewardModel.from_sft or `rewardkit train --model`."
            )
        if tokenizer.pad_token_id is None:
            _ensure_distinct_pad_token(tokenizer)
            model.resize_token_embeddings(len(tokenizer), mean_resizing=False)
        reward_model = cls(model, tokenizer, max_length=max_length)
        if token_level and "step_separator" not in reward_model.settings:
            raise RewardkitError(
                f"'{path}' is a token-classification model without a step separator in config.rewardkit; "
                "process reward models are built with RewardModel.from_sft(..., process=True)"
            )
        return reward_model

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
    def is_process(self) -> bool:
        """A process RM: a token-level head trained to rate steps, each ended by the step separator."""
        return "step_separator" in self.settings

    @property
    def step_separator(self) -> str | None:
        """The token that ends every step (process RMs); outcome RMs read a step's reward at its last token."""
        return self.settings.get("step_separator")

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
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        share_prefix: bool | None = None,
        reward_positions: Sequence[Sequence[int]] | None = None,
    ) -> torch.Tensor:
        """Raw rewards of a left- or right-padded batch: one per row at its last real token, or, with
        `reward_positions` (per row, offsets from its first real token, e.g. where its steps end), one per
        position, row after row.

        Decoder rows that share a prefix (a prompt with several responses) can have it computed once, and batches
        that are mostly padding are packed into one forward without the padding (`prefix_sharing`); encoder
        batches are packed under a block-diagonal mask or split into length buckets (`encoder_packing`). Rewards and
        gradients equal the padded forward's up to float rounding. `share_prefix=None` shares when no gradient is
        recorded (scoring, evaluation, serving); training passes True to share too.
        """
        share = not torch.is_grad_enabled() if share_prefix is None else share_prefix
        if supports_packing(self) and (share or _padding_share(attention_mask) > PACK_ABOVE_PADDING):
            sequences = unpad(input_ids, attention_mask)
            return packed_rewards(self, sequences, share_prefix=share, reward_positions=reward_positions)
        # Encoders: packed rows or length buckets, when the head reads where asked (a pooled head reads [CLS] only;
        # asked for positions, the padded forward says so).
        reads_positions = is_token_level(self.hf_model)
        if not self.is_decoder and _padding_share(attention_mask) > PACK_ABOVE_PADDING \
                and reads_positions == (reward_positions is not None):
            return encoder_rewards(self, unpad(input_ids, attention_mask), reward_positions)
        return self.padded_forward(input_ids, attention_mask, reward_positions)

    def padded_forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        reward_positions: Sequence[Sequence[int]] | None = None,
    ) -> torch.Tensor:
        """The plain forward over the padded batch (the reference the packed forward is tested against)."""
        rows, columns = reward_coordinates(attention_mask, reward_positions)
        if not self.is_decoder:
            logits = self.model(input_ids=input_ids, attention_mask=attention_mask).logits
            if logits.dim() == 3:  # token classification: the head's output at every token
                return logits[rows, columns, 0]
            if reward_positions is not None:
                raise RewardkitError(
                    "this encoder reward model pools the whole sequence ([CLS]) and cannot read rewards at given "
                    "positions; train a process RM (rewardkit train on step data) to rate steps"
                )
            return logits.squeeze(-1)
        hf_model = self.hf_model
        backbone = getattr(hf_model, hf_model.base_model_prefix)
        hidden = backbone(
            input_ids=input_ids,
            attention_mask=attention_mask,
            position_ids=position_ids_from_mask(attention_mask),
            use_cache=False,
        ).last_hidden_state
        return decoder_head(hf_model, hidden[rows, columns])

    # ----------------------------------------------------------------------------------------------- scoring
    def encode(self, prompt: Text, response: Text) -> EncodedSequence:
        return encode_pair(prompt, response, self.tokenizer, self.max_length)

    def score_encoded(
        self,
        sequences: Sequence[Sequence[int]],
        batch_size: int = 32,
        autocast_dtype: torch.dtype | None = None,
        progress: bool | str = False,
    ) -> torch.Tensor:
        """Raw rewards for token-id sequences, one per sequence at its last token, in input order, at most
        `batch_size` sequences per forward (see `score_encoded_steps`)."""
        return torch.cat(self.score_encoded_steps(sequences, None, batch_size, autocast_dtype, progress))

    @torch.inference_mode()
    def score_encoded_steps(
        self,
        sequences: Sequence[Sequence[int]],
        reward_positions: Sequence[Sequence[int]] | None = None,
        batch_size: int = 32,
        autocast_dtype: torch.dtype | None = None,
        progress: bool | str = False,
    ) -> list[torch.Tensor]:
        """Raw rewards of each token-id sequence at its `reward_positions` (default: its last token), in input
        order, at most `batch_size` sequences per forward, under `autocast_dtype` (None: the one `self.precision`
        picks for this device). `progress`: a bar, named "scoring" or by the given text.

        Decoder batches keep sequences that share a prefix together (a prompt scored with several responses), so
        the forward computes it once, and group sequences of similar length (`prefix_sharing.scoring_batches`);
        other models get length-sorted padded batches.
        """
        was_training = self.training
        self.eval()
        rewards = [torch.empty(0) for _ in sequences]
        scored = [i for i in range(len(sequences)) if reward_positions is None or reward_positions[i]]
        if supports_packing(self):  # prompts shared across the batch's sequences are computed once (forward)
            batches = [[scored[i] for i in rows] for rows in
                       scoring_batches(self, [sequences[i] for i in scored], batch_size)]  # fmt: skip
        else:
            order = sorted(scored, key=lambda i: len(sequences[i]))
            batches = [order[start : start + batch_size] for start in range(0, len(order), batch_size)]
        device = self.device
        autocast_dtype = autocast_dtype or precision_dtype(self.precision, device)
        name = progress if isinstance(progress, str) else "scoring"
        bar = progress_bar(len(sequences), name, enabled=progress, unit="sequences")
        for rows in batches:
            input_ids, attention_mask = pad_sequences([sequences[i] for i in rows], self.tokenizer.pad_token_id)
            positions = None if reward_positions is None else [reward_positions[i] for i in rows]
            with torch.autocast(device.type, dtype=autocast_dtype, enabled=autocast_dtype is not None):
                ids, mask = input_ids.to(device), attention_mask.to(device)
                batch_rewards = self(ids, mask) if positions is None else self(ids, mask, reward_positions=positions)
            counts = [1] * len(rows) if positions is None else [len(p) for p in positions]
            for row, row_rewards in zip(rows, batch_rewards.float().cpu().split(counts), strict=True):
                rewards[row] = row_rewards
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

    def encode_steps(self, prompts: Sequence[Text], solutions: Sequence[Sequence[str]]) -> list[EncodedSequence]:
        """Token ids of (problem, steps) with one reward position per step that survives truncation: the step
        separator for a process RM, each step's last token for an outcome RM."""
        if len(prompts) != len(solutions):
            raise RewardkitError(f"got {len(prompts)} prompts but {len(solutions)} solutions; pass one per solution")
        if not self.is_process and not self.is_decoder:
            raise RewardkitError(
                "this outcome reward model is an encoder: it pools the whole sequence and has no reward per step; "
                "score steps with a process RM (rewardkit train on step data) or a decoder RM"
            )
        for index, steps in enumerate(solutions):
            if not steps or any(not isinstance(step, str) or not step.strip() for step in steps):
                raise RewardkitError(f"solution {index}: expected a non-empty list of non-empty step texts")
        pairs = list(zip(prompts, solutions, strict=True))
        return encode_solutions(pairs, self.tokenizer, self.max_length, separator=self.step_separator)

    def score_steps(
        self,
        prompts: Sequence[Text],
        solutions: Sequence[Sequence[str]],
        batch_size: int = 32,
        normalize: bool = True,
        progress: bool = False,
    ) -> StepScores:
        """A reward for every step of every solution (a list of step texts), problem by problem. For a process RM
        sigma(reward) is the probability that the step is correct; `StepScores.aggregate` scores solutions."""
        encoded = self.encode_steps(prompts, solutions)
        raw = self.score_encoded_steps([e.input_ids for e in encoded], [e.reward_positions for e in encoded],
                                       batch_size=batch_size, progress=progress)
        rewards = [self.normalize(r) for r in raw] if normalize else raw
        return StepScores(rewards, raw, [len(s) for s in solutions], [e.truncated for e in encoded])


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

