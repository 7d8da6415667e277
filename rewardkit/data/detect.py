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


# Words that column names for each field of the pairs format often contain, in order of preference.
_FIELD_HINTS: dict[str, tuple[str, ...]] = {
    "prompt": ("prompt", "question", "instruction", "query", "input", "context", "history"),
    "chosen": ("chosen", "good", "better", "preferred", "winner", "accepted", "positive", "pos"),
    "rejected": ("rejected", "bad", "worse", "dispreferred", "loser", "negative", "neg"),
}


def suggest_columns(keys: list[str]) -> str:
    """A `--columns` value that reads these columns as the pairs format, guessed from their names; columns it
    cannot place are left as COLUMN for the user to fill in."""
    free = list(keys)
    mapping = []
    for field, hints in _FIELD_HINTS.items():
        match = next((key for hint in hints for key in free if hint in key.lower()), None)
        if match is not None:
            free.remove(match)
        mapping.append(f"{field}={match or 'COLUMN'}")
    return ",".join(mapping)


def detect_format(record: Mapping[str, Any], where: str) -> str:
    for name, keys in SIGNATURES.items():
        if all(key in record for key in keys):
            return name
    chosen, rejected = record.get("chosen"), record.get("rejected")
    if isinstance(chosen, list) and isinstance(rejected, list):
        return "pairs"  # TRL conversational: whole conversations, the prompt is their shared start
    if isinstance(chosen, str) and isinstance(rejected, str) and ASSISTANT_TURN in chosen:
        return "dialogue"
    keys = sorted(map(str, record))
    known = "; ".join(f"{name} ({', '.join(keys)})" for name, keys in SIGNATURES.items())
    raise DataError(
        where,
        f"cannot tell the format from the record's keys ({', '.join(keys) or 'none'}). To read them as "
        f"pairs, map the columns: --columns {suggest_columns(keys)} (Python: columns={{field: column}}); or "
        f"choose --format. Known formats and their keys: {known}; dialogue (chosen, rejected: HH-RLHF "
        f"transcripts with {ASSISTANT_TURN!r})",
        reason="unknown format",
    )
