"""Encoders without padding compute what the padded forward computes: packed rows, length buckets, the cost model.

Reference: `RewardModel.padded_forward` (the model's own forward over one padded batch). Every layout must give
the same rewards and the same gradients of the Bradley-Terry loss within float rounding, for BERT, RoBERTa and
ELECTRA heads under sdpa and eager attention; encoders that cannot take packed rows are bucketed.
"""

from __future__ import annotations

import pytest
import torch
from transformers import AutoModelForTokenClassification

from rewardkit.data.collate import collate_groups, encode_dataset, pad_sequences
from rewardkit.data.loading import load_preferences
from rewardkit.model import RewardModel, encoder_packing
from rewardkit.model import reward_model as reward_model_module
from rewardkit.model.encoder_packing import (
    EncoderLayout,
    block_diagonal_mask,
    encoder_rewards,
    length_buckets,
    plan_layout,
    supports_encoder_last_layer_skip,
    supports_encoder_packing,
)
from rewardkit.model.prefix_sharing import PackingCost, pack_rows, unpad
from rewardkit.testing import save_tiny_encoder
from rewardkit.training.loss import bradley_terry_loss
from tests.conftest import single_thread_fixture, write_jsonl

single_thread = single_thread_fixture()
TOLERANCE = dict(atol=2e-5, rtol=1e-4)
PROMPT = "Human: Tell me about the quick brown fox and the lazy dog, and then about bread.\n\nAssistant:"
LAYOUTS = ("padded", "bucketed", "packed")


@pytest.fixture(scope="module", params=["bert", "roberta", "electra"])
def model(request, tmp_path_factory) -> RewardModel:
    directory = save_tiny_encoder(tmp_path_factory.mktemp(request.param), request.param)
    torch.manual_seed(0)
    return RewardModel.from_sft(directory, max_length=128).eval()


@pytest.fixture(scope="module")
def batch(model, tmp_path_factory) -> dict[str, torch.Tensor]:
    """Pairs of very different lengths (a long prompt repeated, short and long replies), collated like training."""
    records = [
        {"prompt": PROMPT * (1 + i % 3), "chosen": " yes please, the fox is nice." * (1 + i), "rejected": " no."}
        for i in range(6)
    ]
    path = write_jsonl(tmp_path_factory.mktemp("pairs") / "pairs.jsonl", records)
    encoded = encode_dataset(load_preferences(str(path)), model.tokenizer, model.max_length)
    return collate_groups(encoded.groups, model.tokenizer.pad_token_id)


def forced(name: str):
    """plan_layout replaced by one that always returns the named layout."""

    def plan(lengths, cost, packable):
        forwards = {
            "padded": [[[i] for i in range(len(lengths))]],
            "bucketed": [[[i] for i in bucket] for bucket in length_buckets(lengths, cost)],
            "packed": [pack_rows(lengths, capacity=max(lengths))],
        }[name]
        return EncoderLayout(forwards, name)

    return plan


def backbone_of(model: RewardModel) -> torch.nn.Module:
    return getattr(model.hf_model, model.hf_model.base_model_prefix)


def _grads(model: RewardModel) -> dict[str, torch.Tensor]:
    return {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}


@pytest.mark.parametrize("attention", ["sdpa", "eager"])
@pytest.mark.parametrize("layout", LAYOUTS)
def test_rewards_and_gradients_equal_the_padded_forward(model, batch, layout, attention, monkeypatch):
    assert supports_encoder_packing(model) and supports_encoder_last_layer_skip(backbone_of(model))
    monkeypatch.setattr(model.hf_model.config, "_attn_implementation", attention)
    monkeypatch.setattr(encoder_packing, "plan_layout", forced(layout))
    model.zero_grad()
    plain = model.padded_forward(batch["input_ids"], batch["attention_mask"])
    bradley_terry_loss(plain, batch).loss.backward()
    expected = _grads(model)

    model.zero_grad()
    rewards = encoder_rewards(model, unpad(batch["input_ids"], batch["attention_mask"]))
    bradley_terry_loss(rewards, batch).loss.backward()
    got = _grads(model)
    model.zero_grad()
    assert plain.std() > 1e-3  # rewards depend on the input, so a wrong mask or position would show
    torch.testing.assert_close(rewards, plain, **TOLERANCE)
    assert got.keys() == expected.keys() and len(got) > 10
    for name in expected:
        torch.testing.assert_close(got[name], expected[name], atol=1e-5, rtol=1e-3, msg=name)


def test_packed_rows_need_the_block_diagonal_mask(model, batch, monkeypatch):
    """Without the mask, sequences packed into one row would see each other: the rewards change."""
    sequences = unpad(batch["input_ids"], batch["attention_mask"])
    monkeypatch.setattr(encoder_packing, "plan_layout", forced("packed"))
    with torch.no_grad():
        expected = model.padded_forward(batch["input_ids"], batch["attention_mask"])
        monkeypatch.setattr(encoder_packing, "block_diagonal_mask", lambda s: torch.ones(
            s.shape[0], 1, s.shape[1], s.shape[1], dtype=torch.bool))  # fmt: skip
        leaked = encoder_rewards(model, sequences)
    assert (leaked - expected).abs().max() > 1e-3


def test_hooked_last_layers_keep_the_full_forward(model, batch, monkeypatch):
    """A hook on the last layer (FSDP, ZeRO-3, device maps) would be bypassed by running it at [CLS] only."""
    layer = backbone_of(model).encoder.layer[-1]
    handle = layer.register_forward_pre_hook(lambda module, args: None)
    try:
        assert not supports_encoder_last_layer_skip(backbone_of(model))
        monkeypatch.setattr(encoder_packing, "plan_layout", forced("packed"))
        with torch.no_grad():
            expected = model.padded_forward(batch["input_ids"], batch["attention_mask"])
            got = encoder_rewards(model, unpad(batch["input_ids"], batch["attention_mask"]))
    finally:
        handle.remove()
    torch.testing.assert_close(got, expected, **TOLERANCE)
    assert supports_encoder_last_layer_skip(backbone_of(model))


def test_block_diagonal_mask_keeps_each_sequence_to_itself():
    segments = torch.tensor([[0, 0, 1, 1, 1, -1]])
    mask = block_diagonal_mask(segments)[0, 0]
    assert mask[:2, :2].all() and mask[2:5, 2:5].all()  # bidirectional within a sequence
    assert not mask[:2, 2:].any() and not mask[2:5, :2].any() and not mask[:5, 5].any()
    assert mask[5].tolist() == [False] * 5 + [True]  # padding sees itself only: no empty softmax row


def test_forward_packs_batches_that_are_mostly_padding(model, batch, monkeypatch):
    calls = []
    original = reward_model_module.encoder_rewards
    monkeypatch.setattr(reward_model_module, "encoder_rewards", lambda *a, **k: calls.append(1) or original(*a, **k))
    with torch.no_grad():
        expected = model.padded_forward(batch["input_ids"], batch["attention_mask"])
        torch.testing.assert_close(model(batch["input_ids"], batch["attention_mask"]), expected, **TOLERANCE)
        assert calls == [1]
        full = torch.ones_like(batch["input_ids"][:2])  # no padding: the plain forward
        model(batch["input_ids"][:2], full)
        assert calls == [1]


def test_score_encoded_equals_scoring_one_by_one(model, batch):
    sequences = unpad(batch["input_ids"], batch["attention_mask"]) * 2
    with torch.no_grad():
        expected = torch.cat([model.padded_forward(torch.tensor([s]), torch.ones(1, len(s), dtype=torch.long))
                              for s in sequences])  # fmt: skip
    for batch_size in (3, 64):
        torch.testing.assert_close(model.score_encoded(sequences, batch_size=batch_size), expected, **TOLERANCE)


def test_encoders_that_cannot_be_packed_are_bucketed(tmp_path):
    model = RewardModel.from_sft(save_tiny_encoder(tmp_path, "distilbert"), max_length=128).eval()
    assert not supports_encoder_packing(model)
    sequences = [model.encode(PROMPT * k, " yes" * 3 * k).input_ids for k in range(1, 7)]
    input_ids, attention_mask = pad_sequences(sequences, model.tokenizer.pad_token_id)
    with torch.no_grad():
        expected = model.padded_forward(input_ids, attention_mask)
        torch.testing.assert_close(encoder_rewards(model, sequences), expected, **TOLERANCE)


def test_token_level_heads_read_rewards_at_given_positions(tmp_path):
    """Rewards can be read at any token (a process RM's step ends), not only at [CLS]."""
    directory = save_tiny_encoder(tmp_path, "bert")
    hf_model = AutoModelForTokenClassification.from_pretrained(directory, num_labels=1).eval()
    model = RewardModel(hf_model, RewardModel.from_sft(directory).tokenizer, max_length=128)
    sequences = [model.encode(PROMPT * k, " yes" * 9 * k).input_ids for k in (1, 3, 2)]
    positions = [[3, len(sequences[0]) - 1], [10], [0, 5, 7]]
    input_ids, attention_mask = pad_sequences(sequences, model.tokenizer.pad_token_id)
    with torch.no_grad():
        logits = hf_model(input_ids=input_ids, attention_mask=attention_mask).logits[..., 0]
        expected = torch.stack([logits[row, p] for row, row_positions in enumerate(positions) for p in row_positions])
        for layout in LAYOUTS:
            encoder_packing.plan_layout, original = forced(layout), encoder_packing.plan_layout
            try:
                got = encoder_rewards(model, sequences, reward_positions=positions)
            finally:
                encoder_packing.plan_layout = original
            torch.testing.assert_close(got, expected, **TOLERANCE)
    with pytest.raises(ValueError, match="needs reward_positions"):
        encoder_rewards(model, sequences)


def test_cost_model_picks_one_padded_batch_for_equal_lengths_and_no_padding_for_mixed_ones():
    cost = PackingCost(token=1.0, pair=1e-3)
    assert plan_layout([100] * 8, cost, packable=True).name == "padded"
    mixed = [500, 40, 30, 480, 60, 20, 450, 50]
    layout = plan_layout(mixed, cost, packable=True)
    assert layout.name in ("bucketed", "packed")
    assert sorted(i for rows in layout.forwards for row in rows for i in row) == list(range(len(mixed)))
    assert plan_layout(mixed, cost, packable=False).name == "bucketed"


def test_length_buckets_cut_the_sorted_lengths_into_consecutive_runs():
    lengths = [5, 300, 7, 290, 6, 310, 150]
    buckets = length_buckets(lengths, PackingCost(token=1.0, pair=0.0))
    assert sorted(i for bucket in buckets for i in bucket) == list(range(len(lengths)))
    spans = [(min(lengths[i] for i in b), max(lengths[i] for i in b)) for b in buckets]
    assert all(high < low for (_, high), (low, _) in zip(spans, spans[1:], strict=False))  # no overlap
    assert len(buckets) >= 2  # the short ones are not padded to 310
