"""Bradley-Terry loss and InstructGPT batching: every response forwarded once, all comparisons of a prompt together."""

from __future__ import annotations

import math

import pytest
import torch

from rewardkit.data.collate import EncodedGroup, collate_groups
from rewardkit.data.records import Comparison
from rewardkit.data.tokenize import EncodedSequence
from rewardkit.model import RewardModel
from rewardkit.training.loss import bradley_terry_loss


def _batch(better, worse, prob=None, margin=None, group=None):
    n = len(better)
    return {
        "better": torch.tensor(better),
        "worse": torch.tensor(worse),
        "prob": torch.tensor(prob or [1.0] * n),
        "margin": torch.tensor(margin or [0.0] * n),
        "weight": torch.ones(n),
        "group": torch.tensor(group or [0] * n),
    }


def test_hard_label_loss_is_minus_log_sigmoid_of_the_reward_difference():
    rewards = torch.tensor([2.0, 0.5])
    stats = bradley_terry_loss(rewards, _batch([0], [1]))
    assert stats.loss.item() == pytest.approx(-math.log(1 / (1 + math.exp(-1.5))))
    assert stats.accuracy.item() == 1.0


def test_soft_label_margin_and_centering():
    rewards = torch.tensor([1.0, 0.0])
    soft = bradley_terry_loss(rewards, _batch([0], [1], prob=[0.7])).loss.item()
    expected = -(0.7 * math.log(1 / (1 + math.exp(-1))) + 0.3 * math.log(1 / (1 + math.exp(1))))
    assert soft == pytest.approx(expected, rel=1e-5)
    with_margin = bradley_terry_loss(rewards, _batch([0], [1], margin=[1.0])).loss.item()
    assert with_margin == pytest.approx(math.log(2), rel=1e-5)  # -log sigmoid(1 - 0 - 1)
    centred = bradley_terry_loss(rewards, _batch([0], [1]), center_coefficient=0.1).loss.item()
    plain = bradley_terry_loss(rewards, _batch([0], [1])).loss.item()
    assert centred == pytest.approx(plain + 0.1 * 1.0**2, rel=1e-5)


def test_each_group_counts_equally_whatever_its_number_of_comparisons():
    # Group 0: one comparison with loss a; group 1: three comparisons with loss b each.
    rewards = torch.tensor([1.0, 0.0, 3.0, 2.0, 1.0])
    batch = _batch([0, 2, 2, 3], [1, 3, 4, 4], group=[0, 1, 1, 1])
    per = -torch.nn.functional.logsigmoid(torch.tensor([1.0, 1.0, 2.0, 1.0]))
    expected = (per[0] + per[1:].mean()) / 2
    assert bradley_terry_loss(rewards, batch).loss.item() == pytest.approx(expected.item(), rel=1e-6)


def test_tied_labels_are_left_out_of_accuracy():
    stats = bradley_terry_loss(torch.tensor([1.0, 0.0, 5.0]), _batch([0, 1], [1, 2], prob=[1.0, 0.5]))
    assert stats.accuracy.item() == 1.0


def _k_wise_group(k: int, offset: int) -> EncodedGroup:
    sequences = tuple(EncodedSequence((1, offset + j, 7, 8), 2, False) for j in range(k))
    comparisons = tuple(Comparison(i, j) for i in range(k) for j in range(i + 1, k))
    return EncodedGroup(sequences, comparisons)


def test_k_wise_collation_forwards_each_response_once(tiny_sft):
    groups = [_k_wise_group(9, 10), _k_wise_group(4, 30)]
    batch = collate_groups(groups, pad_token_id=0)
    assert batch["input_ids"].shape[0] == 9 + 4
    assert len(batch["better"]) == 36 + 6

    model = RewardModel.from_sft(tiny_sft)
    rows_forwarded = []
    handle = model.hf_model.model.embed_tokens.register_forward_hook(
        lambda module, inputs, output: rows_forwarded.append(inputs[0].shape[0])
    )
    rewards = model(batch["input_ids"], batch["attention_mask"])
    stats = bradley_terry_loss(rewards, batch)
    stats.loss.backward()
    handle.remove()
    assert rows_forwarded == [13]  # one forward pass over 13 responses, not 2 * 42 pair members
    assert stats.num_comparisons == 42


def test_identical_responses_across_groups_are_deduplicated():
    group = _k_wise_group(3, 10)
    batch = collate_groups([group, group], pad_token_id=0)
    assert batch["input_ids"].shape[0] == 3
    assert batch["group"].tolist() == [0, 0, 0, 1, 1, 1]
