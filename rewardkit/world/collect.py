"""Preference collection as in InstructGPT: the SFT policy answers a prompt K = 4..9 times, a labeller ranks.

Each ranking is one record in the K-wise ranking format

    {"prompt": str, "responses": [str, ...], "ranking": [indices, best first], "gold": [g per response]}

"gold" (centred gold reward of each response) is for later analysis only; reward models must not train on it.
"""

from __future__ import annotations

import json
import os

import numpy as np
from transformers import PreTrainedModel, PreTrainedTokenizerFast

from rewardkit.world.labeller import Labeller
from rewardkit.world.policy import sample_responses
from rewardkit.world.world import World


def collect_rankings(
    world: World,
    policy: PreTrainedModel,
    tokenizer: PreTrainedTokenizerFast,
    num_prompts: int,
    k_range: tuple[int, int] = (4, 9),
    labeller: Labeller | None = None,
    seed: int = 0,
    split: str = "train",
    max_new_tokens: int = 32,
    with_gold: bool = True,
) -> list[dict]:
    """Sample K responses per prompt (K uniform in `k_range`, inclusive) and have `labeller` rank them.

    Without a labeller, one with the default biases is calibrated on these very responses to the InstructGPT
    inter-labeller agreement (72.6%).
    """
    rng = np.random.default_rng([world.config.seed, 200, seed])
    prompts = world.prompts(num_prompts, split=split, seed=seed)
    ks = rng.integers(k_range[0], k_range[1] + 1, size=num_prompts)
    flat_prompts = [p for p, k in zip(prompts, ks, strict=True) for _ in range(k)]
    flat = sample_responses(policy, tokenizer, flat_prompts, max_new_tokens=max_new_tokens, seed=seed)
    offsets = np.concatenate([[0], np.cumsum(ks)])
    # An empty answer (the policy emits <eos> at once, ~0.3% of samples) or a repeat of an answer already in
    # its group is not something a labeller would rank, and data loaders reject both: draw those again.
    for attempt in range(1, 11):
        redraw = _empty_or_repeated(flat, offsets)
        if not redraw:
            break
        again = [flat_prompts[i] for i in redraw]
        redo = sample_responses(policy, tokenizer, again, max_new_tokens, seed=seed + attempt)
        for i, r in zip(redraw, redo, strict=True):
            flat[i] = r
    groups = [(p, flat[offsets[i] : offsets[i + 1]]) for i, p in enumerate(prompts)]
    if labeller is None:
        labeller = Labeller.calibrated(world, groups, seed=seed)
    records = []
    for prompt, responses in groups:
        record = {"prompt": prompt, "responses": responses, "ranking": labeller.rank(prompt, responses)}
        if with_gold:
            gold = world.gold_reward([prompt] * len(responses), responses)
            record["gold"] = [round(g, 4) for g in gold.tolist()]
        records.append(record)
    return records


def relabel(records: list[dict], labeller: Labeller) -> list[dict]:
    """The same prompts and responses ranked again by another labeller (e.g. one without biases)."""
    return [{**record, "ranking": labeller.rank(record["prompt"], record["responses"])} for record in records]


def rank_by_gold(world: World, records: list[dict]) -> list[dict]:
    """The same prompts and responses ordered by the gold reward, noise-free (Gao et al.'s synthetic labels):
    ranking-format records with "scores", so responses of equal gold are ties."""
    ranked = []
    for record in records:
        gold = world.gold_reward([record["prompt"]] * len(record["responses"]), record["responses"], centred=False)
        ranked.append({key: value for key, value in record.items() if key != "ranking"} | {"scores": gold.tolist()})
    return ranked


def _empty_or_repeated(responses: list[str], offsets: np.ndarray) -> list[int]:
    """Indices of responses that are empty or repeat an earlier response of the same group."""
    bad = []
    for start, end in zip(offsets[:-1], offsets[1:], strict=True):
        seen: set[str] = set()
        for i in range(start, end):
            text = responses[i].strip()
            if not text or text in seen:
                bad.append(i)
            seen.add(text)
    return bad


def write_rankings(records: list[dict], path: str) -> None:
    """One JSON record per line."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w") as f:
        for record in records:
            f.write(json.dumps(record) + "\n")


def read_rankings(path: str) -> list[dict]:
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]
