"""Ceilings and baselines: the Bayes ceiling, labeller agreement, symmetric ties, and the seed reaching the world."""

from __future__ import annotations

import numpy as np
import pytest

from rewardkit.world import Labeller, World, WorldConfig, rank_by_gold, relabel
from rewardkit.world.ceilings import LENGTH_RULE, UTILITY, accuracy_by_length, ceilings_and_baselines, held_out_pairs


def toy_records(world: World, labeller: Labeller, num: int = 60) -> list[dict]:
    rng = np.random.default_rng(0)
    prompts = world.prompts(num, split="test")
    records = []
    for i, prompt in enumerate(prompts):
        responses = world.demonstrations([prompt] * int(rng.integers(4, 8)), seed=i)
        records.append({"prompt": prompt, "responses": responses, "ranking": labeller.rank(prompt, responses)})
    return records


def test_bayes_ceiling_is_above_agreement_and_the_noise_free_utility_reaches_it():
    world = World()
    labeller = Labeller(world, seed=1)
    records = toy_records(world, labeller)
    ceilings = ceilings_and_baselines(held_out_pairs(world, labeller, records))
    bayes, agreement = ceilings["bayes_ceiling"]["value"], ceilings["labeller_agreement"]["value"]
    assert 0.5 < agreement < bayes < 1.0
    utility = ceilings["judges"][UTILITY]
    assert utility["expected_vs_labels"]["value"] == pytest.approx(bayes)  # sign(u_i - u_j) is the Bayes rule
    assert utility["expected_minus_bayes"] == {"value": 0.0, "low": 0.0, "high": 0.0}
    lo, hi = ceilings["bayes_ceiling"]["low"], ceilings["bayes_ceiling"]["high"]
    assert lo < bayes < hi  # a bootstrap interval over prompts


def test_ties_count_half_both_ways_and_order_does_not_matter():
    world = World()
    labeller = Labeller(world, seed=2)
    records = toy_records(world, labeller, num=30)
    constant = {"constant": [np.zeros(len(r["responses"])) for r in records]}
    ceilings = ceilings_and_baselines(held_out_pairs(world, labeller, records, constant))
    assert ceilings["judges"]["constant"]["vs_gold"]["value"] == 0.5
    assert ceilings["judges"]["constant"]["vs_labels"]["value"] == 0.5
    # the same rankings with every group's responses reversed: every accuracy is unchanged
    reversed_records = [{"prompt": r["prompt"], "responses": r["responses"][::-1],
                         "ranking": [len(r["responses"]) - 1 - i for i in r["ranking"]]} for r in records]
    again = ceilings_and_baselines(held_out_pairs(world, labeller, reversed_records))
    first = ceilings_and_baselines(held_out_pairs(world, labeller, records))
    for judge in (UTILITY, LENGTH_RULE):
        for key in ("vs_labels", "expected_vs_labels", "vs_gold"):
            assert again["judges"][judge][key]["value"] == pytest.approx(first["judges"][judge][key]["value"])


def test_length_rule_is_right_exactly_when_the_better_response_is_longer():
    world = World()
    labeller = Labeller(world, seed=3)
    pairs = held_out_pairs(world, labeller, toy_records(world, labeller, num=30))
    by_length = accuracy_by_length(pairs, LENGTH_RULE)
    assert by_length["better is longer"]["accuracy"]["value"] == 1.0
    assert by_length["better is shorter"]["accuracy"]["value"] == 0.0
    assert by_length["same length"]["accuracy"]["value"] == 0.5
    assert sum(case["share"] for case in by_length.values()) == pytest.approx(1.0)


def test_the_seed_changes_the_world_and_the_same_seed_repeats_it():
    a, b, a_again = World(WorldConfig(seed=0)), World(WorldConfig(seed=1)), World(WorldConfig(seed=0))
    assert a.prompts(50, split="test") != b.prompts(50, split="test")
    assert a.prompts(50, split="test") == a_again.prompts(50, split="test")
    prompts = a.prompts(20)
    assert a.demonstrations(prompts) != b.demonstrations(prompts)
    assert a.demonstrations(prompts) == a_again.demonstrations(prompts)


def test_gold_splits_into_its_terms_and_relabelling_keeps_the_responses():
    world = World()
    prompt = "write about ocean and mention coral and tide"
    responses = ["coral tide reef - fish fish", "very very star planet", "- coral - tide"]
    for response in responses:
        assert sum(world.gold_contributions(prompt, response).values()) == pytest.approx(world.gold_score(prompt,
                                                                                                         response))
    measures = world.measure([prompt] * 3, responses)
    assert measures["length"].tolist() == [6.0, 4.0, 4.0] and measures["format_rate"][2] == 0.5
    record = {"prompt": prompt, "responses": responses, "ranking": [0, 1, 2]}
    by_gold = rank_by_gold(world, [record])[0]
    assert "ranking" not in by_gold and by_gold["scores"] == pytest.approx(
        [world.gold_score(prompt, r) for r in responses], abs=1e-6)
    unbiased = Labeller(world, length_bias=0.0, format_bias=0.0, seed=4)
    again = relabel([record], unbiased)[0]
    assert again["responses"] == responses and sorted(again["ranking"]) == [0, 1, 2]
