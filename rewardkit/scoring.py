"""What `rewardkit score` reads: plain {"prompt", "response"} records, any preference data (every response), or
solutions as steps ({"problem" or "prompt", "steps": [...]}, labelled or not: every step is scored)."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable
from typing import Any

from rewardkit.data.errors import DataError
from rewardkit.data.io import read_records
from rewardkit.data.validate import check_text, require


def read_scoring_inputs(source: str, data_format: str = "auto") -> list[dict[str, Any]]:
    """A list of {"prompt", "response", ...} items, in input order; bad records raise with their location."""
    records = iter(read_records(source))
    first = next(records, None)
    if isinstance(first, DataError):
        raise first
    if first is None:
        raise DataError(str(source), "no records found (expected prompt/response records or preference data)")
    if "response" not in first.data:
        return _flatten_preferences(source, data_format)
    items = []
    for record in (first, *records):
        if isinstance(record, DataError):
            raise record
        items.append({
            "prompt": check_text(require(record.data, "prompt", record.location), "prompt", record.location),
            "response": check_text(require(record.data, "response", record.location), "response", record.location),
        })
    return items


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


def _flatten_preferences(source: str, data_format: str) -> list[dict[str, Any]]:
    from rewardkit.data import load_preferences

    dataset = load_preferences(source, format=data_format)
    return [
        {"group": g, "response_index": r, "source": group.source, "prompt": group.prompt, "response": response}
        for g, group in enumerate(dataset.groups)
        for r, response in enumerate(group.responses)
    ]


def write_scored(rows: Iterable[dict[str, Any]], path: str | None) -> None:
    """One JSON object per line, to `path` or, without one, to standard output."""
    out = open(path, "w") if path else sys.stdout
    try:
        for row in rows:
            out.write(json.dumps(row) + "\n")
    finally:
        if path:
            out.close()
