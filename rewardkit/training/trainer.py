"""Train a reward model: one loop for every objective (`objectives.py`). The whole loop is `train` below.

Each optimizer step takes `batch_size * gradient_accumulation_steps` groups (a prompt with its responses, or a
problem with its step-labelled solutions); every distinct sequence of a micro-batch is forwarded once, with its
rewards read where the objective needs them (the last token for Bradley-Terry, each labelled step for step
classification), and the objective's loss is averaged per group, then over groups. Checkpoints are atomic
(Accelerate's save_state, so FSDP and DeepSpeed runs resume too) and a resumed run reaches the same weights as an
uninterrupted one: tested with 1 process and with 2 under DDP and under FSDP2 (on the CPU, tests/distributed);
DeepSpeed is untested.

FSDP: `accelerate launch --config_file examples/accelerate/fsdp.yaml -m rewardkit train ...`. Under FSDP2 `prepare`
shards `model` in place, so `model` and `wrapped` are the same module: every forward, evaluation's too, gathers
weights collectively, and `save_model` gathers the full weights on the main process.

Launched as N processes (see rewardkit/distributed.py), step s covers the same groups as step s of a 1-process run
with batch `batch_size * N`, each process holding whole groups, and the gradient is the same mean over them.
Accelerate wraps the model (DDP, FSDP or DeepSpeed) and syncs gradients once per step; the main process alone
writes logs and the model.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from transformers import set_seed

from rewardkit.device import precision_dtype, resolve_device
from rewardkit.distributed import build_accelerator, is_sharded, save_model, shard_step
from rewardkit.errors import RewardkitError
from rewardkit.model.prefix_sharing import supports_packing
from rewardkit.model.reward_model import RewardModel
from rewardkit.progress import progress_bar
from rewardkit.training.checkpoint import latest_checkpoint, load_checkpoint, save_checkpoint
from rewardkit.training.config import TrainConfig
from rewardkit.training.metrics_log import MetricsLog
from rewardkit.training.objectives import build_objective
from rewardkit.training.optim import build_optimizer
from rewardkit.training.sampler import GroupBatchSchedule

logger = logging.getLogger("rewardkit")

# Called after every optimizer step with (step, train metrics of that step, model).
StepCallback = Callable[[int, dict, RewardModel], None]


class TrainingDivergedError(RewardkitError):
    """The loss or the gradient became NaN/inf; nothing from that step was saved."""


@dataclass
class TrainResult:
    model: RewardModel
    output_dir: Path
    steps: int
    eval_metrics: dict | None
    summary: dict


def train(config: TrainConfig, callbacks: Sequence[StepCallback] = ()) -> TrainResult:
    config.validate()
    objective = build_objective(config)
    accelerator = build_accelerator(config)
    rank, world, is_main = accelerator.process_index, accelerator.num_processes, accelerator.is_main_process
    output_dir = Path(config.output_dir)
    device = accelerator.device if world > 1 else resolve_device(config.device)
    autocast_dtype = precision_dtype(config.precision, device)  # auto: bf16 where the device computes it fast
    resume_from = latest_checkpoint(output_dir) if config.resume else None
    if config.resume and resume_from is None:
        logger.warning("--resume: no checkpoint in %s yet, starting from the beginning", output_dir)
    sharded = is_sharded(accelerator)
    if sharded and config.lora_rank:  # the final save gathers full weights by name, which LoRA wrapping changes
        raise RewardkitError("--lora-rank works with DDP, not yet with FSDP or DeepSpeed")

    train_set, eval_set, load_report = objective.load()  # a bad record fails before the model loads
    set_seed(config.seed)  # the same on every process: identical initial weights, the new head included
    model = build_reward_model(config, process=objective.process).to(device)
    model.precision = config.precision  # validation and normalization score at the training precision
    share_prefix = config.share_prefix and supports_packing(model)
    if config.share_prefix and not share_prefix and is_main:
        model_type = getattr(model.hf_model.config, "model_type", "?")
        if model.is_decoder:
            logger.info("share_prefix: %s models keep the padded forward (prompts are shared for Llama-like "
                        "decoders with sdpa or eager attention)", model_type)
        else:
            logger.info("share_prefix: %s is a bidirectional encoder, whose prompt states depend on the response: "
                        "batches are packed without padding, prompts are not shared", model_type)
    train_data = objective.encode(train_set, model, training=True)
    eval_data = objective.encode(eval_set, model, training=False) if len(eval_set) else None
    for name, data in (("train", train_data), ("eval", eval_data)):
        if data is not None and data.num_truncated:
            logger.warning("%s data: %s", name, data.truncation_note(model.max_length))

    # One schedule for the whole job: step s holds the groups a 1-process run with batch `batch_size * world` takes.
    accumulation = config.gradient_accumulation_steps
    schedule = GroupBatchSchedule(len(train_data), config.batch_size * world, accumulation, config.seed)
    total_steps = schedule.total_steps(config.epochs, config.max_steps)
    optimizer, scheduler = build_optimizer(model.parameters(), config, total_steps)
    # `wrapped` (DDP/FSDP/DeepSpeed) is for training passes; `model` stays the RewardModel for everything else.
    wrapped, optimizer = accelerator.prepare(model, optimizer)
    accelerator.register_for_checkpointing(scheduler)
    step = load_checkpoint(accelerator, resume_from)["step"] if resume_from else 0
    resume_after = step if resume_from else None
    log = MetricsLog(output_dir / "metrics.jsonl", config.tensorboard, resume_after) if is_main else _NoLog()
    pad_id = model.tokenizer.pad_token_id

    wrapped.train()
    started, labels_seen, window = time.perf_counter(), 0, []
    recent = deque(maxlen=50)  # running accuracy for the progress bar
    show_progress = config.progress_bar and is_main
    progress = progress_bar(total_steps, "training reward model", enabled=show_progress, initial=step)
    while step < total_steps:
        micro_batches = schedule.micro_batches(step)
        step_groups = sum(len(micro) for micro in micro_batches)
        sums = torch.zeros(1 + len(objective.totals), dtype=torch.float64, device=device)  # loss x groups, totals
        for group_indices in shard_step(micro_batches, accumulation, rank, world):
            # With no group of its own here a process still runs a pass (on a stand-in group, weight 0): every
            # process must join each gradient sync.
            groups = [train_data.groups[i] for i in group_indices or micro_batches[0][:1]]
            batch = {key: value.to(device) if isinstance(value, torch.Tensor) else value
                     for key, value in objective.collate(groups, pad_id).items()}
            with accelerator.accumulate(wrapped):  # gradients are synced on the step's last micro-batch only
                with torch.autocast(device.type, dtype=autocast_dtype, enabled=autocast_dtype is not None):
                    rewards = wrapped(batch["input_ids"], batch["attention_mask"], share_prefix=share_prefix,
                                      reward_positions=batch.get("reward_positions"))
                loss, totals = objective.loss(rewards, batch)
                # Accelerate averages over processes and micro-batches; this weight turns that average into the
                # mean over all of the step's groups, however many each process holds (1 when all hold B).
                weight = len(group_indices) * world * accumulation / step_groups
                accelerator.backward(loss * weight)
            if group_indices:
                sums += torch.tensor([loss.item() * len(group_indices), *totals], dtype=torch.float64, device=device)
        # Metrics of all processes (every process gets them, so all stop together on NaN).
        loss_sum, *step_totals = accelerator.reduce(sums, "sum").tolist()
        if not math.isfinite(loss_sum):
            raise _diverged(f"the loss became {loss_sum / step_groups}", step + 1, output_dir)
        grad_norm = float(accelerator.clip_grad_norm_(wrapped.parameters(), config.max_grad_norm))
        if not math.isfinite(grad_norm):
            raise _diverged(f"the gradient norm became {grad_norm}", step + 1, output_dir)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        step += 1
        totals = dict(zip(objective.totals, step_totals, strict=True))
        labels_seen += int(totals[objective.unit])

        metrics = {"loss": loss_sum / step_groups, **objective.metrics(totals), "grad_norm": grad_norm,
                   "lr": scheduler.get_last_lr()[0]}
        window.append(metrics)
        recent.append(metrics)
        progress.update(1, loss=f"{metrics['loss']:.3f}", acc=f"{_mean(list(recent), 'accuracy'):.3f}")
        if step % config.logging_steps == 0 or step == total_steps:
            log.write({"step": step, "epoch": schedule.epoch_of(step), "split": "train", **_average(window)})
            window = []
        if eval_data is not None and (step % config.eval_steps == 0 or step == total_steps):
            log.write({"step": step, "split": "eval", **objective.evaluate(model, eval_data, config.eval_batch_size)})
        if step % config.save_steps == 0 and step < total_steps:
            state = {"step": step, "epoch": schedule.epoch_of(step), "config": config.to_dict()}
            save_checkpoint(accelerator, output_dir, wrapped, model, state, config.save_total_limit)
        for callback in callbacks:
            callback(step, metrics, model)
    progress.close()
    elapsed = time.perf_counter() - started

    eval_metrics = None if eval_data is None else objective.evaluate(model, eval_data, config.eval_batch_size)
    warnings = objective.learning_warnings(eval_metrics)
    if config.normalize_rewards:
        warnings += objective.fit_normalization(model, eval_data or train_data, config.eval_batch_size)
    if is_main:
        for warning in warnings:
            logger.warning(warning)
    unit = objective.unit
    summary = {
        "objective": objective.name,
        "steps": step,
        "train_groups": len(train_data),
        f"train_{unit}": objective.num_labels(train_set),
        f"eval_{unit}": objective.num_labels(eval_set),
        "train_truncated": train_data.num_truncated,
        "eval_truncated": eval_data.num_truncated if eval_data is not None else 0,
        "train_load_report": load_report,
        "eval": eval_metrics,
        "normalization": model.normalization,
        "warnings": warnings,
        "seconds": elapsed,
        f"{unit}_per_second": labels_seen / elapsed if elapsed > 0 else None,
        "device": str(device),
        "num_processes": world,
        "autocast": str(autocast_dtype) if autocast_dtype else "fp32",
        "share_prefix": share_prefix,
    }
    save_model(accelerator, wrapped, model, output_dir)
    if is_main:
        (output_dir / "train_summary.json").write_text(json.dumps(summary, indent=2))
    log.close()
    accelerator.wait_for_everyone()  # the model is on disk before any process goes on (and perhaps loads it)
    return TrainResult(model, output_dir, step, eval_metrics, summary)


# --------------------------------------------------------------------------------------------------- helpers
def build_reward_model(config: TrainConfig, process: bool = False) -> RewardModel:
    """The model a run starts from (a resumed run then loads its checkpoint's state into it)."""
    model = RewardModel.from_sft(config.model, max_length=config.max_length, random_init=config.random_init,
                                 process=process)
    if not config.dropout:
        disable_dropout(model.model)
    if config.gradient_checkpointing:  # transformers 5 renamed it; 4.x has only the old name
        enable = getattr(model.hf_model, "activation_checkpointing_enable", None)
        if enable is not None:
            enable(activation_checkpointing_kwargs={"use_reentrant": False})
        else:
            model.hf_model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    if config.lora_rank:
        model.model = _wrap_lora(model, config)
    return model


def disable_dropout(module: torch.nn.Module) -> None:
    """Dropout rate 0 everywhere: nn.Dropout modules and the float rates attention layers read themselves
    (Llama-like `attention_dropout`). The saved config keeps the original rates."""
    for submodule in module.modules():
        if isinstance(submodule, torch.nn.Dropout):
            submodule.p = 0.0
        if isinstance(getattr(submodule, "attention_dropout", None), float):
            submodule.attention_dropout = 0.0


def _wrap_lora(model: RewardModel, config: TrainConfig):
    try:
        from peft import LoraConfig, TaskType, get_peft_model
    except ImportError as error:
        raise RewardkitError("--lora-rank needs peft: pip install 'rewardkit[lora]'") from error
    head = "score" if model.is_decoder else "classifier"
    extra = {}
    if model.is_process:  # the step separator is a new token: its embedding row trains beside the adapters
        embeddings = model.hf_model.get_input_embeddings()
        name = next(name for name, module in model.model.named_modules() if module is embeddings)
        extra["trainable_token_indices"] = {name.rsplit(".", 1)[-1]: [model.settings["step_separator_id"]]}
    lora = LoraConfig(
        task_type=TaskType.TOKEN_CLS if model.is_process else TaskType.SEQ_CLS,
        r=config.lora_rank,
        lora_alpha=config.lora_alpha,
        lora_dropout=config.lora_dropout,
        target_modules="all-linear",
        modules_to_save=[head],
        **extra,
    )
    return get_peft_model(model.model, lora)


class _NoLog:
    """The metrics log of processes other than the main one, which alone writes the (reduced) metrics."""

    def write(self, record: dict) -> None:
        pass

    def close(self) -> None:
        pass


def _diverged(what: str, step: int, output_dir: Path) -> TrainingDivergedError:
    last = latest_checkpoint(output_dir)
    where = f"the last good checkpoint, {last}, is kept" if last else "no checkpoint had been written yet"
    return TrainingDivergedError(
        f"{what} at step {step}; training stopped and nothing from this step was saved; {where}. "
        "Try a lower --lr, --precision fp32, or check the data for extreme inputs, then run again "
        "(add --resume to continue from the checkpoint)."
    )


def _mean(records: list[dict], key: str) -> float:
    values = [r[key] for r in records if not math.isnan(r[key])]
    return sum(values) / len(values) if values else float("nan")


def _average(records: list[dict]) -> dict:
    return {key: _mean(records, key) for key in records[0]}
