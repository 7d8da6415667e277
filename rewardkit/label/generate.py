"""Items to rank from a policy: sample K responses per prompt from a Hugging Face causal LM checkpoint.

The prompt is rendered as the reward model will see it (`rewardkit.data.tokenize.render`: the chat template for
chat messages, when the tokenizer has one), responses come from `rewardkit.lm` with one seeded stream,
and an empty response or a repeat of one already drawn for the same prompt is drawn again (a labeller cannot
rank two identical answers, and the data loaders refuse them).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rewardkit.data.errors import DataError
from rewardkit.data.io import read_records
from rewardkit.data.records import Text
from rewardkit.data.validate import check_text, require, text_key
from rewardkit.errors import RewardkitError
from rewardkit.label.store import ItemRecord, content_id

logger = logging.getLogger("rewardkit.label")


@dataclass
class GenerateConfig:
    policy: str  # causal LM checkpoint directory (or hub id where the hub is reachable)
    k: int = 4  # responses per prompt
    max_new_tokens: int = 64
    temperature: float = 1.0
    top_k: int | None = None
    seed: int = 0
    batch_size: int = 16  # sequences per sampling batch
    redraws: int = 5  # attempts to replace empty or repeated responses
    device: str = "auto"

    def validate(self) -> None:
        if self.k < 2:
            raise RewardkitError(f"--k must be at least 2 (responses to rank per prompt), got {self.k}")
        for name in ("max_new_tokens", "batch_size"):
            if getattr(self, name) < 1:
                raise RewardkitError(f"--{name.replace('_', '-')} must be at least 1, got {getattr(self, name)}")
        if self.temperature < 0:
            raise RewardkitError(f"--temperature must be >= 0, got {self.temperature}")
        if self.top_k is not None and self.top_k < 1:
            raise RewardkitError(f"--top-k must be at least 1, got {self.top_k}")


@dataclass(frozen=True)
class Prompt:
    prompt: Text
    external_id: str | None
    meta: dict[str, Any]


def read_prompts(path: str | Path) -> list[Prompt]:
    """Prompts from records with a "prompt" field (JSONL / JSON / CSV / Parquet; optional "id"; other fields are
    kept), or from a .txt file with one prompt per line."""
    path = Path(path)
    if path.suffix == ".txt":
        if not path.is_file():
            raise DataError(str(path), "no such file or directory", reason="not found")
        prompts = [Prompt(line, None, {}) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    else:
        prompts = []
        for raw in read_records(path):
            if isinstance(raw, DataError):
                raise raw
            record = raw.data
            prompt = check_text(require(record, "prompt", raw.location), "prompt", raw.location)
            extra = {k: v for k, v in record.items() if k not in ("prompt", "id", "responses")}
            prompts.append(Prompt(prompt, None if record.get("id") is None else str(record["id"]), extra))
    if not prompts:
        raise DataError(str(path), "holds no prompts", reason="empty source")
    return prompts


def load_policy(path: str, device: str = "auto"):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from rewardkit.device import resolve_device

    try:
        tokenizer = AutoTokenizer.from_pretrained(path)
        model = AutoModelForCausalLM.from_pretrained(path)
    except (OSError, ValueError) as error:
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise RewardkitError(f"--policy {path}: could not load a causal LM and its tokenizer ({reason})") from error
    return model.to(resolve_device(device)).eval(), tokenizer


def generation_prompt(prompt: Text, tokenizer) -> str:
    """The text the policy continues: the prompt exactly as the reward model will see it before the response."""
    from rewardkit.data.tokenize import render

    text, prompt_chars, _ = render(prompt, "", tokenizer)
    return text[:prompt_chars]


def generate_items(config: GenerateConfig, prompts: list[Prompt], progress: bool = True) -> list[ItemRecord]:
    """K distinct, non-empty sampled responses per prompt; a prompt that still has fewer than 2 after the redraws
    is left out (and counted in the log)."""
    import torch

    from rewardkit.lm import sample_responses
    from rewardkit.progress import progress_bar

    config.validate()
    model, tokenizer = load_policy(config.policy, config.device)
    generator = torch.Generator(device=model.device).manual_seed(config.seed)
    contexts = [generation_prompt(p.prompt, tokenizer) for p in prompts]
    answers: list[list[str]] = [[] for _ in prompts]

    def draw(wanted: list[int], bar) -> None:
        for start in range(0, len(wanted), config.batch_size):
            rows = wanted[start:start + config.batch_size]
            texts = sample_responses(model, tokenizer, [contexts[r] for r in rows], config.max_new_tokens,
                                     config.temperature, config.top_k, generator=generator).texts
            for row, text in zip(rows, texts, strict=True):
                text = text.strip()
                if text and text_key(text) not in {text_key(a) for a in answers[row]}:
                    answers[row].append(text)
            bar.update(len(rows))

    wanted = [row for row in range(len(prompts)) for _ in range(config.k)]
    description = f"sampling {config.k} responses for each of {len(prompts):,} prompts from {Path(config.policy).name}"
    with progress_bar(len(wanted), description, progress, unit="responses") as bar:
        draw(wanted, bar)
        for _ in range(config.redraws):
            wanted = [row for row in range(len(prompts)) for _ in range(config.k - len(answers[row]))]
            if not wanted:
                break
            bar.add_to_total(len(wanted))
            draw(wanted, bar)
    items, dropped = [], 0
    for prompt, responses in zip(prompts, answers, strict=True):
        if len(responses) < 2:
            dropped += 1
            continue
        meta = {**prompt.meta, "policy": Path(config.policy).name}
        items.append(ItemRecord(prompt.prompt, responses, prompt.external_id or content_id(prompt.prompt, responses),
                                meta))
    short = sum(len(r) < config.k for r in answers)
    if dropped or short:
        logger.warning("%d prompts got fewer than %d distinct responses after %d redraws (%d with fewer than 2 "
                       "were left out)", short, config.k, config.redraws, dropped)
    return items
