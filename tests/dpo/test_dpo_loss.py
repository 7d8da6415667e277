"""The DPO loss on hand-computed examples: a pair, and a K-wise group averaged over its comparisons."""

from __future__ import annotations

import math

import pytest
import torch

from rewardkit.dpo import dpo_loss, implicit_rewards


def _batch(pairs: list[tuple[int, int]], groups: list[int]) -> dict[str, torch.Tensor]:
    n = len(pairs)
    return {
        "better": torch.tensor([b for b, _ in pairs]),
        "worse": torch.tensor([w for _, w in pairs]),
        "prob": torch.ones(n),
        "margin": torch.zeros(n),
        "weight": torch.ones(n),
        "group": torch.tensor(groups),
    }


def _nls(x: float) -> float:
    """-log sigmoid(x)"""
    return math.log1p(math.exp(-x))


def test_one_pair_by_hand():
    # log pi(y_w) = -1, log pi(y_l) = -2, the reference gives both -1.5, beta = 0.5:
    # beta * ((-1 + 1.5) - (-2 + 1.5)) = 0.5, loss = -log sigmoid(0.5) = 0.474077
    policy, ref = torch.tensor([-1.0, -2.0]), torch.tensor([-1.5, -1.5])
    stats = dpo_loss(policy, ref, _batch([(0, 1)], [0]), beta=0.5)
    assert stats.loss.item() == pytest.approx(0.474077, abs=1e-6)
    assert stats.accuracy.item() == 1.0 and stats.margin.item() == pytest.approx(0.5)
    assert implicit_rewards(policy, ref, 0.5).tolist() == pytest.approx([0.25, -0.25])


def test_a_ranking_counts_as_one_group_and_a_pair_as_another():
    # group 0: a ranking 0 > 1 > 2 (three comparisons); group 1: a pair 3 > 4 the policy gets wrong
    policy = torch.tensor([-1.0, -2.0, -4.0, -3.0, -1.0])
    ref = torch.zeros(5)
    beta = 1.0
    stats = dpo_loss(policy, ref, _batch([(0, 1), (0, 2), (1, 2), (3, 4)], [0, 0, 0, 1]), beta)
    ranking = (_nls(1.0) + _nls(3.0) + _nls(2.0)) / 3
    pair = _nls(-2.0)
    assert stats.loss.item() == pytest.approx((ranking + pair) / 2, abs=1e-6)
    assert stats.accuracy.item() == pytest.approx(0.75)


def test_the_reference_cancels_what_it_shares_with_the_policy():
    policy = torch.tensor([-1.0, -2.0], requires_grad=True)
    stats = dpo_loss(policy, policy.detach(), _batch([(0, 1)], [0]), beta=0.1)
    assert stats.loss.item() == pytest.approx(math.log(2))  # policy == reference: no preference yet
    stats.loss.backward()
    assert policy.grad[0] < 0 < policy.grad[1]  # descent raises log pi(y_w) and lowers log pi(y_l)
