"""The generic formats (pairs, dialogue, ranking), auto-detection, and the errors bad records give."""

from __future__ import annotations

import math
import re

import pytest

from rewardkit.data import FORMATS, Comparison, DataError, load_preferences


def user(text):
    return {"role": "user", "content": text}


def bot(text):
    return {"role": "assistant", "content": text}


def test_pairs_with_chat_messages(write_jsonl):
    record = {
        "prompt": [user("Hi")],
        "chosen": [bot("Hello!")],
        "rejected": [bot("Bye.")],
        "category": "chat",
    }
    [group] = load_preferences(write_jsonl([record]))
    assert group.prompt == [user("Hi")]
    assert group.responses == [[bot("Hello!")], [bot("Bye.")]]
    assert group.comparisons == [Comparison(0, 1)] and group.subset == "chat"


def test_conversational_pairs_take_the_shared_messages_as_prompt(write_jsonl):
    shared = [{"role": "system", "content": "Be brief."}, user("2+2?"), bot("4"), user("And 3+3?")]
    record = {"chosen": [*shared, bot("6")], "rejected": [*shared, bot("Seven."), user("?"), bot("7")]}
    [group] = load_preferences(write_jsonl([record]))
    assert group.prompt == shared
    assert group.responses == [[bot("6")], [bot("Seven."), user("?"), bot("7")]]


def test_dialogue_prompt_ends_at_last_shared_assistant_turn(write_jsonl):
    prompt = "\n\nHuman: Hi\n\nAssistant: Hello\n\nHuman: Tell me a joke\n\nAssistant:"
    record = {"chosen": prompt + " Why did the chicken...", "rejected": prompt + " No."}
    [group] = load_preferences(write_jsonl([record]))
    assert group.prompt == prompt
    assert group.responses == [" Why did the chicken...", " No."]  # prompt + response == transcript


def test_ranking_with_ties(write_jsonl):
    record = {"prompt": "p", "responses": ["a", "b", "c", "d"], "ranking": [2, [0, 3], 1]}
    [group] = load_preferences(write_jsonl([record]))
    assert len(group.comparisons) == math.comb(4, 2)
    assert set(group.comparisons) == {
        Comparison(2, 0),
        Comparison(2, 3),
        Comparison(2, 1),  # c beats everyone
        Comparison(0, 3, prob=0.5),  # a and d tie
        Comparison(0, 1),
        Comparison(3, 1),
    }


def test_ranking_from_scores(write_jsonl):
    record = {"prompt": "p", "responses": ["a", "b", "c"], "scores": [0.1, 2, 0.1], "weight": 2}
    [group] = load_preferences(write_jsonl([record]))
    assert set(group.comparisons) == {
        Comparison(1, 0, weight=2.0),
        Comparison(1, 2, weight=2.0),
        Comparison(0, 2, prob=0.5, weight=2.0),
    }


GOOD = {"prompt": "p", "chosen": "a", "rejected": "b"}
RANKED = {"prompt": "p", "responses": ["a", "b", "c"], "ranking": [0, 1, 2]}

# (second record of the file, field named in the error, message, reason counted when skipped)
BAD_RECORDS = [
    ({**GOOD, "rejected": "a "}, "rejected", "same text as 'chosen'", "identical responses"),
    ({**GOOD, "chosen": 5}, "chosen", "expected text or a list of chat messages, got int", "wrong type"),
    (
        {"prompt": "p", "chosen": "a"},
        "rejected",
        "missing (record has keys: chosen, prompt)",
        "missing field",
    ),
    ({**GOOD, "margin": float("nan")}, "margin", "nan is not a finite number", "non-finite number"),
    ({**GOOD, "weight": "heavy"}, "weight", "expected a number, got str", "wrong type"),
    ({**GOOD, "weight": -1}, "weight", "below 0.0", "out of range"),
    (
        {**GOOD, "chosen": [{"role": "assistant"}], "rejected": [bot("x")]},
        "chosen[0]",
        "malformed chat message: 'content' is missing",
        "malformed message",
    ),
    ({**GOOD, "chosen": [bot("a")]}, "rejected", "is not the same kind as 'chosen'", "mixed response types"),
]
BAD_RANKINGS = [
    ({**RANKED, "ranking": [0, [0, 2]]}, "ranking", "index 0 appears twice", "ranking not a permutation"),
    (
        {**RANKED, "ranking": [2, 0]},
        "ranking",
        "index 1 missing; expected a permutation of 0..2",
        "ranking not a permutation",
    ),
    ({**RANKED, "ranking": [0, 1, 3]}, "ranking", "index 3 is out of range", "ranking not a permutation"),
    (
        {**RANKED, "responses": ["a", "b", "a"]},
        "responses[2]",
        "same text as 'responses[0]'",
        "identical responses",
    ),
    (
        {"prompt": "p", "responses": ["a", "b"], "scores": [1.0]},
        "scores",
        "has 1 scores for 2 responses",
        "length mismatch",
    ),
    (
        {"prompt": "p", "responses": ["a", "b"], "scores": [1.0, "inf"]},
        "scores[1]",
        "not a finite number",
        "non-finite number",
    ),
    (
        {"prompt": "p", "responses": ["a"], "ranking": [0]},
        "responses",
        "at least 2 responses",
        "too few responses",
    ),
]


@pytest.mark.parametrize(("bad", "field", "message", "reason"), BAD_RECORDS + BAD_RANKINGS)
def test_bad_record_error_names_file_line_and_field(write_jsonl, bad, field, message, reason):
    first = RANKED if "responses" in bad else GOOD
    path = write_jsonl([first, bad])
    with pytest.raises(DataError) as caught:
        load_preferences(path)
    assert str(caught.value).startswith(f"{path} line 2, field '{field}': ")
    assert message in str(caught.value)
    assert (caught.value.field, caught.value.reason) == (field, reason)


def test_dialogue_without_shared_assistant_turn(write_jsonl):
    path = write_jsonl(
        [{"chosen": "\n\nHuman: a\n\nAssistant: b", "rejected": "\n\nHuman: c\n\nAssistant: d"}]
    )
    with pytest.raises(DataError, match=rf"{re.escape(str(path))} line 1, field 'chosen': .*share no"):
        load_preferences(path, format="dialogue")


def test_unknown_keys_list_keys_and_formats(write_jsonl):
    path = write_jsonl([{"question": "q", "answer": "a"}])
    with pytest.raises(DataError) as caught:
        load_preferences(path)
    message = str(caught.value)
    assert message.startswith(
        f"{path} line 1: cannot tell the format from the record's keys (answer, question)"
    )
    assert all(name in message for name in FORMATS)


def test_unknown_format_name(write_jsonl):
    with pytest.raises(ValueError, match="unknown format 'hh'; expected 'auto' or one of: pairs, dialogue"):
        load_preferences(write_jsonl([GOOD]), format="hh")
