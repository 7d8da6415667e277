"""Load preference data from any supported source into a `PreferenceDataset`, and split it for evaluation."""

from __future__ import annotations

import json
import logging
import random
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Literal

from rewardkit.data.adapters import parse_alpacaeval, parse_evalbiasbench, parse_oasst_tree, parse_pandalm
from rewardkit.data.detect import detect_format
from rewardkit.data.errors import DataError
from rewardkit.data.formats import parse_dialogue, parse_pair, parse_ranking
from rewardkit.data.io import read_records
from rewardkit.data.records import LoadReport, PreferenceDataset, PreferenceGroup
from rewardkit.data.validate import is_blank, map_columns

logger = logging.getLogger(__name__)

Parser = Callable[[Mapping[str, Any], str], list[PreferenceGroup]]


def _one(parse: Callable[[Mapping[str, Any], str], PreferenceGroup]) -> Parser:
    """Most formats give one group per record; OASST trees give several, so every parser returns a list."""
    return lambda record, where: [parse(record, where)]


PARSERS: dict[str, Parser] = {
    "pairs": _one(parse_pair),
    "dialogue": _one(parse_dialogue),
    "ranking": _one(parse_ranking),
    "pandalm": _one(parse_pandalm),
    "oasst": parse_oasst_tree,
    "alpacaeval": _one(parse_alpacaeval),
    "evalbiasbench": _one(parse_evalbiasbench),
}
FORMATS: tuple[str, ...] = tuple(PARSERS)


def load_preferences(
    source: str | Path,
    format: str = "auto",
    on_error: Literal["raise", "skip"] = "raise",
    limit: int | None = None,
    columns: Mapping[str, str] | None = None,
) -> PreferenceDataset:
    """Read `source` (a file, a `save_to_disk` folder or a Hub id `owner/name[:split]`) as preference groups.

    `format="auto"` decides from the first record's keys. With `on_error="skip"`, bad records are left out
    and counted by reason in `dataset.report.skipped` (the first of each reason is logged as a warning);
    problems with the source as a whole always raise. `limit` stops after that many groups. `columns` renames
    the file's columns onto the format's fields first (`{"prompt": "question"}`: the `question` column is the
    prompt). Empty responses are kept (an empty reply can be what the labeller preferred) and counted in
    `dataset.report.empty_responses`.
    """
    if format != "auto" and format not in PARSERS:
        raise ValueError(f"unknown format {format!r}; expected 'auto' or one of: {', '.join(FORMATS)}")
    if on_error not in ("raise", "skip"):
        raise ValueError(f"on_error must be 'raise' or 'skip', got {on_error!r}")
    parse = None if format == "auto" else PARSERS[format]
    report = LoadReport()
    groups: list[PreferenceGroup] = []
    for item in read_records(source):
        if limit is not None and len(groups) >= limit:
            break
        report.records_read += 1
        try:
            if isinstance(item, DataError):
                raise item
            record = map_columns(item.data, columns, item.location) if columns else item.data
        except DataError as error:
            _bad_record(report, error, on_error)
            continue
        if parse is None:
            parse = PARSERS[detect_format(record, item.location)]  # a wrong guess is not one bad record: raise
        try:
            parsed = parse(record, item.location)
        except DataError as error:
            _bad_record(report, error, on_error)
            continue
        for group in parsed:
            group.subset = group.subset or item.subset
        groups.extend(parsed)
    if report.records_read == 0 and limit != 0:
        raise DataError(str(source), "holds no records", reason="empty source")
    groups = groups[:limit]
    report.groups = len(groups)
    report.comparisons = sum(group.num_comparisons for group in groups)
    report.empty_responses = sum(is_blank(response) for group in groups for response in group.responses)
    return PreferenceDataset(groups, report, name=str(source))


def _bad_record(report: LoadReport, error: DataError, on_error: str) -> None:
    """Raise the record's error, or count it by reason and go on (`on_error="skip"`)."""
    if on_error == "raise":
        raise error
    first = error.reason not in report.skipped
    report.skipped[error.reason] = report.skipped.get(error.reason, 0) + 1
    logger.log(logging.WARNING if first else logging.DEBUG, "skipping bad record %s", error)


def split_dataset(
    dataset: PreferenceDataset, eval_fraction: float, seed: int
) -> tuple[PreferenceDataset, PreferenceDataset]:
    """Deterministically split into (train, eval) with about `eval_fraction` of the groups in eval.

    Whole groups move together, and so do all groups that share a prompt (AlpacaEval and PandaLM compare many
    response pairs per prompt): otherwise eval would score prompts the model was trained on.
    """
    if not 0.0 < eval_fraction < 1.0:
        raise ValueError(f"eval_fraction must be between 0 and 1 (exclusive), got {eval_fraction}")
    by_prompt: dict[str, list[int]] = {}
    for index, group in enumerate(dataset.groups):
        by_prompt.setdefault(json.dumps(group.prompt, sort_keys=True), []).append(index)
    if len(by_prompt) < 2:
        raise ValueError(f"cannot split {dataset.name or 'dataset'}: it has fewer than 2 distinct prompts")
    prompts = list(by_prompt)
    random.Random(seed).shuffle(prompts)
    target = eval_fraction * len(dataset)
    eval_indices: set[int] = set()
    for prompt in prompts[:-1]:  # the last prompt always stays in train: neither side may be empty
        if eval_indices and len(eval_indices) + len(by_prompt[prompt]) / 2 > target:
            break
        eval_indices.update(by_prompt[prompt])
    train = [g for i, g in enumerate(dataset.groups) if i not in eval_indices]
    held_out = [g for i, g in enumerate(dataset.groups) if i in eval_indices]
    return _subset(dataset, train, "train"), _subset(dataset, held_out, "eval")


def _subset(dataset: PreferenceDataset, groups: list[PreferenceGroup], split: str) -> PreferenceDataset:
    report = LoadReport(groups=len(groups), comparisons=sum(group.num_comparisons for group in groups))
    return PreferenceDataset(groups, report, name=f"{dataset.name}:{split}" if dataset.name else split)
