"""The fast paths compute what the plain padded forward computes: packing, shared prefixes, packed scoring.

Reference: `RewardModel.padded_forward`, one padded batch, every sequence computed in full. The packed forward
(several sequences per row, each shared prefix once) must give the same rewards and the same gradients of the
Bradley-Terry loss, within float rounding.
"""

from __future__ import annotations

import pytest
import torch

from rewardkit.data.collate import collate_groups, encode_dataset, pad_sequences
from rewardkit.data.loading import load_preferences
from rewardkit.model import RewardModel
from rewardkit.model.prefix_sharing import (
    PackingCost,
    forward_groups,
    pack_rows,
    pack_trees,
    plan,
    prefix_clusters,
    supports_packing,
)
from rewardkit.training.loss import bradley_terry_loss
from tests.conftest import ranking_records, write_jsonl

TOLERANCE = dict(atol=2e-5, rtol=1e-4)
PROMPT = "Human: Tell me about the quick brown fox and the lazy dog, and then about bread.\n\nAssistant:"


@pytest.fixture(scope="module")
def model(tiny_sft) -> RewardModel:
    torch.manual_seed(0)
    return RewardModel.from_sft(tiny_sft, max_length=128).eval()


@pytest.fixture(scope="module")
def ranking_batch(model, tmp_path_factory) -> dict[str, torch.Tensor]:
    """Three K-wise groups (K = 3, 4, 5) with long prompts, collated like the trainer does."""
    path = tmp_path_factory.mktemp("perf") / "ranks.jsonl"
    records = ranking_records(3, k=5)
    for record, k in zip(records, (3, 4, 5), strict=True):
        record["prompt"] = f"{PROMPT} {record['prompt']}"
        record["responses"], record["ranking"] = record["responses"][:k], [r for r in record["ranking"] if r < k]
    encoded = encode_dataset(load_preferences(str(write_jsonl(path, records))), model.tokenizer, model.max_length)
    return collate_groups(encoded.groups, model.tokenizer.pad_token_id)


def _sequences(model: RewardModel) -> list[tuple[int, ...]]:
    """Shared prompts, a prompt truncated differently per response, a duplicate, a sequence that is a prefix
    of another, and sequences sharing nothing."""
    pairs = [(PROMPT, " yes please, the fox is nice."), (PROMPT, " no thanks."), (PROMPT, " Why did the chicken?")]
    pairs += [("What is the capital of France?", " Paris"), ("Tell me a joke.", " No.")]
    pairs += [(PROMPT * 3, " a short reply"), (PROMPT * 3, " a much longer reply" * 12)]  # truncated differently
    sequences = [model.encode(prompt, response).input_ids for prompt, response in pairs]
    assert sequences[-1][:40] != sequences[-2][:40]
    return sequences + [sequences[0], sequences[1][:-2]]


def _grads(model: RewardModel) -> dict[str, torch.Tensor]:
    return {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}


def test_packed_rewards_equal_the_padded_forward(model):
    sequences = _sequences(model)
    for side in ("right", "left"):
        input_ids, attention_mask = pad_sequences(sequences, model.tokenizer.pad_token_id, padding_side=side)
        with torch.no_grad():
            expected = model.padded_forward(input_ids, attention_mask)
            for share_prefix in (False, True):
                rewards = model(input_ids, attention_mask, share_prefix=share_prefix)
                torch.testing.assert_close(rewards, expected, **TOLERANCE)


def test_shared_prefix_is_computed_once_per_group(model):
    sequences = _sequences(model)
    cost, pad = PackingCost.for_config(model.hf_model.config), model.tokenizer.pad_token_id
    packed = pack_trees(plan(sequences, cost), pad, cost)
    assert packed.num_tokens < sum(len(s) for s in sequences) - 2 * 20  # the 3 responses to PROMPT share it
    assert sorted(packed.reward_index) == list(range(len(sequences)))
    plain = pack_trees(plan(sequences, cost, share_prefix=False), pad, cost)
    assert plain.num_tokens == sum(len(s) for s in sequences)


def test_rows_are_packed_when_padding_costs_more_than_the_causal_fast_path_saves():
    sequences = [[7] * 100, [8] * 50, [9] * 50, [10] * 30, [11] * 20]
    linear_heavy, attention_heavy = PackingCost(token=1e6, pair=1.0), PackingCost(token=1.0, pair=1e6)
    packed = pack_trees(plan(sequences, linear_heavy, share_prefix=False), 0, linear_heavy)
    assert packed.input_ids.shape == (3, 100) and not packed.plain  # [100] [50 50] [30 20]: no padding left
    one_each = pack_trees(plan(sequences, attention_heavy, share_prefix=False), 0, attention_heavy)
    assert one_each.input_ids.shape == (5, 100) and one_each.plain  # no mask: sdpa skips the upper triangle


@pytest.mark.parametrize("attention", ["sdpa", "eager"])
def test_rewards_and_gradients_of_the_loss_equal_the_plain_path(model, ranking_batch, attention):
    model.hf_model.config._attn_implementation = attention
    try:
        assert supports_packing(model)
        model.zero_grad()
        plain = model.padded_forward(ranking_batch["input_ids"], ranking_batch["attention_mask"])
        bradley_terry_loss(plain, ranking_batch).loss.backward()
        expected = _grads(model)

        model.zero_grad()
        shared = forward_groups(model, ranking_batch)
        bradley_terry_loss(shared, ranking_batch).loss.backward()
        got = _grads(model)
    finally:
        model.hf_model.config._attn_implementation = "sdpa"
        model.zero_grad()
    torch.testing.assert_close(shared, plain, **TOLERANCE)
    assert got.keys() == expected.keys() and len(got) > 10  # every layer got its gradient, the prompt's too
    for name in expected:
        torch.testing.assert_close(got[name], expected[name], atol=1e-5, rtol=1e-3, msg=name)


def test_score_encoded_equals_padded_forward_in_input_order(model):
    sequences = _sequences(model) * 3
    expected = []
    with torch.no_grad():
        for sequence in sequences:  # one by one: no padding at all
            ids = torch.tensor([sequence])
            expected.append(model.padded_forward(ids, torch.ones_like(ids)))
    for batch_size in (1, 4, 64):
        rewards = model.score_encoded(sequences, batch_size=batch_size)
        torch.testing.assert_close(rewards, torch.cat(expected), **TOLERANCE)


def test_models_that_cannot_pack_keep_the_padded_forward(model):
    sequences = _sequences(model)
    input_ids, attention_mask = pad_sequences(sequences, model.tokenizer.pad_token_id)
    with torch.no_grad():
        expected = model.padded_forward(input_ids, attention_mask)
    model.hf_model.config.sliding_window = 16  # a tree mask would ignore the window
    try:
        assert not supports_packing(model)
        torch.testing.assert_close(model.score_encoded(sequences), expected, **TOLERANCE)
        model.hf_model.config.sliding_window = model.max_length  # wide enough: no sequence reaches past it
        assert supports_packing(model)
    finally:
        del model.hf_model.config.sliding_window
    assert supports_packing(model)


def test_prefix_clusters_prefer_longer_nested_prefixes():
    system = list(range(100, 140))  # a 40-token system prompt common to all
    questions = [[1000 + q] * 30 for q in range(3)]  # three 30-token questions, two answers each
    sequences = [system + q + [7, a] for q in questions for a in (1, 2)] + [[5, 6, 7]]
    clusters = sorted(sorted(c) for c in prefix_clusters(sequences))
    assert clusters == [[0, 1], [2, 3], [4, 5], [6]]


def test_pack_rows_first_fit_respects_capacity():
    widths = [7, 5, 4, 3, 3, 2, 1]
    rows = pack_rows(widths, capacity=7)
    assert sorted(i for row in rows for i in row) == list(range(len(widths)))
    assert all(sum(widths[i] for i in row) <= 7 for row in rows)
    assert len(rows) == 4  # sum 25 needs at least 4 rows of 7
