"""Step-labelled solutions for process reward models (PRMs): records, rendering, encoding and collation.

A solution is a list of steps; each step may carry a label, the probability that it is correct: 1.0 right, 0.0
wrong, in between a soft Monte-Carlo estimate (Math-Shepherd), None unlabelled (steps after ProcessBench's first
error). Solutions to the same problem form one `StepGroup`, so a batch computes the problem once for all of them
(prefix sharing). The formats that produce them live in `step_formats.py`.

Rendering (`render_steps`) is the one way steps become text, in training, evaluation, scoring and serving:

    problem + "\\n" + step_1 + SEP + "\\n" + step_2 + SEP + ... + step_n + SEP

SEP is the step separator token (`STEP_SEPARATOR`), added to a process RM's tokenizer and recorded in its
checkpoint config; a step's reward is read at its separator. An outcome RM has no separator: its reward is read at
the last token of each step (for a causal decoder, the reward of the solution cut after that step).

Truncation follows the pair policy (`tokenize.py`): the start of the solution is kept, and steps whose end is cut
off get no reward (counted as cut).
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from transformers import PreTrainedTokenizerBase

from rewardkit.data.collate import pad_sequences
from rewardkit.data.records import LoadReport, Text
from rewardkit.data.tokenize import EncodedSequence, encode_pairs

STEP_SEPARATOR = "<|rewardkit_step|>"
STEP_JOIN = "\n"


@dataclass
class StepSolution:
    steps: list[str]
    labels: list[float | None]  # per step: P(correct) in [0, 1], or None for an unlabelled step
    # ProcessBench's first wrong step (-1: none), when the labels say where it is (hard labels); else None.
    first_error: int | None = None
    meta: dict[str, Any] = field(default_factory=dict)  # id, generator, final_answer_correct, ...


@dataclass
class StepGroup:
    """One problem and the step-labelled solutions given for it."""

    prompt: Text
    solutions: list[StepSolution]
    subset: str | None = None
    source: str = ""  # where the first solution was read ("math.json[12]")

    @property
    def num_labels(self) -> int:
        return sum(label is not None for solution in self.solutions for label in solution.labels)


@dataclass
class StepDataset:
    groups: list[StepGroup]
    report: LoadReport = field(default_factory=lambda: LoadReport(unit="labelled steps"))
    name: str = ""

    def __len__(self) -> int:
        return len(self.groups)

    def __iter__(self):
        return iter(self.groups)

    @property
    def num_solutions(self) -> int:
        return sum(len(group.solutions) for group in self.groups)

    @property
    def num_labels(self) -> int:
        return sum(group.num_labels for group in self.groups)


def split_steps(dataset: StepDataset, eval_fraction: float, seed: int) -> tuple[StepDataset, StepDataset]:
    """(train, eval) with about `eval_fraction` of the problems in eval; a problem's solutions stay together."""
    if not 0.0 < eval_fraction < 1.0:
        raise ValueError(f"eval_fraction must be between 0 and 1 (exclusive), got {eval_fraction}")
    if len(dataset) < 2:
        raise ValueError(f"cannot split {dataset.name or 'dataset'}: it has fewer than 2 problems")
    order = list(range(len(dataset)))
    random.Random(seed).shuffle(order)
    held = set(order[: min(len(order) - 1, max(1, round(eval_fraction * len(order))))])
    parts = ([g for i, g in enumerate(dataset.groups) if i not in held], [dataset.groups[i] for i in sorted(held)])
    return tuple(  # type: ignore[return-value]
        StepDataset(groups, LoadReport(groups=len(groups), comparisons=sum(g.num_labels for g in groups),
                                       unit="labelled steps"), f"{dataset.name}:{split}" if dataset.name else split)
        for groups, split in zip(parts, ("train", "eval"), strict=True)
    )


# ------------------------------------------------------------------------------------------------------ encoding
def render_steps(steps: Sequence[str], separator: str | None = STEP_SEPARATOR) -> tuple[str, list[int]]:
    """(solution text, the character at which each step's reward is read): the separator's, or without one the
    step's last non-space character."""
    text, ends = "", []
    for index, step in enumerate(steps):
        text += (STEP_JOIN if index else "") + step + (separator or "")
        ends.append(len(text.rstrip()) - 1)
    return text, ends


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
