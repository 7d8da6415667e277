"""Batched, seeded sampling of responses from a causal LM policy.

A hand-written decoding loop (KV cache, temperature, optional top-k, stop at EOS) instead of `generate()`:
it draws from an explicit `torch.Generator`, so a seed reproduces the same responses without touching the
global RNG, and the returned layout is exactly the one PPO and the KL helpers expect:
`input_ids = [left-padded prompt | right-padded response]`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from rewardkit.rl.modeling import position_ids_from_mask


@dataclass
class Samples:
    """Sampled responses for a batch of prompts; tensors live on the policy's device.

    `input_ids` / `attention_mask`: [B, P + R]; `response_ids` / `response_mask`: [B, R], the last R columns.
    `response_mask` covers every generated token up to and including EOS (stopping is an action too).
    """

    prompts: list[str]
    texts: list[str]
    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    response_ids: torch.Tensor
    response_mask: torch.Tensor

    @property
    def prompt_length(self) -> int:
        return self.input_ids.shape[1] - self.response_ids.shape[1]

    @property
    def response_lengths(self) -> torch.Tensor:
        return self.response_mask.sum(-1)


def pad_token_id(tokenizer: PreTrainedTokenizerBase) -> int:
    return tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id


def encode_prompts(
    tokenizer: PreTrainedTokenizerBase, prompts: list[str], max_prompt_tokens: int | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Left-padded prompt ids and attention mask [B, P]: left padding ends every prompt in the same column."""
    encoded = tokenizer(prompts, add_special_tokens=True)["input_ids"]
    fallback = tokenizer.bos_token_id if tokenizer.bos_token_id is not None else tokenizer.eos_token_id
    encoded = [(ids[-max_prompt_tokens:] if max_prompt_tokens else ids) or [fallback] for ids in encoded]
    width = max(len(ids) for ids in encoded)
    pad = pad_token_id(tokenizer)
    input_ids = torch.tensor([[pad] * (width - len(ids)) + ids for ids in encoded], dtype=torch.long)
    attention_mask = torch.tensor([[0] * (width - len(ids)) + [1] * len(ids) for ids in encoded])
    return input_ids, attention_mask


def next_token(
    logits: torch.Tensor, temperature: float, top_k: int | None, generator: torch.Generator | None
) -> torch.Tensor:
    """Draw one token per row from softmax(logits / temperature), optionally restricted to the top k."""
    if temperature == 0:
        return logits.argmax(-1)
    logits = logits / temperature
    if top_k is not None and top_k < logits.shape[-1]:
        kth_best = torch.topk(logits, top_k, dim=-1).values[:, -1:]
        logits = logits.masked_fill(logits < kth_best, float("-inf"))
    return torch.multinomial(torch.softmax(logits, dim=-1), 1, generator=generator).squeeze(-1)


@torch.no_grad()
def sample_responses(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    prompts: list[str],
    max_new_tokens: int = 32,
    temperature: float = 1.0,
    top_k: int | None = None,
    seed: int | None = None,
    generator: torch.Generator | None = None,
    max_prompt_tokens: int | None = None,
) -> Samples:
    """Sample one response per prompt (repeat a prompt in `prompts` to get several).

    Pass `seed` for a fresh reproducible stream, or a `generator` to continue one across calls (PPO does).
    `temperature=0` decodes greedily.
    """
    if max_new_tokens < 1:
        raise ValueError("max_new_tokens must be >= 1")
    device = model.device
    if generator is None and seed is not None:
        generator = torch.Generator(device=device).manual_seed(seed)
    eos, pad = tokenizer.eos_token_id, pad_token_id(tokenizer)

    prompt_ids, prompt_mask = (t.to(device) for t in encode_prompts(tokenizer, prompts, max_prompt_tokens))
    attention_mask = prompt_mask
    position_ids = position_ids_from_mask(attention_mask)
    out = model(input_ids=prompt_ids, attention_mask=attention_mask, position_ids=position_ids, use_cache=True)

    finished = torch.zeros(len(prompts), dtype=torch.bool, device=device)
    tokens, alive = [], []
    for _ in range(max_new_tokens):
        token = next_token(out.logits[:, -1].float(), temperature, top_k, generator)
        token = torch.where(finished, torch.full_like(token, pad), token)
        tokens.append(token)
        alive.append(~finished)
        if eos is not None:
            finished = finished | (token == eos)
        if finished.all():
            break
        attention_mask = torch.cat([attention_mask, torch.ones_like(attention_mask[:, :1])], dim=1)
        position_ids = position_ids[:, -1:] + 1
        out = model(
            input_ids=token[:, None],
            attention_mask=attention_mask,
            position_ids=position_ids,
            past_key_values=out.past_key_values,
            use_cache=True,
        )

    response_ids = torch.stack(tokens, dim=1)
    response_mask = torch.stack(alive, dim=1)
    texts = tokenizer.batch_decode(response_ids.masked_fill(~response_mask, pad), skip_special_tokens=True)
    return Samples(
        prompts=list(prompts),
        texts=texts,
        input_ids=torch.cat([prompt_ids, response_ids], dim=1),
        attention_mask=torch.cat([prompt_mask, response_mask.long()], dim=1),
        response_ids=response_ids,
        response_mask=response_mask,
    )
