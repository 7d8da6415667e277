"""Export judgements in rewardkit's ranking format, every annotator's ranking kept.

    {"id": ..., "prompt": ..., "responses": [...], "rankings": [[2, [0, 3], 1], [2, 0, 3, 1]],
     "annotators": ["ana", "bo"], "unsafe_flags": 0, ...the imported record's other fields}

`rewardkit train` reads `rankings` as soft labels: each pair's probability is the share of annotators who
ordered it that way (`rewardkit.data.formats.comparisons_from_annotators`), and `rewardkit eval` reports their
agreement from the kept labels. `one_per_annotator=True` writes one record per ranking (`"ranking"`, hard labels)
for tools that expect a single ranking per line.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections import defaultdict
from pathlib import Path
from typing import Any

from rewardkit.errors import RewardkitError
from rewardkit.label.store import LabelStore


def export_records(store: LabelStore, project: str, one_per_annotator: bool = False,
                   exclude_unsafe: bool = False) -> list[dict[str, Any]]:
    """One record per item with at least one ranking, in import order (items flagged unsafe by anyone are left
    out with `exclude_unsafe`)."""
    by_item: dict[int, list] = defaultdict(list)
    unsafe: dict[int, int] = defaultdict(int)
    for judgement in store.judgements(project):
        unsafe[judgement.item_id] += judgement.unsafe
        if judgement.ranking is not None:
            by_item[judgement.item_id].append(judgement)
    records = []
    for item in store.items(project):
        judgements = by_item.get(item.id)
        if not judgements or (exclude_unsafe and unsafe[item.id]):
            continue
        base = {"id": item.external_id, "prompt": item.prompt, "responses": item.responses, **item.meta,
                "unsafe_flags": unsafe[item.id]}
        if one_per_annotator:
            records += [{**base, "ranking": j.ranking, "annotator": j.annotator} for j in judgements]
        else:
            records.append({**base, "rankings": [j.ranking for j in judgements],
                            "annotators": [j.annotator for j in judgements]})
    return records


def write_jsonl(records: list[dict[str, Any]], path: str | Path) -> None:
    """Write atomically: a crash mid-way leaves the previous file, never half of a new one."""
    path = Path(path)
    if not path.parent.is_dir():
        raise RewardkitError(f"--output {path}: the folder '{path.parent}' does not exist")
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as f:
            for record in records:
                f.write(json.dumps(record, ensure_ascii=False) + "\n")
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
