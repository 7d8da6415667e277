"""Fixtures for the data-loading tests: write small preference files into tmp_path."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest


@pytest.fixture
def write_jsonl(tmp_path: Path) -> Callable[..., Path]:
    """write_jsonl(records, name="data.jsonl") -> path; a str record is written as is (for bad JSON)."""

    def write(records: list[Any], name: str = "data.jsonl") -> Path:
        path = tmp_path / name
        lines = [r if isinstance(r, str) else json.dumps(r) for r in records]
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
        return path

    return write


PAIRS = [
    {"prompt": "What is 2+2?", "chosen": "4", "rejected": "5", "margin": 1.5},
    {"prompt": "Capital of France?", "chosen": "Paris", "rejected": "Lyon", "subset": "geo"},
    {"prompt": "Say hi", "chosen": "Hi!", "rejected": "Go away.", "weight": 0.5},
]


@pytest.fixture
def pairs() -> list[dict[str, Any]]:
    return [dict(record) for record in PAIRS]
