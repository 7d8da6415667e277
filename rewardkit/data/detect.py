"""Guess a file's preference format from the keys of its first record."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rewardkit.data.errors import DataError
from rewardkit.data.formats import ASSISTANT_TURN

# Format -> the keys that identify it, in the order they are tried: specific published layouts first, since
# their records would otherwise look like nothing or like a looser generic format.
SIGNATURES: dict[str, tuple[str, ...]] = {
    "pandalm": ("instruction", "response1", "response2", "annotator1"),
    "evalbiasbench": ("instruction", "response1", "response2", "label"),
    "alpacaeval": ("instruction", "output_1", "output_2", "preference"),
    "oasst": ("message_tree_id", "prompt"),
    "ranking": ("prompt", "responses"),  # + "ranking" or "scores", which the parser requires
    "pairs": ("prompt", "chosen", "rejected"),
}


def detect_format(record: Mapping[str, Any], where: str) -> str:
    for name, keys in SIGNATURES.items():
        if all(key in record for key in keys):
            return name
    chosen, rejected = record.get("chosen"), record.get("rejected")
    if isinstance(chosen, list) and isinstance(rejected, list):
        return "pairs"  # TRL conversational: whole conversations, the prompt is their shared start
    if isinstance(chosen, str) and isinstance(rejected, str) and ASSISTANT_TURN in chosen:
        return "dialogue"
    known = "; ".join(f"{name} ({', '.join(keys)})" for name, keys in SIGNATURES.items())
    raise DataError(
        where,
        f"cannot tell the format from the record's keys ({', '.join(sorted(map(str, record))) or 'none'}). "
        f"Known formats and their keys: {known}; dialogue (chosen, rejected: HH-RLHF transcripts with "
        f"{ASSISTANT_TURN!r}). Pass format=... to choose one",
        reason="unknown format",
    )
