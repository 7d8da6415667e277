"""Request bodies -> (prompt, response) pairs, with a 4xx naming the offending field for anything else.

Two shapes are accepted:
- rewardkit's own `POST /score`: {"prompts": [...], "responses": [...]}, each item text or chat messages.
- OpenRLHF's remote reward model protocol, `POST /get_reward`: {"query": [...], "prompts": [...], "labels": [...]}.
  "query" holds full texts (prompt + response, as decoded by the trainer); the response is the query with its
  prompt prefix removed, so prompt and response are tokenized exactly as in training. "labels" is ignored.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rewardkit.data.errors import DataError
from rewardkit.data.records import Text
from rewardkit.data.validate import check_text
from rewardkit.serving.http import HttpError


@dataclass(frozen=True)
class Pair:
    prompt: Text
    response: Text
    field: str  # how error messages name this item, e.g. "responses[3]"


def _list_field(body: dict[str, Any], name: str) -> list:
    if name not in body:
        raise HttpError(422, f"missing field '{name}' (body has: {', '.join(sorted(body)) or 'no fields'})", name)
    value = body[name]
    if not isinstance(value, list):
        raise HttpError(422, f"'{name}' must be a list, got {type(value).__name__}", name)
    if not value:
        raise HttpError(422, f"'{name}' is empty; send at least one item", name)
    return value


def _same_length(a: list, a_name: str, b: list, b_name: str) -> None:
    if len(a) != len(b):
        raise HttpError(422, f"'{b_name}' has {len(b)} items but '{a_name}' has {len(a)}; send one per item", b_name)


def _text(value: Any, field: str) -> Text:
    try:
        return check_text(value, field, "request")
    except DataError as error:
        raise HttpError(422, error.message, error.field) from None


def _str(value: Any, field: str) -> str:
    if not isinstance(value, str):
        raise HttpError(422, f"expected text, got {type(value).__name__}", field)
    return value


def parse_score(body: dict[str, Any]) -> list[Pair]:
    prompts, responses = _list_field(body, "prompts"), _list_field(body, "responses")
    _same_length(prompts, "prompts", responses, "responses")
    return [
        Pair(_text(prompt, f"prompts[{i}]"), _text(response, f"responses[{i}]"), f"responses[{i}]")
        for i, (prompt, response) in enumerate(zip(prompts, responses, strict=True))
    ]


def _strip_pad(text: str, pad_token: str | None) -> str:
    """Trainers decode left-padded batches with special tokens kept, so queries may carry pad tokens."""
    if pad_token:
        while text.startswith(pad_token):
            text = text[len(pad_token) :]
        while text.endswith(pad_token):
            text = text[: -len(pad_token)]
    return text


def parse_get_reward(body: dict[str, Any], pad_token: str | None = None) -> list[Pair]:
    queries = _list_field(body, "query")
    queries = [_strip_pad(_str(query, f"query[{i}]"), pad_token) for i, query in enumerate(queries)]
    if body.get("prompts") is None:
        # Older OpenRLHF clients send only "query": score the whole text as a response to an empty prompt.
        return [Pair("", query, f"query[{i}]") for i, query in enumerate(queries)]
    prompts = _list_field(body, "prompts")
    _same_length(queries, "query", prompts, "prompts")
    pairs = []
    for i, (query, prompt) in enumerate(zip(queries, prompts, strict=True)):
        prompt = _strip_pad(_str(prompt, f"prompts[{i}]"), pad_token)
        if not query.startswith(prompt):
            raise HttpError(422, f"query[{i}] does not start with prompts[{i}]; 'query' must be prompt + response",
                            f"query[{i}]")
        pairs.append(Pair(prompt, query[len(prompt) :], f"query[{i}]"))
    return pairs
