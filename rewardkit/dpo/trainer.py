"""A small DPO trainer: `train_dpo(policy, ref, tokenizer, dataset, DPOConfig())`, the whole loop below.

Each step takes `batch_size` prompt groups (a pair or a K-wise ranking each), forwards every distinct
(prompt, response) of the step once through the policy, and minimizes the DPO loss over all the groups'
comparisons. The reference is frozen, so its log-probs are computed once for the whole dataset up front.
Response tokens only (and the closing <eos>, see `encode.py`): the prompt is given, not chosen by the policy.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from rewardkit.data.collate import collate_groups
from rewardkit.data.records import PreferenceDataset
from rewardkit.dpo.encode import encode_preferences_for_policy
from rewardkit.dpo.logprobs import batched_sequence_logprobs, sequence_logprobs
from rewardkit.dpo.loss import dpo_loss
from rewardkit.errors import RewardkitError
from rewardkit.lm import pad_token_id
from rewardkit.progress import progress_bar
from rewardkit.training.optim import build_optimizer
from rewardkit.training.sampler import GroupBatchSchedule

# Called after every step with that step's log row and the policy; return True to stop early.
Callback = Callable[[dict[str, float], PreTrainedModel], bool | None]


@dataclass
class DPOConfig:
    beta: float = 0.1  # strength of the implicit KL constraint: smaller lets the policy move further
    epochs: float = 1.0
    max_steps: int | None = None  # overrides epochs when set
    batch_size: int = 8  # prompt groups per step
    learning_rate: float = 1e-5
    weight_decay: float = 0.0
    warmup_ratio: float = 0.05
    min_lr_ratio: float = 0.0
    max_grad_norm: float = 1.0
    max_length: int = 512  # tokens per prompt + response (capped by the policy's position embeddings)
    append_eos: bool = True
    seed: int = 0
    progress: bool = True


@dataclass
class DPOResult:
    policy: PreTrainedModel  # the trained policy (the object passed in, updated in place)
    log: list[dict[str, float]] = field(default_factory=list)  # one row per step


def train_dpo(
    policy: PreTrainedModel,
    ref: PreTrainedModel | None,
    tokenizer: PreTrainedTokenizerBase,
    dataset: PreferenceDataset,
    config: DPOConfig | None = None,
    callback: Callback | None = None,
) -> DPOResult:
    """Optimize `policy` in place with DPO against `ref` (None: a frozen copy of the policy as it starts)."""
    config = config or DPOConfig()
    if not len(dataset):
        raise RewardkitError("train_dpo needs at least one preference group")
    ref = copy.deepcopy(policy) if ref is None else ref
    ref.eval().requires_grad_(False)
    max_length = min(config.max_length, getattr(policy.config, "max_position_embeddings", None) or config.max_length)
    encoded = encode_preferences_for_policy(dataset, tokenizer, max_length, config.append_eos)
    pad = pad_token_id(tokenizer)
    # the frozen reference is scored once: a dict from each distinct sequence to log pi_ref(y|x)
    distinct = list({s: None for group in encoded.groups for s in group.sequences})
    ref_logps = dict(zip(distinct, batched_sequence_logprobs(ref, distinct, pad)[0].tolist(), strict=True))

    schedule = GroupBatchSchedule(len(encoded), config.batch_size, 1, config.seed)
    total_steps = schedule.total_steps(config.epochs, config.max_steps)
    optimizer, scheduler = build_optimizer(policy.parameters(), config, total_steps)
    device = policy.device
    policy.eval()  # no dropout: the log-probs are those of the policy that is sampled from
    log: list[dict[str, float]] = []
    progress = progress_bar(total_steps, f"DPO β={config.beta:g}, {len(encoded):,} preference groups",
                            config.progress)
    for step in range(total_steps):
        groups = [encoded.groups[i] for i in schedule.micro_batches(step)[0]]
        batch = {key: value.to(device) for key, value in collate_groups(groups, pad).items()}
        # the distinct sequences in collate_groups' row order (first occurrence of each input_ids)
        rows = list({s.input_ids: s for group in groups for s in group.sequences}.values())
        logps, _ = sequence_logprobs(policy, rows, pad)
        ref_batch = torch.tensor([ref_logps[s] for s in rows], device=device)
        stats = dpo_loss(logps, ref_batch, batch, config.beta)
        optimizer.zero_grad(set_to_none=True)
        stats.loss.backward()
        grad_norm = torch.nn.utils.clip_grad_norm_(policy.parameters(), config.max_grad_norm)
        optimizer.step()
        scheduler.step()

        with torch.no_grad():
            rewards = config.beta * (logps - ref_batch)
        row = {
            "step": step,
            "epoch": schedule.epoch_of(step + 1),
            "loss": stats.loss.item(),
            "accuracy": stats.accuracy.item(),  # implicit-reward accuracy on this step's comparisons
            "margin": stats.margin.item(),
            "better_reward": rewards[batch["better"]].mean().item(),
            "worse_reward": rewards[batch["worse"]].mean().item(),
            "grad_norm": grad_norm.item(),
            "lr": scheduler.get_last_lr()[0],
        }
        log.append(row)
        progress.update(1, loss=f"{row['loss']:.3f}", acc=f"{row['accuracy']:.2f}")
        if callback is not None and callback(row, policy):
            break
    progress.close()
    return DPOResult(policy, log)
