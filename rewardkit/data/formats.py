"""The generic preference formats: parse one raw record into a validated `PreferenceGroup`.

- `pairs`: {"prompt", "chosen", "rejected"} as text or chat messages, or TRL's conversational form without a
  prompt, where chosen/rejected are whole conversations and the prompt is their common leading messages.
- `dialogue`: HH-RLHF, {"chosen", "rejected"} transcripts that differ only after the last Assistant turn.
- `ranking`: K responses with a best-first `ranking` (ties as nested lists), `rankings` (one such ranking per
  annotator: soft labels from their disagreement) or `scores` (higher is better).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

from rewardkit.data.errors import DataError
from rewardkit.data.records import Comparison, Message, PreferenceGroup, Text
from rewardkit.data.validate import (
    check_number,
    check_responses,
    check_str,
    check_text,
    optional_number,
    record_subset,
    require,
    wrong_type,
)

ASSISTANT_TURN = "\n\nAssistant:"


def parse_pair(record: Mapping[str, Any], where: str) -> PreferenceGroup:
    chosen = check_text(require(record, "chosen", where), "chosen", where)
    rejected = check_text(require(record, "rejected", where), "rejected", where)
    if "prompt" in record:
        prompt = check_text(record["prompt"], "prompt", where)
    elif isinstance(chosen, list) and isinstance(rejected, list):
        prompt, chosen, rejected = split_conversations(chosen, rejected, where)
    else:
        raise DataError(
            where,
            "missing (only chat-message pairs may leave it out: their shared first messages are the prompt)",
            field="prompt",
            reason="missing field",
        )
    return labelled_pair(record, where, prompt, chosen, rejected)


def labelled_pair(
    record: Mapping[str, Any], where: str, prompt: Text, chosen: Text, rejected: Text
) -> PreferenceGroup:
    """A chosen/rejected group, with the record's optional `margin`, `weight` and `subset`."""
    comparison = Comparison(
        better=0,
        worse=1,
        margin=optional_number(record, "margin", where, default=0.0),
        weight=optional_number(record, "weight", where, default=1.0, minimum=0.0),
    )
    return PreferenceGroup(
        prompt=prompt,
        responses=check_responses([chosen, rejected], ["chosen", "rejected"], where),
        comparisons=[comparison],
        subset=record_subset(record, where),
        source=where,
    )


def split_conversations(
    chosen: list[Message], rejected: list[Message], where: str
) -> tuple[list[Message], list[Message], list[Message]]:
    """TRL's implicit prompt: the longest run of leading messages both conversations share."""
    shared = 0
    while shared < min(len(chosen), len(rejected)) and chosen[shared] == rejected[shared]:
        shared += 1
    if shared == 0:
        raise DataError(
            where,
            "chosen and rejected share no leading message, so there is no prompt (add a 'prompt' field)",
            field="prompt",
            reason="missing field",
        )
    return chosen[:shared], chosen[shared:], rejected[shared:]


def parse_dialogue(record: Mapping[str, Any], where: str) -> PreferenceGroup:
    """The prompt is the shared prefix cut just after its last "\\n\\nAssistant:", so `prompt + response` is
    exactly the original transcript (responses keep their leading space)."""
    chosen = check_str(require(record, "chosen", where), "chosen", where)
    rejected = check_str(require(record, "rejected", where), "rejected", where)
    if chosen == rejected:
        raise DataError(
            where,
            "same transcript as 'chosen' (expected two different dialogues)",
            field="rejected",
            reason="identical responses",
        )
    cut = os.path.commonprefix([chosen, rejected]).rfind(ASSISTANT_TURN)
    if cut < 0:
        raise DataError(
            where,
            f"chosen and rejected share no {ASSISTANT_TURN!r} turn, so the prompt cannot be found "
            "(expected HH-RLHF transcripts that differ only after the last Assistant turn)",
            field="chosen",
            reason="no shared assistant turn",
        )
    cut += len(ASSISTANT_TURN)
    return labelled_pair(record, where, chosen[:cut], chosen[cut:], rejected[cut:])


def parse_ranking(record: Mapping[str, Any], where: str) -> PreferenceGroup:
    prompt = check_text(require(record, "prompt", where), "prompt", where)
    raw = require(record, "responses", where)
    if not isinstance(raw, list) or len(raw) < 2:
        expected = "a list of at least 2 responses"
        if isinstance(raw, list):
            raise DataError(
                where, f"expected {expected}, got {len(raw)}", field="responses", reason="too few responses"
            )
        raise wrong_type(raw, expected, "responses", where)
    fields = [f"responses[{i}]" for i in range(len(raw))]
    responses = check_responses(
        [check_text(r, f, where) for r, f in zip(raw, fields, strict=True)], fields, where
    )
    labels = [key for key in ("ranking", "rankings", "scores") if key in record]
    if len(labels) != 1:
        raise DataError(
            where,
            "expected exactly one of 'ranking' (indices best first), 'rankings' (one such ranking per annotator) "
            "or 'scores' (higher is better)",
            field="ranking",
            reason="missing field" if not labels else "ambiguous labels",
        )
    weight = optional_number(record, "weight", where, default=1.0, minimum=0.0)
    if "rankings" in record:
        comparisons = comparisons_from_annotators(record["rankings"], len(responses), weight, where)
    elif "ranking" in record:
        comparisons = comparisons_from_places(places_from_ranking(record["ranking"], len(responses), where), weight)
    else:
        comparisons = comparisons_from_places(places_from_scores(record["scores"], len(responses), where), weight)
    return PreferenceGroup(
        prompt=prompt,
        responses=responses,
        comparisons=comparisons,
        subset=record_subset(record, where),
        source=where,
    )


def comparisons_from_annotators(rankings: Any, k: int, weight: float, where: str) -> list[Comparison]:
    """Several annotators' rankings of the same K responses -> C(K,2) soft comparisons: `prob` is the share of
    annotators who put the favoured response above the other (a tie counts half), each one's label kept."""
    if not isinstance(rankings, list) or not rankings:
        raise wrong_type(rankings, "a non-empty list of rankings, one per annotator", "rankings", where)
    places = [places_from_ranking(ranking, k, where, field=f"rankings[{a}]") for a, ranking in enumerate(rankings)]
    comparisons = []
    for i in range(k):
        for j in range(i + 1, k):
            labels = [1.0 if p[i] < p[j] else 0.0 if p[i] > p[j] else 0.5 for p in places]  # i above j
            share = sum(labels) / len(labels)
            if share < 0.5:  # j is favoured: state the comparison from its side
                comparisons.append(Comparison(better=j, worse=i, prob=1.0 - share, weight=weight,
                                              annotator_labels=tuple(1.0 - label for label in labels)))
            else:
                comparisons.append(Comparison(better=i, worse=j, prob=share, weight=weight,
                                              annotator_labels=tuple(labels)))
    return comparisons


def places_from_ranking(ranking: Any, k: int, where: str, field: str = "ranking") -> list[int]:
    """`[2, [0, 3], 1]` -> place of each response: [1, 2, 0, 1]. A nested list is a tie at that place."""
    if not isinstance(ranking, list):
        raise wrong_type(ranking, "a list of response indices, best first", field, where)
    places: dict[int, int] = {}
    for place, entry in enumerate(ranking):
        for index in entry if isinstance(entry, list) else [entry]:
            if isinstance(index, bool) or not isinstance(index, int):
                raise wrong_type(index, "a response index or a list of tied indices", field, where)
            problem = None
            if not 0 <= index < k:
                problem = f"index {index} is out of range (there are {k} responses: 0..{k - 1})"
            elif index in places:
                problem = f"index {index} appears twice"
            if problem:
                raise DataError(
                    where,
                    f"{problem}; expected a permutation of 0..{k - 1}",
                    field=field,
                    reason="ranking not a permutation",
                )
            places[index] = place
    missing = sorted(set(range(k)) - places.keys())
    if missing:
        raise DataError(
            where,
            f"index {', '.join(map(str, missing))} missing; expected a permutation of 0..{k - 1}",
            field=field,
            reason="ranking not a permutation",
        )
    return [places[i] for i in range(k)]


def places_from_scores(scores: Any, k: int, where: str) -> list[int]:
    """Higher score, better place; equal scores share a place (a tie)."""
    if not isinstance(scores, list):
        raise wrong_type(scores, "a list of numbers, one per response", "scores", where)
    if len(scores) != k:
        raise DataError(
            where,
            f"has {len(scores)} scores for {k} responses (expected one per response)",
            field="scores",
            reason="length mismatch",
        )
    values = [check_number(s, f"scores[{i}]", where) for i, s in enumerate(scores)]
    distinct = sorted(set(values), reverse=True)
    return [distinct.index(v) for v in values]


def comparisons_from_places(places: Sequence[int], weight: float = 1.0) -> list[Comparison]:
    """All C(K,2) pairs: the better-placed response wins with prob 1.0; a shared place is a tie (prob 0.5)."""
    comparisons = []
    for i in range(len(places)):
        for j in range(i + 1, len(places)):
            if places[i] == places[j]:
                comparisons.append(Comparison(better=i, worse=j, prob=0.5, weight=weight))
            else:
                better, worse = (i, j) if places[i] < places[j] else (j, i)
                comparisons.append(Comparison(better=better, worse=worse, weight=weight))
    return comparisons
