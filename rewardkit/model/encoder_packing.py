"""Encoder reward models (BERT-like) without padding: packed rows under a block-diagonal mask, or length buckets.

An encoder reads its reward at [CLS]: BERT's head pools the first token (dense + tanh), RoBERTa's and ELECTRA's
classification heads take it directly. Random batches of HH-RLHF dialogues are ~63% padding at MiniLM's
tokenization; computing none of it is exact, because every row's tokens attend only to their own row's real tokens.
Two layouts do it:

- packed: sequences side by side in rows no wider than the longest one (first-fit decreasing), position ids
  restarting at every sequence, and a block-diagonal mask: each token attends to every token of its own sequence
  (bidirectionally) and to nothing else. One forward, nearly no padding, but each row's attention is computed over
  its whole width (the CPU sdpa kernel computes the masked-out blocks too).
- bucketed: sequences sorted by length and cut into consecutive buckets, each forwarded as its own padded batch.
  Works for every encoder (no position ids or 4D mask needed), attention stays within each sequence; it costs a
  forward per bucket.

A cost model (`encoder_cost`: linear work per token, attention per (query, key) pair, plus a fixed cost per forward)
picks the cheapest of one padded batch, buckets and packed rows. Rewards and gradients equal the padded forward's up
to float rounding (tests/perf/test_encoder_packing.py).

Prompts are never shared here: in a bidirectional encoder a prompt's hidden states depend on the response after it,
so two responses' copies of the same prompt differ and computing them once would change the rewards.

    rewards = encoder_rewards(model, sequences)                           # one per sequence, read at [CLS]
    rewards = encoder_rewards(model, sequences, reward_positions=[[5, 9], [7]])  # token-level heads: at positions
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from transformers import PreTrainedModel

from rewardkit.model.interface import RewardBackbone
from rewardkit.model.prefix_sharing import ATTENTION_OVERHEAD, PackingCost, pack_rows

SUPPORTED_ATTENTION = ("sdpa", "eager")  # implementations that take a custom 4D mask
# A forward and its backward cost about this many tokens' work beyond the tokens themselves (per-layer kernel
# launches, the dense embedding gradient of each forward): buckets are merged unless the padding they save is worth
# more. Rough: a 1 x 8 forward + backward of MiniLM-L6 on CPU takes about as long as ~100 tokens in a large batch.
FORWARD_OVERHEAD_TOKENS = 128


def encoder_cost(config) -> PackingCost:
    """Work per token (linear layers: attention projections and a two-matrix MLP) and per attended pair."""
    d, layers = config.hidden_size, config.num_hidden_layers
    intermediate = getattr(config, "intermediate_size", None) or 4 * d
    return PackingCost(token=2.0 * layers * (4 * d * d + 2 * d * intermediate),
                       pair=4.0 * d * layers * ATTENTION_OVERHEAD)  # fmt: skip


def first_position_id(config) -> int | None:
    """The position id of a sequence's first token for encoders whose embeddings take explicit position ids
    (RoBERTa counts from padding_idx + 1), None for encoders that cannot be packed."""
    model_type = getattr(config, "model_type", None)
    if model_type in ("bert", "electra"):
        return 0
    if model_type in ("roberta", "xlm-roberta"):
        return config.pad_token_id + 1
    return None


def supports_encoder_packing(model: RewardBackbone) -> bool:
    """Bidirectional encoders of a known kind whose attention takes a custom 4D mask (packed rows). Every other
    encoder can still be bucketed."""
    config = model.hf_model.config
    return (
        not model.is_decoder
        and not getattr(config, "is_decoder", False)
        and first_position_id(config) is not None
        and getattr(config, "_attn_implementation", None) in SUPPORTED_ATTENTION
    )


# --------------------------------------------------------------------------------------------------- planning
@dataclass(frozen=True)
class EncoderLayout:
    """The forwards of a batch; each forward is a list of rows, each row the sequences laid side by side in it."""

    forwards: list[list[list[int]]]
    name: str  # "padded", "bucketed" or "packed"


def layout_cost(lengths: Sequence[int], forwards: list[list[list[int]]], cost: PackingCost) -> float:
    """Model work of the layout: each forward computes all its rows at the width of the widest (attention over the
    whole row: bidirectional, and a packed row's mask does not make the kernel skip blocks)."""
    total = 0.0
    for rows in forwards:
        width = max(sum(lengths[i] for i in row) for row in rows)
        total += len(rows) * cost.width(width) + FORWARD_OVERHEAD_TOKENS * cost.token
    return total


def length_buckets(lengths: Sequence[int], cost: PackingCost) -> list[list[int]]:
    """Sequence indices per bucket: the cheapest cut of the length-sorted sequences into consecutive buckets
    (dynamic programming over the cut points; a bucket costs its size times its widest row, plus a forward)."""
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    best = [0.0] + [float("inf")] * len(order)  # best[j]: cheapest cut of the j shortest sequences
    cut = [0] * (len(order) + 1)
    for end in range(1, len(order) + 1):
        width_cost = cost.width(lengths[order[end - 1]]) + 0.0
        for start in range(end):
            candidate = best[start] + (end - start) * width_cost + FORWARD_OVERHEAD_TOKENS * cost.token
            if candidate < best[end]:
                best[end], cut[end] = candidate, start
    buckets, end = [], len(order)
    while end > 0:
        buckets.append(order[cut[end] : end])
        end = cut[end]
    return buckets[::-1]


def plan_layout(lengths: Sequence[int], cost: PackingCost, packable: bool) -> EncoderLayout:
    """The cheapest of: one padded batch, length buckets, and (for packable encoders) packed rows."""
    candidates = [
        EncoderLayout([[[i] for i in range(len(lengths))]], "padded"),
        EncoderLayout([[[i] for i in bucket] for bucket in length_buckets(lengths, cost)], "bucketed"),
    ]
    if packable:
        rows = pack_rows(lengths, capacity=max(lengths))
        candidates.append(EncoderLayout([rows], "packed"))
    return min(candidates, key=lambda layout: layout_cost(lengths, layout.forwards, cost))


# --------------------------------------------------------------------------------------------------- forward
@dataclass
class EncoderRows:
    """One forward's tensors. `segments` numbers the sequences of each row (-1 = padding)."""

    input_ids: torch.Tensor  # [rows, width]
    position_ids: torch.Tensor
    segments: torch.Tensor
    reward_rows: torch.Tensor  # [n] where each reward is read
    reward_columns: torch.Tensor
    reward_index: list[int]  # [n] the reward's place in the output (sequence after sequence, position after position)

    @property
    def packed(self) -> bool:
        return bool((self.segments.max(dim=1).values > 0).any())


def build_rows(
    sequences: Sequence[Sequence[int]],
    rows: list[list[int]],
    pad_token_id: int,
    first_position: int,
    reward_positions: Sequence[Sequence[int]],
    reward_offsets: Sequence[int],
) -> EncoderRows:
    """`reward_positions[i]`: offsets into sequence i where its rewards are read; `reward_offsets[i]`: the output
    index of its first reward."""
    width = max(sum(len(sequences[i]) for i in row) for row in rows)
    input_ids = torch.full((len(rows), width), pad_token_id, dtype=torch.long)
    position_ids = torch.full((len(rows), width), first_position, dtype=torch.long)
    segments = torch.full((len(rows), width), -1, dtype=torch.long)
    reward_rows, reward_columns, reward_index = [], [], []
    for r, row in enumerate(rows):
        column = 0
        for segment, i in enumerate(row):
            length = len(sequences[i])
            input_ids[r, column : column + length] = torch.tensor(sequences[i], dtype=torch.long)
            position_ids[r, column : column + length] = torch.arange(first_position, first_position + length)
            segments[r, column : column + length] = segment
            for k, offset in enumerate(reward_positions[i]):
                reward_rows.append(r)
                reward_columns.append(column + offset)
                reward_index.append(reward_offsets[i] + k)
            column += length
    return EncoderRows(input_ids, position_ids, segments, torch.tensor(reward_rows), torch.tensor(reward_columns),
                       reward_index)  # fmt: skip


def block_diagonal_mask(segments: torch.Tensor) -> torch.Tensor:
    """[rows, 1, W, W] boolean: a token sees every token of its own sequence; padding sees itself only (no empty
    softmax row, no NaN)."""
    real = segments >= 0
    same = (segments[:, :, None] == segments[:, None, :]) & real[:, :, None]
    padding = torch.eye(segments.shape[1], dtype=torch.bool, device=segments.device) & ~real[:, :, None]
    return (same | padding).unsqueeze(1)


def is_token_level(hf_model: PreTrainedModel) -> bool:
    """A token-classification head (a reward at every token: process RMs) rather than a pooled sequence head."""
    return type(hf_model).__name__.endswith("ForTokenClassification")


def encoder_head(hf_model: PreTrainedModel, hidden: torch.Tensor) -> torch.Tensor:
    """The model's own head on the final hidden states at the reward tokens, [n, hidden] -> [n]. Sequence heads see
    each as a one-token sequence: BERT pools it (dense + tanh) then applies dropout and the classifier; RoBERTa's and
    ELECTRA's classification heads take the first token themselves."""
    if is_token_level(hf_model):
        return hf_model.classifier(hf_model.dropout(hidden)).squeeze(-1)
    pooler = getattr(getattr(hf_model, hf_model.base_model_prefix), "pooler", None)
    if pooler is not None:
        return hf_model.classifier(hf_model.dropout(pooler(hidden[:, None, :]))).squeeze(-1)
    return hf_model.classifier(hidden[:, None, :]).squeeze(-1)


def forward_rows(model: RewardBackbone, batch: EncoderRows) -> torch.Tensor:
    """Rewards at `batch.reward_rows/columns` from one forward of the backbone; where the layers are laid out like
    BERT's, the last layer runs only at the reward tokens."""
    hf_model, device = model.hf_model, model.device
    segments = batch.segments.to(device)
    # [rows, 1, W, W] for packed rows; [rows, 1, 1, W] (key padding only) for rows of one sequence.
    mask = block_diagonal_mask(segments) if batch.packed else (segments >= 0)[:, None, None, :]
    if hf_model.config._attn_implementation == "eager":  # eager adds the mask to the scores
        blocked = torch.finfo(hf_model.dtype).min
        mask = torch.zeros(mask.shape, dtype=hf_model.dtype, device=device).masked_fill(~mask, blocked)
    backbone = getattr(hf_model, hf_model.base_model_prefix)
    inputs = dict(input_ids=batch.input_ids.to(device), position_ids=batch.position_ids.to(device),
                  token_type_ids=torch.zeros_like(segments))  # fmt: skip
    rows, columns = batch.reward_rows.to(device), batch.reward_columns.to(device)
    if supports_encoder_last_layer_skip(backbone):
        hidden = backbone.embeddings(**inputs)
        if hasattr(backbone, "embeddings_project"):  # ELECTRA: embedding width -> hidden width
            hidden = backbone.embeddings_project(hidden)
        layers = backbone.encoder.layer
        for layer in layers[:-1]:
            hidden = layer(hidden, attention_mask=mask)
        return encoder_head(hf_model, encoder_layer_at(layers[-1], hidden, mask, rows, columns))
    hidden = backbone(attention_mask=mask, **inputs).last_hidden_state
    return encoder_head(hf_model, hidden[rows, columns])


# Encoder layers laid out like BERT's: attention.self (query / key / value), attention.output (dense, dropout,
# LayerNorm of the residual), intermediate, output (the same): their last layer can run at the reward tokens only.
BERT_LAYOUT_LAYERS = frozenset({"BertLayer", "RobertaLayer", "XLMRobertaLayer", "ElectraLayer"})


def supports_encoder_last_layer_skip(backbone: torch.nn.Module) -> bool:
    """Known BERT-like layers, unwrapped and unhooked (FSDP / ZeRO-3 / device-map hooks on a layer's call would be
    bypassed), without chunked feed-forward or cross-attention."""
    layers = getattr(getattr(backbone, "encoder", None), "layer", None)
    if not layers or not hasattr(backbone, "embeddings"):
        return False
    layer = layers[-1]
    hooked = layer._forward_pre_hooks or layer._forward_hooks or "forward" in vars(layer)
    return (
        type(layer).__name__ in BERT_LAYOUT_LAYERS
        and not hooked
        and not getattr(layer, "add_cross_attention", False)
        and not getattr(layer, "chunk_size_feed_forward", 0)
        and all(hasattr(layer.attention.self, name) for name in ("query", "key", "value"))
    )


def encoder_layer_at(
    layer: torch.nn.Module, hidden: torch.Tensor, mask: torch.Tensor, rows: torch.Tensor, columns: torch.Tensor
) -> torch.Tensor:
    """The layer's output [n, hidden] at the selected tokens only: keys and values from every token of the row,
    queries, attention output and feed-forward at the selected ones. Exact up to float rounding (tests/perf)."""
    attention = layer.attention.self
    heads, size = attention.num_attention_heads, attention.attention_head_size
    num_rows, width, _ = hidden.shape
    selected = hidden[rows, columns]
    queries = attention.query(selected).view(len(rows), heads, 1, size)
    # Each query gets its row's keys and values (a copy per query: n x W x hidden, bounded by the batch's tokens).
    keys = attention.key(hidden).view(num_rows, width, heads, size).transpose(1, 2)[rows]
    values = attention.value(hidden).view(num_rows, width, heads, size).transpose(1, 2)[rows]
    query_mask = mask[rows, :, columns if mask.shape[2] > 1 else 0].unsqueeze(2)  # [n, 1, 1, W]
    context = F.scaled_dot_product_attention(
        queries, keys, values, attn_mask=query_mask, scale=attention.scaling,
        dropout_p=attention.dropout.p if attention.training else 0.0,
    )  # fmt: skip
    attended = layer.attention.output(context.reshape(len(rows), heads * size), selected)
    return layer.output(layer.intermediate(attended), attended)


def forward_bucket(model: RewardBackbone, batch: EncoderRows) -> torch.Tensor:
    """Rewards from the model's own forward over a padded batch (encoders that cannot take packed rows)."""
    mask = (batch.segments >= 0).long().to(model.device)
    logits = model.hf_model(input_ids=batch.input_ids.to(model.device), attention_mask=mask).logits
    if is_token_level(model.hf_model):
        return logits[batch.reward_rows.to(model.device), batch.reward_columns.to(model.device), 0]
    return logits[batch.reward_rows.to(model.device), 0]


def encoder_rewards(
    model: RewardBackbone,
    sequences: Sequence[Sequence[int]],
    reward_positions: Sequence[Sequence[int]] | None = None,
) -> torch.Tensor:
    """Raw rewards of token-id sequences from the cheapest exact layout (differentiable). Without
    `reward_positions`: one reward per sequence, in input order, from the model's head at [CLS]. With them (a
    token-level head): one reward per given offset into its sequence, sequence after sequence."""
    if reward_positions is None:
        if is_token_level(model.hf_model):
            raise ValueError("a token-level head needs reward_positions")
        reward_positions = [[0]] * len(sequences)
    elif not is_token_level(model.hf_model) and any(list(p) != [0] for p in reward_positions):
        raise ValueError("this encoder's head pools [CLS]: it reads one reward per sequence, not rewards at positions")
    offsets = [0]
    for positions in reward_positions:
        offsets.append(offsets[-1] + len(positions))

    config = model.hf_model.config
    packable = supports_encoder_packing(model)
    layout = plan_layout([len(s) for s in sequences], encoder_cost(config), packable)
    pad_token_id = model.tokenizer.pad_token_id
    first_position = first_position_id(config) if packable else 0
    pieces, order = [], []
    for rows in layout.forwards:
        batch = build_rows(sequences, rows, pad_token_id, first_position, reward_positions, offsets)
        pieces.append(forward_rows(model, batch) if packable else forward_bucket(model, batch))
        order += batch.reward_index
    rewards = torch.cat(pieces)
    inverse = torch.empty(len(order), dtype=torch.long)
    inverse[torch.tensor(order)] = torch.arange(len(order))
    return rewards[inverse.to(rewards.device)]  # a gather, not an in-place write: autograd stays simple
