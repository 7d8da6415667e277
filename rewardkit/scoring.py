"""What `rewardkit score` reads: plain {"prompt", "response"} records, any preference data (every response), or
solutions as steps ({"problem" or "prompt", "steps": [...]}, labelled or not: every step is scored)."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable
from typing import Any

from rewardkit.data.errors import DataError
from rewardkit.data.io import read_records
from rewardkit.data.options import DataOptions
from rewardkit.data.records import LoadReport
from rewardkit.data.validate import check_text, is_blank, map_columns, require


def read_scoring_inputs(source: str, options: DataOptions | None = None) -> tuple[list[dict[str, Any]], LoadReport]:
    """({"prompt", "response", ...} items in input order, what was read). Records with a `response` field (after
    `options.columns`) are scored as they are; anything else, or any file with a `format` chosen, is read as
    preference data, every response of every group. Bad records raise with their location, or are skipped and
    counted with `skip_bad_records`."""
    options = options or DataOptions()
    records = iter(read_records(source))
    first = next(records, None)
    if first is None:
        raise DataError(str(source), "no records found (expected prompt/response records or preference data)")
    reads_preferences = options.format != "auto" or isinstance(first, DataError)
    if reads_preferences or "response" not in _mapped(first.data, options):
        return _flatten_preferences(source, options)
    report = LoadReport()
    items = []
    for record in (first, *records):
        report.records_read += 1
        try:
            if isinstance(record, DataError):
                raise record
            data = map_columns(record.data, options.columns, record.location) if options.columns else record.data
            items.append({field: check_text(require(data, field, record.location), field, record.location)
                          for field in ("prompt", "response")})
        except DataError as error:
            if options.on_error == "raise":
                raise
            report.skipped[error.reason] = report.skipped.get(error.reason, 0) + 1
    report.groups = len(items)
    report.empty_responses = sum(is_blank(item["response"]) for item in items)
    return items, report


def read_step_inputs(source: str) -> list[dict[str, Any]] | None:
    """Solutions given as steps, as {"prompt", "steps", ...the record's other fields}, in input order; None when
    `source` holds no step records. Bad records raise with their location."""
    from rewardkit.data.step_formats import check_steps

    records = iter(read_records(source))
    first = next(records, None)
    if first is None or isinstance(first, DataError) or not isinstance(first.data.get("steps"), list):
        return None
    items = []
    for record in (first, *records):
        if isinstance(record, DataError):
            raise record
        data, where = record.data, record.location
        key = "problem" if "problem" in data or "prompt" not in data else "prompt"
        prompt = check_text(require(data, key, where), key, where)
        steps = check_steps(require(data, "steps", where), where)
        items.append({**{k: v for k, v in data.items() if k not in (key, "steps")}, "prompt": prompt, "steps": steps})
    return items


def _mapped(data: dict[str, Any], options: DataOptions) -> dict[str, Any]:
    """The first record's keys as the format will see them (a missing mapped column shows up later, per record)."""
    if not options.columns:
        return data
    renamed = {field: data[column] for field, column in options.columns.items() if column in data}
    return {**data, **renamed}


def _flatten_preferences(source: str, options: DataOptions) -> tuple[list[dict[str, Any]], LoadReport]:
    from rewardkit.data import load_preferences

    dataset = load_preferences(source, format=options.format, on_error=options.on_error, columns=options.columns)
    items = [
        {"group": g, "response_index": r, "source": group.source, "prompt": group.prompt, "response": response}
        for g, group in enumerate(dataset.groups)
        for r, response in enumerate(group.responses)
    ]
    return items, dataset.report


def write_scored(rows: Iterable[dict[str, Any]], path: str | None) -> None:
    """One JSON object per line, to `path` or, without one, to standard output."""
    out = open(path, "w") if path else sys.stdout
    try:
        for row in rows:
            out.write(json.dumps(row) + "\n")
    finally:
        if path:
            out.close()
