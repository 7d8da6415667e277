"""Train a reward model with the Bradley-Terry loss. The whole loop is `train` below.

Each optimizer step takes `batch_size * gradient_accumulation_steps` prompt groups; every distinct
(prompt, response) of a micro-batch is forwarded once and all of the group's comparisons read from those
rewards (InstructGPT). Checkpoints are atomic and a resumed run reaches the same weights as an uninterrupted one.

Launched as N processes (see rewardkit/distributed.py), step s covers the same groups as step s of a 1-process run
with batch `batch_size * N`, each process holding whole groups, and the gradient is the same mean over them.
Accelerate wraps the model (DDP, FSDP or DeepSpeed) and syncs gradients once per step; the main process alone
writes logs, checkpoints and the model.
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
from tqdm.auto import tqdm
from transformers import set_seed

from rewardkit.data import LoadReport, PreferenceDataset, load_preferences, split_dataset
from rewardkit.data.collate import EncodedDataset, collate_groups, encode_dataset
from rewardkit.data.options import DataOptions
from rewardkit.distributed import ShardedScorer, build_accelerator, is_sharded, save_model, shard_step, sharded_evaluate
from rewardkit.errors import RewardkitError
from rewardkit.evaluation.pairwise import score_encoded_dataset
from rewardkit.model.prefix_sharing import supports_packing
from rewardkit.model.reward_model import RewardModel
from rewardkit.training.checkpoint import latest_checkpoint, load_trainer_state, save_checkpoint
from rewardkit.training.config import TrainConfig
from rewardkit.training.loss import bradley_terry_loss
from rewardkit.training.metrics_log import MetricsLog
from rewardkit.training.optim import build_optimizer
from rewardkit.training.sampler import GroupBatchSchedule

logger = logging.getLogger("rewardkit")

# The smallest scale normalization divides by. Bradley-Terry rewards whose spread is below 0.1 give any two
# responses a win probability of about 0.5 +- 0.04: nothing worth amplifying to unit spread.
MIN_REWARD_SCALE = 0.1

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
    accelerator = build_accelerator(config)
    rank, world, is_main = accelerator.process_index, accelerator.num_processes, accelerator.is_main_process
    output_dir = Path(config.output_dir)
    device = accelerator.device if world > 1 else resolve_device(config.device)
    autocast_dtype = resolve_autocast_dtype(config.precision, device)
    resume_from = latest_checkpoint(output_dir) if config.resume else None
    if config.resume and resume_from is None:
        logger.warning("--resume: no checkpoint in %s yet, starting from the beginning", output_dir)
    # FSDP / DeepSpeed split the optimizer state across processes, which checkpoint.py does not save yet.
    sharded = is_sharded(accelerator)
    if sharded and (config.resume or config.lora_rank):
        raise RewardkitError("--resume and --lora-rank work with DDP, not yet with FSDP or DeepSpeed")
    if sharded and is_main:
        logger.warning("FSDP / DeepSpeed: no intermediate checkpoints (not resumable yet); the final model is saved")

    train_set, eval_set, load_report = load_train_and_eval(config)  # a bad record fails before the model loads
    set_seed(config.seed)  # the same on every process: identical initial weights, the new head included
    model = build_reward_model(config, resume_from).to(device)
    share_prefix = config.share_prefix and supports_packing(model)
    if config.share_prefix and not share_prefix and is_main:
        model_type = getattr(model.hf_model.config, "model_type", "?")
        logger.info("share_prefix: %s models keep the padded forward (prompts are shared for Llama-like decoders "
                    "with sdpa or eager attention)", model_type)
    train_data = encode_dataset(train_set, model.tokenizer, model.max_length)
    eval_data = encode_dataset(eval_set, model.tokenizer, model.max_length) if len(eval_set) else None
    for name, data in (("train", train_data), ("eval", eval_data)):
        if data is not None and data.num_truncated:
            logger.warning("%s data: %s", name, data.truncation_note(model.max_length))

    # One schedule for the whole job: step s holds the groups a 1-process run with batch `batch_size * world` takes.
    accumulation = config.gradient_accumulation_steps
    schedule = GroupBatchSchedule(len(train_data), config.batch_size * world, accumulation, config.seed)
    total_steps = schedule.total_steps(config.epochs, config.max_steps)
    optimizer, scheduler = build_optimizer(model.parameters(), config, total_steps)
    step = load_trainer_state(resume_from, model, optimizer, scheduler)["step"] if resume_from else 0
    # `wrapped` (DDP/FSDP/DeepSpeed) is for training passes; `model` stays the RewardModel for everything else.
    wrapped, optimizer = accelerator.prepare(model, optimizer)
    resume_after = step if resume_from else None
    log = MetricsLog(output_dir / "metrics.jsonl", config.tensorboard, resume_after) if is_main else _NoLog()
    pad_id = model.tokenizer.pad_token_id

    wrapped.train()
    started, comparisons_seen, window = time.perf_counter(), 0, []
    recent = deque(maxlen=50)  # running accuracy for the progress bar
    show_progress = config.progress_bar and is_main
    progress = tqdm(total=total_steps, initial=step, desc="training reward model", disable=not show_progress)
    while step < total_steps:
        micro_batches = schedule.micro_batches(step)
        step_groups = sum(len(micro) for micro in micro_batches)
        sums = torch.zeros(4, dtype=torch.float64, device=device)  # loss x groups, correct, margin, comparisons
        for group_indices in shard_step(micro_batches, accumulation, rank, world):
            # With no group of its own here a process still runs a pass (on a stand-in group, weight 0): every
            # process must join each gradient sync.
            groups = [train_data.groups[i] for i in group_indices or micro_batches[0][:1]]
            batch = {key: value.to(device) for key, value in collate_groups(groups, pad_id).items()}
            with accelerator.accumulate(wrapped):  # gradients are synced on the step's last micro-batch only
                with torch.autocast(device.type, dtype=autocast_dtype, enabled=autocast_dtype is not None):
                    rewards = wrapped(batch["input_ids"], batch["attention_mask"], share_prefix=share_prefix)
                stats = bradley_terry_loss(rewards, batch, config.center_rewards_coefficient)
                # Accelerate averages over processes and micro-batches; this weight turns that average into the
                # mean over all of the step's groups, however many each process holds (1 when all hold B).
                weight = len(group_indices) * world * accumulation / step_groups
                accelerator.backward(stats.loss * weight)
            if group_indices:
                pairs = stats.num_comparisons
                sums += torch.tensor([stats.loss.item() * len(group_indices), stats.accuracy.item() * pairs,
                                      stats.margin.item() * pairs, pairs], dtype=torch.float64, device=device)
        # Metrics of all processes (every process gets them, so all stop together on NaN).
        loss_sum, step_correct, step_margin, step_pairs = accelerator.reduce(sums, "sum").tolist()
        if not math.isfinite(loss_sum):
            raise _diverged(f"the loss became {loss_sum / step_groups}", step + 1, output_dir)
        grad_norm = float(accelerator.clip_grad_norm_(wrapped.parameters(), config.max_grad_norm))
        if not math.isfinite(grad_norm):
            raise _diverged(f"the gradient norm became {grad_norm}", step + 1, output_dir)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        step += 1
        comparisons_seen += int(step_pairs)

        metrics = {
            "loss": loss_sum / step_groups,
            "accuracy": step_correct / max(step_pairs, 1),
            "margin": step_margin / max(step_pairs, 1),
            "grad_norm": grad_norm,
            "lr": scheduler.get_last_lr()[0],
        }
        window.append(metrics)
        recent.append(metrics)
        progress.update(1)
        progress.set_postfix(loss=f"{metrics['loss']:.3f}", acc=f"{_mean(list(recent), 'accuracy'):.3f}")
        if step % config.logging_steps == 0 or step == total_steps:
            log.write({"step": step, "epoch": schedule.epoch_of(step), "split": "train", **_average(window)})
            window = []
        if eval_data is not None and (step % config.eval_steps == 0 or step == total_steps):
            evaluation = sharded_evaluate(model, eval_data, config.eval_batch_size).to_dict()
            log.write({"step": step, "split": "eval", **evaluation})
        if step % config.save_steps == 0 and step < total_steps and is_main and not sharded:  # DDP: all in rank 0
            state = {"step": step, "epoch": schedule.epoch_of(step), "config": config.to_dict()}
            save_checkpoint(output_dir, model, optimizer, scheduler, state, config.save_total_limit)
        for callback in callbacks:
            callback(step, metrics, model)
    progress.close()
    elapsed = time.perf_counter() - started

    eval_metrics = None if eval_data is None else sharded_evaluate(model, eval_data, config.eval_batch_size).to_dict()
    spread = _fit_normalization(model, eval_data or train_data, config.eval_batch_size) \
        if config.normalize_rewards else None
    warnings = warn_if_nothing_learned(eval_metrics, spread) if is_main else []
    summary = {
        "steps": step,
        "train_groups": len(train_data),
        "train_comparisons": train_set.num_comparisons,
        "eval_comparisons": eval_set.num_comparisons,
        "train_truncated": train_data.num_truncated,
        "eval_truncated": eval_data.num_truncated if eval_data is not None else 0,
        "train_load_report": load_report,
        "eval": eval_metrics,
        "normalization": model.normalization,
        "warnings": warnings,
        "seconds": elapsed,
        "comparisons_per_second": comparisons_seen / elapsed if elapsed > 0 else None,
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
def build_reward_model(config: TrainConfig, resume_from: Path | None) -> RewardModel:
    if resume_from is not None and not config.lora_rank:
        model = RewardModel.from_pretrained(resume_from)
    else:  # LoRA resumes by rebuilding the same wrapper and loading its adapters (see checkpoint.py)
        model = RewardModel.from_sft(config.model, max_length=config.max_length, random_init=config.random_init)
    if config.gradient_checkpointing:  # transformers 5 renamed it; 4.x has only the old name
        enable = getattr(model.hf_model, "activation_checkpointing_enable", None)
        if enable is not None:
            enable(activation_checkpointing_kwargs={"use_reentrant": False})
        else:
            model.hf_model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    if config.lora_rank:
        model.model = _wrap_lora(model, config)
    return model


def _wrap_lora(model: RewardModel, config: TrainConfig):
    try:
        from peft import LoraConfig, TaskType, get_peft_model
    except ImportError as error:
        raise RewardkitError("--lora-rank needs peft: pip install 'rewardkit[lora]'") from error
    head = "score" if model.is_decoder else "classifier"
    lora = LoraConfig(
        task_type=TaskType.SEQ_CLS,
        r=config.lora_rank,
        lora_alpha=config.lora_alpha,
        lora_dropout=config.lora_dropout,
        target_modules="all-linear",
        modules_to_save=[head],
    )
    return get_peft_model(model.model, lora)


def load_train_and_eval(config: TrainConfig) -> tuple[PreferenceDataset, PreferenceDataset, str]:
    """(train, eval, what loading the training data read and skipped)."""
    train_set = _load_all(config.data, config)
    report = train_set.report.summary()
    if config.eval_data:
        return train_set, _load_all(config.eval_data, config), report
    if config.eval_fraction == 0:
        return train_set, PreferenceDataset([], name="none"), report
    return *split_dataset(train_set, config.eval_fraction, config.seed), report


def _load_all(sources: Sequence[str], options: DataOptions) -> PreferenceDataset:
    datasets = [load_preferences(source, format=options.format, on_error=options.on_error, columns=options.columns)
                for source in sources]
    for dataset in datasets:
        if dataset.report.num_skipped or dataset.report.empty_responses:
            logger.warning("%s: %s", dataset.name, dataset.report.summary())
    if len(datasets) == 1:
        return datasets[0]
    return PreferenceDataset([g for d in datasets for g in d.groups], sum((d.report for d in datasets), LoadReport()),
                             name="+".join(d.name for d in datasets))


def _fit_normalization(model: RewardModel, reference: EncodedDataset, batch_size: int) -> float:
    """Centre and scale rewards on the reference responses (default: the validation split); returns their spread.

    The scale is floored at MIN_REWARD_SCALE: a model whose rewards barely differ would otherwise have its noise
    blown up to unit spread (a scale of 0.0092 turned every out-of-sample reward into ~10).
    """
    rewards = torch.cat(score_encoded_dataset(ShardedScorer(model), reference, batch_size=batch_size))
    spread = rewards.std().item() if rewards.numel() > 1 else 0.0
    model.set_normalization(rewards.mean().item(), max(spread, MIN_REWARD_SCALE))
    return spread


def warn_if_nothing_learned(eval_metrics: dict | None, spread: float | None) -> list[str]:
    """The end-of-training warnings for a model that did not learn (also returned, for the summary)."""
    warnings = []
    if eval_metrics and eval_metrics["num_comparisons"]:
        accuracy, n = eval_metrics["accuracy"], eval_metrics["num_comparisons"]
        low, high = wilson_interval(accuracy, n)
        if low <= 0.5:
            warnings.append(f"validation accuracy {accuracy:.3f} on {n} comparisons is not above chance (95% "
                            f"interval [{low:.3f}, {high:.3f}]): train longer, raise --lr, or check the data")
    if spread is not None and spread < MIN_REWARD_SCALE:
        warnings.append(f"the rewards barely differ (spread {spread:.4f} on the validation responses, below "
                        f"{MIN_REWARD_SCALE}): the model separates almost nothing; normalization uses a scale of "
                        f"{MIN_REWARD_SCALE} instead of blowing the spread up")
    for warning in warnings:
        logger.warning(warning)
    return warnings


def wilson_interval(p: float, n: int, z: float = 1.96) -> tuple[float, float]:
    """Wilson score interval of a proportion `p` observed on `n` trials (95% by default)."""
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


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


def resolve_device(name: str) -> torch.device:
    if name != "auto":
        return torch.device(name)
    if torch.cuda.is_available():
        return torch.device("cuda")
    return torch.device("cpu")


def resolve_autocast_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    """None means plain fp32. 'auto' picks bf16 only on GPUs that support it."""
    if precision == "bf16":
        return torch.bfloat16
    if precision == "auto" and device.type == "cuda" and torch.cuda.is_bf16_supported():
        return torch.bfloat16
    return None


def _mean(records: list[dict], key: str) -> float:
    values = [r[key] for r in records if not math.isnan(r[key])]
    return sum(values) / len(values) if values else float("nan")


def _average(records: list[dict]) -> dict:
    return {key: _mean(records, key) for key in records[0]}
