"""A verl custom reward function that asks a `rewardkit serve` server for the reward of each response.

    rewardkit serve --model runs/rm --port 8000 &
    python -m verl.trainer.main_ppo ... \
        custom_reward_function.path=examples/verl_reward_fn.py custom_reward_function.name=compute_score \
        +custom_reward_function.reward_kwargs.url=http://127.0.0.1:8000

verl's NaiveRewardManager calls `compute_score(data_source=..., solution_str=..., ground_truth=..., extra_info=...)`
once per response; its BatchRewardManager (`reward_model.reward_manager=batch`) calls `compute_score_batch` with
lists, one HTTP request per batch (set custom_reward_function.name=compute_score_batch). `solution_str` is the
response only: verl passes no prompt, so the data preparation must put the prompt text in `extra_info["prompt"]`
(verl's GSM8K recipe stores it as `extra_info["question"]`, which is used when "prompt" is absent). The URL may also
come from the REWARDKIT_URL environment variable; several servers (comma-separated) fail over to each other.
"""

from __future__ import annotations

import os
from functools import cache

from rewardkit.client import RewardClient


@cache
def _client(url: str, api_key: str | None) -> RewardClient:
    return RewardClient(url.split(","), api_key=api_key, max_retries=5)


def _prompt(extra_info: dict | None) -> str:
    info = extra_info or {}
    prompt = info.get("prompt", info.get("question"))
    if not isinstance(prompt, str):
        raise ValueError("rewardkit's verl reward function needs the prompt text in extra_info['prompt'] (or "
                         f"'question'); this sample's extra_info has keys {sorted(info)}")
    return prompt


def _connect(url: str | None, api_key: str | None) -> RewardClient:
    url = url or os.environ.get("REWARDKIT_URL")
    if not url:
        raise ValueError("set +custom_reward_function.reward_kwargs.url=http://HOST:PORT (or REWARDKIT_URL)")
    return _client(url, api_key or os.environ.get("REWARDKIT_API_KEY"))


def compute_score(data_source: str, solution_str: str, ground_truth: str | None = None, extra_info: dict | None = None,
                  url: str | None = None, api_key: str | None = None, **kwargs) -> float:
    """The reward model's reward for one response (verl's NaiveRewardManager signature)."""
    return _connect(url, api_key).score([_prompt(extra_info)], [solution_str])[0]


def compute_score_batch(data_sources: list, solution_strs: list[str], ground_truths: list, extra_infos: list,
                        url: str | None = None, api_key: str | None = None, **kwargs) -> list[float]:
    """Rewards for a batch of responses in one request (verl's BatchRewardManager signature)."""
    prompts = [_prompt(info) for info in extra_infos]
    return _connect(url, api_key).score(prompts, list(solution_strs))
