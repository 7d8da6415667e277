"""Sizes of every stage of `rewardkit demo`: the default run (< 10 min on 2 CPU cores) and `--quick` (< 2 min)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from rewardkit.world import SFTConfig, WorldConfig


@dataclass
class DemoConfig:
    seed: int = 0
    world: WorldConfig = field(default_factory=WorldConfig)
    sft: SFTConfig = field(default_factory=SFTConfig)
    # preference collection (InstructGPT: K = 4..9 responses ranked per prompt)
    train_prompts: int = 1200
    val_prompts: int = 200
    k_range: tuple[int, int] = (4, 9)
    # reward-model training (from the SFT checkpoint, and from random init for comparison)
    rm_epochs: float = 2.0
    rm_batch_size: int = 16  # prompts per step
    rm_learning_rate: float = 1e-3
    data_fractions: tuple[float, ...] = (0.05, 0.2, 1.0)  # for the SFT-vs-random-init data-scaling curve
    # best-of-n against the RM
    bon_prompts: int = 64
    bon_samples: int = 512  # N responses per prompt (>= n_max), for the unbiased estimator
    bon_n_max: int = 256
    # PPO against the RM, one run per beta
    ppo_betas: tuple[float, ...] = (0.0, 0.05)
    ppo_steps: int = 150
    ppo_batch_size: int = 64
    ppo_learning_rate: float = 3e-5
    ppo_eval_points: int = 25  # points per PPO curve (rollout statistics averaged over windows of steps)
    max_new_tokens: int = 32

    @classmethod
    def quick(cls, seed: int = 0) -> DemoConfig:
        return cls(
            seed=seed,
            sft=SFTConfig.quick(seed=seed),
            train_prompts=500,
            val_prompts=100,
            rm_epochs=2.0,
            data_fractions=(0.1, 1.0),
            bon_prompts=32,
            bon_samples=256,
            bon_n_max=128,
            ppo_steps=40,
            ppo_batch_size=32,
            ppo_learning_rate=3e-4,
            ppo_eval_points=8,
        )

    def to_dict(self) -> dict:
        return asdict(self)
