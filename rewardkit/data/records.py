"""The one in-memory shape of preference data: a prompt, its responses, and comparisons between them.

Every input format (pairs, HH dialogues, K-wise rankings, PandaLM, OpenAssistant, AlpacaEval) is parsed into
`PreferenceGroup`s. A pair is a group of two responses with one comparison; a K-wise ranking is a group of K
responses with C(K,2) comparisons. Keeping the group together is what lets training forward each response once
(InstructGPT) instead of once per pair.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

Message = dict[str, str]
# A prompt or response is plain text or a list of chat messages ({"role": ..., "content": ...}).
Text = str | list[Message]


@dataclass(frozen=True)
class Comparison:
    """`responses[better]` beats `responses[worse]` with probability `prob`.

    `prob` is 1.0 for a hard label, 0.5 for a tie, and in between for a soft label (labeller disagreement,
    AlpacaEval's preference probability). By convention `prob >= 0.5`: the favoured response is `better`.
    `annotator_labels` keeps each annotator's own outcome (1.0 better wins, 0.0 worse wins, 0.5 tie) when the
    source has several labels per pair, so agreement ceilings can be computed later.
    """

    better: int
    worse: int
    prob: float = 1.0
    margin: float = 0.0
    weight: float = 1.0
    annotator_labels: tuple[float, ...] | None = None


@dataclass
class PreferenceGroup:
    """One prompt with K >= 2 responses and the comparisons labelled between them."""

    prompt: Text
    responses: list[Text]
    comparisons: list[Comparison]
    subset: str | None = None
    source: str = ""  # "pairs.jsonl line 12" or "pairs.json[11]": for error messages and reports
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def num_comparisons(self) -> int:
        return len(self.comparisons)


@dataclass
class LoadReport:
    """What loading did besides returning groups: how many records were read, skipped and why."""

    records_read: int = 0
    groups: int = 0
    comparisons: int = 0  # what the data labels: comparisons, or labelled steps for step data (`unit`)
    skipped: dict[str, int] = field(default_factory=dict)  # reason -> count
    empty_responses: int = 0  # kept: an empty reply is a real answer (HH-RLHF labellers sometimes preferred it)
    unit: str = "comparisons"

    @property
    def num_skipped(self) -> int:
        return sum(self.skipped.values())

    def __add__(self, other: LoadReport) -> LoadReport:
        """The report of two sources read one after the other."""
        skipped = dict(self.skipped)
        for reason, count in other.skipped.items():
            skipped[reason] = skipped.get(reason, 0) + count
        return LoadReport(self.records_read + other.records_read, self.groups + other.groups,
                          self.comparisons + other.comparisons, skipped, self.empty_responses + other.empty_responses,
                          self.unit)

    def summary(self) -> str:
        text = f"read {self.records_read} records -> {self.groups} groups, {self.comparisons} {self.unit}"
        if self.empty_responses:
            text += f"; {self.empty_responses} empty responses (kept and scored like any other)"
        if self.skipped:
            reasons = ", ".join(f"{count} {reason}" for reason, count in sorted(self.skipped.items()))
            text += f"; skipped {self.num_skipped} bad records ({reasons})"
        return text


@dataclass
class PreferenceDataset:
    """A list of groups plus the report of how they were loaded."""

    groups: list[PreferenceGroup]
    report: LoadReport = field(default_factory=LoadReport)
    name: str = ""

    def __len__(self) -> int:
        return len(self.groups)

    def __iter__(self):
        return iter(self.groups)

    def __getitem__(self, index: int) -> PreferenceGroup:
        return self.groups[index]

    @property
    def num_comparisons(self) -> int:
        return sum(group.num_comparisons for group in self.groups)
