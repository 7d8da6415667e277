"""A reward-model ensemble: standard RM checkpoints in subfolders plus an `ensemble.json` manifest.

    ensemble/
      ensemble.json     {"members": [{"path": "member-0", "seed": 0, ...}, ...], "aggregate": "mean", "lambda": 0.5}
      member-0/         a plain `RewardModel` checkpoint (loadable on its own)
      member-1/ ...

Members are scored on their own normalized scale (each centres and scales its rewards on the same validation
set after training), so their rewards are comparable before they are aggregated. The members must share a
tokenizer (they are fine-tuned from the same SFT model): every (prompt, response) is tokenized once.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from rewardkit.data.records import Text
from rewardkit.data.tokenize import EncodedSequence
from rewardkit.ensemble.aggregate import AGGREGATES, aggregate, disagreement
from rewardkit.errors import RewardkitError
from rewardkit.model.reward_model import RewardModel

MANIFEST = "ensemble.json"


@dataclass
class EnsembleScoreOutput:
    rewards: torch.Tensor  # the requested aggregation, [N]
    mean: torch.Tensor  # [N]
    min: torch.Tensor  # [N]
    std: torch.Tensor  # disagreement, [N]
    member_rewards: torch.Tensor  # normalized rewards of each member, [M, N]
    truncated: list[bool]


class RewardEnsemble(nn.Module):
    """Scores like a `RewardModel` (`score`, `score_encoded`, `tokenizer`, `max_length`), so the pairwise
    evaluation, best-of-n and PPO code accept it unchanged; `score_encoded` returns aggregated rewards."""

    def __init__(self, members: Sequence[RewardModel], aggregate: str = "mean", lam: float = 0.5,
                 manifest: dict | None = None):
        super().__init__()
        if not members:
            raise RewardkitError("an ensemble needs at least one member")
        if aggregate not in AGGREGATES:
            raise RewardkitError(f"unknown aggregation {aggregate!r}; expected one of: {', '.join(AGGREGATES)}")
        vocab_sizes = {len(member.tokenizer) for member in members}
        if len(vocab_sizes) > 1:
            raise RewardkitError(f"ensemble members use different tokenizers (vocabulary sizes {sorted(vocab_sizes)})"
                                 "; train every member from the same SFT model")
        self.members = nn.ModuleList(members)
        self.aggregate = aggregate
        self.lam = lam
        self.manifest = manifest or {}

    # ----------------------------------------------------------------------------------------------- loading
    @classmethod
    def from_pretrained(cls, path: str | os.PathLike, *, dtype: torch.dtype | None = None,
                        max_length: int | None = None) -> RewardEnsemble:
        """The ensemble saved in `path`; `max_length` overrides every member's (as --max-length does)."""
        path = Path(path)
        manifest_path = path / MANIFEST
        if not manifest_path.is_file():
            raise RewardkitError(f"'{path}' is not a reward-model ensemble: it has no {MANIFEST} "
                                 "(make one with `rewardkit ensemble train`)")
        try:
            manifest = json.loads(manifest_path.read_text())
            paths = [path / member["path"] for member in manifest["members"]]
        except (ValueError, KeyError, TypeError) as error:
            raise RewardkitError(f"{manifest_path} is not a valid ensemble manifest ({error!r}); it needs "
                                 '{"members": [{"path": "member-0"}, ...]}') from error
        members = [RewardModel.from_pretrained(member, dtype=dtype, max_length=max_length) for member in paths]
        return cls(members, manifest.get("aggregate", "mean"), manifest.get("lambda", 0.5), manifest)

    def save_pretrained(self, directory: str | os.PathLike) -> None:
        """Each member into `member-<i>/`, and the manifest (member entries keep their training metadata)."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        entries = self.manifest.get("members") or [{} for _ in self.members]
        if len(entries) != len(self.members):
            raise RewardkitError(f"the manifest lists {len(entries)} members but the ensemble has {len(self.members)}")
        for index, (member, entry) in enumerate(zip(self.members, entries, strict=True)):
            entry["path"] = entry.get("path") or f"member-{index}"
            member.save_pretrained(directory / entry["path"])
        manifest = {**self.manifest, "members": entries, "aggregate": self.aggregate, "lambda": self.lam}
        (directory / MANIFEST).write_text(json.dumps(manifest, indent=2))
        self.manifest = manifest

    # ----------------------------------------------------------------------------------------------- settings
    @property
    def tokenizer(self):
        return self.members[0].tokenizer

    @property
    def max_length(self) -> int:
        return min(member.max_length for member in self.members)

    @property
    def device(self) -> torch.device:
        return self.members[0].device

    def normalize(self, rewards: torch.Tensor) -> torch.Tensor:
        """Identity: members are normalized before aggregation (kept for `RewardModel` compatibility)."""
        return rewards

    # ----------------------------------------------------------------------------------------------- scoring
    def encode(self, prompt: Text, response: Text) -> EncodedSequence:
        return self.members[0].encode(prompt, response)

    def member_scores_encoded(self, sequences: Sequence[Sequence[int]], batch_size: int = 32) -> torch.Tensor:
        """Normalized rewards of every member, [M, N]."""
        return torch.stack([member.normalize(member.score_encoded(sequences, batch_size=batch_size))
                            for member in self.members])

    def score_encoded(self, sequences: Sequence[Sequence[int]], batch_size: int = 32, aggregate: str | None = None,
                      lam: float | None = None) -> torch.Tensor:
        """Aggregated (normalized) rewards for token-id sequences; the ensemble's own aggregation by default."""
        return self._aggregate(self.member_scores_encoded(sequences, batch_size), aggregate, lam)

    def score(
        self,
        prompts: Sequence[Text],
        responses: Sequence[Text],
        batch_size: int = 32,
        aggregate: str | None = None,
        lam: float | None = None,
        return_details: bool = False,
    ) -> torch.Tensor | EnsembleScoreOutput:
        """Aggregated rewards for (prompt, response) pairs; with `return_details`, also the mean, min,
        disagreement (std over members) and every member's reward per example."""
        if len(prompts) != len(responses):
            raise RewardkitError(f"got {len(prompts)} prompts but {len(responses)} responses; pass one per response")
        encoded = [self.encode(prompt, response) for prompt, response in zip(prompts, responses, strict=True)]
        members = self.member_scores_encoded([e.input_ids for e in encoded], batch_size)
        rewards = self._aggregate(members, aggregate, lam)
        if not return_details:
            return rewards
        return EnsembleScoreOutput(rewards, members.mean(0), members.min(0).values, disagreement(members), members,
                                   [e.truncated for e in encoded])

    def _aggregate(self, members: torch.Tensor, method: str | None, lam: float | None) -> torch.Tensor:
        return aggregate(members, method or self.aggregate, self.lam if lam is None else lam)
