"""The published sets in ../shared/data load with their labels intact (checked against the raw files)."""

from __future__ import annotations

import gzip
import json
import math
from collections import Counter

import pytest

from rewardkit.data import load_preferences


def test_hh_prompts_and_responses(shared_data):
    path = shared_data / "hh-rlhf-harmless" / "pairs.jsonl.gz"
    with gzip.open(path, "rt") as file:
        raw = [json.loads(line) for line in file]
    hh = load_preferences(path)
    assert hh.report.records_read == len(raw) == 1800
    # Four `chosen` transcripts end in an empty Assistant turn: the labeller preferred saying nothing to a harmful
    # answer. That is real data: kept, and counted in the report.
    assert hh.report.skipped == {} and len(hh) == 1800 and hh.report.empty_responses == 4
    for group in hh:
        record = raw[int(group.source.rsplit(" ", 1)[1]) - 1]
        assert group.prompt.startswith("\n\nHuman:") and group.prompt.endswith("\n\nAssistant:")
        assert group.responses[0] != group.responses[1]
        assert [group.prompt + r for r in group.responses] == [record["chosen"], record["rejected"]]


def test_hh_empty_chosen_is_kept_where_it_was(shared_data):
    hh = load_preferences(shared_data / "hh-rlhf-harmless" / "pairs.jsonl.gz")
    group = next(g for g in hh if g.source.endswith("pairs.jsonl.gz line 66"))
    assert not group.responses[0].strip() and group.responses[1].strip() and group.comparisons[0].better == 0
    assert "4 empty responses (kept" in hh.report.summary()


def test_pandalm_keeps_every_pair_and_the_vote_split(shared_data):
    path = shared_data / "pandalm-human" / "testset-v1.json"
    raw = json.loads(path.read_text())
    data = load_preferences(path)
    assert len(data) == len(raw) == 999 and data.report.skipped == {}

    def split(votes):  # P(response2 better) with ties counted half, straight from the raw votes
        return sum({0: 0.5, 1: 0.0, 2: 1.0}[v] for v in votes) / len(votes)

    raw_votes = [[r["annotator1"], r["annotator2"], r["annotator3"]] for r in raw]
    expected_probs = Counter(round(max(split(v), 1 - split(v)), 6) for v in raw_votes)
    assert Counter(round(g.comparisons[0].prob, 6) for g in data) == expected_probs
    assert expected_probs[0.5] == sum(split(v) == 0.5 for v in raw_votes) > 0  # ties kept
    unanimous = sum(len(set(v)) == 1 for v in raw_votes)
    assert sum(len(set(g.comparisons[0].annotator_labels)) == 1 for g in data) == unanimous
    for group, votes in zip(data, raw_votes, strict=True):
        c = group.comparisons[0]
        assert c.prob >= 0.5 and c.better == (1 if split(votes) > 0.5 else 0)
        assert sum(c.annotator_labels) / 3 == pytest.approx(c.prob)
    # The six boolean responses became text; empty responses are kept and flagged, not dropped.
    assert sum(r == "True" for g in data for r in g.responses) == 6
    assert sum("empty_responses" in g.meta for g in data) == sum(
        not str(r["response1"]).strip() or not str(r["response2"]).strip() for r in raw
    )
    assert data[0].subset == "Grammarly" and data[0].meta["cmp_key"] == "bloom-7b_llama-7b"


def test_oasst_k_wise_groups(shared_data):
    data = load_preferences(shared_data / "oasst-rankings" / "en_100_tree.jsonl")
    ks = Counter(len(g.responses) for g in data)
    assert len(data) == 212 and min(ks) == 2 and max(ks) == 9
    assert data.num_comparisons == data.report.comparisons == sum(math.comb(k, 2) * n for k, n in ks.items())
    for group in data:
        assert group.prompt[-1]["role"] == "user" and all(isinstance(r, str) for r in group.responses)
        best = group.meta["ranks"].index(0)
        assert all(c.better == best for c in group.comparisons if best in (c.better, c.worse))
    assert sum(g.meta["unranked_replies"] for g in data) > 0  # counted, not silently lost


def test_alpacaeval_soft_labels_and_length_bias(shared_data):
    path = shared_data / "alpacaeval-gpt4" / "annotations.jsonl.gz"
    with gzip.open(path, "rt") as file:
        raw = [json.loads(line) for line in file]
    data = load_preferences(path)
    assert len(data) == len(raw) == 9660
    comparisons = [g.comparisons[0] for g in data]
    assert all(0.5 <= c.prob <= 1.0 for c in comparisons)
    assert sum(c.prob == 0.5 for c in comparisons) == sum(r["preference"] == 1.5 for r in raw)
    assert sum(c.better == 1 for c in comparisons) == sum(r["preference"] > 1.5 for r in raw)
    assert sum(0.5 < c.prob < 0.99 for c in comparisons) > 100  # soft, not rounded to hard labels
    decided = [(g, c) for g, c in zip(data, comparisons, strict=True) if c.prob > 0.5]
    longer_wins = sum(len(g.responses[c.better]) > len(g.responses[c.worse]) for g, c in decided) / len(
        decided
    )
    assert 0.7 < longer_wins < 0.95
    assert data[0].meta["generator_1"] == "gpt4_1106_preview"


def test_evalbiasbench_subsets_and_shuffled_sides(shared_data):
    path = shared_data / "evalbiasbench" / "biasbench.json"
    raw = json.loads(path.read_text())
    data = load_preferences(path)
    assert len(data) == 80 and Counter(g.subset for g in data) == {k: len(v) for k, v in raw.items()}
    swapped = [g.meta["swapped"] for g in data]
    assert 0.3 < sum(swapped) / len(swapped) < 0.7
    correct = [r["response1"] for records in raw.values() for r in records]
    assert [g.responses[g.comparisons[0].better] for g in data] == correct
    assert [g.meta["swapped"] for g in load_preferences(path)] == swapped  # deterministic
