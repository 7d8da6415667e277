"""Turn (prompt, response) into token ids the same way in training, evaluation and serving.

RewardBench found that prompt formatting alone moves a small RM by ~8 points, so there is exactly one rendering
path: `render` makes the text, `encode_pair` tokenizes it and applies the truncation policy.

Truncation policy (documented in the README): when prompt + response exceed `max_length` tokens, the *end* of the
prompt and the *start* of the response are kept. The response may use all but `max_length // 2` tokens; the
prompt keeps whatever the response leaves (at least `max_length // 2` when it is that long). Special tokens the
tokenizer adds (BOS/CLS at the start, EOS/SEP at the end) are always kept. Truncation is never silent: every
encoded sequence carries a `truncated` flag and callers report the count.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from transformers import PreTrainedTokenizerBase

from rewardkit.data.records import Message, Text
from rewardkit.errors import RewardkitError

# Used when a tokenizer has no chat template: the HH-RLHF transcript style, so chat data and HH dialogues
# render alike.
_FALLBACK_ROLE_PREFIX = {"system": "System", "user": "Human", "assistant": "Assistant"}


@dataclass(frozen=True)
class EncodedSequence:
    input_ids: tuple[int, ...]
    prompt_length: int  # tokens before the first response token (special tokens included)
    truncated: bool
    # Where the model reads rewards: the last token (an outcome reward) unless given, e.g. the separator token
    # that ends each step of a solution (a process reward, `rewardkit.data.steps`); () when truncation cut them all.
    reward_positions: tuple[int, ...] | None = None

    def __post_init__(self) -> None:
        if self.reward_positions is None:
            object.__setattr__(self, "reward_positions", (len(self.input_ids) - 1,))


def _as_messages(text: Text, default_role: str) -> list[Message]:
    return [{"role": default_role, "content": text}] if isinstance(text, str) else list(text)


def _fallback_chat(messages: list[Message]) -> str:
    parts = []
    for message in messages:
        role = _FALLBACK_ROLE_PREFIX.get(message["role"], message["role"].capitalize())
        parts.append(f"\n\n{role}: {message['content']}")
    return "".join(parts)


def render(prompt: Text, response: Text, tokenizer: PreTrainedTokenizerBase) -> tuple[str, int, bool]:
    """Return (full text, number of characters that belong to the prompt, whether a chat template was used).

    Plain strings are joined with a newline unless the prompt ends or the response starts with whitespace
    (HH transcripts end with "Assistant:" and responses start with a space). Chat message lists go through the
    tokenizer's chat template when it has one, else an HH-style "\\n\\nHuman: ... \\n\\nAssistant: ..." template.
    """
    if isinstance(prompt, str) and isinstance(response, str):
        joiner = "" if (not prompt or prompt[-1].isspace() or response[:1].isspace()) else "\n"
        return prompt + joiner + response, len(prompt) + len(joiner), False

    prompt_messages = _as_messages(prompt, "user")
    response_messages = _as_messages(response, "assistant")
    if getattr(tokenizer, "chat_template", None):
        prompt_text = tokenizer.apply_chat_template(prompt_messages, tokenize=False, add_generation_prompt=True)
        full_text = tokenizer.apply_chat_template(prompt_messages + response_messages, tokenize=False)
        # Templates render the prompt as a prefix of the conversation; measure the shared prefix to be safe.
        shared = 0
        for a, b in zip(prompt_text, full_text, strict=False):
            if a != b:
                break
            shared += 1
        return full_text, shared, True
    prompt_text = _fallback_chat(prompt_messages) + "\n\nAssistant:"
    response_text = " " + " ".join(m["content"] for m in response_messages)
    return prompt_text + response_text, len(prompt_text), False


def _truncate(prompt_ids: list[int], response_ids: list[int], budget: int) -> tuple[list[int], list[int]]:
    """Keep the end of the prompt and the start of the response within `budget` tokens."""
    if len(prompt_ids) + len(response_ids) <= budget:
        return prompt_ids, response_ids
    prompt_keep = min(len(prompt_ids), max(budget - len(response_ids), budget // 2))
    response_keep = budget - prompt_keep
    return prompt_ids[len(prompt_ids) - prompt_keep :], response_ids[:response_keep]


def encode_pair(
    prompt: Text, response: Text, tokenizer: PreTrainedTokenizerBase, max_length: int
) -> EncodedSequence:
    """Tokenize prompt + response as one text and truncate it to `max_length` per the module's policy."""
    return encode_pairs([(prompt, response)], tokenizer, max_length)[0]


def encode_pairs(
    pairs: Sequence[tuple[Text, Text]],
    tokenizer: PreTrainedTokenizerBase,
    max_length: int,
    reward_chars: Sequence[Sequence[int]] | None = None,
) -> list[EncodedSequence]:
    """`encode_pair` for many pairs, tokenized in batched calls (the fast tokenizer's threads, less overhead).

    `reward_chars[i]`: characters of response i (plain text) whose tokens are its reward positions, in order (the
    end of each step); those that truncation cuts off are left out. Default: the last token."""
    if not tokenizer.is_fast:
        raise RewardkitError(
            f"{type(tokenizer).__name__} is a slow tokenizer; rewardkit needs a fast one (offset mapping) to "
            "find where the response starts. Load it with AutoTokenizer.from_pretrained(..., use_fast=True)."
        )
    rendered = [render(prompt, response, tokenizer) for prompt, response in pairs]
    encoded: list[EncodedSequence | None] = [None] * len(rendered)
    for templated in (False, True):  # chat templates already write BOS and friends as text
        indices = [i for i, (_, _, is_templated) in enumerate(rendered) if is_templated == templated]
        if not indices:
            continue
        batch = tokenizer(
            [rendered[i][0] for i in indices],
            add_special_tokens=not templated,
            return_offsets_mapping=True,
            return_special_tokens_mask=True,
            truncation=False,
            verbose=False,
        )
        ids, offsets, special = batch["input_ids"], batch["offset_mapping"], batch["special_tokens_mask"]
        for row, i in enumerate(indices):
            text, prompt_chars, _ = rendered[i]
            chars = None
            if reward_chars is not None:
                start = _response_start(text, prompt_chars, pairs[i][1])
                chars = [start + c for c in reward_chars[i]]
            encoded[i] = _split_and_truncate(ids[row], offsets[row], special[row], prompt_chars, max_length, chars)
    return encoded


def _response_start(text: str, prompt_chars: int, response: Text) -> int:
    """Where the response's own text starts in the rendered text (after any joiner or template markup)."""
    start = text.find(response, prompt_chars) if isinstance(response, str) else -1
    if start < 0:
        raise RewardkitError(
            "the chat template rewrites the response text, so the ends of its steps cannot be found; "
            "pass the prompt as plain text"
        )
    return start


def _split_and_truncate(
    ids: list[int],
    offsets: list[tuple[int, int]],
    special: list[int],
    prompt_chars: int,
    max_length: int,
    reward_chars: Sequence[int] | None = None,
) -> EncodedSequence:
    # Split into [leading special tokens] [prompt tokens] [response tokens] [trailing special tokens].
    start = 0
    while start < len(ids) and special[start]:
        start += 1
    end = len(ids)
    while end > start and special[end - 1]:
        end -= 1
    boundary = start
    while boundary < end and offsets[boundary][0] < prompt_chars:
        boundary += 1
    lead, prompt_ids, response_ids, trail = ids[:start], ids[start:boundary], ids[boundary:end], ids[end:]

    budget = max_length - len(lead) - len(trail)
    if budget < 2:
        raise RewardkitError(f"max_length={max_length} leaves no room for text after special tokens")
    kept_prompt, kept_response = _truncate(prompt_ids, response_ids, budget)
    truncated = len(kept_prompt) + len(kept_response) < len(prompt_ids) + len(response_ids)
    positions = None
    if reward_chars is not None:
        kept = [t for t in _covering_tokens(offsets, boundary, end, reward_chars) if t - boundary < len(kept_response)]
        positions = tuple(len(lead) + len(kept_prompt) + t - boundary for t in kept)
    return EncodedSequence(
        input_ids=tuple(lead + kept_prompt + kept_response + trail),
        prompt_length=len(lead) + len(kept_prompt),
        truncated=truncated,
        reward_positions=positions,
    )


def _covering_tokens(offsets: list[tuple[int, int]], start: int, end: int, chars: Sequence[int]) -> list[int]:
    """Per character (ascending), the index of the token in [start, end) whose span holds it."""
    tokens, t = [], start
    for char in chars:
        while t < end and offsets[t][1] <= char:
            t += 1
        if t == end or offsets[t][0] > char:
            raise RewardkitError(f"no token covers character {char} of the text (a reward position); "
                                 "the tokenizer drops it")
        tokens.append(t)
    return tokens
