"""Encode preference groups once, and collate them so each distinct (prompt, response) is forwarded once.

InstructGPT puts all C(K,2) comparisons of a prompt into one batch element: the K responses are run through the
model once and every comparison indexes into those K rewards. `collate_groups` builds exactly that: a padded batch
of *unique* sequences plus index tensors saying which rewards each comparison compares.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from transformers import PreTrainedTokenizerBase

from rewardkit.data.records import Comparison, PreferenceDataset
from rewardkit.data.tokenize import EncodedSequence, encode_pairs


@dataclass(frozen=True)
class EncodedGroup:
    sequences: tuple[EncodedSequence, ...]  # one per response, in the group's order
    comparisons: tuple[Comparison, ...]
    source: str = ""


@dataclass
class EncodedDataset:
    groups: list[EncodedGroup]
    num_sequences: int
    num_truncated: int

    def __len__(self) -> int:
        return len(self.groups)

    def truncation_note(self, max_length: int) -> str:
        share = self.num_truncated / max(self.num_sequences, 1)
        return (
            f"{self.num_truncated} of {self.num_sequences} sequences ({share:.1%}) were longer than "
            f"max_length={max_length} and were truncated (kept the end of the prompt, the start of the response)"
        )


def encode_dataset(
    dataset: PreferenceDataset, tokenizer: PreTrainedTokenizerBase, max_length: int
) -> EncodedDataset:
    pairs = [(group.prompt, response) for group in dataset.groups for response in group.responses]
    encoded = iter(encode_pairs(pairs, tokenizer, max_length))
    groups = [
        EncodedGroup(tuple(next(encoded) for _ in group.responses), tuple(group.comparisons), group.source)
        for group in dataset.groups
    ]
    num_truncated = sum(sequence.truncated for group in groups for sequence in group.sequences)
    return EncodedDataset(groups, len(pairs), num_truncated)


def pad_sequences(
    sequences: Sequence[Sequence[int]], pad_token_id: int, padding_side: str = "right"
) -> tuple[torch.Tensor, torch.Tensor]:
    """Pad to the longest sequence; return (input_ids, attention_mask)."""
    width = max(len(sequence) for sequence in sequences)
    input_ids = torch.full((len(sequences), width), pad_token_id, dtype=torch.long)
    attention_mask = torch.zeros((len(sequences), width), dtype=torch.long)
    for row, sequence in enumerate(sequences):
        span = slice(0, len(sequence)) if padding_side == "right" else slice(width - len(sequence), width)
        input_ids[row, span] = torch.tensor(sequence, dtype=torch.long)
        attention_mask[row, span] = 1
    return input_ids, attention_mask


def collate_groups(groups: Sequence[EncodedGroup], pad_token_id: int) -> dict[str, torch.Tensor]:
    """A batch of unique sequences and, per comparison, the rows it compares.

    Returns input_ids / attention_mask [num_unique, width] and, per comparison: better / worse (row indices),
    prob, margin, weight, and group (its group's index in the batch, for the per-group 1/C(K,2) average).
    """
    row_of: dict[tuple[int, ...], int] = {}
    better, worse, prob, margin, weight, group_index = [], [], [], [], [], []
    for g, group in enumerate(groups):
        rows = [row_of.setdefault(sequence.input_ids, len(row_of)) for sequence in group.sequences]
        for comparison in group.comparisons:
            better.append(rows[comparison.better])
            worse.append(rows[comparison.worse])
            prob.append(comparison.prob)
            margin.append(comparison.margin)
            weight.append(comparison.weight)
            group_index.append(g)
    input_ids, attention_mask = pad_sequences(list(row_of), pad_token_id)
    return {
        "input_ids": input_ids,
        "attention_mask": attention_mask,
        "better": torch.tensor(better, dtype=torch.long),
        "worse": torch.tensor(worse, dtype=torch.long),
        "prob": torch.tensor(prob, dtype=torch.float32),
        "margin": torch.tensor(margin, dtype=torch.float32),
        "weight": torch.tensor(weight, dtype=torch.float32),
        "group": torch.tensor(group_index, dtype=torch.long),
    }
