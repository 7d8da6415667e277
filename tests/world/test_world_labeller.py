"""Simulated labellers: InstructGPT-level agreement, and biases towards long and formatted responses."""

from __future__ import annotations

import numpy as np

from rewardkit.world import (
    DEFAULT_TEMPERATURE,
    Labeller,
    World,
    calibrate_temperature,
    expected_agreement,
    pairwise_agreement,
)


def demonstration_groups(world: World, num: int = 400, seed: int = 0) -> list[tuple[str, list[str]]]:
    """K = 4..9 demonstrations per prompt: the SFT policy imitates these, so they stand in for its samples."""
    rng = np.random.default_rng(seed)
    prompts = world.prompts(num, seed=seed)
    return [(p, world.demonstrations([p] * int(rng.integers(4, 10)), seed=i)) for i, p in enumerate(prompts)]


def test_default_temperature_gives_instructgpt_agreement():
    world = World()
    groups = demonstration_groups(world)
    assert 0.70 <= expected_agreement(world, groups, DEFAULT_TEMPERATURE) <= 0.76
    measured = pairwise_agreement(Labeller(world, seed=1), Labeller(world, seed=2), groups)
    assert 0.70 <= measured <= 0.76


def test_calibration_lands_on_target():
    world = World()
    groups = demonstration_groups(world, seed=1)
    temperature = calibrate_temperature(world, groups, target=0.726)
    assert abs(expected_agreement(world, groups, temperature) - 0.726) < 1e-4
    labeller = Labeller.calibrated(world, groups, seed=3)
    assert abs(labeller.temperature - temperature) < 1e-9
    measured = pairwise_agreement(labeller, Labeller(world, temperature, seed=4), groups)
    assert 0.70 <= measured <= 0.76
    # Noisier labellers agree less.
    assert calibrate_temperature(world, groups, target=0.65) > temperature


def test_rankings_are_permutations_and_seeded():
    world = World()
    prompt, responses = demonstration_groups(world, num=1)[0]
    ranking = Labeller(world, seed=5).rank(prompt, responses)
    assert sorted(ranking) == list(range(len(responses)))
    assert ranking == Labeller(world, seed=5).rank(prompt, responses)


def test_rankings_follow_utility():
    world = World()
    prompt = "describe forest including owl and pine"
    good = "owl pine tree leaf moss oak"
    bad = "planet star star star"
    labeller = Labeller(world, seed=6)
    wins = sum(labeller.rank(prompt, [bad, good])[0] == 1 for _ in range(200))
    assert wins > 190


def test_labellers_prefer_longer_and_formatted_at_equal_gold():
    world = World()
    labeller = Labeller(world)
    unbiased = Labeller(world, length_bias=0.0, format_bias=0.0)
    prompt = "tell me about music with drum and piano"
    # Same gold, different length: find a longer response (more words, some filler) that scores like `short`.
    short, long_ = "drum piano song melody guitar rhythm chord singer", None
    words = "drum piano song melody guitar rhythm chord singer band violin note tempo lyric concert".split()
    target = world.gold_score(prompt, short)
    for n in range(9, len(words) + 1):
        for filler in range(0, 6):
            candidate = " ".join(words[:n] + ["very"] * filler)
            if abs(world.gold_score(prompt, candidate) - target) < 0.08 and long_ is None:
                long_ = candidate
    assert long_ is not None and len(long_.split()) > len(short.split())
    assert labeller.preference_prob(prompt, long_, short) > 0.6
    assert abs(unbiased.preference_prob(prompt, long_, short) - 0.5) < 0.05

    # Formatting costs a little gold, yet labellers prefer the list.
    plain = "drum piano song melody guitar rhythm chord singer band"
    listed = "- drum piano song - melody guitar rhythm - chord singer band"
    assert world.gold_score(prompt, listed) < world.gold_score(prompt, plain)
    assert labeller.preference_prob(prompt, listed, plain) > 0.6
    assert unbiased.preference_prob(prompt, listed, plain) < 0.5


def test_bias_is_measurable_on_a_sample():
    """Among demonstration pairs of nearly equal gold, labellers pick the longer one clearly more often."""
    world = World()
    labeller = Labeller(world, seed=7)
    longer_wins = ties = 0
    for prompt, responses in demonstration_groups(world, num=400, seed=2):
        gold = world.gold_reward([prompt] * len(responses), responses).numpy()
        lengths = [len(r.split()) for r in responses]
        ranking = labeller.rank(prompt, responses)
        position = {index: rank for rank, index in enumerate(ranking)}
        for i in range(len(responses)):
            for j in range(i + 1, len(responses)):
                if abs(gold[i] - gold[j]) < 0.15 and abs(lengths[i] - lengths[j]) >= 3:
                    longer, shorter = (i, j) if lengths[i] > lengths[j] else (j, i)
                    longer_wins += position[longer] < position[shorter]
                    ties += 1
    assert ties > 200
    assert longer_wins / ties > 0.58
