"""Packed forward for decoder reward models: no padding, and each shared prefix (a group's prompt) computed once.

The K responses of a preference group (or the n samples of best-of-n) start with the same prompt tokens. A causal
decoder's hidden state at position t depends only on tokens 0..t, so sequences that share their first P tokens
have identical states there: computing them once is exact. Such sequences form a tree

    [ shared prefix | rest of sequence 1 | rest of sequence 2 | ... ]

with position ids that restart after the prefix for every continuation, and an attention mask under which
continuation i sees the prefix and itself (causally), never another continuation. Trees, and sequences that share
nothing, are then packed several to a row (first-fit, rows no wider than the widest sequence or tree), so one
forward over a few dense rows replaces a padded batch. Rewards are read at each sequence's reward positions (its
last token for an outcome RM, the token ending each step for a process RM; a position inside a shared prefix is
read there, where every sequence sharing it has the same state), and gradients reach a shared prefix from every
response. Rewards and gradients equal the plain padded forward's up to float rounding (tests/perf).

Prefixes are found from the token ids (sorted sequences, common prefixes of neighbours), never from recorded
prompt lengths, so they are right where truncation cut a prompt differently per response. A tree's attention is
dense over its width, so a cost model decides how many continuations share one copy of a prefix.

    rewards = model(input_ids, attention_mask, share_prefix=True)   # RewardModel.forward packs through here
    rewards = forward_groups(model, batch)                          # the same, on a collate_groups batch

RewardModel.forward shares prefixes by default when no gradient is recorded (scoring, evaluation, serving) and
packs batches that are mostly padding; training shares them too (TrainConfig.share_prefix, on by default). Where
the decoder's layers are laid out like Llama's, the last layer runs only at reward tokens (`last_layer`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import torch

from rewardkit.data.collate import pad_sequences
from rewardkit.model.interface import RewardBackbone
from rewardkit.model.last_layer import backbone_at_reward_tokens, supports_last_layer_skip
from rewardkit.model.pooling import decoder_head

# Time per attention FLOP under a dense mask relative to the linear layers' (softmax and masking are memory-bound):
# 0.9-1.35 measured for the benchmark model on CPU (`python benchmarks/train_throughput.py --calibrate`).
ATTENTION_OVERHEAD = 1.25
MIN_SHARED_PREFIX = 8  # shorter common prefixes are not worth a tree
SUPPORTED_ATTENTION = ("sdpa", "eager")  # implementations that take a custom 4D mask
# Decoders whose positions come only from position_ids (rotary) and that use a given 4D mask unchanged. Others
# (ALiBi from the mask, learned positions counted from the mask, sliding windows) keep the padded forward.
PACKABLE_MODEL_TYPES = frozenset({"llama", "mistral", "qwen2", "qwen3", "gemma", "phi3", "olmo", "olmo2", "granite"})


@dataclass(frozen=True)
class PackingCost:
    """Forward cost of W tokens attending densely to each other: W * token (linear layers) + W^2 * pair."""

    token: float
    pair: float

    @classmethod
    def for_config(cls, config) -> PackingCost:
        # From the config, not the parameters: under FSDP / ZeRO-3 a process holds only a shard of them.
        d, layers = config.hidden_size, config.num_hidden_layers
        intermediate = getattr(config, "intermediate_size", None) or 4 * d
        return cls(token=2.0 * layers * (4 * d * d + 3 * d * intermediate), pair=4.0 * d * layers * ATTENTION_OVERHEAD)

    def width(self, width: int) -> float:
        return self.token * width + self.pair * width * width


@dataclass
class Tree:
    """A prefix computed once and the continuations that attend to it; no prefix = plain sequences."""

    prefix: list[int]
    continuations: list[list[int]] = field(default_factory=list)
    sequences: list[int] = field(default_factory=list)  # input index of the sequence each continuation ends

    @property
    def width(self) -> int:
        return len(self.prefix) + sum(len(c) for c in self.continuations)


def supports_packing(model: RewardBackbone) -> bool:
    """Causal decoders of a known kind whose attention takes a custom 4D mask, without a sliding window narrower
    than the model's max_length (the packed masks carry no window; a wider one never cuts a sequence's attention,
    as in Mistral-7B-v0.1's 4096 tokens with a max_length of 4096 or less)."""
    config = model.hf_model.config
    window = getattr(config, "sliding_window", None) if getattr(config, "use_sliding_window", True) else None
    return (
        model.is_decoder
        and getattr(config, "model_type", None) in PACKABLE_MODEL_TYPES
        and getattr(config, "_attn_implementation", None) in SUPPORTED_ATTENTION
        and (window is None or window >= model.max_length)
    )


# --------------------------------------------------------------------------------------------------- planning
def prefix_clusters(sequences: Sequence[Sequence[int]], min_prefix: int = MIN_SHARED_PREFIX) -> list[list[int]]:
    """Groups of sequence indices sharing a prefix worth computing once (a singleton shares nothing).

    Sorting puts shared prefixes next to each other. A run of neighbours sharing >= `min_prefix` tokens is one
    cluster, unless splitting it where the shared part is shortest saves more prefix tokens (a system prompt common
    to all, then longer per-question prompts: the per-question clusters win).
    """
    order = sorted(range(len(sequences)), key=lambda i: tuple(sequences[i]))
    neighbour = _neighbour_prefix_lengths([sequences[i] for i in order])
    clusters, start = [], 0
    for position in range(1, len(order) + 1):
        if position == len(order) or neighbour[position - 1] < min_prefix:
            clusters += _split_nested(order[start:position], neighbour[start : position - 1])
            start = position
    return clusters


def _neighbour_prefix_lengths(sorted_sequences: Sequence[Sequence[int]], chunk: int = 4096) -> list[int]:
    """Common prefix length of each sequence with the next (one padded comparison per chunk of sequences)."""
    lengths: list[int] = []
    for start in range(0, len(sorted_sequences) - 1, chunk):
        ids, mask = pad_sequences(sorted_sequences[start : start + chunk + 1], pad_token_id=-1)
        same = (ids[1:] == ids[:-1]) & mask[1:].bool() & mask[:-1].bool()
        lengths += same.long().cumprod(dim=1).sum(dim=1).tolist()
    return lengths


def _split_nested(run: list[int], neighbour: list[int]) -> list[list[int]]:
    """Split a sorted run where its shared prefix is shortest if the parts' longer prefixes save more tokens."""
    if len(run) < 2:
        return [run]
    shortest = min(neighbour)
    bounds = [0, *(i + 1 for i, length in enumerate(neighbour) if length == shortest), len(run)]
    parts = [(run[a:b], neighbour[a : b - 1]) for a, b in zip(bounds, bounds[1:], strict=False)]
    if sum((len(p) - 1) * min(n) for p, n in parts if len(p) > 1) <= (len(run) - 1) * shortest:
        return [run]
    return [cluster for part, part_neighbour in parts for cluster in _split_nested(part, part_neighbour)]


def plan_trees(
    sequences: Sequence[Sequence[int]], clusters: Sequence[Sequence[int]], cost: PackingCost
) -> list[Tree]:
    """One tree per cluster and its shared prefix; a continuation joins the current tree only if that costs less
    than forwarding its sequence alone (a tree's attention grows with the square of its width)."""
    trees: list[Tree] = []
    for cluster in clusters:
        members = [list(sequences[i]) for i in cluster]
        shared = _shared_prefix_length(members) if len(members) > 1 else 0
        tree = None
        for index, sequence in zip(cluster, members, strict=True):
            rest = sequence[shared:]
            if tree is not None and cost.width(tree.width + len(rest)) - cost.width(tree.width) < cost.width(
                len(sequence)
            ):
                tree.continuations.append(rest)
                tree.sequences.append(index)
                continue
            tree = Tree(sequence[:shared], [rest], [index])
            trees.append(tree)
    # A tree with one continuation is just its sequence.
    return [Tree([], [t.prefix + t.continuations[0]], t.sequences) if len(t.sequences) == 1 else t for t in trees]


def _shared_prefix_length(sequences: Sequence[Sequence[int]]) -> int:
    """Longest common prefix, leaving each sequence at least one token of its own (its reward token)."""
    limit = min(len(s) for s in sequences) - 1
    length = 0
    while length < limit and all(s[length] == sequences[0][length] for s in sequences):
        length += 1
    return length


def pack_rows(widths: Sequence[int], capacity: int) -> list[list[int]]:
    """First-fit decreasing: item indices per row, each row's widths summing to at most `capacity`."""
    rows: list[list[int]] = []
    free: list[int] = []
    for index in sorted(range(len(widths)), key=lambda i: widths[i], reverse=True):
        row = next((r for r, room in enumerate(free) if room >= widths[index]), None)
        if row is None:
            rows.append([])
            free.append(capacity)
            row = len(rows) - 1
        rows[row].append(index)
        free[row] -= widths[index]
    return rows


def _layout_cost(trees: Sequence[Tree], rows: Sequence[Sequence[int]], cost: PackingCost) -> float:
    width = max(sum(trees[t].width for t in row) for row in rows)
    plain = all(len(row) == 1 and len(trees[row[0]].sequences) == 1 for row in rows)
    return len(rows) * (cost.token * width + cost.pair * width * width * (0.5 if plain else 1.0))


# --------------------------------------------------------------------------------------------------- forward
@dataclass
class PackedBatch:
    input_ids: torch.Tensor  # [rows, width]
    position_ids: torch.Tensor  # [rows, width]
    tree_ids: torch.Tensor  # [rows, width] which tree of the row a token belongs to; -1 = padding
    segments: torch.Tensor  # [rows, width] 0 = the tree's prefix, i = its i-th continuation
    reward_rows: torch.Tensor  # [n] row and column of each reward token
    reward_columns: torch.Tensor
    reward_index: list[int]  # [n] where each reward goes in the output (input sequences' rewards, in order)
    num_tokens: int  # real (non-padding) tokens computed
    plain: bool  # one whole sequence per row, right-padded: the causal mask alone is right for every real token


def plan(sequences: Sequence[Sequence[int]], cost: PackingCost, share_prefix: bool = True) -> list[Tree]:
    clusters = prefix_clusters(sequences) if share_prefix else [[i] for i in range(len(sequences))]
    return plan_trees(sequences, clusters, cost)


def pack_trees(
    trees: Sequence[Tree],
    pad_token_id: int,
    cost: PackingCost,
    reward_positions: Sequence[Sequence[int]] | None = None,
) -> PackedBatch:
    """Lay trees out in rows and build the forward's tensors, choosing the cheapest layout: rows filled first-fit
    (as wide as the widest tree), one tree per row, or every sequence whole in its own row. Rows of one plain
    sequence need no mask, and sdpa then skips the attention above the diagonal, which can be worth more than
    the padding or the shared prefix saved (batches of similar lengths, prefixes shared by chance).

    `reward_positions[i]`: where sequence i's rewards are read (default: its last token); the output holds
    sequence 0's rewards, then sequence 1's, and so on."""
    whole = [Tree([], [t.prefix + c], [i]) for t in trees for c, i in zip(t.continuations, t.sequences, strict=True)]
    layouts = [
        (trees, [[t] for t in range(len(trees))]),
        (trees, pack_rows([tree.width for tree in trees], capacity=max(tree.width for tree in trees))),
        (whole, [[t] for t in range(len(whole))]),
    ]
    trees, rows = min(layouts, key=lambda layout: _layout_cost(*layout, cost))
    positions = _positions_per_sequence(trees, reward_positions)
    first_output = [0]
    for sequence_positions in positions:
        first_output.append(first_output[-1] + len(sequence_positions))
    widths = [tree.width for tree in trees]
    shape = (len(rows), max(sum(widths[t] for t in row) for row in rows))
    input_ids = torch.full(shape, pad_token_id, dtype=torch.long)
    position_ids = torch.zeros(shape, dtype=torch.long)
    tree_ids = torch.full(shape, -1, dtype=torch.long)
    segments = torch.zeros(shape, dtype=torch.long)
    reward_rows, reward_columns, reward_index = [], [], []
    for r, row in enumerate(rows):
        column = 0
        for t in row:
            tree = trees[t]
            prefix_start, prefix_length = column, len(tree.prefix)
            ends = zip(tree.continuations, tree.sequences, strict=True)
            spans = [(tree.prefix, 0, None)] + [(rest, s, index) for s, (rest, index) in enumerate(ends, 1)]
            for tokens, segment, index in spans:
                end = column + len(tokens)
                first = prefix_length if segment else 0
                input_ids[r, column:end] = torch.tensor(tokens, dtype=torch.long)
                position_ids[r, column:end] = torch.arange(first, first + len(tokens))
                tree_ids[r, column:end] = t
                segments[r, column:end] = segment
                if index is not None:
                    for slot, position in enumerate(positions[index]):
                        # A position inside the shared prefix is read there: its state is the same for every
                        # sequence of the tree.
                        inside = position < prefix_length
                        reward_rows.append(r)
                        reward_columns.append(prefix_start + position if inside else column + position - first)
                        reward_index.append(first_output[index] + slot)
                column = end
        # Padding continues the positions, so transformers sees no new sequence start there (packed-sequence
        # detection would otherwise build a mask where none is needed).
        last = int(position_ids[r, column - 1])
        position_ids[r, column:] = torch.arange(last + 1, last + 1 + shape[1] - column)
    plain = all(len(row) == 1 and len(trees[row[0]].sequences) == 1 for row in rows)
    return PackedBatch(
        input_ids, position_ids, tree_ids, segments, torch.tensor(reward_rows), torch.tensor(reward_columns),
        reward_index, int(sum(widths)), plain,
    )  # fmt: skip


def _positions_per_sequence(
    trees: Sequence[Tree], reward_positions: Sequence[Sequence[int]] | None
) -> list[Sequence[int]]:
    """Each input sequence's reward positions, by input index; its last token when none are given."""
    lengths = {index: len(tree.prefix) + len(rest) for tree in trees
               for rest, index in zip(tree.continuations, tree.sequences, strict=True)}  # fmt: skip
    if reward_positions is None:
        return [[lengths[i] - 1] for i in range(len(lengths))]
    for index, positions in enumerate(reward_positions):
        if any(not 0 <= p < lengths[index] for p in positions):
            raise ValueError(f"reward positions {list(positions)} fall outside sequence {index} "
                             f"({lengths[index]} tokens)")
    return list(reward_positions)


def tree_attention_mask(tree_ids: torch.Tensor, segments: torch.Tensor) -> torch.Tensor:
    """[rows, 1, W, W] boolean mask: causal, within one tree, and a continuation sees only its tree's prefix
    (segment 0) and itself. Padding attends to itself only, so no softmax row is empty (no NaN)."""
    width, device = tree_ids.shape[1], tree_ids.device
    causal = torch.ones(width, width, dtype=torch.bool, device=device).tril()
    same_tree = tree_ids[:, :, None] == tree_ids[:, None, :]
    query, key = segments[:, :, None], segments[:, None, :]
    real = tree_ids >= 0
    visible = causal & same_tree & ((key == 0) | (key == query)) & real[:, :, None]
    padding = torch.eye(width, dtype=torch.bool, device=device) & ~real[:, :, None]
    return (visible | padding).unsqueeze(1)


def forward_packed(model: RewardBackbone, packed: PackedBatch) -> torch.Tensor:
    """Raw rewards in `packed.reward_rows/columns` order, from one forward of the backbone."""
    hf_model, device = model.hf_model, model.device
    # Rows of one right-padded sequence need no mask under sdpa: causal attention is exact for every real token,
    # and without a mask sdpa skips the blocks above the diagonal. Eager attention is causal only through a mask.
    eager = hf_model.config._attn_implementation == "eager"
    mask = None
    if eager or not packed.plain:
        mask = tree_attention_mask(packed.tree_ids.to(device), packed.segments.to(device))
    if eager:  # eager adds the mask to the scores
        blocked = torch.finfo(hf_model.dtype).min
        mask = torch.zeros(mask.shape, dtype=hf_model.dtype, device=device).masked_fill(~mask, blocked)
    backbone = getattr(hf_model, hf_model.base_model_prefix)
    input_ids, position_ids = packed.input_ids.to(device), packed.position_ids.to(device)
    rows, columns = packed.reward_rows.to(device), packed.reward_columns.to(device)
    if supports_last_layer_skip(backbone):
        pooled = backbone_at_reward_tokens(backbone, input_ids, mask, position_ids, rows, columns)
    else:
        hidden = backbone(input_ids=input_ids, attention_mask=mask, position_ids=position_ids, use_cache=False)
        pooled = hidden.last_hidden_state[rows, columns]
    return decoder_head(hf_model, pooled)


def packed_rewards(
    model: RewardBackbone,
    sequences: Sequence[Sequence[int]],
    share_prefix: bool = True,
    reward_positions: Sequence[Sequence[int]] | None = None,
) -> torch.Tensor:
    """Raw rewards of token-id sequences from one packed forward (differentiable): one per sequence (its last
    token), or one per entry of `reward_positions`, sequence by sequence."""
    cost = PackingCost.for_config(model.hf_model.config)
    packed = pack_trees(plan(sequences, cost, share_prefix), model.tokenizer.pad_token_id, cost, reward_positions)
    rewards = forward_packed(model, packed)
    inverse = torch.empty(len(packed.reward_index), dtype=torch.long)
    inverse[torch.tensor(packed.reward_index)] = torch.arange(len(packed.reward_index))
    return rewards[inverse.to(rewards.device)]  # a gather, not an in-place write: autograd stays simple


def scoring_batches(model: RewardBackbone, sequences: Sequence[Sequence[int]], batch_size: int) -> list[list[int]]:
    """Sequence indices per forward for inference: sequences sharing a prefix stay together, and trees of similar
    width share a batch (little padding; batches of plain sequences keep sdpa's causal fast path). At most
    `batch_size` sequences per batch, unless one tree alone holds more."""
    trees = plan(sequences, PackingCost.for_config(model.hf_model.config))
    trees.sort(key=lambda tree: tree.width, reverse=True)
    batches: list[list[int]] = [[]]
    for tree in trees:
        if batches[-1] and len(batches[-1]) + len(tree.sequences) > batch_size:
            batches.append([])
        batches[-1] += tree.sequences
    return [batch for batch in batches if batch]


def unpad(input_ids: torch.Tensor, attention_mask: torch.Tensor) -> list[list[int]]:
    """The real tokens of each row (left or right padding). One copy of each tensor to the host, not one per row
    (a synchronising transfer each on a GPU); a no-op on the CPU."""
    input_ids, keep = input_ids.cpu(), attention_mask.cpu().bool()
    return [row[row_keep].tolist() for row, row_keep in zip(input_ids, keep, strict=True)]


def forward_groups(model: RewardBackbone, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """The rewards of a collated batch (`collate_groups`, `collate_steps`), each group's prompt computed once:
    the same as `model(batch["input_ids"], batch["attention_mask"], share_prefix=True, reward_positions=...)`."""
    return model(batch["input_ids"], batch["attention_mask"], share_prefix=True,
                 reward_positions=batch.get("reward_positions"))
