"""Step-labelled solutions for process reward models (PRMs): records, rendering, encoding and collation.

A solution is a list of steps; each step may carry a label, the probability that it is correct: 1.0 right, 0.0
wrong, in between a soft Monte-Carlo estimate (Math-Shepherd), None unlabelled (steps after ProcessBench's first
error). Solutions to the same problem form one `StepGroup`, so a batch computes the problem once for all of them
(prefix sharing). The formats that produce them live in `step_formats.py`.

Encoding and collation (torch, tokenizers) live in `step_encoding.py`.

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

from rewardkit.data.records import LoadReport, Text

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
