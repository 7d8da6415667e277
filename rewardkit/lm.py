"""Causal language-model helpers shared by every layer that samples from or scores a policy.

Sequences here are laid out as `[left-padded prompt | right-padded response]`, so every response starts at the
same column and occupies the last R columns of `input_ids`:

- `sample_responses`: batched, seeded sampling (a hand-written decoding loop with a KV cache, temperature,
  optional top-k, stop at EOS) instead of `generate()`: it draws from an explicit `torch.Generator`, so a seed
  reproduces the same responses without touching the global RNG, and returns exactly that layout.
- `response_logprobs`: log pi(y_t | x, y_<t) of each response token (PPO, KL, DPO).
- `build_llama`: the one place a Llama is built from a config (the demo's policy, tests and benchmarks).

Nothing here knows about reward models, RL or the demo world: `rewardkit.rl`, `rewardkit.dpo` and
`rewardkit.world` all build on it.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass

import torch
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedModel, PreTrainedTokenizerBase


@dataclass
class Samples:
    """Sampled responses for a batch of prompts; tensors live on the policy's device.

    `input_ids` / `attention_mask`: [B, P + R]; `response_ids` / `response_mask`: [B, R], the last R columns.
    `response_mask` covers every generated token up to and including EOS (stopping is an action too);
    `finished` [B]: whether the response ended with EOS (False: cut at max_new_tokens).
    """

    prompts: list[str]
    texts: list[str]
    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    response_ids: torch.Tensor
    response_mask: torch.Tensor
    finished: torch.Tensor

    @property
    def prompt_length(self) -> int:
        return self.input_ids.shape[1] - self.response_ids.shape[1]

    @property
    def response_lengths(self) -> torch.Tensor:
        return self.response_mask.sum(-1)


def pad_token_id(tokenizer: PreTrainedTokenizerBase) -> int:
    return tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id


def position_ids_from_mask(attention_mask: torch.Tensor) -> torch.Tensor:
    """Positions counted over real tokens only, so a left-padded prompt starts at position 0."""
    return (attention_mask.long().cumsum(-1) - 1).clamp(min=0)


def _accepts(model: PreTrainedModel, argument: str) -> bool:
    return argument in inspect.signature(model.forward).parameters


def causal_lm_logits(
    model: PreTrainedModel,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    keep_last: int,
) -> torch.Tensor:
    """Float32 logits of the last `keep_last` positions, shape [B, keep_last, V].

    Why `logits_to_keep`: a full forward would materialise [B, T, V] logits, which dominates memory for real
    vocabularies when only the response positions are needed.
    """
    kwargs = {"logits_to_keep": keep_last} if _accepts(model, "logits_to_keep") else {}
    out = model(
        input_ids=input_ids,
        attention_mask=attention_mask,
        position_ids=position_ids_from_mask(attention_mask),
        use_cache=False,
        **kwargs,
    )
    return out.logits[:, -keep_last:].float()


def response_logprobs(
    model: PreTrainedModel,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    response_mask: torch.Tensor,
    temperature: float = 1.0,
) -> torch.Tensor:
    """log pi(y_t | x, y_<t) of each response token, shape [B, R], 0 where `response_mask` is 0.

    `input_ids` / `attention_mask` are [B, P + R] with the response in the last R columns; `response_mask` is
    [B, R]. The logits at column j predict the token at column j + 1, hence the one-column shift.
    `temperature` must match the sampling temperature, so these are log-probs of the sampling distribution.
    """
    num_response = response_mask.shape[1]
    logits = causal_lm_logits(model, input_ids, attention_mask, keep_last=num_response + 1)[:, :-1]
    logits = logits / temperature
    tokens = input_ids[:, -num_response:]
    # gather - logsumexp avoids materialising a second [B, R, V] tensor of log-softmax values
    logp = logits.gather(-1, tokens.unsqueeze(-1)).squeeze(-1) - torch.logsumexp(logits, dim=-1)
    return logp * response_mask.to(logp.dtype)


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


def _cache_argument(model: PreTrainedModel) -> str:
    """The forward argument that takes the KV cache: `cache` from transformers 5.x (where `past_key_values` is
    deprecated and warns), `past_key_values` before."""
    return "cache" if _accepts(model, "cache") else "past_key_values"


def _returned_cache(output):
    cache = getattr(output, "cache", None)  # transformers >= 5.x; reading `past_key_values` there warns
    return output.past_key_values if cache is None else cache


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
    cache_argument = _cache_argument(model)

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
            use_cache=True,
            **{cache_argument: _returned_cache(out)},
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
        finished=finished,
    )


def build_llama(
    tokenizer: PreTrainedTokenizerBase,
    *,
    hidden_size: int,
    intermediate_size: int,
    num_layers: int,
    num_heads: int,
    max_positions: int,
    num_kv_heads: int | None = None,
    tie_word_embeddings: bool = False,
    seed: int = 0,
) -> LlamaForCausalLM:
    """A Llama causal LM sized by the arguments, randomly initialised after `torch.manual_seed(seed)`, with the
    tokenizer's vocabulary size and special-token ids; `num_kv_heads` defaults to `num_heads` (no GQA). The one
    place a Llama is built from a config: the demo's policy (`rewardkit.world`), `rewardkit.testing` for tests and
    benchmarks."""
    torch.manual_seed(seed)
    model_config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        intermediate_size=intermediate_size,
        num_hidden_layers=num_layers,
        num_attention_heads=num_heads,
        num_key_value_heads=num_kv_heads or num_heads,
        max_position_embeddings=max_positions,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=tie_word_embeddings,
    )
    return LlamaForCausalLM(model_config)
