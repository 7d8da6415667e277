"""A DPO policy as a reward model: its implicit reward, scored like a `RewardModel` (RewardBench's DPO modes).

DPO's optimal policy satisfies r(x, y) = beta * log(pi(y|x) / pi_ref(y|x)) + beta * log Z(x); Z cancels in
every comparison of one prompt, so

    mode="reference"  r = beta * (sum_t log pi(y_t|.) - sum_t log pi_ref(y_t|.))     over response tokens
    mode="sum"        r = sum_t log pi(y_t|.)                         reference-free (RewardBench)
    mode="mean"       r = mean_t log pi(y_t|.)                        reference-free, length-normalized

Reference-free modes are what is left when the reference model is unknown; they reward whatever the policy
finds likely (short responses, for "sum"), so expect them to order pairs worse than "reference".
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedModel, PreTrainedTokenizerBase

from rewardkit.data.collate import EncodedDataset
from rewardkit.data.records import PreferenceDataset, Text
from rewardkit.data.tokenize import EncodedSequence
from rewardkit.dpo.encode import encode_for_policy, encode_preferences_for_policy
from rewardkit.dpo.logprobs import batched_sequence_logprobs
from rewardkit.dpo.modes import MODES
from rewardkit.errors import RewardkitError, model_source_error
from rewardkit.evaluation.pairwise import PairwiseMetrics, pairwise_metrics
from rewardkit.lm import pad_token_id

DEFAULT_MAX_LENGTH = 512


class DPOScorer:
    """`score(prompts, responses)` like `RewardModel.score`, from a policy (and its reference)."""

    def __init__(
        self,
        policy: PreTrainedModel,
        tokenizer: PreTrainedTokenizerBase,
        ref: PreTrainedModel | None = None,
        beta: float = 0.1,
        mode: str | None = None,
        max_length: int | None = None,
        append_eos: bool = True,
    ):
        mode = mode or ("reference" if ref is not None else "sum")
        if mode not in MODES:
            raise RewardkitError(f"unknown DPO reward mode {mode!r}; expected one of: {', '.join(MODES)}")
        if mode == "reference" and ref is None:
            raise RewardkitError("mode 'reference' needs the reference model (the SFT policy DPO started from); "
                                 "without one use a reference-free mode: 'sum' or 'mean'")
        self.policy, self.ref, self.tokenizer = policy, ref, tokenizer
        self.beta, self.mode, self.append_eos = beta, mode, append_eos
        limit = getattr(policy.config, "max_position_embeddings", None) or DEFAULT_MAX_LENGTH
        self.max_length = min(max_length or DEFAULT_MAX_LENGTH, limit)

    @classmethod
    def from_pretrained(cls, policy_path: str | os.PathLike, ref_path: str | os.PathLike | None = None,
                        **kwargs) -> DPOScorer:
        """Causal LM checkpoints (local directories or hub ids); the tokenizer comes from the policy's."""
        tokenizer = _load(AutoTokenizer, policy_path, "tokenizer")
        policy = _load(AutoModelForCausalLM, policy_path, "causal LM").eval()
        ref = _load(AutoModelForCausalLM, ref_path, "causal LM").eval() if ref_path is not None else None
        return cls(policy, tokenizer, ref, **kwargs)

    def normalize(self, rewards: torch.Tensor) -> torch.Tensor:
        """Identity (kept for `RewardModel` compatibility): implicit rewards have no fitted offset."""
        return rewards

    def encode(self, prompt: Text, response: Text) -> EncodedSequence:
        return encode_for_policy(prompt, response, self.tokenizer, self.max_length, self.append_eos)

    def score_sequences(self, sequences: Sequence[EncodedSequence], batch_size: int = 32) -> torch.Tensor:
        """Implicit rewards [N] of encoded (prompt, response) sequences (the prompt boundary is needed)."""
        pad = pad_token_id(self.tokenizer)
        logp, counts = batched_sequence_logprobs(self.policy, sequences, pad, batch_size)
        if self.mode == "sum":
            return logp
        if self.mode == "mean":
            return logp / counts.clamp(min=1)
        logp_ref, _ = batched_sequence_logprobs(self.ref, sequences, pad, batch_size)
        return self.beta * (logp - logp_ref)

    def score(self, prompts: Sequence[Text], responses: Sequence[Text], batch_size: int = 32,
              normalize: bool = True) -> torch.Tensor:
        if len(prompts) != len(responses):
            raise RewardkitError(f"got {len(prompts)} prompts but {len(responses)} responses; pass one per response")
        return self.score_sequences([self.encode(p, r) for p, r in zip(prompts, responses, strict=True)], batch_size)

    __call__ = score  # a `RewardFn` for best-of-n and PPO

    def encode_dataset(self, dataset: PreferenceDataset) -> EncodedDataset:
        return encode_preferences_for_policy(dataset, self.tokenizer, self.max_length, self.append_eos)

    def evaluate(self, dataset: PreferenceDataset, batch_size: int = 32) -> PairwiseMetrics:
        """Pairwise accuracy of the implicit reward on labelled data (the metrics of `rewardkit eval`)."""
        encoded = self.encode_dataset(dataset)
        sequences = list({s: None for group in encoded.groups for s in group.sequences})  # each distinct once
        rewards = dict(zip(sequences, self.score_sequences(sequences, batch_size), strict=True))
        return pairwise_metrics(encoded, [torch.stack([rewards[s] for s in g.sequences]) for g in encoded.groups])


def _load(auto_class, path: str | os.PathLike, what: str):
    try:
        return auto_class.from_pretrained(path)
    except (OSError, ValueError) as error:  # ValueError: a directory without a tokenizer in it
        raise model_source_error(path, error, what) from error
