"""Step-labelled solutions as token ids and batches: encoding (`encode_step_dataset`: rewards read at each step's
separator, truncation as for pairs) and collation (`collate_steps`). The records and their rendering are in
`steps.py`, which imports neither torch nor transformers (data commands check their input before loading them)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from transformers import PreTrainedTokenizerBase

from rewardkit.data.collate import pad_sequences
from rewardkit.data.records import Text
from rewardkit.data.steps import STEP_SEPARATOR, StepDataset, StepSolution, render_steps
from rewardkit.data.tokenize import EncodedSequence, encode_pairs


@dataclass(frozen=True)
class EncodedSolution:
    sequence: EncodedSequence  # reward_positions: the end of each step that survived truncation
    labels: tuple[float | None, ...]  # one per reward position


@dataclass(frozen=True)
class EncodedStepGroup:
    solutions: tuple[EncodedSolution, ...]
    source: str = ""


@dataclass
class EncodedStepDataset:
    groups: list[EncodedStepGroup]
    num_sequences: int
    num_truncated: int  # solutions that lost at least one step to truncation
    num_steps_cut: int

    def __len__(self) -> int:
        return len(self.groups)

    def truncation_note(self, max_length: int) -> str:
        share = self.num_truncated / max(self.num_sequences, 1)
        return (
            f"{self.num_truncated} of {self.num_sequences} solutions ({share:.1%}) were longer than "
            f"max_length={max_length}: {self.num_steps_cut} steps at their ends were cut off and get no reward"
        )


def encode_solutions(
    pairs: Sequence[tuple[Text, Sequence[str]]],
    tokenizer: PreTrainedTokenizerBase,
    max_length: int,
    separator: str | None = STEP_SEPARATOR,
) -> list[EncodedSequence]:
    """(problem, steps) -> token ids with one reward position per step that survives truncation, in order."""
    rendered = [render_steps(steps, separator) for _, steps in pairs]
    return encode_pairs(
        [(prompt, text) for (prompt, _), (text, _) in zip(pairs, rendered, strict=True)],
        tokenizer,
        max_length,
        reward_chars=[ends for _, ends in rendered],
    )


def encode_step_dataset(
    dataset: StepDataset,
    tokenizer: PreTrainedTokenizerBase,
    max_length: int,
    separator: str | None = STEP_SEPARATOR,
    through_last_label: bool = False,
) -> EncodedStepDataset:
    """Encode every solution. `through_last_label`: leave out the steps after the last labelled one (a causal
    model's rewards at the labelled steps do not depend on them, so training need not compute them)."""
    solutions = [(group.prompt, solution) for group in dataset.groups for solution in group.solutions]

    def kept_steps(solution: StepSolution) -> list[str]:
        if not through_last_label:
            return solution.steps
        labelled = [i for i, label in enumerate(solution.labels) if label is not None]
        return solution.steps[: labelled[-1] + 1] if labelled else solution.steps[:1]

    encoded = iter(encode_solutions([(p, kept_steps(s)) for p, s in solutions], tokenizer, max_length, separator))
    groups, truncated, cut = [], 0, 0
    for group in dataset.groups:
        members = []
        for solution in group.solutions:
            sequence = next(encoded)
            survived = len(sequence.reward_positions)
            lost = len(kept_steps(solution)) - survived
            truncated, cut = truncated + (lost > 0), cut + lost
            members.append(EncodedSolution(sequence, tuple(solution.labels[:survived])))
        groups.append(EncodedStepGroup(tuple(members), group.source))
    return EncodedStepDataset(groups, len(solutions), truncated, cut)


def collate_steps(
    groups: Sequence[EncodedStepGroup], pad_token_id: int, labelled_only: bool = True
) -> dict[str, Any]:
    """A padded batch of solutions and, per reward read: its label (NaN when unlabelled) and group index.

    Returns input_ids / attention_mask [solutions, width], reward_positions (per solution, the steps read: only
    the labelled ones when `labelled_only`), and flat label / group tensors, one entry per reward read (groups
    numbered 0.. among those with a reward read)."""
    sequences, positions, labels, group_index = [], [], [], []
    for group in groups:
        g = group_index[-1] + 1 if group_index else 0
        for solution in group.solutions:
            chosen = [i for i, label in enumerate(solution.labels) if label is not None or not labelled_only]
            if not chosen:
                continue
            sequences.append(solution.sequence.input_ids)
            positions.append(tuple(solution.sequence.reward_positions[i] for i in chosen))
            labels += [float("nan") if solution.labels[i] is None else solution.labels[i] for i in chosen]
            group_index += [g] * len(chosen)
    if not sequences:
        raise ValueError("no labelled step in this batch")
    input_ids, attention_mask = pad_sequences(sequences, pad_token_id)
    return {
        "input_ids": input_ids,
        "attention_mask": attention_mask,
        "reward_positions": positions,
        "labels": torch.tensor(labels, dtype=torch.float32),
        "group": torch.tensor(group_index, dtype=torch.long),
    }
