"""Adapters for published preference sets, each parsing one raw record into `PreferenceGroup`s.

These are benchmarks: they are kept as published. An empty or duplicated model output is a real output that
was judged, so it is kept (dropping it would shift agreement numbers) and flagged in `meta` instead of being
rejected as in the generic formats. Wrong types and impossible labels still raise.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence
from typing import Any

from rewardkit.data.errors import DataError
from rewardkit.data.formats import comparisons_from_places
from rewardkit.data.records import Comparison, Message, PreferenceGroup
from rewardkit.data.validate import (
    check_number,
    check_str,
    is_blank,
    record_subset,
    require,
    text_key,
    wrong_type,
)


def parse_pandalm(record: Mapping[str, Any], where: str) -> PreferenceGroup:
    """PandaLM test set: three annotators each vote 0 (tie), 1 or 2. The comparison keeps the vote split as a
    soft label (ties count half) and each annotator's own outcome, so ties and 2-1 splits are not lost."""
    prompt = check_str(require(record, "instruction", where), "instruction", where)
    extra = check_str(record.get("input") or "", "input", where)
    if extra.strip():
        prompt = f"{prompt}\n\n{extra}"
    # Six responses are JSON booleans (the models answered "True"): keep them as the text they stand for.
    responses = [_text_or_bool(record, key, where) for key in ("response1", "response2")]
    annotators = sorted((k for k in record if re.fullmatch(r"annotator\d+", k)), key=lambda k: int(k[9:]))
    if not annotators:
        raise DataError(
            where,
            "missing (expected votes annotator1, annotator2, ...)",
            field="annotator1",
            reason="missing field",
        )
    votes = [_pandalm_vote(record[key], key, where) for key in annotators]
    return PreferenceGroup(
        prompt=prompt,
        responses=responses,
        comparisons=[soft_comparison(sum(votes) / len(votes), votes)],
        subset=record_subset(record, where, keys=("motivation_app",)),
        source=where,
        meta={"idx": record.get("idx"), "cmp_key": record.get("cmp_key"), **published_quirks(responses)},
    )


def _text_or_bool(record: Mapping[str, Any], key: str, where: str) -> str:
    value = require(record, key, where)
    return str(value) if isinstance(value, bool) else check_str(value, key, where)


def _pandalm_vote(vote: Any, field: str, where: str) -> float:
    """A vote as P(response2 better): 2 -> 1.0, 1 -> 0.0, 0 (tie) -> 0.5."""
    if isinstance(vote, bool) or vote not in (0, 1, 2):
        raise DataError(
            where,
            f"{vote!r} is not a vote (expected 0 for a tie, or 1 or 2 for the winner)",
            field=field,
            reason="invalid label",
        )
    return {0: 0.5, 1: 0.0, 2: 1.0}[vote]


def parse_alpacaeval(record: Mapping[str, Any], where: str) -> PreferenceGroup:
    """AlpacaEval annotations: `preference` = 1 + P(output_2 better), a judge's probability, kept soft."""
    responses = [check_str(require(record, key, where), key, where) for key in ("output_1", "output_2")]
    preference = check_number(require(record, "preference", where), "preference", where)
    if not 1.0 <= preference <= 2.0:
        raise DataError(
            where,
            f"{preference} is outside [1, 2] (expected 1 + P(output_2 is better))",
            field="preference",
            reason="invalid label",
        )
    generators = {key: record.get(key) for key in ("generator_1", "generator_2")}
    return PreferenceGroup(
        prompt=check_str(require(record, "instruction", where), "instruction", where),
        responses=responses,
        comparisons=[soft_comparison(preference - 1.0)],
        source=where,
        meta={**generators, **published_quirks(responses)},
    )


def parse_evalbiasbench(record: Mapping[str, Any], where: str) -> PreferenceGroup:
    """EvalBiasBench always puts the correct answer first (`label` 1). Sides are swapped for about half the
    records, decided by a hash of the record's text: deterministic, and unchanged by file order or `limit`."""
    prompt = check_str(require(record, "instruction", where), "instruction", where)
    responses = [check_str(require(record, key, where), key, where) for key in ("response1", "response2")]
    label = require(record, "label", where)
    if isinstance(label, bool) or label not in (1, 2):
        raise DataError(
            where,
            f"{label!r} is not a label (expected 1 or 2, the better response)",
            field="label",
            reason="invalid label",
        )
    better = label - 1
    swapped = hashlib.sha256("\0".join([prompt, *responses]).encode()).digest()[0] % 2 == 1
    if swapped:
        responses.reverse()
        better = 1 - better
    return PreferenceGroup(
        prompt=prompt,
        responses=responses,
        comparisons=[Comparison(better=better, worse=1 - better)],
        subset=record_subset(record, where, keys=("bias",)),
        source=where,
        meta={"swapped": swapped, "label": label, **published_quirks(responses)},
    )


# OpenAssistant roles -> chat-template roles.
_OASST_ROLES = {"prompter": "user", "assistant": "assistant"}


def parse_oasst_tree(record: Mapping[str, Any], where: str) -> list[PreferenceGroup]:
    """One OpenAssistant message tree -> one K-wise group per message with >= 2 ranked assistant replies.

    The prompt is the conversation up to that message as chat messages; the responses are the ranked replies'
    texts as plain strings (the reply is the next assistant turn); `rank` 0 is best. Deleted messages and
    their subtrees are left out, and unranked or deleted replies are counted in `meta`.
    """
    root = require(record, "prompt", where)
    if not isinstance(root, Mapping):
        raise wrong_type(root, "a message tree (the root message with its replies)", "prompt", where)
    groups: list[PreferenceGroup] = []
    _walk_oasst(root, [], "prompt", record.get("message_tree_id"), where, groups)
    return groups


def _walk_oasst(
    node: Mapping[str, Any],
    history: list[Message],
    field: str,
    tree_id: Any,
    where: str,
    groups: list[PreferenceGroup],
) -> None:
    role = node.get("role")
    if role not in _OASST_ROLES:
        raise DataError(
            where,
            f"role {role!r} is not 'prompter' or 'assistant'",
            field=f"{field}.role",
            reason="invalid role",
        )
    text = check_str(node.get("text"), f"{field}.text", where)
    conversation = [*history, {"role": _OASST_ROLES[role], "content": text}]
    replies = node.get("replies") or []
    if not isinstance(replies, list):
        raise wrong_type(replies, "a list of reply messages", f"{field}.replies", where)
    for i, reply in enumerate(replies):
        if not isinstance(reply, Mapping):
            raise wrong_type(reply, "a reply message", f"{field}.replies[{i}]", where)
    answers = [(i, r) for i, r in enumerate(replies) if r.get("role") == "assistant"]
    ranked = [(i, r) for i, r in answers if not r.get("deleted") and r.get("rank") is not None]
    if len(ranked) >= 2:
        ranks = [_rank(r["rank"], f"{field}.replies[{i}].rank", where) for i, r in ranked]
        responses = [check_str(r.get("text"), f"{field}.replies[{i}].text", where) for i, r in ranked]
        groups.append(
            PreferenceGroup(
                prompt=conversation,
                responses=responses,
                comparisons=comparisons_from_places(ranks),
                source=f"{where}, message {node.get('message_id')}",
                meta={
                    "message_tree_id": tree_id,
                    "message_id": node.get("message_id"),
                    "reply_ids": [r.get("message_id") for _, r in ranked],
                    "ranks": ranks,
                    "unranked_replies": sum(
                        not r.get("deleted") and r.get("rank") is None for _, r in answers
                    ),
                    "deleted_replies": sum(bool(r.get("deleted")) for _, r in answers),
                    **published_quirks(responses),
                },
            )
        )
    for i, reply in enumerate(replies):
        if not reply.get("deleted"):
            _walk_oasst(reply, conversation, f"{field}.replies[{i}]", tree_id, where, groups)


def _rank(value: Any, field: str, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise DataError(
            where,
            f"{value!r} is not a rank (expected an integer >= 0, 0 = best)",
            field=field,
            reason="invalid label",
        )
    return value


def soft_comparison(p_second: float, votes: Sequence[float] | None = None) -> Comparison:
    """A pair labelled with P(response 1 beats response 0), turned around so the favoured one is `better`
    (`prob >= 0.5`; an exact 0.5 is a tie and keeps response 0 as `better`). `votes` are per-annotator
    P(response 1 better) values, re-expressed as outcomes for `better`."""
    better = 1 if p_second > 0.5 else 0
    labels = None if votes is None else tuple(v if better else 1.0 - v for v in votes)
    return Comparison(
        better=better, worse=1 - better, prob=p_second if better else 1.0 - p_second, annotator_labels=labels
    )


def published_quirks(responses: Sequence[str]) -> dict[str, Any]:
    """Meta flags for what the generic formats would reject: empty responses, identical responses."""
    quirks: dict[str, Any] = {}
    empty = [i for i, response in enumerate(responses) if is_blank(response)]
    if empty:
        quirks["empty_responses"] = empty
    if len({text_key(response) for response in responses}) < len(responses):
        quirks["identical_responses"] = True
    return quirks
