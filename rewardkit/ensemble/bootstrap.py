"""Which data each ensemble member trains on: one shared validation split, and optionally bootstrap resamples.

All members are validated (and their rewards normalized) on the *same* held-out records, so their rewards are
on one scale and no member has trained on what the ensemble is evaluated on. With `bootstrap`, member i trains
on n records drawn with replacement from the n training records (seeded by its own seed): the classic way to
make members differ in data, not only in initialization and batch order.

The split and the resamples are written as the *original raw records* (JSONL), so every input format keeps all
its labels (soft probabilities, margins, weights, K-wise rankings) and `train` reads them exactly as before.
A record is resampled as a whole: one prompt's group, or an OpenAssistant tree with all its groups.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from rewardkit.data.errors import DataError
from rewardkit.data.io import read_records
from rewardkit.data.records import PreferenceDataset
from rewardkit.errors import RewardkitError
from rewardkit.training.config import TrainConfig
from rewardkit.training.objectives import load_train_and_eval

_BOOTSTRAP_STREAM = 7  # numpy seed sequence [seed, stream]: resampling never shares a stream with anything else


@dataclass
class MemberData:
    train: list[list[str]]  # data sources of each member
    eval: list[str]  # shared validation sources ([] = none)
    distinct: list[int | None]  # distinct training records in each member's resample (None: no resampling)


def bootstrap_indices(n: int, seed: int) -> np.ndarray:
    """n indices drawn with replacement from range(n); the same seed gives the same draw."""
    if n < 1:
        raise ValueError("cannot resample an empty training set")
    return np.random.default_rng([seed, _BOOTSTRAP_STREAM]).integers(0, n, size=n)


def plan_member_data(config: TrainConfig, data_dir: Path, members: int, bootstrap: bool) -> MemberData:
    """Write the shared split (and each member's resample) under `data_dir` when needed; say who reads what."""
    if config.eval_data and not bootstrap:  # the split is given and every member reads all the data
        return MemberData([list(config.data)] * members, list(config.eval_data), [None] * members)
    train_set, eval_set, _ = load_train_and_eval(config)
    raw = _raw_records(config.data)
    train_locations = _locations(train_set)
    train_records = [raw[location] for location in train_locations]
    data_dir.mkdir(parents=True, exist_ok=True)
    eval_sources = list(config.eval_data)
    if not config.eval_data and len(eval_set):
        # a record whose groups fell on both sides of the split (an OASST tree) stays in train only
        in_train = set(train_locations)
        held_out = [raw[location] for location in _locations(eval_set) if location not in in_train]
        eval_sources = [str(_write(data_dir / "eval.jsonl", held_out))]
    if not bootstrap:
        train_file = str(_write(data_dir / "train.jsonl", train_records))
        return MemberData([[train_file]] * members, eval_sources, [None] * members)
    train, distinct = [], []
    for member in range(members):
        indices = bootstrap_indices(len(train_records), config.seed + member)
        path = _write(data_dir / f"bootstrap-{member}.jsonl", [train_records[i] for i in indices])
        train.append([str(path)])
        distinct.append(len(set(indices.tolist())))
    return MemberData(train, eval_sources, distinct)


def _locations(dataset: PreferenceDataset) -> list[str]:
    """The raw record of each group, in order, each once (an OASST tree yields several groups)."""
    return list(dict.fromkeys(group.source for group in dataset.groups))


def _raw_records(sources: list[str]) -> dict[str, dict[str, Any]]:
    records: dict[str, dict[str, Any]] = {}
    for source in sources:
        for item in read_records(source):
            if isinstance(item, DataError):
                continue  # loading already raised or skipped it; it is in neither split
            if item.location in records:
                raise RewardkitError(f"two records are both called '{item.location}'; give the data files "
                                     "distinct names to split or resample them for an ensemble")
            records[item.location] = item.data
    return records


def _write(path: Path, records: list[dict[str, Any]]) -> Path:
    with open(path, "w") as file:
        for record in records:
            file.write(json.dumps(record, default=_jsonable) + "\n")
    return path


def _jsonable(value: Any) -> Any:
    """Parquet / Hub records can hold numpy values."""
    if hasattr(value, "tolist"):
        return value.tolist()
    raise TypeError(f"cannot write a {type(value).__name__} to JSON")
