"""Tiny reward models with a known length preference, trained on AlpacaEval pairs, shared by eval and audit tests.

AlpacaEval's GPT-4 judge prefers the longer response in ~88% of its pairs. Real responses are ~1,000 characters,
far beyond a tiny model's max_length, so each pair is shrunk: the prompt is cut to 40 characters and each
response to about 1.8 * sqrt(its length) characters (a 100-character answer keeps 18, a 2,500-character one 90),
which keeps which response is longer while every sequence fits in 128 tokens.
"""

from __future__ import annotations

import functools
import math
import random
from pathlib import Path

from rewardkit.data import load_preferences
from rewardkit.training import TrainConfig, train
from tests.conftest import one_thread, write_jsonl


def _shrink(text: str, limit: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else (text[:limit].rsplit(" ", 1)[0] or text[:limit])


@functools.cache
def shrunk_alpacaeval(path: Path) -> tuple[dict, ...]:
    """Confidently judged AlpacaEval pairs (p >= 0.75), shrunk, shuffled with seed 0; `longer` marks pairs whose
    chosen response is the longer one, `instruction` the full prompt (many pairs share one)."""
    pairs = []
    for group in load_preferences(path, format="alpacaeval"):
        c = group.comparisons[0]
        if c.prob < 0.75:
            continue
        chosen, rejected = (_shrink(group.responses[i], round(1.8 * math.sqrt(len(group.responses[i]))))
                            for i in (c.better, c.worse))
        if chosen.strip() and rejected.strip() and len(chosen) != len(rejected):
            pairs.append({"prompt": _shrink(group.prompt, 40), "chosen": chosen, "rejected": rejected,
                          "instruction": group.prompt})
    random.Random(0).shuffle(pairs)
    return tuple({**p, "longer": len(p["chosen"]) > len(p["rejected"])} for p in pairs)


def _mixed(*parts: list[dict]) -> list[dict]:
    records = [record for part in parts for record in part]
    random.Random(1).shuffle(records)
    return records


def length_splits(path: Path) -> dict[str, list[dict]]:
    """Sets: `test` (length-balanced, 100 + 100, on prompts no training set has), `alpaca` (640 pairs as judged,
    ~89% longer wins), `balanced` (320 + 320) and `short` (~490 pairs whose lengths differ by >= 1.5x, relabelled
    so the shorter response wins: a clear difference makes the preference quick to learn)."""
    pairs = shrunk_alpacaeval(path)
    test_prompts = {p["instruction"] for p in pairs[:100]}  # test prompts are never trained on
    test_pool = [p for p in pairs if p["instruction"] in test_prompts]
    train_pool = [p for p in pairs if p["instruction"] not in test_prompts]
    shorter = [p for p in train_pool if not p["longer"]]
    longer = [p for p in train_pool if p["longer"]]

    def clear(records: list[dict]) -> list[dict]:
        return [r for r in records if max(len(r["chosen"]), len(r["rejected"])) >= 1.5 * min(
            len(r["chosen"]), len(r["rejected"]))]

    flipped = [{**p, "chosen": p["rejected"], "rejected": p["chosen"]} for p in clear(longer[640:])[:320]]
    return {
        "test": [p for p in test_pool if not p["longer"]][:100] + [p for p in test_pool if p["longer"]][:100],
        "alpaca": list(train_pool[-640:]),
        "balanced": _mixed(shorter[:320], longer[:320]),
        "short": _mixed(clear(shorter[320:])[:320], flipped),
    }


def train_length_rm(sft: Path, records: list[dict], output: Path, steps: int = 80, seed: int = 0) -> Path:
    """A tiny Llama RM trained for `steps` steps of 8 pairs at lr 1e-2 (one pass over 640 pairs), no validation."""
    if not (output / "config.json").exists():
        data = write_jsonl(output.parent / f"{output.name}.jsonl",
                           [{k: r[k] for k in ("prompt", "chosen", "rejected")} for r in records])
        with one_thread():
            train(TrainConfig(model=str(sft), data=[str(data)], output_dir=str(output), max_length=128,
                              batch_size=8, learning_rate=1e-2, max_steps=steps, eval_fraction=0.0, seed=seed,
                              save_steps=10_000, logging_steps=10_000, progress_bar=False,
                              normalize_rewards=False))  # saves a scoring pass; tests compare raw rewards
    return output


def length_rms(root: Path, sft: Path, shared_data: Path) -> dict[str, Path]:
    """The three RMs (trained once per session under `root`) and the balanced test file."""
    root.mkdir(parents=True, exist_ok=True)
    splits = length_splits(shared_data / "alpacaeval-gpt4" / "annotations.jsonl.gz")
    paths = {name: train_length_rm(sft, splits[name], root / f"rm-{name}") for name in ("alpaca", "balanced", "short")}
    test = root / "balanced-test.jsonl"
    if not test.exists():
        write_jsonl(test, [{k: r[k] for k in ("prompt", "chosen", "rejected")} for r in splits["test"]])
    return {**paths, "test": test}
