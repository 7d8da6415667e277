"""Critic-free policy optimization for RLHF: RLOO (Ahmadian et al. 2024) and GRPO (Shao et al. 2024).

Both sample k responses per prompt and use the other responses to the same prompt as the baseline, so no value
model is trained. One step, top to bottom in `train_critic_free`:
  1. rollout: batch_size / k prompts, k responses each, from the current policy; score each with r
  2. log-probs of the sampled tokens under the policy (pi_old) and the frozen reference (pi_sft)
  3. advantages, one per response, given to each of its tokens:
       RLOO  R_i = r_i - beta KL_i   (sequence KL in the reward, as PPO's R = r - beta KL)
             A_i = R_i - 1/(k-1) sum_{j != i} R_j                   (the leave-one-out baseline)
       GRPO  A_i = (r_i - mean_j r_j) / (std_j r_j + eps)            (group-normalized; no KL in the reward)
  4. epochs passes over shuffled mini-batches of
       L_clip = max(-A ratio, -A clip(ratio, 1 - eps, 1 + eps))   with ratio = pi / pi_old per token
       RLOO  loss = token mean of L_clip
       GRPO  loss = 1/G sum_i 1/|o_i| sum_t [L_clip + beta k3_t],  k3_t = pi_ref/pi - log(pi_ref/pi) - 1
                    (the KL to pi_sft is in the loss, estimated on pi's own samples)
  5. log (the same keys as PPO, so `rl.evaluation.HeldOutEvaluation.callback` works with either)

Same sample budget as PPO: `batch_size` responses per step. The update schedule (epochs, mini-batches, clipping)
is PPO's, so what differs between the three is the advantage estimator and where the KL is paid.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import ClassVar, Literal

import numpy as np
import torch
from torch import nn
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from rewardkit.lm import response_logprobs, sample_responses
from rewardkit.progress import progress_bar
from rewardkit.rl.kl import kl_k1, kl_k3
from rewardkit.rl.losses import clipped_surrogate, masked_mean, sequence_mean
from rewardkit.rl.ppo import Callback, prompt_batches
from rewardkit.rl.rewards import RewardFn, penalize_missing_eos, score_responses

Algorithm = Literal["rloo", "grpo"]


@dataclass
class CriticFreeConfig:
    algorithm: ClassVar[Algorithm]
    steps: int = 100
    batch_size: int = 64  # responses per step (PPO's rollouts per step): batch_size / group_size prompts
    group_size: int = 4  # k responses per prompt
    num_mini_batches: int = 4
    epochs: int = 4
    learning_rate: float = 1e-5
    clip_range: float = 0.2
    max_grad_norm: float = 1.0
    beta: float = 0.05
    max_new_tokens: int = 32
    temperature: float = 1.0
    missing_eos_penalty: float | None = None  # subtracted from r(x, y) of responses without EOS (None: off)
    seed: int = 0
    progress: bool = True
    progress_desc: str = ""

    def __post_init__(self) -> None:
        if self.group_size < 2:
            raise ValueError(f"group_size must be at least 2 (the baseline needs others), got {self.group_size}")
        if self.batch_size % self.group_size:
            raise ValueError(f"batch_size ({self.batch_size}) must be a multiple of group_size ({self.group_size})")
        if self.batch_size % self.num_mini_batches:
            raise ValueError("batch_size must be divisible by num_mini_batches")


@dataclass
class RLOOConfig(CriticFreeConfig):
    algorithm: ClassVar[Algorithm] = "rloo"
    beta: float = 0.05  # KL coefficient in the reward (TRL's RLOO default)


@dataclass
class GRPOConfig(CriticFreeConfig):
    algorithm: ClassVar[Algorithm] = "grpo"
    beta: float = 0.04  # KL coefficient in the loss (DeepSeekMath)
    eps: float = 1e-4  # added to the group's std: a group of equal rewards gets advantage 0, not nan


@dataclass
class CriticFreeResult:
    policy: PreTrainedModel  # the trained policy (the object passed in, updated in place)
    log: list[dict[str, float]] = field(default_factory=list)  # one row per step


def rloo_advantages(rewards: torch.Tensor) -> torch.Tensor:
    """A_i = R_i - mean of the other k - 1 rewards of the same prompt; `rewards` [P, k] -> [P, k]."""
    k = rewards.shape[-1]
    leave_one_out_baseline = (rewards.sum(-1, keepdim=True) - rewards) / (k - 1)
    return rewards - leave_one_out_baseline


def group_normalized_advantages(rewards: torch.Tensor, eps: float = 1e-4) -> torch.Tensor:
    """A_i = (r_i - mean(r)) / (std(r) + eps) within each prompt's group; `rewards` [P, k] -> [P, k].

    std with Bessel's correction (k - 1), as torch.std and the reference implementations compute it.
    """
    return (rewards - rewards.mean(-1, keepdim=True)) / (rewards.std(-1, keepdim=True) + eps)


def train_rloo(policy: PreTrainedModel, ref_policy: PreTrainedModel, tokenizer: PreTrainedTokenizerBase,
               prompts: list[str], reward_fn: RewardFn, config: RLOOConfig | None = None,
               metrics: dict[str, RewardFn] | None = None, callback: Callback | None = None) -> CriticFreeResult:
    """RLOO: optimise `policy` in place against `reward_fn`, KL-penalised to `ref_policy` in the reward."""
    return train_critic_free(policy, ref_policy, tokenizer, prompts, reward_fn, config or RLOOConfig(), metrics,
                             callback)


def train_grpo(policy: PreTrainedModel, ref_policy: PreTrainedModel, tokenizer: PreTrainedTokenizerBase,
               prompts: list[str], reward_fn: RewardFn, config: GRPOConfig | None = None,
               metrics: dict[str, RewardFn] | None = None, callback: Callback | None = None) -> CriticFreeResult:
    """GRPO: optimise `policy` in place against `reward_fn`, KL-penalised to `ref_policy` in the loss."""
    return train_critic_free(policy, ref_policy, tokenizer, prompts, reward_fn, config or GRPOConfig(), metrics,
                             callback)


def train_critic_free(policy: PreTrainedModel, ref_policy: PreTrainedModel, tokenizer: PreTrainedTokenizerBase,
                      prompts: list[str], reward_fn: RewardFn, config: CriticFreeConfig,
                      metrics: dict[str, RewardFn] | None = None,
                      callback: Callback | None = None) -> CriticFreeResult:
    """The loop of the module docstring; `config`'s class (RLOOConfig or GRPOConfig) picks the algorithm.

    `metrics` are scored on each step's responses and logged, never optimised; `callback(row, policy)` runs after
    every step and stops training when it returns True.
    """
    metrics = metrics or {}
    if not prompts:
        raise ValueError(f"train_{config.algorithm} needs at least one prompt")
    k, device = config.group_size, policy.device
    ref_policy.eval().requires_grad_(False)
    policy.eval()  # no dropout: the log-probs recomputed in the update match the rollout's
    params = [p for p in policy.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=config.learning_rate, eps=1e-5, weight_decay=0.0)
    sample_generator = torch.Generator(device=device).manual_seed(config.seed)
    shuffle_generator = torch.Generator().manual_seed(config.seed)
    batches = prompt_batches(prompts, config.batch_size // k, shuffle_generator)
    mini_batch_size = config.batch_size // config.num_mini_batches
    log: list[dict[str, float]] = []

    progress = progress_bar(config.steps, config.progress_desc or config.algorithm.upper(), config.progress)
    for step in range(config.steps):
        # 1. rollout: k responses per prompt, the k copies of a prompt adjacent (row i belongs to group i // k)
        batch_prompts = [prompt for prompt in next(batches) for _ in range(k)]
        samples = sample_responses(policy, tokenizer, batch_prompts, config.max_new_tokens, config.temperature,
                                   generator=sample_generator)
        scores = score_responses(reward_fn, batch_prompts, samples.texts).to(device)
        optimized = penalize_missing_eos(scores, samples.finished, config.missing_eos_penalty)
        input_ids, attention_mask = samples.input_ids, samples.attention_mask
        mask = samples.response_mask.float()

        # 2. log-probs under pi_old and pi_sft
        with torch.no_grad():
            logp_old = response_logprobs(policy, input_ids, attention_mask, mask, config.temperature)
            logp_ref = response_logprobs(ref_policy, input_ids, attention_mask, mask, config.temperature)
        sequence_kl = (kl_k1(logp_old, logp_ref) * mask).sum(-1)

        # 3. one advantage per response, broadcast over its tokens
        if config.algorithm == "rloo":
            advantages = rloo_advantages((optimized - config.beta * sequence_kl).view(-1, k)).view(-1)
        else:
            advantages = group_normalized_advantages(optimized.view(-1, k), config.eps).view(-1)
        advantages = advantages[:, None] * mask

        # 4. clipped policy updates (GRPO: + beta k3 in the loss)
        stats: dict[str, list[float]] = defaultdict(list)
        for _ in range(config.epochs):
            for idx in torch.randperm(config.batch_size, generator=shuffle_generator).split(mini_batch_size):
                idx = idx.to(device)
                mb_mask = mask[idx]
                logp = response_logprobs(policy, input_ids[idx], attention_mask[idx], mb_mask, config.temperature)
                pg_losses, clipped = clipped_surrogate(logp, logp_old[idx], advantages[idx], config.clip_range)
                if config.algorithm == "rloo":
                    loss = policy_loss = masked_mean(pg_losses, mb_mask)
                else:
                    policy_loss = sequence_mean(pg_losses, mb_mask)
                    kl_loss = sequence_mean(kl_k3(logp, logp_ref[idx]), mb_mask)
                    loss = policy_loss + config.beta * kl_loss
                    stats["kl_loss"].append(kl_loss.item())
                optimizer.zero_grad()
                loss.backward()
                nn.utils.clip_grad_norm_(params, config.max_grad_norm)
                optimizer.step()
                with torch.no_grad():
                    stats["policy_loss"].append(policy_loss.item())
                    stats["clip_fraction"].append(masked_mean(clipped, mb_mask).item())
                    stats["approx_kl"].append(masked_mean(kl_k3(logp_old[idx], logp), mb_mask).item())

        # 5. log: the rollout's sequence-level k1 KL, as PPO logs it
        row: dict[str, float] = {"step": step, "proxy_reward": scores.mean().item(),
                                 "kl": sequence_kl.mean().item(), "response_length": mask.sum(-1).mean().item(),
                                 "unfinished": (~samples.finished).float().mean().item(), "beta": config.beta}
        row |= {name: float(np.mean(history)) for name, history in stats.items()}
        for name, fn in metrics.items():
            row[name] = score_responses(fn, batch_prompts, samples.texts).mean().item()
        log.append(row)
        progress.update(reward=f"{row['proxy_reward']:.3f}", kl=f"{row['kl']:.2f}")
        if callback is not None and callback(row, policy):
            break
    progress.close()
    return CriticFreeResult(policy=policy, log=log)
