"""The SFT policy: a tiny Llama trained on the world's demonstrations, plus batched sampling from it.

The model is a plain Hugging Face `LlamaForCausalLM`, saved with `save_pretrained` next to its tokenizer and
the world's config, so `AutoModelForCausalLM.from_pretrained(dir)` / `AutoTokenizer.from_pretrained(dir)` load
it and RM training / RL can treat it like any other HF checkpoint. The loss covers the response and its <eos>
only (the prompt is given, not learned).
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass

import torch
from transformers import GenerationConfig, LlamaForCausalLM, PreTrainedTokenizerFast

from rewardkit.lm import build_llama
from rewardkit.lm import sample_responses as sample_policy
from rewardkit.progress import progress_bar
from rewardkit.world.tokenizer import build_tokenizer, format_prompt
from rewardkit.world.world import World, WorldConfig

WORLD_CONFIG_FILE = "world_config.json"


@dataclass
class SFTConfig:
    seed: int = 0
    # model: ~80k parameters
    hidden_size: int = 64
    num_layers: int = 2
    num_heads: int = 4
    intermediate_size: int = 128
    max_positions: int = 64  # prompt (<= 10 tokens) + response (<= max_new_tokens) fits easily
    # data and optimization
    num_demonstrations: int = 8000
    steps: int = 400  # the demonstration loss is flat after ~300
    batch_size: int = 64
    lr: float = 3e-3
    weight_decay: float = 0.01
    warmup_steps: int = 30
    # sampling defaults saved in generation_config.json
    max_new_tokens: int = 32

    @classmethod
    def quick(cls, **overrides) -> SFTConfig:
        """Fewer steps for `rewardkit demo --quick`."""
        return cls(**{"num_demonstrations": 4000, "steps": 200, **overrides})


def make_model(tokenizer: PreTrainedTokenizerFast, config: SFTConfig) -> LlamaForCausalLM:
    model = build_llama(
        tokenizer,
        hidden_size=config.hidden_size,
        intermediate_size=config.intermediate_size,
        num_layers=config.num_layers,
        num_heads=config.num_heads,
        max_positions=config.max_positions,
        tie_word_embeddings=True,
        seed=config.seed,
    )
    # Pure ancestral sampling (no top-k / top-p): the samples follow the model's own distribution, which is
    # what best-of-n KL formulas and PPO's log-probabilities assume.
    model.generation_config = GenerationConfig(
        do_sample=True,
        temperature=1.0,
        top_k=0,
        top_p=1.0,
        max_new_tokens=config.max_new_tokens,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    return model


def encode_demonstrations(
    tokenizer: PreTrainedTokenizerFast, prompts: list[str], responses: list[str]
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(input_ids, attention_mask, labels), right-padded; labels are -100 except on the response and <eos>."""
    enc = tokenizer(prompts, responses, padding=True, return_tensors="pt")
    prompt_lens = [len(ids) for ids in tokenizer([format_prompt(p) for p in prompts])["input_ids"]]
    labels = enc["input_ids"].clone()
    labels[enc["attention_mask"] == 0] = -100
    for row, n in enumerate(prompt_lens):
        labels[row, :n] = -100
    return enc["input_ids"], enc["attention_mask"], labels


@torch.no_grad()
def demonstration_loss(
    model: LlamaForCausalLM, tokenizer: PreTrainedTokenizerFast, world: World, num: int = 256, seed: int = 1
) -> float:
    """Mean per-token NLL of the model on fresh demonstrations for held-out prompts."""
    prompts = world.prompts(num, split="test", seed=seed)
    ids, mask, labels = encode_demonstrations(tokenizer, prompts, world.demonstrations(prompts, seed=seed))
    model.eval()
    return model(input_ids=ids, attention_mask=mask, labels=labels).loss.item()


def train_sft_policy(
    world: World, config: SFTConfig | None = None, output_dir: str | None = None, progress: bool = True,
    tokenizer: PreTrainedTokenizerFast | None = None,
) -> tuple[LlamaForCausalLM, PreTrainedTokenizerFast]:
    """Train the tiny policy on demonstrations with AdamW (warmup + cosine); saved if given `output_dir`. Any task
    with `prompts(n, split, seed)` and `demonstrations(prompts, seed)` works (the step world passes its tokenizer)."""
    config = config or SFTConfig()
    tokenizer = tokenizer or build_tokenizer(world)
    model = make_model(tokenizer, config)
    prompts = world.prompts(config.num_demonstrations, split="train", seed=config.seed)
    demos = world.demonstrations(prompts, seed=config.seed)
    ids, mask, labels = encode_demonstrations(tokenizer, prompts, demos)

    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)

    def lr_at(step: int) -> float:
        if step < config.warmup_steps:
            return (step + 1) / config.warmup_steps
        progress_ = (step - config.warmup_steps) / max(1, config.steps - config.warmup_steps)
        return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress_))

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_at)
    generator = torch.Generator().manual_seed(config.seed)
    model.train()
    bar = progress_bar(config.steps, f"SFT policy, {config.num_demonstrations:,} demonstrations, seed {config.seed}",
                       progress)
    for _ in range(config.steps):
        batch = torch.randint(len(ids), (config.batch_size,), generator=generator)
        width = int(mask[batch].sum(1).max())  # trim the batch's padding columns
        loss = model(
            input_ids=ids[batch, :width], attention_mask=mask[batch, :width], labels=labels[batch, :width]
        ).loss
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        scheduler.step()
        bar.update(loss=f"{loss.item():.3f}")
    bar.close()
    model.eval()
    if output_dir is not None:
        save_policy(model, tokenizer, world, output_dir)
    return model, tokenizer


def save_policy(model: LlamaForCausalLM, tokenizer: PreTrainedTokenizerFast, world: World, output_dir: str) -> None:
    """A normal HF checkpoint (model + tokenizer) plus `world_config.json` to rebuild the world from."""
    os.makedirs(output_dir, exist_ok=True)
    model.save_pretrained(output_dir)
    tokenizer.save_pretrained(output_dir)
    with open(os.path.join(output_dir, WORLD_CONFIG_FILE), "w") as f:
        json.dump({**world.config.to_dict(), "gold_offset": world.gold_offset}, f, indent=2)


def load_world(checkpoint_dir: str) -> World:
    """The world a policy checkpoint was trained in (gold offset included)."""
    with open(os.path.join(checkpoint_dir, WORLD_CONFIG_FILE)) as f:
        d = json.load(f)
    offset = d.pop("gold_offset", 0.0)
    world = World(WorldConfig.from_dict(d))
    world.gold_offset = offset
    return world


def sample_responses(
    model: LlamaForCausalLM,
    tokenizer: PreTrainedTokenizerFast,
    prompts: list[str],
    max_new_tokens: int = 32,
    batch_size: int = 512,
    temperature: float = 1.0,
    seed: int = 0,
) -> list[str]:
    """One sampled response per world prompt (repeat a prompt to get several), through the same sampler PPO and
    best-of-n use (`rewardkit.lm`), in batches of `batch_size`, from one seeded stream."""
    generator = torch.Generator(device=model.device).manual_seed(seed)
    responses: list[str] = []
    for start in range(0, len(prompts), batch_size):
        batch = [format_prompt(p) for p in prompts[start : start + batch_size]]
        responses += sample_policy(model, tokenizer, batch, max_new_tokens, temperature, generator=generator).texts
    return responses


def estimate_gold_offset(
    world: World,
    model: LlamaForCausalLM,
    tokenizer: PreTrainedTokenizerFast,
    num_prompts: int = 1024,
    seed: int = 0,
) -> float:
    """Mean raw gold reward of the policy's samples on train prompts: set `world.gold_offset` to it so that
    centred gold reads 0 for this (SFT) policy, as in Gao et al. 2022."""
    prompts = world.prompts(num_prompts, split="train", seed=seed)
    responses = sample_responses(model, tokenizer, prompts, seed=seed)
    return world.gold_reward(prompts, responses, centred=False).mean().item()
