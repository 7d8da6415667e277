"""Rewards at any position: the fast paths read process rewards (one per step) as the padded forward does.

Reference: `RewardModel.padded_forward` with the same reward positions, every sequence computed in full. The packed
forward (several solutions per row, a problem shared by its solutions computed once, the last layer only at the
step ends) must give the same step rewards and the same gradients of the step-classification loss.
"""

from __future__ import annotations

import pytest
import torch

from rewardkit.data.collate import pad_sequences
from rewardkit.data.step_encoding import collate_steps, encode_step_dataset
from rewardkit.data.steps import StepDataset, StepGroup, StepSolution
from rewardkit.model import RewardModel
from rewardkit.model.last_layer import supports_last_layer_skip
from rewardkit.model.prefix_sharing import PackingCost, forward_groups, pack_trees, plan, supports_packing
from rewardkit.training.loss import step_classification_loss

TOLERANCE = dict(atol=2e-5, rtol=1e-4)
PROBLEM = "Human: Tom has 3 apples and buys 4 more, then gives 2 to the fox. How many are left?\n\nAssistant:"


@pytest.fixture(scope="module")
def prm(tiny_sft) -> RewardModel:
    torch.manual_seed(0)
    return RewardModel.from_sft(tiny_sft, max_length=128, process=True).eval()


def step_data() -> StepDataset:
    """One problem with four solutions (the first step shared by three), a problem whose long solution loses its
    last steps to truncation, and a one-step solution."""
    solutions = [
        (["3 + 4 = 7.", "7 - 2 = 5.", "The answer is 5."], [1.0, 1.0, 1.0]),
        (["3 + 4 = 7.", "7 - 2 = 4.", "The answer is 4."], [1.0, 0.0, None]),
        (["3 + 4 = 7.", "7 + 2 = 9."], [1.0, 0.25]),
        (["3 * 4 = 12.", "12 - 2 = 10."], [0.0, None]),
    ]
    groups = [
        StepGroup(PROBLEM, [StepSolution(steps, labels) for steps, labels in solutions]),
        StepGroup("Count to ten.", [StepSolution([f"then {i} and {i}" * 3 for i in range(8)], [1.0] * 8)]),
        StepGroup("What is 2 + 2?", [StepSolution(["4."], [1.0])]),
    ]
    return StepDataset(groups)


@pytest.fixture(scope="module")
def batch(prm) -> dict:
    encoded = encode_step_dataset(step_data(), prm.tokenizer, prm.max_length)
    assert encoded.num_steps_cut > 0  # the long solution was truncated: its last steps have no position
    return collate_steps(encoded.groups, prm.tokenizer.pad_token_id, labelled_only=False)


def _grads(model: RewardModel) -> dict[str, torch.Tensor]:
    return {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}


def test_reward_positions_are_the_step_separators(prm, batch):
    separator = prm.tokenizer.convert_tokens_to_ids(prm.step_separator)
    assert separator == prm.settings["step_separator_id"]
    for row, positions in enumerate(batch["reward_positions"]):
        assert all(batch["input_ids"][row, p] == separator for p in positions)
    assert len(batch["labels"]) == sum(len(p) for p in batch["reward_positions"])


def test_packed_step_rewards_equal_the_padded_forward(prm, batch):
    sequences = [row[mask.bool()].tolist() for row, mask in zip(batch["input_ids"], batch["attention_mask"],
                                                                strict=True)]
    positions = batch["reward_positions"]
    for side in ("right", "left"):
        input_ids, attention_mask = pad_sequences(sequences, prm.tokenizer.pad_token_id, padding_side=side)
        with torch.no_grad():
            expected = prm.padded_forward(input_ids, attention_mask, positions)
            for share_prefix in (False, True):
                rewards = prm(input_ids, attention_mask, share_prefix=share_prefix, reward_positions=positions)
                torch.testing.assert_close(rewards, expected, **TOLERANCE)
    # The three solutions starting "3 + 4 = 7." share their first step, read in the shared prefix.
    torch.testing.assert_close(rewards[[3, 6]], rewards[[0, 0]], **TOLERANCE)


def test_the_problem_is_computed_once_for_its_solutions(prm, batch):
    sequences = [row[mask.bool()].tolist() for row, mask in zip(batch["input_ids"], batch["attention_mask"],
                                                                strict=True)]
    cost, pad = PackingCost.for_config(prm.hf_model.config), prm.tokenizer.pad_token_id
    shared = pack_trees(plan(sequences, cost), pad, cost, batch["reward_positions"])
    assert shared.num_tokens < sum(len(s) for s in sequences) - 3 * 20  # 3 more copies of the problem saved
    assert sorted(shared.reward_index) == list(range(len(batch["labels"])))


@pytest.mark.parametrize("attention", ["sdpa", "eager"])
def test_step_rewards_and_gradients_of_the_loss_equal_the_padded_forward(prm, batch, attention):
    prm.hf_model.config._attn_implementation = attention
    try:
        assert supports_packing(prm) and supports_last_layer_skip(prm.hf_model.model)
        prm.zero_grad()
        plain = prm.padded_forward(batch["input_ids"], batch["attention_mask"], batch["reward_positions"])
        step_classification_loss(plain, batch).loss.backward()
        expected = _grads(prm)

        prm.zero_grad()
        shared = forward_groups(prm, batch)
        step_classification_loss(shared, batch).loss.backward()
        got = _grads(prm)
    finally:
        prm.hf_model.config._attn_implementation = "sdpa"
        prm.zero_grad()
    torch.testing.assert_close(shared, plain, **TOLERANCE)
    assert got.keys() == expected.keys() and len(got) > 10  # every layer, the separator's embedding row too
    for name in expected:
        torch.testing.assert_close(got[name], expected[name], atol=1e-5, rtol=1e-3, msg=name)


def test_an_outcome_model_reads_the_same_positions_packed_and_padded(tiny_sft, batch):
    torch.manual_seed(1)
    orm = RewardModel.from_sft(tiny_sft, max_length=128).eval()
    # The ORM's vocabulary has no separator: give it an id it has (positions are what is compared here).
    input_ids = batch["input_ids"].clamp(max=orm.hf_model.config.vocab_size - 1)
    mask, positions = batch["attention_mask"], batch["reward_positions"]
    with torch.no_grad():
        expected = orm.padded_forward(input_ids, mask, positions)
        packed = orm(input_ids, mask, share_prefix=True, reward_positions=positions)
        last = orm(input_ids, mask, share_prefix=True)  # one outcome reward per row, at its last token
    torch.testing.assert_close(packed, expected, **TOLERANCE)
    per_row = torch.split(expected, [len(p) for p in positions])
    ends_last = [row for row, p in enumerate(positions) if p[-1] == int(mask[row].sum()) - 1]
    assert len(ends_last) == len(positions) - 1  # all but the truncated solution end with their last step
    torch.testing.assert_close(torch.stack([per_row[row][-1] for row in ends_last]), last[ends_last], **TOLERANCE)
