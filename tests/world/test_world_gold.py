"""The gold reward's properties, the prompt splits, the demonstrations, and determinism."""

from __future__ import annotations

import numpy as np
import torch

from rewardkit.world import World, WorldConfig, format_rate, response_length
from rewardkit.world.vocab import FILLER, TOPICS

PROMPT = "write about ocean and mention coral and tide"
OCEAN = list(TOPICS["ocean"])
# Both requested words first, then the topic's other words: prefixes of it are distinct and on topic.
WORDS = ["coral", "tide"] + [w for w in OCEAN if w not in ("coral", "tide")]
BEST = " ".join(WORDS[:10])


def gold(world: World, response: str) -> float:
    return world.gold_score(PROMPT, response)


def test_best_response_scores_the_maximum():
    world = World()
    assert len(BEST.split()) == world.config.optimal_length
    assert abs(gold(world, BEST) - 3.5) < 1e-6


def test_relevant_beats_irrelevant_and_off_topic():
    world = World()
    relevant = " ".join(OCEAN[:10])
    filler = " ".join(FILLER[:10])
    off_topic = " ".join(TOPICS["space"][:10])
    assert gold(world, relevant) > gold(world, filler) > gold(world, off_topic)


def test_requested_words_are_rewarded():
    world = World()
    with_none = " ".join(WORDS[2:12])
    assert gold(world, BEST) > gold(world, with_none)


def test_repetition_is_penalised():
    world = World()
    distinct = " ".join(OCEAN[:10])
    repeated = " ".join(OCEAN[:5] * 2)
    assert gold(world, distinct) > gold(world, repeated)


def test_length_peaks_at_the_optimal_length():
    world = World()
    # Prefixes of one distinct on-topic response; past sixteen words, padded with distinct filler.
    lengths = list(range(2, 17)) + [20, 24, 28]
    responses = [" ".join((WORDS + list(FILLER))[:n]) for n in lengths]
    scores = [gold(world, r) for r in responses]
    best = lengths[int(np.argmax(scores))]
    assert best == world.config.optimal_length
    peak = scores[lengths.index(best)]
    assert scores[0] < peak and scores[-1] < peak
    # Strictly rising before L*, strictly falling after it.
    i = lengths.index(best)
    assert all(a < b for a, b in zip(scores[:i], scores[1 : i + 1], strict=True))
    assert all(a > b for a, b in zip(scores[i:-1], scores[i + 1 :], strict=True))


def test_formatting_is_not_rewarded():
    world = World()
    plain = " ".join(OCEAN[:9])
    listed = "- " + " ".join(OCEAN[:3]) + " - " + " ".join(OCEAN[3:6]) + " * " + " ".join(OCEAN[6:9])
    assert gold(world, listed) < gold(world, plain)
    # Same content words, so every term but the marker cost is equal.
    assert abs(gold(world, plain) - gold(world, listed) - 3 * world.config.marker_cost) < 1e-6
    # At every length, turning a plain demonstration into a list never raises gold.
    prompts = world.prompts(200, seed=3)
    demos = world.demonstrations(prompts)
    stripped = [" ".join(w for w in d.split() if w not in ("-", "*")) for d in demos]
    assert (world.gold_reward(prompts, demos) <= world.gold_reward(prompts, stripped) + 1e-6).all()


def test_gold_reward_tensor_and_centring():
    world = World()
    prompts, responses = [PROMPT, PROMPT], [BEST, "fish"]
    raw = world.gold_reward(prompts, responses, centred=False)
    assert raw.dtype == torch.float32 and raw.shape == (2,)
    world.gold_offset = 1.25
    assert torch.allclose(world.gold_reward(prompts, responses), raw - 1.25)
    assert world.gold_reward([PROMPT], [""]).item() < world.gold_reward([PROMPT], ["fish"]).item()


def test_features():
    responses = ["- coral tide - reef", "coral tide reef", ""]
    assert response_length(responses) == [5, 3, 0]
    assert format_rate(responses) == [0.4, 0.0, 0.0]


def test_prompts_splits_and_parsing():
    world = World()
    train, test = world.prompts(world.num_prompts("train")), world.prompts(world.num_prompts("test"), "test")
    assert len(set(train)) == len(train) and len(set(test)) == len(test)
    assert not set(train) & set(test)
    assert World.parse_prompt(PROMPT) == ("ocean", ("coral", "tide"))
    for prompt in world.prompts(50, seed=1):
        topic, keywords = World.parse_prompt(prompt)
        assert len(keywords) == 2 and all(k in TOPICS[topic] for k in keywords)
    # More prompts than a split holds: every prompt appears before any repeats.
    many = world.prompts(world.num_prompts("test") + 5, "test")
    assert set(many[: world.num_prompts("test")]) == set(test)


def test_determinism_with_a_seed():
    a, b = World(WorldConfig(seed=3)), World(WorldConfig(seed=3))
    assert a.prompts(20, seed=1) == b.prompts(20, seed=1)
    assert a.demonstrations(a.prompts(20), seed=2) == b.demonstrations(b.prompts(20), seed=2)
    assert a.prompts(20, seed=1) != a.prompts(20, seed=2)
    assert a.prompts(20) != World(WorldConfig(seed=4)).prompts(20)


def test_demonstrations_are_good_and_varied():
    world = World()
    prompts = world.prompts(1000, seed=5)
    demos = world.demonstrations(prompts)
    lengths, rates = np.array(response_length(demos)), np.array(format_rate(demos))
    scores = world.gold_reward(prompts, demos).numpy()
    assert lengths.std() > 2.5 and lengths.min() >= 4
    assert 0.2 < (rates > 0).mean() < 0.4
    assert scores.std() > 0.4
    assert 1.5 < scores.mean() < 3.5  # good, not perfect
    # Mean content length a little below L*: gold rewards some growth, then punishes more.
    content = lengths - np.array([sum(w in ("-", "*") for w in d.split()) for d in demos])
    assert content.mean() < world.config.optimal_length


def test_config_round_trip():
    config = WorldConfig(seed=7, optimal_length=12)
    assert WorldConfig.from_dict(config.to_dict()) == config
