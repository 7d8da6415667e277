"""Step-labelled data: ProcessBench, PRM800K and Math-Shepherd records into `StepGroup`s (`load_steps`).

- `processbench`: `{"problem", "steps", "label"}`, label = index of the first wrong step (-1: none): the steps
  before it are correct (1), the step at it wrong (0), the steps after it unlabelled.
- `prm800k`: PRM800K's own records (`{"question": {"problem"}, "label": {"steps": [...]}}`: at each step the
  chosen completion), or `{"problem", "steps", "ratings"}` with ratings -1 / 0 / +1. +1 -> 1, -1 -> 0, neutral (0)
  by the `neutral` policy; the steps after the first wrong one are unlabelled (Lightman et al. train up to it).
- `math_shepherd`: `{"problem", "steps", "step_labels"}`, labels in [0, 1] (soft Monte-Carlo estimates: the share
  of rollouts from the step that reach the right answer) or null; or Math-Shepherd's own `{"input", "label"}`
  with "ки" step tags in `input` and "+" / "-" in their place in `label`.

`prompt` is accepted wherever `problem` is. Neutral PRM800K steps count as correct by default (`neutral="positive"`):
a neutral step is not a mistake, and ProcessBench counts only wrong steps as errors; "negative" makes them wrong,
"ignore" leaves them unlabelled. Solutions of the same problem are grouped (their problem is computed once).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from rewardkit.data.errors import DataError
from rewardkit.data.io import RawRecord, read_records
from rewardkit.data.records import LoadReport, Text
from rewardkit.data.steps import STEP_SEPARATOR, StepDataset, StepGroup, StepSolution
from rewardkit.data.validate import check_number, check_str, check_text, record_subset, require, text_key, wrong_type

logger = logging.getLogger(__name__)

STEP_FORMATS = ("processbench", "prm800k", "math_shepherd")
NEUTRAL_POLICIES = ("positive", "negative", "ignore")
MATH_SHEPHERD_TAG = "ки"
_NEUTRAL_LABEL = {"positive": 1.0, "negative": 0.0, "ignore": None}


def detect_step_format(record: Mapping[str, Any]) -> str | None:
    """The step format a record is in, or None when it is not step data."""
    if "steps" in record and "label" in record and not isinstance(record.get("label"), Mapping):
        return "processbench"
    if isinstance(record.get("label"), Mapping) and "question" in record or {"steps", "ratings"} <= record.keys():
        return "prm800k"
    if ("steps" in record and "step_labels" in record) or (
        isinstance(record.get("input"), str) and MATH_SHEPHERD_TAG in record["input"]
    ):
        return "math_shepherd"
    return None


def is_step_data(source: str | Path) -> bool:
    """True when the first record of `source` is in a step format."""
    for item in read_records(source):
        return isinstance(item, RawRecord) and detect_step_format(item.data) is not None
    return False


def load_steps(
    source: str | Path,
    format: str = "auto",
    on_error: Literal["raise", "skip"] = "raise",
    limit: int | None = None,
    neutral: str = "positive",
) -> StepDataset:
    """Read `source` as step-labelled solutions grouped by problem. `limit` stops after that many solutions;
    with `on_error="skip"` bad records are counted by reason in `dataset.report.skipped` instead of raised."""
    if format != "auto" and format not in STEP_FORMATS:
        raise ValueError(f"unknown step format {format!r}; expected 'auto' or one of: {', '.join(STEP_FORMATS)}")
    if neutral not in NEUTRAL_POLICIES:
        raise ValueError(f"unknown neutral-step policy {neutral!r}; expected one of: {', '.join(NEUTRAL_POLICIES)}")
    report = LoadReport(unit="labelled steps")
    groups: dict[Any, StepGroup] = {}
    chosen = None if format == "auto" else format
    for item in read_records(source):
        if limit is not None and report.records_read >= limit:
            break
        report.records_read += 1
        try:
            if isinstance(item, DataError):
                raise item
            chosen = chosen or detect_step_format(item.data)
            if chosen is None:
                raise DataError(item.location, "is not step data: expected ProcessBench (problem, steps, label), "
                                "PRM800K (question + label.steps, or steps + ratings) or Math-Shepherd (steps + "
                                f"step_labels, or input with {MATH_SHEPHERD_TAG!r} tags) records",
                                reason="unknown format")
            prompt, solution = PARSERS[chosen](item.data, item.location, neutral)
        except DataError as error:
            if on_error == "raise":
                raise
            first = error.reason not in report.skipped
            report.skipped[error.reason] = report.skipped.get(error.reason, 0) + 1
            logger.log(logging.WARNING if first else logging.DEBUG, "skipping bad record %s", error)
            continue
        subset = record_subset(item.data, item.location) or item.subset
        group = groups.setdefault(text_key(prompt), StepGroup(prompt, [], subset, item.location))
        group.solutions.append(solution)
    if report.records_read == 0 and limit != 0:
        raise DataError(str(source), "holds no records", reason="empty source")
    dataset = StepDataset(list(groups.values()), report, name=str(source))
    report.groups, report.comparisons = len(dataset), dataset.num_labels
    return dataset


# ------------------------------------------------------------------------------------------------------ parsers
def _problem(record: Mapping[str, Any], where: str) -> Text:
    key = "problem" if "problem" in record or "prompt" not in record else "prompt"
    return check_text(require(record, key, where), key, where)


def check_steps(value: Any, where: str, field: str = "steps") -> list[str]:
    """A non-empty list of non-empty step texts, none containing the step separator."""
    if not isinstance(value, list):
        raise wrong_type(value, "a list of step texts", field, where)
    if not value:
        raise DataError(where, "empty list (expected at least one step)", field=field, reason="no steps")
    steps = []
    for index, step in enumerate(value):
        step = check_str(step, f"{field}[{index}]", where)
        if not step.strip():
            raise DataError(where, "empty step (expected non-empty text)", field=f"{field}[{index}]",
                            reason="empty step")
        if STEP_SEPARATOR in step:
            raise DataError(where, f"contains the step separator {STEP_SEPARATOR!r}", field=f"{field}[{index}]",
                            reason="separator in step")
        steps.append(step)
    return steps


def _labels_list(value: Any, count: int, field: str, where: str) -> list[Any]:
    if not isinstance(value, list):
        raise wrong_type(value, f"a list of {count} labels, one per step", field, where)
    if len(value) != count:
        raise DataError(where, f"has {len(value)} labels for {count} steps (expected one per step)", field=field,
                        reason="length mismatch")
    return value


def parse_processbench(record: Mapping[str, Any], where: str, neutral: str = "positive") -> tuple[Text, StepSolution]:
    problem, steps = _problem(record, where), check_steps(require(record, "steps", where), where)
    label = require(record, "label", where)
    if isinstance(label, bool) or not isinstance(label, int):
        raise wrong_type(label, "the index of the first wrong step (an integer, -1 if none)", "label", where)
    if not -1 <= label < len(steps):
        raise DataError(where, f"{label} is out of range (expected -1 or a step index 0..{len(steps) - 1})",
                        field="label", reason="label out of range")
    labels: list[float | None] = [1.0] * len(steps) if label == -1 else \
        [1.0] * label + [0.0] + [None] * (len(steps) - label - 1)
    meta = {key: record[key] for key in ("id", "generator", "final_answer_correct") if key in record}
    return problem, StepSolution(steps, labels, first_error=label, meta=meta)


def parse_prm800k(record: Mapping[str, Any], where: str, neutral: str = "positive") -> tuple[Text, StepSolution]:
    if "question" in record:
        problem, steps, ratings = _prm800k_path(record, where)
    else:
        problem, steps = _problem(record, where), check_steps(require(record, "steps", where), where)
        ratings = _labels_list(require(record, "ratings", where), len(steps), "ratings", where)
    labels: list[float | None] = []
    for index, rating in enumerate(ratings):
        if rating not in (-1, 0, 1) or isinstance(rating, bool):
            raise DataError(where, f"{rating!r} is not a PRM800K rating (expected -1, 0 or 1)",
                            field=f"ratings[{index}]", reason="bad rating")
        labels.append({1: 1.0, -1: 0.0, 0: _NEUTRAL_LABEL[neutral]}[rating])
    first_error = next((i for i, label in enumerate(labels) if label == 0.0), -1)
    if first_error >= 0:  # Lightman et al. train up to the first wrong step: the rest is unlabelled
        labels = labels[: first_error + 1] + [None] * (len(labels) - first_error - 1)
    return problem, StepSolution(steps, labels, first_error=first_error)


def _prm800k_path(record: Mapping[str, Any], where: str) -> tuple[Text, list[str], list[int]]:
    """The labelled path of a PRM800K record: at each step the chosen completion (or the labeller's own); where
    none was chosen the path ends, with the step rated -1 if there is one (the labeller found the error there)."""
    question = require(record, "question", where)
    if not isinstance(question, Mapping):
        raise wrong_type(question, "an object with 'problem'", "question", where)
    problem = check_text(require(question, "problem", where), "question.problem", where)
    entries = require(record["label"], "steps", where)
    if not isinstance(entries, list) or not entries:
        raise DataError(where, "expected a non-empty list of step entries", field="label.steps", reason="no steps")
    steps, ratings = [], []
    for index, entry in enumerate(entries):
        field = f"label.steps[{index}]"
        completions = entry.get("completions") or [] if isinstance(entry, Mapping) else None
        if completions is None or not isinstance(completions, list):
            raise wrong_type(entry, "a step entry with 'completions'", field, where)
        chosen, human = entry.get("chosen_completion"), entry.get("human_completion")
        if chosen is not None:
            if not isinstance(chosen, int) or not 0 <= chosen < len(completions):
                raise DataError(where, f"chosen_completion {chosen!r} is not an index into its "
                                f"{len(completions)} completions", field=field, reason="label out of range")
            completion, ends = completions[chosen], False
        elif human:
            completion, ends = {**human, "rating": human.get("rating") or 1}, False
        elif completions:
            completion = next((c for c in completions if c.get("rating") == -1), completions[0])
            ends = True
        else:
            break
        steps.append(completion.get("text"))
        ratings.append(completion.get("rating"))
        if ends:
            break
    if not steps:
        raise DataError(where, "no labelled step on the path", field="label.steps", reason="no steps")
    return problem, check_steps(steps, where, "label.steps"), ratings


def parse_math_shepherd(record: Mapping[str, Any], where: str, neutral: str = "positive") -> tuple[Text, StepSolution]:
    if "input" in record and "steps" not in record:
        return _math_shepherd_tagged(record, where)
    problem, steps = _problem(record, where), check_steps(require(record, "steps", where), where)
    raw = _labels_list(require(record, "step_labels", where), len(steps), "step_labels", where)
    labels: list[float | None] = []
    for index, value in enumerate(raw):
        field = f"step_labels[{index}]"
        if value is None:
            labels.append(None)
            continue
        number = float(value) if isinstance(value, bool) else check_number(value, field, where)
        if not 0.0 <= number <= 1.0:
            raise DataError(where, f"{number} is out of range (expected a probability in [0, 1] or null)",
                            field=field, reason="label out of range")
        labels.append(number)
    return problem, StepSolution(steps, labels)


def _math_shepherd_tagged(record: Mapping[str, Any], where: str) -> tuple[Text, StepSolution]:
    """Math-Shepherd's release: `input` is the question then "Step 1: ... ки\\nStep 2: ... ки", `label` the same
    text with each tag replaced by "+" (good) or "-" (bad)."""
    text = check_str(require(record, "input", where), "input", where)
    label = check_str(require(record, "label", where), "label", where)
    start = text.find("Step 1:")
    if start < 0:
        raise DataError(where, "no 'Step 1:' marks where the steps start", field="input", reason="no steps")
    tags = [i for i in range(len(text)) if text.startswith(MATH_SHEPHERD_TAG, i)]
    labels: list[float | None] = []
    for k, position in enumerate(tags):
        mark = label[position - k : position - k + 1]  # each earlier 2-character tag is 1 character in `label`
        if mark not in ("+", "-"):
            raise DataError(where, f"expected '+' or '-' where step {k + 1}'s tag is, found {mark!r}",
                            field="label", reason="bad rating")
        labels.append(1.0 if mark == "+" else 0.0)
    pieces = text[start:].split(MATH_SHEPHERD_TAG)
    steps = check_steps([piece.strip() for piece in pieces[: len(tags)]], where, "input")
    return text[:start].strip(), StepSolution(steps, labels)


PARSERS = {"processbench": parse_processbench, "prm800k": parse_prm800k, "math_shepherd": parse_math_shepherd}
