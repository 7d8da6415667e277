"""Each member's data: one shared validation split, deterministic bootstrap resamples of the rest."""

from __future__ import annotations

import json

import numpy as np

from rewardkit.ensemble import bootstrap_indices
from rewardkit.ensemble.bootstrap import plan_member_data
from rewardkit.training import TrainConfig
from tests.conftest import ranking_records, write_jsonl


def test_bootstrap_indices_are_a_deterministic_draw_with_replacement():
    first, again, other = bootstrap_indices(50, seed=3), bootstrap_indices(50, seed=3), bootstrap_indices(50, seed=4)
    assert np.array_equal(first, again)
    assert not np.array_equal(first, other)
    assert len(first) == 50 and first.min() >= 0 and first.max() < 50
    assert len(set(first.tolist())) < 50  # with replacement: some records repeat, some are left out


def _plan(data, directory, members=2, bootstrap=True):
    config = TrainConfig(model="unused", data=[str(data)], eval_fraction=0.2, seed=5, format="ranking")
    return plan_member_data(config, directory, members, bootstrap)


def _lines(path):
    return [json.loads(line) for line in open(path).read().splitlines()]


def test_member_data_is_reproducible_and_shares_one_validation_split(tmp_path):
    data = write_jsonl(tmp_path / "rankings.jsonl", ranking_records(40))
    plan, replan = _plan(data, tmp_path / "a"), _plan(data, tmp_path / "b")

    files = [sources[0] for sources in plan.train]
    assert [open(f).read() for f in files] == [open(sources[0]).read() for sources in replan.train]
    assert open(files[0]).read() != open(files[1]).read()  # members resample with their own seeds

    assert len(plan.eval) == 1
    held_out = {record["prompt"] for record in _lines(plan.eval[0])}
    members = [_lines(f) for f in files]
    assert 0 < len(held_out) < 40
    for records, distinct in zip(members, plan.distinct, strict=True):
        assert len(records) == 40 - len(held_out)  # a resample is as large as the training split
        prompts = [r["prompt"] for r in records]
        assert len(set(prompts)) == distinct < len(prompts)
        assert held_out.isdisjoint(prompts)
        assert records[0] in _lines(data)  # the original raw records, labels included


def test_without_bootstrap_members_share_the_training_split(tmp_path):
    data = write_jsonl(tmp_path / "rankings.jsonl", ranking_records(20))
    plan = _plan(data, tmp_path / "plain", members=3, bootstrap=False)
    assert len({tuple(sources) for sources in plan.train}) == 1 and plan.distinct == [None] * 3


def test_given_validation_data_is_used_as_is(tmp_path):
    data = write_jsonl(tmp_path / "train.jsonl", ranking_records(12))
    val = write_jsonl(tmp_path / "val.jsonl", ranking_records(4, seed=1))
    config = TrainConfig(model="unused", data=[str(data)], eval_data=[str(val)])
    plan = plan_member_data(config, tmp_path / "out", 2, bootstrap=False)
    assert plan.train == [[str(data)], [str(data)]] and plan.eval == [str(val)]
    assert not (tmp_path / "out").exists()  # nothing to write
