"""Sizes of every stage of `rewardkit demo`: the default run (< 10 min on 2 CPU cores) and `--quick` (< 2 min).

One seed drives everything: `DemoConfig(seed=s)` sets the world's and the SFT policy's seeds to s, and every other
stage (collection, labellers, reward models, best-of-n, PPO, held-out evaluation) draws from its own stream
derived from s and the stage's name, so adding a stage or changing one's size never moves another's randomness.
"""

from __future__ import annotations

import zlib
from dataclasses import asdict, dataclass, field, replace

from rewardkit.rl.evaluation import stream_seed
from rewardkit.world import SFTConfig, WorldConfig


@dataclass
class DemoConfig:
    seed: int = 0  # the world, the SFT policy and (through `stage_seed`) every other stage
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
    # held-out evaluation of the optimized policies: best-of-n and PPO use the same held-out prompts
    eval_prompts: int = 64
    # best-of-n against the RM (and, re-ranking the same samples, against each control)
    bon_samples: int = 512  # N responses per prompt (>= n_max), for the unbiased estimator
    bon_n_max: int = 256
    # PPO against the RM, one run per beta, evaluated on fresh samples for the held-out prompts at fixed steps
    ppo_betas: tuple[float, ...] = (0.0, 0.05)
    ppo_steps: int = 150
    ppo_batch_size: int = 64
    ppo_learning_rate: float = 3e-5
    ppo_checkpoints: int = 12  # held-out evaluations after step 0, denser early (where gold peaks)
    ppo_eval_samples: int = 8  # fresh samples per held-out prompt at each checkpoint
    # mechanism controls: best-of-n always (re-ranking is free); PPO at beta = 0 for this many steps (0: none)
    control_ppo_steps: int = 80
    max_new_tokens: int = 32
    bootstrap_samples: int = 1000

    def __post_init__(self) -> None:
        self.world = replace(self.world, seed=self.seed)
        self.sft = replace(self.sft, seed=self.seed)
        if self.bon_samples < self.bon_n_max:
            raise ValueError(f"bon_samples ({self.bon_samples}) must be >= bon_n_max ({self.bon_n_max})")
        if not 0 <= self.control_ppo_steps <= self.ppo_steps:
            raise ValueError(f"control_ppo_steps ({self.control_ppo_steps}) must lie in 0..ppo_steps "
                             f"({self.ppo_steps}): the controls are compared with the main run at equal steps")

    @classmethod
    def quick(cls, seed: int = 0) -> DemoConfig:
        return cls(
            seed=seed,
            sft=SFTConfig.quick(),
            train_prompts=400,
            val_prompts=100,
            rm_epochs=2.0,
            data_fractions=(0.1, 1.0),
            eval_prompts=32,
            bon_samples=128,  # best-of-n gold peaks at n = 2-4 in this world: n up to 64 shows the fall
            bon_n_max=64,
            ppo_steps=24,
            ppo_batch_size=32,
            ppo_learning_rate=3e-4,
            ppo_checkpoints=6,
            ppo_eval_samples=4,
            control_ppo_steps=12,
            bootstrap_samples=400,
        )

    def stage_seed(self, stage: str) -> int:
        """The seed of one stage ("collect", "rm", "ppo", ...): independent streams from one `seed`."""
        return stream_seed(self.seed, zlib.crc32(stage.encode()))

    def checkpoint_steps(self) -> list[int]:
        """0, then `ppo_checkpoints` steps up to `ppo_steps`, spaced as k^1.5 (denser early, where gold peaks);
        `control_ppo_steps` is always one of them, so the controls compare with the main run at equal steps."""
        count = self.ppo_checkpoints
        steps = {round(self.ppo_steps * (k / count) ** 1.5) for k in range(count + 1)}
        if 0 < self.control_ppo_steps <= self.ppo_steps:
            steps.add(self.control_ppo_steps)
        return sorted(steps)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> DemoConfig:
        """The inverse of `to_dict` (e.g. the "config" of a results.json)."""
        d = dict(d)
        world, sft = WorldConfig.from_dict(d.pop("world")), SFTConfig(**d.pop("sft"))
        tuples = {key: tuple(value) for key, value in d.items() if isinstance(value, list)}
        return cls(world=world, sft=sft, **{**d, **tuples})
