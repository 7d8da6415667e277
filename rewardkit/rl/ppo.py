"""PPO with a learned critic for RLHF (Ziegler et al. 2019, Stiennon et al. 2020, Ouyang et al. 2022).

One step, top to bottom in `train_ppo`:
  1. rollout: sample a response per prompt from the current policy; score it with the reward function r
  2. log-probs of the sampled tokens under the policy (pi_old) and the frozen reference (pi_sft); V(s_t)
  3. shaped rewards: r_t = -beta * kl_t on every token, + r(x, y) on the last one  (R = r - beta KL)
  4. GAE:  delta_t = r_t + gamma V(s_{t+1}) - V(s_t),  A_t = delta_t + gamma lambda A_{t+1},  returns = A + V
  5. ppo_epochs passes over shuffled mini-batches of
       ratio = pi(y_t | s_t) / pi_old(y_t | s_t)
       L_clip = max(-A ratio, -A clip(ratio, 1 - eps, 1 + eps))
       L_V = 0.5 max((V - returns)^2, (V_old + clip(V - V_old, -eps_v, eps_v) - returns)^2)
       loss = L_clip + vf_coef L_V, gradient norm clipped
  6. log, then update beta (fixed, or Ziegler et al.'s adaptive controller)

The critic is a scalar head on a *separate* copy of a backbone (the policy's by default, or `value_init`'s,
e.g. the reward model's as in InstructGPT). Why separate rather than a second head on the policy: value-loss
gradients then never move the policy's language distribution (one knob fewer to tune, and the KL to pi_sft is
caused by the policy loss alone), at the cost of one more model copy in memory.
"""

from __future__ import annotations

import copy
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from rewardkit.lm import position_ids_from_mask, response_logprobs, sample_responses
from rewardkit.progress import progress_bar
from rewardkit.rl.kl import KLEstimator, kl_k1, kl_k3, kl_per_token
from rewardkit.rl.losses import clipped_surrogate, clipped_value_loss, masked_mean, masked_whiten
from rewardkit.rl.rewards import RewardFn, penalize_missing_eos, score_responses
from rewardkit.rl.shaping import AdaptiveKLController, FixedKLController, shaped_rewards

LOG_KEYS = (
    "step",
    "proxy_reward",
    "kl",
    "response_length",
    "unfinished",
    "beta",
    "policy_loss",
    "value_loss",
    "clip_fraction",
    "approx_kl",
)
# Called after every step with that step's log row and the policy; return True to stop training early.
Callback = Callable[[dict[str, float], PreTrainedModel], bool | None]


@dataclass
class PPOConfig:
    steps: int = 100
    batch_size: int = 64  # rollouts (prompt, response) per step
    num_mini_batches: int = 4
    ppo_epochs: int = 4
    learning_rate: float = 1e-5
    clip_range: float = 0.2  # eps of the clipped ratio
    value_clip_range: float | None = 0.2  # eps_v; None: unclipped value loss
    vf_coef: float = 0.1
    max_grad_norm: float = 1.0
    gamma: float = 1.0
    gae_lambda: float = 0.95
    beta: float = 0.05  # KL coefficient (initial value when adaptive)
    kl_estimator: KLEstimator = "k1"  # per-token estimate used in the reward penalty
    adaptive_kl: bool = False
    kl_target: float = 6.0  # nats of sequence KL the adaptive controller steers to
    kl_horizon: int = 10_000
    max_new_tokens: int = 32
    temperature: float = 1.0
    whiten_advantages: bool = True
    missing_eos_penalty: float | None = None  # subtracted from r(x, y) of responses without EOS (None: off)
    seed: int = 0
    progress: bool = True
    progress_desc: str = "PPO"  # names the progress bar, e.g. "PPO β=0 against the RM, seed 1"


@dataclass
class PPOResult:
    policy: PreTrainedModel  # the trained policy (the same object that was passed in, updated in place)
    value_model: ValueModel
    log: list[dict[str, float]] = field(default_factory=list)  # one row per step


class ValueModel(nn.Module):
    """V(s_t) for each response token: a linear head on a copy of a transformer backbone."""

    def __init__(self, init_from: PreTrainedModel):
        super().__init__()
        # copy the backbone only: the LM head is not needed for hidden states
        self.backbone = copy.deepcopy(init_from.base_model)
        self.value_head = nn.Linear(init_from.config.hidden_size, 1)
        nn.init.zeros_(self.value_head.weight)  # V = 0 at start: early advantages are just the rewards-to-go
        nn.init.zeros_(self.value_head.bias)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, num_response: int) -> torch.Tensor:
        """Values [B, R] of the states before each of the last R tokens (same shift as the log-probs)."""
        hidden = self.backbone(
            input_ids=input_ids,
            attention_mask=attention_mask,
            position_ids=position_ids_from_mask(attention_mask),
            use_cache=False,
        ).last_hidden_state
        return self.value_head(hidden[:, -num_response - 1 : -1].float()).squeeze(-1)


def generalized_advantages(
    rewards: torch.Tensor, values: torch.Tensor, gamma: float, gae_lambda: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """GAE (Schulman et al. 2016) over right-padded responses, [B, R] each; returns (advantages, returns).

    Rewards and values must be 0 on padding: then V(s_{T+1}) = 0 after the last token and padded positions
    get advantage 0 without any explicit `done` handling.
    """
    advantages = torch.zeros_like(rewards)
    running = torch.zeros_like(rewards[:, 0])
    num_tokens = rewards.shape[1]
    for t in reversed(range(num_tokens)):
        next_value = values[:, t + 1] if t + 1 < num_tokens else torch.zeros_like(running)
        delta = rewards[:, t] + gamma * next_value - values[:, t]
        running = delta + gamma * gae_lambda * running
        advantages[:, t] = running
    return advantages, advantages + values


def prompt_batches(prompts: list[str], batch_size: int, generator: torch.Generator) -> Iterator[list[str]]:
    """Endless batches of prompts, reshuffled every pass over the list."""
    queue: list[str] = []
    while True:
        while len(queue) < batch_size:
            queue += [prompts[i] for i in torch.randperm(len(prompts), generator=generator)]
        batch, queue = queue[:batch_size], queue[batch_size:]
        yield batch


def train_ppo(
    policy: PreTrainedModel,
    ref_policy: PreTrainedModel | None,
    tokenizer: PreTrainedTokenizerBase,
    prompts: list[str],
    reward_fn: RewardFn,
    config: PPOConfig | None = None,
    metrics: dict[str, RewardFn] | None = None,
    callback: Callback | None = None,
    value_init: PreTrainedModel | None = None,
) -> PPOResult:
    """Optimise `policy` in place against `reward_fn`, KL-penalised to `ref_policy` (None: a frozen copy).

    `metrics` are evaluated on each step's responses and logged (their mean) under their names; they are
    never optimised (e.g. the gold reward in an over-optimization study).
    """
    config = config or PPOConfig()
    metrics = metrics or {}
    if clashes := set(LOG_KEYS) & metrics.keys():
        raise ValueError(f"metric names {sorted(clashes)} clash with PPO's own log keys")
    if not prompts:
        raise ValueError("train_ppo needs at least one prompt")
    if config.batch_size % config.num_mini_batches:
        raise ValueError("batch_size must be divisible by num_mini_batches")
    device = policy.device
    ref_policy = copy.deepcopy(policy) if ref_policy is None else ref_policy
    ref_policy.eval().requires_grad_(False)
    value_model = ValueModel(value_init if value_init is not None else policy).to(device)
    # eval(): no dropout, so the log-probs recomputed during the update match those of the rollout
    policy.eval()
    value_model.eval()
    params = [p for p in [*policy.parameters(), *value_model.parameters()] if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=config.learning_rate, eps=1e-5, weight_decay=0.0)
    if config.adaptive_kl:
        kl_controller = AdaptiveKLController(config.beta, config.kl_target, config.kl_horizon)
    else:
        kl_controller = FixedKLController(config.beta)
    sample_generator = torch.Generator(device=device).manual_seed(config.seed)
    shuffle_generator = torch.Generator().manual_seed(config.seed)
    batches = prompt_batches(prompts, config.batch_size, shuffle_generator)
    mini_batch_size = config.batch_size // config.num_mini_batches
    log: list[dict[str, float]] = []

    progress = progress_bar(config.steps, config.progress_desc, config.progress)
    for step in range(config.steps):
        # 1. rollout and score
        batch_prompts = next(batches)
        samples = sample_responses(
            policy,
            tokenizer,
            batch_prompts,
            config.max_new_tokens,
            config.temperature,
            generator=sample_generator,
        )
        scores = score_responses(reward_fn, batch_prompts, samples.texts).to(device)
        optimized = penalize_missing_eos(scores, samples.finished, config.missing_eos_penalty)
        input_ids, attention_mask = samples.input_ids, samples.attention_mask
        mask = samples.response_mask.float()
        num_response = mask.shape[1]

        # 2. log-probs under pi_old and pi_sft, values V_old
        with torch.no_grad():
            logp_old = response_logprobs(policy, input_ids, attention_mask, mask, config.temperature)
            logp_ref = response_logprobs(ref_policy, input_ids, attention_mask, mask, config.temperature)
            values_old = value_model(input_ids, attention_mask, num_response) * mask

        # 3. shaped rewards R = r - beta KL
        beta = kl_controller.beta
        kl = kl_per_token(logp_old, logp_ref, config.kl_estimator) * mask
        rewards = shaped_rewards(optimized, kl, mask, beta)

        # 4. advantages and returns
        advantages, returns = generalized_advantages(rewards, values_old, config.gamma, config.gae_lambda)
        if config.whiten_advantages:
            advantages = masked_whiten(advantages, mask)

        # 5. clipped policy and value updates
        stats: dict[str, list[float]] = defaultdict(list)
        for _ in range(config.ppo_epochs):
            for idx in torch.randperm(config.batch_size, generator=shuffle_generator).split(mini_batch_size):
                idx = idx.to(device)
                mb_mask = mask[idx]
                logp = response_logprobs(policy, input_ids[idx], attention_mask[idx], mb_mask, config.temperature)
                pg_losses, clipped = clipped_surrogate(logp, logp_old[idx], advantages[idx], config.clip_range)
                policy_loss = masked_mean(pg_losses, mb_mask)

                values = value_model(input_ids[idx], attention_mask[idx], num_response)
                value_loss = masked_mean(
                    clipped_value_loss(values, values_old[idx], returns[idx], config.value_clip_range), mb_mask)

                loss = policy_loss + config.vf_coef * value_loss
                optimizer.zero_grad()
                loss.backward()
                nn.utils.clip_grad_norm_(params, config.max_grad_norm)
                optimizer.step()

                with torch.no_grad():
                    stats["policy_loss"].append(policy_loss.item())
                    stats["value_loss"].append(value_loss.item())
                    stats["clip_fraction"].append(masked_mean(clipped, mb_mask).item())
                    # KL(pi_old || pi) over the update, k3 on tokens sampled from pi_old
                    stats["approx_kl"].append(masked_mean(kl_k3(logp_old[idx], logp), mb_mask).item())

        # 6. log, then update beta. Logged KL: the rollout's sequence-level k1 sum, whatever the penalty uses
        sequence_kl = (kl_k1(logp_old, logp_ref) * mask).sum(-1).mean().item()
        row: dict[str, float] = {
            "step": step,
            "proxy_reward": scores.mean().item(),
            "kl": sequence_kl,
            "response_length": mask.sum(-1).mean().item(),
            "unfinished": (~samples.finished).float().mean().item(),  # share of responses cut without EOS
            "beta": beta,
        }
        row |= {name: float(np.mean(history)) for name, history in stats.items()}
        for name, fn in metrics.items():
            row[name] = score_responses(fn, batch_prompts, samples.texts).mean().item()
        log.append(row)
        progress.update(reward=f"{row['proxy_reward']:.3f}", kl=f"{sequence_kl:.2f}")
        kl_controller.update(sequence_kl, config.batch_size)
        if callback is not None and callback(row, policy):
            break
    progress.close()
    return PPOResult(policy=policy, value_model=value_model, log=log)
