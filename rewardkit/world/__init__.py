"""A synthetic world with a known gold reward for `rewardkit demo`: Gao, Schulman & Hilton 2022 in miniature.

    world = World(WorldConfig(seed=0))                        # topics, prompts, gold reward   (world.py)
    policy, tokenizer = train_sft_policy(world, SFTConfig())  # a tiny Llama imitating demos   (policy.py)
    world.gold_offset = estimate_gold_offset(world, policy, tokenizer)  # centred gold: SFT ~ 0
    records = collect_rankings(world, policy, tokenizer, 1000)  # K = 4..9 rankings by a biased,
                                                                # noisy labeller (collect.py, labeller.py)
    world.gold_reward(prompts, responses)                     # what the proxy RM should have learned

The labellers like long and list-formatted responses, the gold reward does not (features.py): a reward model
trained on their rankings inherits that, and a policy optimized hard against it drifts longer and more
formatted while gold first rises, then falls.
"""

from rewardkit.world.collect import collect_rankings, rank_by_gold, read_rankings, relabel, write_rankings
from rewardkit.world.features import format_rate, response_length
from rewardkit.world.labeller import (
    DEFAULT_FORMAT_BIAS,
    DEFAULT_LENGTH_BIAS,
    DEFAULT_TEMPERATURE,
    INSTRUCTGPT_AGREEMENT,
    Labeller,
    calibrate_temperature,
    expected_agreement,
    pairwise_agreement,
    utilities,
)
from rewardkit.world.policy import (
    SFTConfig,
    demonstration_loss,
    estimate_gold_offset,
    load_world,
    sample_responses,
    save_policy,
    train_sft_policy,
)
from rewardkit.world.tokenizer import build_tokenizer, format_prompt
from rewardkit.world.world import World, WorldConfig

__all__ = [
    "DEFAULT_FORMAT_BIAS",
    "DEFAULT_LENGTH_BIAS",
    "DEFAULT_TEMPERATURE",
    "INSTRUCTGPT_AGREEMENT",
    "Labeller",
    "SFTConfig",
    "World",
    "WorldConfig",
    "build_tokenizer",
    "calibrate_temperature",
    "collect_rankings",
    "demonstration_loss",
    "estimate_gold_offset",
    "expected_agreement",
    "format_prompt",
    "format_rate",
    "load_world",
    "pairwise_agreement",
    "rank_by_gold",
    "read_rankings",
    "relabel",
    "response_length",
    "sample_responses",
    "save_policy",
    "train_sft_policy",
    "utilities",
    "write_rankings",
]
