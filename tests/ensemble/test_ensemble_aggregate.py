"""Aggregation math on known member rewards."""

from __future__ import annotations

import pytest
import torch

from rewardkit.ensemble import aggregate, disagreement
from rewardkit.errors import RewardkitError

# 3 members (rows) x 3 examples (columns)
MEMBERS = torch.tensor([[1.0, 2.0, 3.0],
                        [3.0, 2.0, 1.0],
                        [2.0, 2.0, 5.0]])


def test_mean_min_and_std_per_example():
    assert aggregate(MEMBERS, "mean").tolist() == pytest.approx([2.0, 2.0, 3.0])
    assert aggregate(MEMBERS, "min").tolist() == [1.0, 2.0, 1.0]
    # sample standard deviation (Bessel): example 0 has deviations -1, 1, 0 -> sqrt(2 / 2) = 1
    assert disagreement(MEMBERS).tolist() == pytest.approx([1.0, 0.0, 2.0])


def test_uwo_is_mean_minus_lambda_std():
    assert aggregate(MEMBERS, "uwo", lam=0.5).tolist() == pytest.approx([1.5, 2.0, 2.0])
    assert aggregate(MEMBERS, "uwo", lam=0.0).tolist() == pytest.approx(aggregate(MEMBERS, "mean").tolist())
    # a larger penalty ranks the uncertain example 2 below the certain example 1, although its mean is higher
    ranked = aggregate(MEMBERS, "uwo", lam=1.0)
    assert ranked[2] < ranked[1]


def test_members_on_dim_zero_for_any_shape():
    members = torch.randn(4, 5, 6)
    assert aggregate(members, "min").shape == (5, 6)
    assert torch.equal(aggregate(members, "min"), members.min(0).values)
    assert disagreement(members).shape == (5, 6)


def test_a_single_member_has_no_disagreement():
    one = torch.tensor([[0.3, -1.0]])
    assert disagreement(one).tolist() == [0.0, 0.0]
    assert torch.equal(aggregate(one, "uwo", lam=3.0), one[0])


def test_unknown_aggregation_is_a_user_error():
    with pytest.raises(RewardkitError, match="unknown aggregation 'median'"):
        aggregate(MEMBERS, "median")
