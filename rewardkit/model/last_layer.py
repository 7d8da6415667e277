"""The decoder's last layer, computed only at the tokens rewards are read from.

A reward model reads one hidden state per sequence: the last layer's output at the sequence's last token. The
last layer needs every position's input only for its keys and values; queries, attention, output projection and
MLP are needed at the reward tokens alone. Skipping them everywhere else saves about (1 - kv share) / L of the
forward and backward of an L-layer model: ~22% of the 4-layer benchmark model's, ~3% of a 32-layer model's.
Exact up to float rounding (tests/perf).

    hidden = backbone_at_reward_tokens(backbone, input_ids, mask, position_ids, rows, columns)  # [n, hidden]

Only for decoder layers laid out like Llama's (input norm -> attention with q/k/v/o projections and rotary
positions, optional per-head q/k norms -> residual -> post-attention norm -> MLP -> residual), unwrapped and
unhooked, whose parameters this process holds whole (FSDP and ZeRO-3 gather them and reduce their gradients in
hooks on the whole layer's call, which this bypasses: they keep the full forward).
"""

from __future__ import annotations

import sys

import torch
import torch.nn.functional as F

# Model types whose backbone forward is embed -> rotary -> layers -> norm, with the layer layout above.
LLAMA_LAYOUT_MODEL_TYPES = frozenset({"llama", "mistral", "qwen2", "qwen3"})


def supports_last_layer_skip(backbone: torch.nn.Module) -> bool:
    config = backbone.config
    if getattr(config, "model_type", None) not in LLAMA_LAYOUT_MODEL_TYPES:
        return False
    layer = backbone.layers[-1]
    attention = getattr(layer, "self_attn", None)
    if attention is None or not all(hasattr(layer, name) for name in ("input_layernorm", "post_attention_layernorm")):
        return False
    # The layer's own call is bypassed: nothing may hook it (FSDP2 and ZeRO-3 gather parameters and reduce gradients
    # in hooks; Accelerate's device-map hooks replace `forward` on the instance) or wrap it (FSDP1 wrappers, FSDP2's
    # swapped class live in torch's modules, not the model's).
    hooked = layer._forward_pre_hooks or layer._forward_hooks or "forward" in vars(layer)
    if hooked or type(layer).__module__ != type(attention).__module__:
        return False
    weight = getattr(getattr(attention, "q_proj", None), "weight", None)
    whole = (config.num_attention_heads * attention.head_dim, config.hidden_size)
    return type(weight) in (torch.Tensor, torch.nn.Parameter) and tuple(weight.shape) == whole


def backbone_at_reward_tokens(
    backbone: torch.nn.Module,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor | None,
    position_ids: torch.Tensor,
    rows: torch.Tensor,
    columns: torch.Tensor,
) -> torch.Tensor:
    """Final hidden states [n, hidden] at (rows[i], columns[i]). `attention_mask` is the layers' 4D mask
    [rows, 1, W, W] (boolean for sdpa, additive for eager) or None for causal rows."""
    hidden = backbone.embed_tokens(input_ids)
    position_embeddings = backbone.rotary_emb(hidden, position_ids)
    for layer in backbone.layers[:-1]:
        hidden = layer(hidden, attention_mask=attention_mask, position_ids=position_ids,
                       position_embeddings=position_embeddings)  # fmt: skip
    hidden = last_layer_at(backbone.layers[-1], hidden, attention_mask, position_embeddings, rows, columns)
    return backbone.norm(hidden)


def last_layer_at(
    layer: torch.nn.Module,
    hidden: torch.Tensor,
    attention_mask: torch.Tensor | None,
    position_embeddings: tuple[torch.Tensor, torch.Tensor],
    rows: torch.Tensor,
    columns: torch.Tensor,
) -> torch.Tensor:
    """The layer's output at the selected tokens: keys and values from every position, the rest from those only.

    The selected queries are laid out [rows, slots, ...] (slot = the i-th reward token of its row), so attention
    runs against each row's keys once, with no copy of them per query."""
    attention = layer.self_attn
    num_rows, width, _ = hidden.shape
    head_dim = attention.head_dim
    rotary = sys.modules[type(attention).__module__].apply_rotary_pos_emb  # the model's own rotary convention
    cos, sin = position_embeddings

    normed = layer.input_layernorm(hidden)
    keys = attention.k_proj(normed).view(num_rows, width, -1, head_dim)
    values = attention.v_proj(normed).view(num_rows, width, -1, head_dim).transpose(1, 2)
    queries = attention.q_proj(normed[rows, columns]).view(len(rows), -1, head_dim)  # [n, heads, head_dim]
    if hasattr(attention, "k_norm"):  # Qwen3: RMSNorm over each head
        queries, keys = attention.q_norm(queries), attention.k_norm(keys)
    keys = keys.transpose(1, 2)
    _, keys = rotary(keys, keys, cos, sin)
    queries, _ = rotary(queries, queries, cos[rows, columns], sin[rows, columns])

    slots = _slots(rows, num_rows)
    num_slots = int(slots.max()) + 1
    padded = queries.new_zeros(num_rows, num_slots, *queries.shape[1:]).index_put((rows, slots), queries)
    mask = _query_mask(attention_mask, rows, columns, slots, num_rows, num_slots, width)
    attended = F.scaled_dot_product_attention(
        padded.transpose(1, 2), keys, values, attn_mask=mask, scale=attention.scaling,
        dropout_p=attention.attention_dropout if attention.training else 0.0,
        enable_gqa=keys.shape[1] != padded.shape[2],
    )  # fmt: skip  [rows, heads, slots, head_dim]
    attended = attended.transpose(1, 2)[rows, slots].reshape(len(rows), -1)

    hidden = hidden[rows, columns] + attention.o_proj(attended)
    return hidden + layer.mlp(layer.post_attention_layernorm(hidden))


def _slots(rows: torch.Tensor, num_rows: int) -> torch.Tensor:
    """Index of each selected token among the selected tokens of its row, in selection order."""
    order = torch.argsort(rows, stable=True)
    counts = torch.bincount(rows, minlength=num_rows)
    starts = torch.cumsum(counts, 0) - counts
    slots = torch.empty_like(rows)
    slots[order] = torch.arange(len(rows), device=rows.device) - starts[rows[order]]
    return slots


def _query_mask(
    attention_mask: torch.Tensor | None, rows: torch.Tensor, columns: torch.Tensor, slots: torch.Tensor,
    num_rows: int, num_slots: int, width: int,
) -> torch.Tensor:  # fmt: skip
    """[rows, 1, slots, W] boolean: each selected query sees what its token saw in the full layer; unused slots
    see key 0 only (an empty softmax row would give NaN)."""
    keys = torch.arange(width, device=rows.device)
    if attention_mask is None:  # causal rows
        seen = keys[None, :] <= columns[:, None]
    elif attention_mask.dtype == torch.bool:
        seen = attention_mask[rows, 0, columns]
    else:  # eager's additive mask
        seen = attention_mask[rows, 0, columns] == 0
    mask = torch.zeros(num_rows, num_slots, width, dtype=torch.bool, device=rows.device)
    mask[:, :, 0] = True
    mask[rows, slots] = seen
    return mask.unsqueeze(1)
