"""Request bodies -> (prompt, response) pairs, with a 4xx naming the offending field for anything else.

Three shapes are accepted:
- rewardkit's own `POST /score`: {"prompts": [...], "responses": [...]}, each item text or chat messages. The reply
  is {"rewards": [...], "truncated": [...]}; clients must ignore keys they do not know, so that later replies can add
  some without breaking anyone.
- `POST /score` with solutions as steps, for a process reward model: {"prompts": [...], "steps": [[step, ...], ...],
  "aggregation": "min"} (aggregation optional: min, product, last or mean; default min). The reply is
  {"step_rewards": [[...], ...], "rewards": [...], "aggregation": "min", "steps_scored": [...], "truncated": [...]}:
  one reward (a logit, normalized as the checkpoint says) per step, a solution score aggregated from the steps'
  probabilities sigmoid(reward) (null when truncation cut every step), and how many steps got a reward (steps past
  max_length get none). An outcome reward model refuses steps, and a process reward model refuses plain responses,
  each with a 422 that says what to send.
- OpenRLHF's remote reward model protocol, `POST /get_reward`: {"query": [...], "prompts": [...], "labels": [...]}.
  "query" is prompt + response as the trainer decoded it *with special tokens kept*: it may start with BOS (and
  left padding), end with EOS (and right padding), carry the prompt left-truncated to the trainer's
  max_prompt_length, and show text the tokenizer normalized (a decomposed accent comes back composed). `split_query`
  recovers the response the policy generated, and the pair scored is (prompts[i], response): exactly what
  `POST /score` scores for that prompt and response. "labels" is ignored.
"""

from __future__ import annotations

import json
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from rewardkit.data.errors import DataError
from rewardkit.data.records import Text
from rewardkit.data.step_formats import check_steps
from rewardkit.data.validate import check_text
from rewardkit.model.step_scores import AGGREGATIONS

# A left-truncated prompt must keep at least this many characters of its end for the split to be trusted.
MIN_PROMPT_OVERLAP = 8


class RequestError(Exception):
    """A reply with a 4xx/5xx status and a JSON body {"error": message, "field": field}."""

    def __init__(self, status: int, message: str, field: str | None = None, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status, self.message, self.field = status, message, field
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        payload: dict[str, Any] = {"error": self.message}
        if self.field is not None:
            payload["field"] = self.field
        return payload


@dataclass(frozen=True)
class Pair:
    prompt: Text
    response: Text
    field: str  # how error messages name this item, e.g. "responses[3]"


def parse_json(body: bytes) -> dict[str, Any]:
    """The body as a JSON object; anything else is a 400 naming the body."""
    try:
        data = json.loads(body.decode("utf-8"))
    except UnicodeDecodeError as error:
        raise RequestError(400, f"body is not valid UTF-8 ({error.reason})", "body") from None
    except RecursionError:
        raise RequestError(400, "body is not valid JSON: nested too deeply", "body") from None
    except ValueError as error:  # JSONDecodeError, and integers longer than Python converts (4300 digits)
        raise RequestError(400, f"body is not valid JSON: {error}", "body") from None
    if not isinstance(data, dict):
        raise RequestError(400, f"body must be a JSON object, got {type(data).__name__}", "body")
    return data


def _list_field(body: dict[str, Any], name: str) -> list:
    if name not in body:
        raise RequestError(422, f"missing field '{name}' (body has: {', '.join(sorted(body)) or 'no fields'})", name)
    value = body[name]
    if not isinstance(value, list):
        raise RequestError(422, f"'{name}' must be a list, got {type(value).__name__}", name)
    if not value:
        raise RequestError(422, f"'{name}' is empty; send at least one item", name)
    return value


def _same_length(a: list, a_name: str, b: list, b_name: str) -> None:
    if len(a) != len(b):
        raise RequestError(422, f"'{b_name}' has {len(b)} items but '{a_name}' has {len(a)}; send one per item",
                           b_name)


def _text(value: Any, field: str) -> Text:
    try:
        return check_text(value, field, "request")
    except DataError as error:
        raise RequestError(422, error.message, error.field) from None


def _str(value: Any, field: str) -> str:
    if not isinstance(value, str):
        raise RequestError(422, f"expected text, got {type(value).__name__}", field)
    return value


def parse_score(body: dict[str, Any]) -> list[Pair]:
    prompts, responses = _list_field(body, "prompts"), _list_field(body, "responses")
    _same_length(prompts, "prompts", responses, "responses")
    return [
        Pair(_text(prompt, f"prompts[{i}]"), _text(response, f"responses[{i}]"), f"responses[{i}]")
        for i, (prompt, response) in enumerate(zip(prompts, responses, strict=True))
    ]


@dataclass(frozen=True)
class Solution:
    prompt: Text
    steps: list[str]
    field: str  # how error messages name this item, e.g. "steps[3]"


def parse_score_steps(body: dict[str, Any]) -> tuple[list[Solution], str]:
    """(the solutions, the aggregation) of a `POST /score` with "steps"."""
    if "responses" in body:
        raise RequestError(422, "send either 'responses' (one reward per response) or 'steps' (one per step), "
                           "not both", "responses")
    prompts, solutions = _list_field(body, "prompts"), _list_field(body, "steps")
    _same_length(prompts, "prompts", solutions, "steps")
    aggregation = body.get("aggregation", "min")
    if aggregation not in AGGREGATIONS:
        raise RequestError(422, f"'aggregation' must be one of {', '.join(AGGREGATIONS)}, got {aggregation!r}",
                           "aggregation")
    items = []
    for i, (prompt, steps) in enumerate(zip(prompts, solutions, strict=True)):
        try:
            items.append(Solution(_text(prompt, f"prompts[{i}]"), check_steps(steps, "request", f"steps[{i}]"),
                                  f"steps[{i}]"))
        except DataError as error:
            raise RequestError(422, f"{error.field}: {error.message}", error.field) from None
    return items, aggregation


@dataclass(frozen=True)
class SpecialTokens:
    """The reward model's special-token strings that a trainer's decoded text may carry at its ends."""

    leading: tuple[str, ...]  # BOS, and pad/EOS from left padding
    trailing: tuple[str, ...]  # EOS, and pad from right padding

    @classmethod
    def of(cls, tokenizer) -> SpecialTokens:
        def present(*tokens: str | None) -> tuple[str, ...]:
            return tuple(dict.fromkeys(t for t in tokens if t))

        return cls(present(tokenizer.bos_token, tokenizer.pad_token, tokenizer.eos_token),
                   present(tokenizer.eos_token, tokenizer.pad_token))


def _strip_ends(text: str, leading: Iterable[str], trailing: Iterable[str]) -> str:
    stripped = True
    while stripped:
        stripped = False
        for token in leading:
            if text.startswith(token):
                text, stripped = text[len(token):], True
    stripped = True
    while stripped:
        stripped = False
        for token in trailing:
            if text.endswith(token):
                text, stripped = text[: -len(token)], True
    return text


def _longest_overlap(prompt: str, query: str) -> int:
    """Length of the longest suffix of `prompt` that is a prefix of `query` (KMP failure function: linear time)."""
    head = query[: len(prompt)]
    text = head + "\0" + prompt
    failure = [0] * len(text)
    for i in range(1, len(text)):
        k = failure[i - 1]
        while k and text[i] != text[k]:
            k = failure[k - 1]
        failure[i] = k + (text[i] == text[k])
    k = failure[-1]
    while k > len(head):  # only when the texts themselves hold the separator
        k = failure[k - 1]
    return k


def split_query(query: str, prompt: str, special: SpecialTokens) -> str | None:
    """The response inside an OpenRLHF query, or None when the query does not continue the prompt.

    In order: the query minus its special tokens starts with the prompt; or with the prompt in Unicode normal form
    (tokenizers normalize, so a decoded query does too); or with the end of the prompt (the trainer truncated
    the prompt from the left), at least MIN_PROMPT_OVERLAP characters of it.
    """
    text = _strip_ends(query, special.leading, special.trailing)
    bare_prompt = _strip_ends(prompt, special.leading, ())
    if not bare_prompt.strip():
        return text
    # Decoding may put a space after a BOS that the prompt text did not have (SentencePiece): compare trimmed.
    text = text.lstrip()
    forms = list(dict.fromkeys(
        form.lstrip() for form in (bare_prompt, *(unicodedata.normalize(nf, bare_prompt) for nf in ("NFC", "NFKC")))))
    for form in forms:
        if text.startswith(form):
            return text[len(form):]
    body = text.lstrip("\ufffd")  # a byte-level token cut in two by the truncation decodes as U+FFFD
    for form in forms:
        overlap = _longest_overlap(form, body)
        if overlap >= min(MIN_PROMPT_OVERLAP, len(form)):
            return body[overlap:]
    return None


def parse_get_reward(body: dict[str, Any], special: SpecialTokens) -> list[Pair]:
    queries = [_str(query, f"query[{i}]") for i, query in enumerate(_list_field(body, "query"))]
    if body.get("prompts") is None:
        # Older OpenRLHF clients send only "query": score the whole text as a response to an empty prompt.
        return [Pair("", _strip_ends(query, special.leading, special.trailing), f"query[{i}]")
                for i, query in enumerate(queries)]
    prompts = _list_field(body, "prompts")
    _same_length(queries, "query", prompts, "prompts")
    pairs = []
    for i, (query, prompt) in enumerate(zip(queries, prompts, strict=True)):
        prompt = _str(prompt, f"prompts[{i}]")
        response = split_query(query, prompt, special)
        if response is None:
            raise RequestError(422, f"query[{i}] does not continue prompts[{i}] (nor its end, had the trainer "
                               "truncated it); 'query' must be prompt + response", f"query[{i}]")
        pairs.append(Pair(prompt, response, f"query[{i}]"))
    return pairs
