"""Field checks shared by every format parser: each one either returns a clean value or raises a `DataError`
that names the record, the field and what was expected."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from rewardkit.data.errors import DataError
from rewardkit.data.records import Message, Text


def require(record: Mapping[str, Any], key: str, where: str) -> Any:
    """`record[key]`, or a DataError listing the keys the record has (usually a typo or the wrong format)."""
    if key not in record:
        keys = ", ".join(sorted(map(str, record)))
        raise DataError(where, f"missing (record has keys: {keys})", field=key, reason="missing field")
    return record[key]


def wrong_type(value: Any, expected: str, field: str, where: str) -> DataError:
    return DataError(
        where, f"expected {expected}, got {type(value).__name__}", field=field, reason="wrong type"
    )


def check_str(value: Any, field: str, where: str) -> str:
    if not isinstance(value, str):
        raise wrong_type(value, "text", field, where)
    return value


def check_messages(value: Any, field: str, where: str) -> list[Message]:
    """A chat message list: every item a dict with string `role` and `content`. Other keys are kept, None
    values dropped (Arrow-backed datasets fill keys missing from one row with None)."""
    if not isinstance(value, list):
        raise wrong_type(value, "a list of chat messages", field, where)
    messages = []
    for i, message in enumerate(value):
        if not isinstance(message, Mapping):
            raise wrong_type(message, "a chat message {'role': ..., 'content': ...}", f"{field}[{i}]", where)
        for key in ("role", "content"):
            if not isinstance(message.get(key), str):
                problem = "missing" if message.get(key) is None else f"a {type(message[key]).__name__}"
                raise DataError(
                    where,
                    f"malformed chat message: '{key}' is {problem} (expected a string)",
                    field=f"{field}[{i}]",
                    reason="malformed message",
                )
        messages.append({k: v for k, v in message.items() if v is not None})
    return messages


def check_text(value: Any, field: str, where: str) -> Text:
    """A prompt or response: plain text, or a list of chat messages."""
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        return check_messages(value, field, where)
    raise wrong_type(value, "text or a list of chat messages", field, where)


def text_key(text: Text) -> str | tuple[tuple[str, str], ...]:
    """What makes two prompts or responses 'the same': equal content up to surrounding whitespace."""
    if isinstance(text, str):
        return text.strip()
    return tuple((m["role"], m["content"].strip()) for m in text)


def is_blank(text: Text) -> bool:
    """Whitespace only; a message list is blank when it is empty or every message's content is."""
    if isinstance(text, str):
        return not text.strip()
    return all(not message["content"].strip() for message in text)


def check_responses(responses: Sequence[Text], fields: Sequence[str], where: str) -> list[Text]:
    """Responses a reward model can be trained on: all distinct and all of the same kind. An empty response is
    accepted (refusing to answer can be the better reply; loading counts them in its report)."""
    seen: dict[Any, str] = {}
    for response, field in zip(responses, fields, strict=True):
        if isinstance(response, str) != isinstance(responses[0], str):
            raise DataError(
                where,
                f"is not the same kind as '{fields[0]}' (expected all plain text or all chat messages)",
                field=field,
                reason="mixed response types",
            )
        key = text_key(response)
        if key in seen:
            raise DataError(
                where,
                f"same text as '{seen[key]}' (expected distinct responses)",
                field=field,
                reason="identical responses",
            )
        seen[key] = field
    return list(responses)


def check_number(value: Any, field: str, where: str, minimum: float | None = None) -> float:
    """A finite number. Numeric strings are accepted because CSV files carry every cell as text."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise wrong_type(value, "a number", field, where)
    try:
        number = float(value)
    except ValueError:
        raise wrong_type(value, "a number", field, where) from None
    if not math.isfinite(number):
        raise DataError(where, f"{value!r} is not a finite number", field=field, reason="non-finite number")
    if minimum is not None and number < minimum:
        raise DataError(
            where, f"{number} is below {minimum} (expected >= {minimum})", field=field, reason="out of range"
        )
    return number


def optional_number(
    record: Mapping[str, Any], key: str, where: str, default: float, minimum: float | None = None
) -> float:
    """An optional numeric field; absent, null or an empty CSV cell means `default`."""
    value = record.get(key)
    if value is None or value == "":
        return default
    return check_number(value, key, where, minimum)


def record_subset(
    record: Mapping[str, Any], where: str, keys: Sequence[str] = ("subset", "category")
) -> str | None:
    """The optional slice label (`subset` or `category` by default), used to report metrics per slice."""
    for key in keys:
        value = record.get(key)
        if value is not None and value != "":
            return check_str(value, key, where)
    return None


def map_columns(record: Mapping[str, Any], columns: Mapping[str, str], where: str) -> dict[str, Any]:
    """The record with its columns renamed onto a format's fields: `{"prompt": "question"}` reads the record's
    `question` as `prompt`. A mapped column the record lacks is a bad record that names the column."""
    mapped = {key: value for key, value in record.items() if key not in columns.values()}
    for field, column in columns.items():
        if column not in record:
            keys = ", ".join(sorted(map(str, record)))
            raise DataError(where, f"missing (mapped to '{field}' by --columns; record has keys: {keys})",
                            field=column, reason="missing column")
        mapped[field] = record[column]
    return mapped
