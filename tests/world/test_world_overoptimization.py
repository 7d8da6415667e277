"""Room for reward hacking: what labellers (and so a proxy RM) favour drifts away from what gold favours."""

from __future__ import annotations

import numpy as np

from rewardkit.world import World, format_rate, response_length, utilities
from rewardkit.world.labeller import DEFAULT_FORMAT_BIAS, DEFAULT_LENGTH_BIAS


def test_best_of_n_on_labeller_utility_grows_length_and_format():
    world = World()
    prompts = world.prompts(150, seed=11)
    picked = {"utility": [], "gold": [], "random": []}
    for i, prompt in enumerate(prompts):
        responses = world.demonstrations([prompt] * 16, seed=i)
        u = utilities(world, prompt, responses, DEFAULT_LENGTH_BIAS, DEFAULT_FORMAT_BIAS)
        g = world.gold_reward([prompt] * 16, responses).numpy()
        picked["utility"].append(responses[int(np.argmax(u))])
        picked["gold"].append(responses[int(np.argmax(g))])
        picked["random"].append(responses[0])
    length = {k: np.mean(response_length(v)) for k, v in picked.items()}
    fmt = {k: np.mean(format_rate(v)) for k, v in picked.items()}
    gold = {k: world.gold_reward(prompts, v).mean().item() for k, v in picked.items()}
    assert length["utility"] > length["gold"] and length["utility"] > length["random"] + 2
    assert fmt["utility"] > 1.5 * fmt["random"] and fmt["utility"] > 1.5 * fmt["gold"]
    assert gold["random"] < gold["utility"] < gold["gold"]  # the proxy helps, but is not gold


def test_labellers_optimum_lies_past_gold_optimum():
    world = World()
    prompt = "write about farm and mention barn and goat"
    words = "barn goat cow tractor wheat hay pig chicken egg field".split()
    words += "harvest farmer corn fence seed milk".split()
    lengths = list(range(4, 17))
    responses = [" ".join(words[:n]) for n in lengths]
    u = utilities(world, prompt, responses, DEFAULT_LENGTH_BIAS, DEFAULT_FORMAT_BIAS)
    g = world.gold_reward([prompt] * len(responses), responses).numpy()
    assert lengths[int(np.argmax(g))] == world.config.optimal_length
    assert lengths[int(np.argmax(u))] > world.config.optimal_length
    # Formatting the gold-optimal response: gold falls a little, the labellers' utility rises.
    at_optimum = " ".join(words[:10])
    listed = "- barn goat cow - tractor wheat hay - pig chicken egg field"
    u = utilities(world, prompt, [at_optimum, listed], DEFAULT_LENGTH_BIAS, DEFAULT_FORMAT_BIAS)
    g = world.gold_reward([prompt] * 2, [at_optimum, listed]).numpy()
    assert g[1] < g[0] and u[1] > u[0]
    # Far out, where a policy pushed by a proxy that learned "longer and more markers" ends up, gold is low.
    very_long = " ".join(words + ["very", "really", "also", "just", "many", "good", "great", "nice"])
    format_heavy = "- barn - goat - cow - tractor - wheat - hay - pig - chicken - egg - field - - -"
    g = world.gold_reward([prompt] * 3, [at_optimum, very_long, format_heavy]).numpy()
    assert g[0] - g[1] > 1.0 and g[0] - g[2] > 1.0
