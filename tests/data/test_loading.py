"""load_preferences options (on_error, limit, format) and split_dataset."""

from __future__ import annotations

import logging

import pytest

from rewardkit.data import DataError, PreferenceDataset, PreferenceGroup, load_preferences, split_dataset
from rewardkit.data.detect import suggest_columns
from rewardkit.data.options import parse_columns
from rewardkit.errors import RewardkitError


def test_skip_counts_bad_records_by_reason(write_jsonl, pairs, caplog):
    records = [
        pairs[0],
        '{"prompt": "p", "chosen": "a", "rej',
        {"prompt": "p", "chosen": 5, "rejected": "b"},
        {"prompt": "p", "chosen": 6, "rejected": "c"},
        {"prompt": "p", "chosen": "same", "rejected": "same"},
        pairs[1],
    ]
    with caplog.at_level(logging.WARNING, logger="rewardkit.data"):
        data = load_preferences(write_jsonl(records), on_error="skip")
    assert [g.prompt for g in data] == [pairs[0]["prompt"], pairs[1]["prompt"]]
    report = data.report
    assert (report.records_read, report.groups, report.comparisons) == (6, 2, 2)
    assert report.skipped == {"invalid JSON": 1, "wrong type": 2, "identical responses": 1}
    assert (
        "skipped 4 bad records (1 identical responses, 1 invalid JSON, 2 wrong type)" in report.summary()
    )
    # The first record of each reason is logged in full, so the user can find it.
    logged = [record.getMessage() for record in caplog.records]
    assert [line.split(": ")[0].split(",")[0] for line in logged] == [
        f"skipping bad record {data.name} line {n}" for n in (2, 3, 5)
    ]


def test_limit_stops_after_that_many_groups(write_jsonl, pairs):
    data = load_preferences(write_jsonl(pairs), limit=2)
    assert len(data) == 2 and data.report.records_read == 2


def test_explicit_format_overrides_detection(write_jsonl):
    path = write_jsonl([{"prompt": "p", "chosen": "a", "rejected": "b"}])
    with pytest.raises(ValueError, match=r"line 1, field 'responses': missing"):
        load_preferences(path, format="ranking")


def _dataset(num_prompts: int, per_prompt: int) -> PreferenceDataset:
    groups = [
        PreferenceGroup(
            prompt=f"prompt {p}", responses=[f"a{p}.{i}", f"b{p}.{i}"], comparisons=[], source=f"{p}.{i}"
        )
        for p in range(num_prompts)
        for i in range(per_prompt)
    ]
    return PreferenceDataset(groups, name="toy")


def test_split_is_deterministic_and_keeps_groups_and_prompts_whole():
    data = _dataset(num_prompts=50, per_prompt=3)
    train, held_out = split_dataset(data, eval_fraction=0.2, seed=7)
    again = split_dataset(data, eval_fraction=0.2, seed=7)
    assert [g.source for g in again[1]] == [g.source for g in held_out]
    assert [g.source for g in split_dataset(data, 0.2, seed=8)[1]] != [g.source for g in held_out]
    assert sorted(g.source for g in [*train, *held_out]) == sorted(g.source for g in data)
    assert all(g in data.groups for g in held_out)  # the same group objects, never split apart
    assert {g.prompt for g in train}.isdisjoint({g.prompt for g in held_out})
    assert len(held_out) == 30 and held_out.report.groups == 30 and train.name == "toy:train"


def test_split_rejects_bad_fraction():
    with pytest.raises(ValueError, match="eval_fraction"):
        split_dataset(_dataset(4, 1), eval_fraction=1.0, seed=0)


def test_columns_map_a_files_own_names_onto_a_format(write_jsonl):
    records = [{"question": "q1", "good": "yes", "bad": "no", "id": 1}, {"question": "q2", "good": "a", "bad": "b"}]
    path = write_jsonl(records)
    with pytest.raises(DataError, match="--columns prompt=question,chosen=good,rejected=bad"):
        load_preferences(path)  # the error suggests the mapping from the column names
    data = load_preferences(path, columns={"prompt": "question", "chosen": "good", "rejected": "bad"})
    assert [(g.prompt, g.responses) for g in data] == [("q1", ["yes", "no"]), ("q2", ["a", "b"])]
    with pytest.raises(DataError, match=r"line 1, field 'answer': missing \(mapped to 'chosen' by --columns"):
        load_preferences(path, columns={"prompt": "question", "chosen": "answer", "rejected": "bad"})
    skipped = load_preferences(write_jsonl([records[0], {"question": "q3"}]), on_error="skip",
                               columns={"prompt": "question", "chosen": "good", "rejected": "bad"})
    assert len(skipped) == 1 and skipped.report.skipped == {"missing column": 1}


def test_suggested_columns_leave_what_they_cannot_place_to_the_user():
    assert suggest_columns(["instruction", "preferred", "dispreferred"]) == (
        "prompt=instruction,chosen=preferred,rejected=dispreferred")
    assert suggest_columns(["text", "label"]) == "prompt=COLUMN,chosen=COLUMN,rejected=COLUMN"


def test_parse_columns():
    assert parse_columns("prompt=question, chosen=good") == {"prompt": "question", "chosen": "good"}
    for bad in ("prompt", "prompt=", "=x", "prompt=a,prompt=b"):
        with pytest.raises(RewardkitError):
            parse_columns(bad)
