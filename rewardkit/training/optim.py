"""AdamW with linear warmup, then cosine decay (most reward-model recipes), linear (TRL's default) or none."""

from __future__ import annotations

import math

import torch

from rewardkit.training.config import TrainConfig

FUSED_DEVICES = ("cpu", "cuda")  # where torch's fused AdamW kernel exists


def build_optimizer(
    parameters, config: TrainConfig, total_steps: int
) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LambdaLR]:
    trainable = [p for p in parameters if p.requires_grad]
    # One fused kernel for all parameters instead of a loop over tensors: a few % of a small model's step on CPU.
    fused = all(p.device.type in FUSED_DEVICES and p.is_floating_point() for p in trainable) or None
    optimizer = torch.optim.AdamW(trainable, lr=config.learning_rate, weight_decay=config.weight_decay, fused=fused)
    warmup = int(round(config.warmup_ratio * total_steps))
    schedule = getattr(config, "lr_schedule", "cosine")  # configs without the field (DPOConfig) decay by cosine

    def lr_factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / (warmup + 1)
        progress = min(1.0, (step - warmup) / max(1, total_steps - warmup))
        decay = {"cosine": 0.5 * (1.0 + math.cos(math.pi * progress)), "linear": 1.0 - progress, "constant": 1.0}
        return config.min_lr_ratio + (1.0 - config.min_lr_ratio) * decay[schedule]

    return optimizer, torch.optim.lr_scheduler.LambdaLR(optimizer, lr_factor)
