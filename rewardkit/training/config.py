"""Everything a reward-model training run needs, as one plain dataclass (also loadable from YAML)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from rewardkit.data.options import StepDataOptions
from rewardkit.errors import RewardkitError
from rewardkit.fields import option, validate_fields

LR_SCHEDULES = ("cosine", "linear", "constant")


@dataclass
class TrainConfig(StepDataOptions):
    """A training run. The data options (format, skip_bad_records, columns, max_length) come from
    `StepDataOptions` (`DataOptions`, shared with every command that reads data, plus the step formats); each
    field's metadata is also its `rewardkit train` option."""

    # What to train on and where to write it
    model: str = option("", "SFT causal LM: local directory or Hugging Face model id")
    data: list[str] = option(help="training data: .jsonl/.json/.csv/.parquet files or dataset ids",
                             default_factory=list)
    output_dir: str = option("runs/reward-model", "directory for the trained model and checkpoints", flag="--output")
    eval_data: list[str] = option(help="held-out data (default: split --eval-fraction off --data)",
                                  default_factory=list)
    eval_fraction: float = option(0.05, "share of training prompts held out when there is no --eval-data",
                                  at_least=0, below=1)
    random_init: bool = option(False, "same architecture, random weights (the demo's SFT-vs-scratch comparison)")
    objective: str = option("auto", "bradley_terry (preferences -> outcome RM), steps (step labels -> process RM); "
                            "auto: steps for step data", choices=("auto", "bradley_terry", "steps"))
    neutral_steps: str = option("positive", "PRM800K's neutral (0) ratings count as positive, negative, or are "
                                "ignored (unlabelled)", choices=("positive", "negative", "ignore"))

    # Optimisation
    epochs: float = option(1.0, "passes over the training data", above=0)
    max_steps: int | None = option(None, "optimizer steps (overrides --epochs)", at_least=1)
    batch_size: int = option(8, "prompts per micro-batch; a pair counts as one prompt", at_least=1)
    gradient_accumulation_steps: int = option(1, "micro-batches per optimizer step", flag="--grad-accum", at_least=1)
    learning_rate: float = option(1e-5, "peak learning rate", flag="--lr", above=0)
    weight_decay: float = option(0.0, "AdamW weight decay", at_least=0)
    warmup_ratio: float = option(0.03, "share of steps for linear warmup before the decay", at_least=0, at_most=1)
    lr_schedule: str = option("cosine", "decay after warmup", choices=LR_SCHEDULES)
    min_lr_ratio: float = option(0.0, "the schedule decays to --lr times this", at_least=0, at_most=1)
    max_grad_norm: float = option(1.0, "gradient clipping norm", above=0)
    center_rewards_coefficient: float = option(0.0, "coefficient of the (r_w + r_l)^2 centering penalty",
                                               flag="--center-rewards", at_least=0)
    seed: int = option(0, "random seed")

    # Hardware
    device: str = option("auto", "auto, cpu, cuda, cuda:N or mps")
    precision: str = option("auto", "bf16 autocast; auto = bf16 where it is fast (GPUs, CPUs with AMX or "
                            "AVX512-BF16: rewardkit.device)",
                            choices=("auto", "fp32", "bf16"))
    gradient_checkpointing: bool = option(False, "trade compute for memory")
    # Dropout off while training (TRL's and OpenRLHF's default too): with it the two rewards of a comparison are
    # computed under different random masks, which adds noise to r_w - r_l, and on CPUs attention dropout forces
    # sdpa off its fused kernel. --dropout keeps the backbone's own rates.
    dropout: bool = option(False, "keep the backbone's dropout while training (off by default, as in TRL)")
    # Compute each group's shared prompt once, responses attending to it (rotary decoders; other models ignore it).
    # Same rewards and gradients as the padded forward up to float rounding (tests/perf, tests/training).
    share_prefix: bool = option(True, "run each prompt once per group, its responses attending to it "
                                "(Llama-like decoders)", negatable=True)
    lora_rank: int = option(0, "train LoRA adapters of this rank plus the head (needs peft); 0 = full fine-tuning",
                            at_least=0)
    lora_alpha: int = option(16, "LoRA scaling alpha", above=0)
    lora_dropout: float = option(0.0, "LoRA dropout", at_least=0, below=1)

    # Bookkeeping
    eval_steps: int = option(100, "validate every N steps", at_least=1)
    save_steps: int = option(100, "checkpoint every N steps", at_least=1)
    save_total_limit: int = option(2, "checkpoints kept", at_least=1)
    logging_steps: int = option(10, "write training metrics every N steps", at_least=1)
    eval_batch_size: int = option(32, "sequences per forward pass when validating", at_least=1)
    normalize_rewards: bool = option(True, "do not centre/scale rewards on the validation set after training",
                                     flag="--no-normalize")
    tensorboard: bool = option(False, "also log to TensorBoard")
    progress_bar: bool = option(True, "hide progress bars", flag="--no-progress")
    resume: bool = option(False, "continue from the last checkpoint in --output")

    def __post_init__(self) -> None:
        super().__post_init__()
        if isinstance(self.data, str):
            self.data = [self.data]
        if isinstance(self.eval_data, str):
            self.eval_data = [self.eval_data]

    def validate(self) -> None:
        if not self.model:
            raise RewardkitError("no model given: pass --model with an SFT checkpoint directory or hub id")
        if not self.data:
            raise RewardkitError("no training data given: pass --data with a preference file or dataset id")
        validate_fields(self)

    @classmethod
    def from_yaml(cls, path: str | Path, defaults: dict[str, Any] | None = None, **overrides: Any) -> TrainConfig:
        """The options in the YAML file at `path`, under `overrides` (command-line flags) and over `defaults`."""
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
        return cls(**{**(defaults or {}), **values, **overrides})

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)
