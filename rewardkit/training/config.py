"""Everything a reward-model training run needs, as one plain dataclass (also loadable from YAML)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from rewardkit.errors import RewardkitError


@dataclass
class TrainConfig:
    # What to train on and where to write it
    model: str = ""  # SFT causal LM: local directory or hub id
    data: list[str] = field(default_factory=list)  # one or more preference files / dataset ids
    output_dir: str = "runs/reward-model"
    eval_data: list[str] = field(default_factory=list)  # held-out data; empty = split eval_fraction off `data`
    eval_fraction: float = 0.05
    format: str = "auto"  # a preference format, or a step format (processbench, prm800k, math_shepherd)
    # bradley_terry (preferences -> outcome RM), steps (step labels -> process RM), auto: steps for step data
    objective: str = "auto"
    neutral_steps: str = "positive"  # PRM800K's neutral (0) ratings: positive, negative or ignore (unlabelled)
    skip_bad_records: bool = False  # default: the first bad record stops the run with its file/line/field
    max_length: int | None = None  # tokens per (prompt, response); None = the model's limit, at most 512
    random_init: bool = False  # same architecture, random weights (the demo's SFT-vs-scratch comparison)

    # Optimisation
    epochs: float = 1.0
    max_steps: int | None = None  # overrides epochs when set
    batch_size: int = 8  # prompts (groups) per micro-batch; for pairwise data one prompt = one pair
    gradient_accumulation_steps: int = 1
    learning_rate: float = 1e-5
    weight_decay: float = 0.0
    warmup_ratio: float = 0.03
    min_lr_ratio: float = 0.0  # cosine decays to learning_rate * min_lr_ratio
    max_grad_norm: float = 1.0
    center_rewards_coefficient: float = 0.0
    seed: int = 0

    # Hardware
    device: str = "auto"  # auto | cpu | cuda | cuda:N | mps
    precision: str = "auto"  # auto (bf16 on GPUs that support it, else fp32) | fp32 | bf16
    gradient_checkpointing: bool = False
    # Compute each group's shared prompt once, responses attending to it (rotary decoders; other models ignore it).
    # Same rewards and gradients as the padded forward up to float rounding (tests/perf, tests/training).
    share_prefix: bool = True
    lora_rank: int = 0  # > 0 trains LoRA adapters (peft) plus the scalar head
    lora_alpha: int = 16
    lora_dropout: float = 0.0

    # Bookkeeping
    eval_steps: int = 100
    save_steps: int = 100
    save_total_limit: int = 2
    logging_steps: int = 10
    eval_batch_size: int = 32
    normalize_rewards: bool = True  # centre/scale rewards on the eval set after training
    tensorboard: bool = False
    progress_bar: bool = True
    resume: bool = False

    def __post_init__(self) -> None:
        if isinstance(self.data, str):
            self.data = [self.data]
        if isinstance(self.eval_data, str):
            self.eval_data = [self.eval_data]

    def validate(self) -> None:
        if not self.model:
            raise RewardkitError("no model given: pass --model with an SFT checkpoint directory or hub id")
        if not self.data:
            raise RewardkitError("no training data given: pass --data with a preference file or dataset id")
        checks = {
            "batch_size": self.batch_size >= 1,
            "gradient_accumulation_steps": self.gradient_accumulation_steps >= 1,
            "learning_rate": self.learning_rate > 0,
            "epochs": self.epochs > 0,
            "max_steps": self.max_steps is None or self.max_steps >= 1,
            "eval_fraction": 0 <= self.eval_fraction < 1,
            "precision": self.precision in ("auto", "fp32", "bf16"),
            "max_length": self.max_length is None or self.max_length >= 8,
            "objective": self.objective in ("auto", "bradley_terry", "steps"),
            "neutral_steps": self.neutral_steps in ("positive", "negative", "ignore"),
        }
        for name, ok in checks.items():
            if not ok:
                raise RewardkitError(f"invalid {name}={getattr(self, name)!r}")

    @classmethod
    def from_yaml(cls, path: str | Path, **overrides: Any) -> TrainConfig:
        path = Path(path)
        try:
            values = yaml.safe_load(path.read_text()) or {}
        except (OSError, yaml.YAMLError) as error:
            raise RewardkitError(f"could not read config file {path}: {error}") from error
        if not isinstance(values, dict):
            raise RewardkitError(f"{path}: expected a mapping of option: value")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise RewardkitError(f"{path}: unknown option(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
        return cls(**{**values, **overrides})

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)
