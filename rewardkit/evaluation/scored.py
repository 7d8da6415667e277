"""Score a preference dataset once and lay it out flat, so every metric reads the same numbers.

`ScoredDataset` keeps, per group, the raw rewards and the response lengths; `Pairs` flattens every comparison
into arrays (one entry per comparison). Raw rewards are used throughout: sigmoid(r_w - r_l) is the probability the
Bradley-Terry loss trained, and accuracy and correlations do not depend on the checkpoint's normalization.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from rewardkit.data.collate import encode_dataset
from rewardkit.data.records import PreferenceDataset, PreferenceGroup, Text
from rewardkit.evaluation.pairwise import (
    PairwiseMetrics,
    comparison_metrics,
    outcomes,
    pairwise_metrics,
    score_encoded_dataset,
)
from rewardkit.model.reward_model import RewardModel


@dataclass
class Pairs:
    """Every comparison of a scored dataset, one entry per comparison."""

    group: np.ndarray  # index of the comparison's group
    cluster: np.ndarray  # index of its prompt: groups that share a prompt are resampled together
    reward_better: np.ndarray
    reward_worse: np.ndarray
    prob: np.ndarray  # P(better wins): 1.0 hard, 0.5 tie, in between soft
    tokens_better: np.ndarray
    tokens_worse: np.ndarray
    subset: list[str | None]
    annotator_labels: list[tuple[float, ...] | None]

    def __len__(self) -> int:
        return len(self.group)

    @property
    def difference(self) -> np.ndarray:
        return self.reward_better - self.reward_worse

    @property
    def decisive(self) -> np.ndarray:
        """Comparisons with a favoured side; labelled ties have no right answer and are left out of accuracy."""
        return self.prob != 0.5

    @property
    def outcome(self) -> np.ndarray:
        """1 right, 0.5 equal rewards, 0 wrong (for every comparison; mask with `decisive`)."""
        return outcomes(self.difference)


@dataclass
class ScoredDataset:
    name: str
    groups: list[PreferenceGroup]
    rewards: list[np.ndarray]  # raw rewards, one per response of each group
    tokens: list[np.ndarray]  # response length in tokens, before any truncation
    characters: list[np.ndarray]
    num_truncated: int = 0
    metrics: PairwiseMetrics | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.metrics is None:
            rewards = [torch.as_tensor(r, dtype=torch.float64) for r in self.rewards]
            num_responses = sum(len(g.responses) for g in self.groups)
            self.metrics = comparison_metrics([g.comparisons for g in self.groups], rewards, num_responses)

    def pairs(self, groups: Sequence[int] | None = None) -> Pairs:
        """The comparisons of all groups, or of the groups with the given indices."""
        indices = range(len(self.groups)) if groups is None else groups
        cluster_of: dict[str, int] = {}
        columns: dict[str, list] = {key: [] for key in Pairs.__dataclass_fields__}
        for g in indices:
            group, rewards, tokens = self.groups[g], self.rewards[g], self.tokens[g]
            cluster = cluster_of.setdefault(json.dumps(group.prompt, sort_keys=True), len(cluster_of))
            for c in group.comparisons:
                values = (g, cluster, rewards[c.better], rewards[c.worse], c.prob, tokens[c.better],
                          tokens[c.worse], group.subset, c.annotator_labels)
                for key, value in zip(columns, values, strict=True):
                    columns[key].append(value)
        arrays = {key: np.asarray(columns[key], dtype=np.float64) for key in ("reward_better", "reward_worse", "prob")}
        arrays |= {key: np.asarray(columns[key], dtype=np.int64)
                   for key in ("group", "cluster", "tokens_better", "tokens_worse")}
        return Pairs(**arrays, subset=columns["subset"], annotator_labels=columns["annotator_labels"])

    def response_values(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(rewards, tokens, characters) of every response of every group, flattened."""
        return tuple(np.concatenate(parts) for parts in (self.rewards, self.tokens, self.characters))


def response_text(response: Text) -> str:
    """The text a length is measured on: a chat response counts the content of its messages."""
    return response if isinstance(response, str) else "\n".join(message["content"] for message in response)


def score_dataset(
    model: RewardModel, dataset: PreferenceDataset, batch_size: int = 32, progress: bool | str = False
) -> ScoredDataset:
    """Raw rewards (each distinct sequence forwarded once) and response lengths for every group."""
    from rewardkit.distributed import ShardedScorer

    encoded = encode_dataset(dataset, model.tokenizer, model.max_length)
    # Under `accelerate launch` each process scores a share; every process gets all rewards, in order.
    rewards = score_encoded_dataset(ShardedScorer(model, progress), encoded, batch_size=batch_size)
    texts = [response_text(r) for group in dataset.groups for r in group.responses]
    ids = model.tokenizer(texts, add_special_tokens=False, verbose=False)["input_ids"] if texts else []
    counts = [len(row) for row in ids]
    tokens, characters, start = [], [], 0
    for group in dataset.groups:
        end = start + len(group.responses)
        tokens.append(np.asarray(counts[start:end], dtype=np.int64))
        characters.append(np.asarray([len(t) for t in texts[start:end]], dtype=np.int64))
        start = end
    return ScoredDataset(
        name=dataset.name,
        groups=list(dataset.groups),
        rewards=[r.double().numpy() for r in rewards],
        tokens=tokens,
        characters=characters,
        num_truncated=encoded.num_truncated,
        metrics=pairwise_metrics(encoded, rewards),
    )
