"""Reward-model training throughput: rewardkit against TRL's RewardTrainer, same model, data, steps and seed.

    python benchmarks/train_throughput.py --threads 2          # HH pairs, K=4 and K=9 rankings; ~10 min on 2 cores
    python benchmarks/train_throughput.py --workloads long-k4 --threads 2      # 2048-token prompts shared by K=4
    python benchmarks/train_throughput.py --shape smollm2-135m --workloads hh --hh-steps 2 --threads 2
    python benchmarks/train_throughput.py --calibrate          # the packing cost model's attention overhead
    python benchmarks/train_throughput.py --profile            # where rewardkit's training step spends its time

Model: a Llama built from a config with random weights and a BPE tokenizer trained on the HH text
(benchmarks/common.py): `--shape bench` (~3.3M parameters, 4 layers of width 256), or a real model's shape:
`smollm2-135m` (30 layers, width 576, 9 heads / 3 KV heads, vocabulary 49,152), `qwen2.5-0.5b` (24 layers, width 896).
Workloads (each system trains the same steps over the same comparisons, then is evaluated on the same held-out ones):
  hh       HH-RLHF harmless dialogues, pairs that fit --max-length (so nobody truncates or filters), 8 per step
  k4, k9   K=4 / K=9 rankings synthetic from HH text (common.synthetic_rankings); TRL gets every ranking expanded
           to its C(K,2) pairs, which is how its users must feed it
  long-k4  K=4 rankings whose prompts carry --long-context other HH dialogues before the question (~1,500 tokens,
           up to --long-max-length 2048), 2 rankings per step: where sharing the prompt pays most
Systems (each timed as its whole call: rewardkit `train()`, TRL `RewardTrainer(...)` + `train()` + `save_model()`;
both load the model, tokenize, train and save):
  trl                  RewardTrainer at its best here: the step's pairs in one micro-batch (no accumulation),
                       gradient checkpointing off (its default, on, recomputes activations), bf16 only if
                       --precision resolves to bf16; strings rendered exactly as rewardkit renders them, EOS appended
                       to every response for both (TRL appends it anyway)
  trl-defaults         (not run by default) RewardConfig's own defaults: bf16 autocast and gradient checkpointing
  rewardkit-padded     train() with share_prefix=False and packing switched off: one padded forward per micro-batch
                       (each distinct response once; what grouping alone is worth)
  rewardkit-no-prefix  train() with share_prefix=False: batches that are mostly padding are packed (RewardModel.forward)
  rewardkit            the public `rewardkit.training.train(TrainConfig(...))` as shipped: each group's prompt is
                       computed once and its responses attend to it (share_prefix=True, the default), packed
Both get the same learning rate, cosine schedule without warmup, AdamW (weight decay 0), grad clip 1.0, seed,
comparisons per optimizer step, steps and precision (--precision, resolved once: auto = bf16 where the CPU
computes it fast). Systems alternate in one process after a 1-step warm-up each; figures are medians over --repeats,
with peak RSS and CPU user / system seconds next to each.

By default torch uses 1 thread: the 2 cores are shared with other jobs, and with 2 threads OpenMP's barriers
made every system 2-7x slower and the ranking erratic. Pass --threads 2 on an idle machine.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import logging
import math
import os
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import torch
from common import (
    SHAPES,
    FlopCounter,
    Work,
    build_model_dir,
    datasheet_bf16_peak,
    environment,
    fits,
    group_fits,
    hh_texts,
    load_hh,
    long_prompt_rankings,
    markdown_table,
    matmul_peaks,
    median,
    parameter_counts,
    plain_work,
    run_alternating,
    shared_prefix_work,
    summarize,
    synthetic_rankings,
    with_eos,
    write_jsonl,
    write_results,
)
from transformers import AutoTokenizer
from transformers.utils import logging as hf_logging

from rewardkit.data import PreferenceDataset, load_preferences
from rewardkit.data.collate import EncodedDataset, encode_dataset
from rewardkit.data.tokenize import render
from rewardkit.device import precision_dtype, precision_name, resolve_device
from rewardkit.evaluation.pairwise import evaluate
from rewardkit.model import RewardModel
from rewardkit.model import reward_model as reward_model_module
from rewardkit.model.prefix_sharing import ATTENTION_OVERHEAD, PackingCost, tree_attention_mask
from rewardkit.training import TrainConfig, train

SYSTEMS = ("trl", "rewardkit-padded", "rewardkit-no-prefix", "rewardkit", "trl-defaults")


@dataclass
class Workload:
    name: str
    k: int
    steps: int
    groups_per_step: int
    train_path: Path
    data_format: str
    train_set: PreferenceDataset
    eval_set: EncodedDataset
    max_length: int = 256
    trl_pairs: list[dict] = field(default_factory=list)

    @property
    def comparisons(self) -> int:
        return self.train_set.num_comparisons

    @property
    def pairs_per_step(self) -> int:
        return self.comparisons // self.steps


# ------------------------------------------------------------------------------------------------------- data
def make_workloads(args, hh: PreferenceDataset, tokenizer, workdir: Path) -> list[Workload]:
    """Train and eval splits of each workload, written once for rewardkit and rendered once for TRL."""
    plan = {"hh": (2, args.hh_steps, 8), "k4": (4, args.k4_steps, 4), "k9": (9, args.k9_steps, 1),
            "long-k4": (4, args.long_steps, 2)}  # fmt: skip
    workloads = []
    for name in args.workloads:
        k, steps, groups_per_step = plan[name]
        max_length = args.long_max_length if name == "long-k4" else args.max_length
        num_train, num_eval = steps * groups_per_step, args.eval_comparisons // math.comb(k, 2)
        if k == 2:
            records = [{"prompt": g.prompt, "chosen": g.responses[0], "rejected": g.responses[1]} for g in hh]
            data_format = "pairs"
        elif name == "long-k4":
            records = long_prompt_rankings(hh, k, 2 * (num_train + num_eval), args.long_context, seed=args.seed)
            data_format = "ranking"
        else:  # more than needed: some rankings get a reply too long for --max-length and are dropped below
            records = synthetic_rankings(hh, k, 2 * (num_train + num_eval), seed=args.seed)
            data_format = "ranking"
        # Keep the groups that fit the max length, shuffle, split; rewardkit reads the train split from a file.
        loaded = load_preferences(str(write_jsonl(workdir / f"{name}-all.jsonl", records)), format=data_format)
        keep = [i for i, group in enumerate(loaded) if group_fits(group, tokenizer, max_length)]
        generator = torch.Generator().manual_seed(args.seed)
        keep = [keep[i] for i in torch.randperm(len(keep), generator=generator).tolist()]
        train_keep, eval_keep = keep[:num_train], keep[num_train : num_train + num_eval]
        train_path = write_jsonl(workdir / f"{name}-train.jsonl", [records[i] for i in train_keep])
        train_set = load_preferences(str(train_path), format=data_format)
        eval_groups = PreferenceDataset([loaded[i] for i in eval_keep])
        eval_set = encode_dataset(eval_groups, tokenizer, max_length)
        workload = Workload(name, k, steps, groups_per_step, train_path, data_format, train_set, eval_set, max_length)
        workload.trl_pairs = [
            {"chosen": render(g.prompt, g.responses[c.better], tokenizer)[0],
             "rejected": render(g.prompt, g.responses[c.worse], tokenizer)[0]}
            for g in train_set for c in g.comparisons
        ]  # fmt: skip
        workloads.append(workload)
    return workloads


def work(workload: Workload, tokenizer) -> dict[str, Work]:
    """What each system must compute for one epoch: the FLOPs MFU credits."""
    encoded = encode_dataset(workload.train_set, tokenizer, workload.max_length)
    per_pair, per_unique, per_shared, distinct = Work(), Work(), Work(), []
    for group in encoded.groups:
        ids = [s.input_ids for s in group.sequences]
        per_pair += plain_work([ids[i] for c in group.comparisons for i in (c.better, c.worse)])
        unique = sorted(set(ids))
        per_unique += plain_work(unique)
        per_shared += shared_prefix_work(unique)
        distinct += unique
    return {
        "trl": per_pair,
        "trl-defaults": per_pair,
        "rewardkit-padded": per_unique,  # padded_forward: the last layer at every token
        "rewardkit-no-prefix": per_unique.at_reward_tokens(distinct),  # packed (batches here are >10% padding)
        "rewardkit": per_shared.at_reward_tokens(distinct),
    }


# ---------------------------------------------------------------------------------------------------- systems
@contextlib.contextmanager
def patched(owner, name: str, value):
    """Swap an attribute for one run: how the variants below change train() without copying its loop."""
    original = getattr(owner, name)
    setattr(owner, name, value)
    try:
        yield
    finally:
        setattr(owner, name, original)


def variant(name: str):
    if name == "rewardkit-padded":  # never pack
        return patched(reward_model_module, "PACK_ABOVE_PADDING", math.inf)
    return contextlib.nullcontext()


def run_rewardkit(workload: Workload, args, model_dir: Path, workdir: Path, steps: int, name: str) -> dict:
    config = TrainConfig(
        model=str(model_dir),
        data=[str(workload.train_path)],
        format=workload.data_format,
        output_dir=str(workdir / "rewardkit-run"),
        eval_fraction=0.0,  # evaluation happens below, outside the timed loop, the same way for every system
        max_length=workload.max_length,
        max_steps=steps,
        batch_size=workload.groups_per_step,
        learning_rate=args.lr,
        warmup_ratio=0.0,
        seed=args.seed,
        device=args.device,
        precision=args.precision,  # resolved once in main() and reported
        eval_steps=10**9,
        save_steps=10**9,
        logging_steps=10**9,
        normalize_rewards=False,
        progress_bar=False,
        share_prefix=name == "rewardkit",
    )
    with variant(name):
        tick = time.perf_counter()
        result = train(config)  # the whole call: loading, tokenizing, training, saving
        seconds = time.perf_counter() - tick
    return {"seconds": seconds, "loop_seconds": result.summary["seconds"], "model": result.model}


def run_trl(workload: Workload, args, model_dir: Path, workdir: Path, steps: int, check_tokens: bool,
            defaults: bool = False) -> dict:  # fmt: skip
    """RewardTrainer at its best here (`defaults=False`): one micro-batch holding the step's pairs (no
    accumulation), gradient checkpointing off, bf16 only where --precision picked it; or with RewardConfig's own
    defaults for those two (gradient checkpointing on, bf16 autocast on)."""
    from datasets import Dataset
    from transformers import PrinterCallback
    from trl import RewardConfig, RewardTrainer

    best = {} if defaults else {"gradient_checkpointing": False, "bf16": args.precision == "bf16"}
    config = RewardConfig(
        output_dir=str(workdir / "trl-run"),
        per_device_train_batch_size=workload.pairs_per_step,
        gradient_accumulation_steps=1,
        max_steps=steps,
        learning_rate=args.lr,
        lr_scheduler_type="cosine",
        warmup_steps=0,
        weight_decay=0.0,
        max_grad_norm=1.0,
        seed=args.seed,
        max_length=workload.max_length,  # the pairs were chosen to fit: TRL filters none of them
        report_to="none",
        save_strategy="no",
        eval_strategy="no",
        logging_strategy="no",
        disable_tqdm=True,
        use_cpu=resolve_device(args.device).type == "cpu",
        **best,
    )
    tick = time.perf_counter()  # the whole call, as for rewardkit: loading, tokenizing, training, saving
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    dataset = Dataset.from_list(workload.trl_pairs)
    trainer = RewardTrainer(model=str(model_dir), args=config, train_dataset=dataset, processing_class=tokenizer)
    trainer.remove_callback(PrinterCallback)  # with disable_tqdm it prints the final metrics dict
    if len(trainer.train_dataset) != len(workload.trl_pairs):
        raise RuntimeError("TRL filtered pairs: raise --max-length or select shorter pairs")
    if check_tokens:
        _check_same_tokens(trainer.train_dataset, workload, tokenizer, workload.max_length)
    output = trainer.train()
    trainer.save_model(str(workdir / "trl-run" / "final"))  # rewardkit's train() saves its model too
    seconds = time.perf_counter() - tick
    model = RewardModel(trainer.model.float(), tokenizer, max_length=workload.max_length)
    return {"seconds": seconds, "loop_seconds": output.metrics["train_runtime"], "model": model}


def _check_same_tokens(dataset, workload: Workload, tokenizer, max_length: int) -> None:
    """TRL's token ids must be exactly rewardkit's for every pair, or the comparison would not be fair."""
    encoded = encode_dataset(workload.train_set, tokenizer, max_length)
    expected = [
        (list(g.sequences[c.better].input_ids), list(g.sequences[c.worse].input_ids))
        for g in encoded.groups for c in g.comparisons
    ]  # fmt: skip
    got = list(zip(dataset["chosen_ids"], dataset["rejected_ids"], strict=True))
    if [tuple(map(list, pair)) for pair in got] != expected:
        raise RuntimeError(f"{workload.name}: TRL tokenized the pairs differently from rewardkit")


def make_systems(workload: Workload, args, model_dir: Path, workdir: Path) -> dict:
    evaluated: dict[str, float] = {}

    def system(name: str):
        def run(warmup: bool) -> dict:
            steps = 1 if warmup else workload.steps
            if name.startswith("trl"):
                defaults = name == "trl-defaults"
                steps = 1 if warmup else args.trl_defaults_steps or steps if defaults else steps
                result = run_trl(workload, args, model_dir, workdir, steps, check_tokens=warmup, defaults=defaults)
                result["steps"] = steps
            else:
                result = run_rewardkit(workload, args, model_dir, workdir, steps, name) | {"steps": steps}
            model = result.pop("model")
            if not warmup and name not in evaluated:  # every repeat trains the same way: evaluate the first
                evaluated[name] = evaluate(model, workload.eval_set, batch_size=64).accuracy
            result["accuracy"] = evaluated.get(name)
            return result

        return run

    return {name: system(name) for name in args.systems}


# ------------------------------------------------------------------------------------------------------ report
def report_rows(workload: Workload, runs: dict, works: dict, flops: FlopCounter, peaks: dict, args) -> list[dict]:
    """Rates per step of each system's whole call (a trl-defaults run may take fewer steps than the others). MFU
    is against the matmul peak measured now at the row's precision, and on a GPU also against its datasheet bf16
    peak."""
    datasheet = datasheet_bf16_peak(resolve_device(args.device)) if args.precision == "bf16" else None
    keys = ["seconds", "loop_seconds", "steps", "accuracy", "peak_rss_mib", "rss_growth_mib", "cpu_user_s",
            "cpu_sys_s", "page_faults"]
    summaries = {name: summarize(system_runs, keys) for name, system_runs in runs.items()}
    step_seconds = {name: summary["seconds"] / summary["steps"] for name, summary in summaries.items()}
    rates = {name: workload.pairs_per_step / seconds for name, seconds in step_seconds.items()}
    rows = []
    for name, summary in summaries.items():
        tokens_per_step = works[name].tokens / workload.steps
        precision = "bf16 + grad. checkpointing (TRL defaults)" if name == "trl-defaults" else args.precision
        peak = peaks["bf16" if precision == "bf16" else "fp32"]
        rows.append({
            "workload": workload.name,
            "system": name,
            "precision": precision,
            "comparisons_per_s": rates[name],
            "vs_trl": rates[name] / rates["trl"] if "trl" in rates else float("nan"),
            "vs_trl_loop": summaries["trl"]["loop_seconds"] / summaries["trl"]["steps"] / (
                summary["loop_seconds"] / summary["steps"]) if "trl" in rates else float("nan"),
            "tokens_per_s": tokens_per_step / step_seconds[name],
            "mfu_pct": 100 * flops.train(works[name]) / workload.steps / step_seconds[name] / peak,
            "mfu_datasheet_pct": 100 * flops.train(works[name]) / workload.steps / step_seconds[name] / datasheet
            if datasheet else None,
            "seconds_per_step": step_seconds[name],
            "tokens_per_epoch": works[name].tokens,
            **summary,
        })
    return rows


TARGETS = {"hh": 1.5, "k4": 3.0, "k9": 6.0}  # the goals: comparisons/s as a multiple of TRL's


def verdicts(rows: list[dict]) -> str:
    lines = []
    for row in rows:
        target = TARGETS.get(row["workload"])
        if row["system"].startswith("rewardkit") and target and row["vs_trl"] == row["vs_trl"]:
            met = "met" if row["vs_trl"] >= target else "NOT met"
            lines.append(f"- {row['workload']} {row['system']}: {row['vs_trl']:.2f}x TRL, target {target}x: {met}")
    return "\n".join(lines)


COLUMNS = [
    ("workload", "workload"),
    ("system", "system"),
    ("precision", "precision"),
    ("comparisons_per_s", "comparisons/s"),
    ("vs_trl", "x TRL"),
    ("vs_trl_loop", "x TRL (loops only)"),
    ("tokens_per_s", "tokens/s"),
    ("mfu_pct", "MFU %"),
    ("mfu_datasheet_pct", "MFU % of datasheet"),
    ("seconds_per_step", "s/step"),
    ("accuracy", "val acc"),
    ("peak_rss_mib", "peak RSS MiB"),
    ("cpu_sys_s", "CPU sys s"),
]


# ------------------------------------------------------------------------------------------------ diagnostics
def calibrate(model_dir: Path, device: torch.device) -> dict:
    """Forward time per token of rows of width W under a dense mask: t/token = a + b W. The packing cost model's
    ATTENTION_OVERHEAD is b/a divided by what FLOPs alone predict (pair / token)."""
    model = RewardModel.from_sft(model_dir, max_length=4096).to(device).eval()
    backbone, cost = model.hf_model.model, PackingCost.for_config(model.hf_model.config)
    widths, per_token = [128, 256, 512, 1024], []
    with torch.inference_mode():
        for width in widths:
            rows = max(1, 4096 // width)
            ids = torch.randint(10, 1000, (rows, width), device=device)
            zeros = torch.zeros(rows, width, dtype=torch.long, device=device)
            mask = tree_attention_mask(zeros, zeros)  # one tree, all prefix: plain causal, as a dense mask
            positions = torch.arange(width, device=device).expand(rows, width)
            run = functools.partial(backbone, input_ids=ids, attention_mask=mask.to(device), position_ids=positions)
            run()
            times = []
            for _ in range(3):
                tick = time.perf_counter()
                run()
                times.append(time.perf_counter() - tick)
            per_token.append(median(times) / (rows * width))
    # Least-squares line through (width, time per token).
    n = len(widths)
    mean_w, mean_t = sum(widths) / n, sum(per_token) / n
    slope = sum((w - mean_w) * (t - mean_t) for w, t in zip(widths, per_token, strict=True)) / sum(
        (w - mean_w) ** 2 for w in widths
    )
    intercept = mean_t - slope * mean_w
    flop_ratio = cost.pair / ATTENTION_OVERHEAD / cost.token  # attention pair vs token, by FLOPs alone
    return {"widths": widths, "seconds_per_token": per_token, "measured_overhead": slope / intercept / flop_ratio}


def profile_step(workload: Workload, args, model_dir: Path) -> str:
    """torch.profiler over two training steps of rewardkit (shared prefixes): where the time goes."""
    from torch.profiler import ProfilerActivity, profile

    from rewardkit.data.collate import collate_groups
    from rewardkit.training.loss import bradley_terry_loss

    model = RewardModel.from_sft(model_dir, max_length=workload.max_length)
    encoded = encode_dataset(workload.train_set, model.tokenizer, workload.max_length)
    batches = [
        collate_groups(encoded.groups[i : i + workload.groups_per_step], model.tokenizer.pad_token_id)
        for i in range(0, 2 * workload.groups_per_step, workload.groups_per_step)
    ]
    with profile(activities=[ProfilerActivity.CPU]) as profiler:
        for batch in batches:
            rewards = model(batch["input_ids"], batch["attention_mask"], share_prefix=True)
            bradley_terry_loss(rewards, batch).loss.backward()
    return profiler.key_averages().table(sort_by="self_cpu_time_total", row_limit=15)


# ---------------------------------------------------------------------------------------------------------- main
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workloads", nargs="+", choices=["hh", "k4", "k9", "long-k4"], default=["hh", "k4", "k9"])
    parser.add_argument("--systems", nargs="+", choices=SYSTEMS, default=list(SYSTEMS[:4]))
    parser.add_argument("--shape", choices=sorted(SHAPES), default="bench", help="model shape built from a config")
    parser.add_argument("--precision", choices=["auto", "fp32", "bf16"], default="auto",
                        help="rewardkit's and TRL's (trl-defaults: its own), resolved once and reported")
    parser.add_argument("--trl-defaults-steps", type=int, help="steps of the trl-defaults run (default: all)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--hh-steps", type=int, default=20, help="8 pairs per step")
    parser.add_argument("--k4-steps", type=int, default=10, help="4 rankings (24 comparisons) per step")
    parser.add_argument("--k9-steps", type=int, default=10, help="1 ranking (36 comparisons) per step")
    parser.add_argument("--long-steps", type=int, default=3, help="long-k4: 2 rankings (12 comparisons) per step")
    parser.add_argument("--long-context", type=int, default=12, help="long-k4: HH dialogues before each question")
    parser.add_argument("--long-max-length", type=int, default=2048, help="long-k4: tokens per prompt + response")
    parser.add_argument("--eval-comparisons", type=int, default=144)
    parser.add_argument("--max-length", type=int, default=256, help="tokens per (prompt, response); longer dropped")
    parser.add_argument("--lr", type=float, default=1e-3, help="a from-scratch 3M model takes a high rate")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--calibrate", action="store_true", help="measure the packing cost model's overhead")
    parser.add_argument("--profile", action="store_true", help="profile rewardkit training steps")
    parser.add_argument("--output", default="train_throughput", help="results name under benchmarks/results/")
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    warnings.filterwarnings("ignore", category=FutureWarning)  # "gradient_checkpointing is deprecated" (TRL's name)
    logging.getLogger("rewardkit").setLevel(logging.ERROR)  # HH has 4 empty replies: skipped on purpose
    with contextlib.suppress(ImportError):
        import datasets

        datasets.disable_progress_bars()
    device = resolve_device(args.device)
    workdir = Path(tempfile.mkdtemp(prefix="rewardkit-train-bench-"))

    started = time.perf_counter()
    info = environment(device)
    hh = load_hh()
    args.precision = precision_name(precision_dtype(args.precision, device))  # pinned for every system
    model_dir = build_model_dir(workdir / "sft", hh_texts(hh), spec=SHAPES[args.shape])
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    hh = fits(with_eos(hh, tokenizer.eos_token), tokenizer, args.max_length)
    config = RewardModel.from_sft(model_dir).hf_model.config
    total_params, non_embedding = parameter_counts(config)
    flops = FlopCounter.for_config(config)
    if args.calibrate:
        print(calibrate(model_dir, device))
        return
    peaks = matmul_peaks(device)
    print(f"model: {total_params / 1e6:.2f}M parameters ({non_embedding / 1e6:.2f}M outside the embedding); "
          f"matmul peak fp32 {peaks['fp32'] / 1e9:.1f} GFLOP/s, bf16 {peaks['bf16'] / 1e9:.1f} GFLOP/s; "
          f"{args.threads} thread(s)")
    workloads = make_workloads(args, hh, tokenizer, workdir)
    if args.profile:
        print(profile_step(workloads[0], args, model_dir))
        return

    rows = []
    for workload in workloads:
        works = work(workload, tokenizer)
        print(f"\n{workload.name}: {len(workload.train_set)} groups (K={workload.k}), {workload.comparisons} "
              f"comparisons, {workload.steps} steps of {workload.pairs_per_step} comparisons; "
              f"tokens per epoch: " + ", ".join(f"{k} {v.tokens:,}" for k, v in works.items()))
        systems = make_systems(workload, args, model_dir, workdir)
        runs = run_alternating(systems, args.repeats, device)
        workload_rows = report_rows(workload, runs, works, flops, peaks, args)
        print(markdown_table(workload_rows, COLUMNS))
        rows += workload_rows

    table = markdown_table(rows, COLUMNS)
    print(f"\n{table}\n\n{verdicts(rows)}\n\ntotal wall time {time.perf_counter() - started:.0f} s")
    notes = (
        f"# Training throughput: rewardkit vs TRL RewardTrainer\n\n"
        f"`python benchmarks/train_throughput.py {' '.join(sys.argv[1:])}` ({(time.perf_counter() - started) / 60:.0f} "
        f"min); medians of {args.repeats} repeats (systems alternating after a 1-step warm-up); {args.threads} torch "
        f"thread(s) on {device}; CPU {info['cpu_model']} ({info['cpu_flags']}); load average "
        f"{info['load_average_at_start']:.1f} at start, {os.getloadavg()[0]:.1f} at end; model shape {args.shape}, "
        f"{total_params / 1e6:.1f}M parameters; precision {args.precision} (pinned for rewardkit and trl); matmul "
        f"peak fp32 {peaks['fp32'] / 1e9:.1f} GFLOP/s, bf16 {peaks['bf16'] / 1e9:.1f} GFLOP/s (MFU is against the "
        f"peak of the row's precision).\n\n{table}\n\n{verdicts(rows)}\n\n"
        "comparisons/s = comparisons per step / seconds per step of each system's whole call (rewardkit: `train()`, "
        "TRL: `RewardTrainer(...)` + `train()` + `save_model()`; both load the model, tokenize, train and save); "
        "x TRL (loops only) compares the training loops alone (TRL's train_runtime, rewardkit's loop timer). "
        "TRL runs each step's pairs as one micro-batch (no accumulation), gradient checkpointing off; "
        "`trl-defaults` keeps RewardConfig's defaults for those (bf16 autocast, gradient checkpointing). tokens/s and "
        "MFU count the tokens each system must compute (TRL: both sequences of every pair; rewardkit-padded and "
        "-no-prefix: each distinct response once; rewardkit: each prompt once, too). val acc: accuracy on the same "
        "held-out comparisons after the same steps (too few steps here to be above chance: speed only; accuracy is "
        "measured in hh_minilm_accuracy). `rewardkit` is train() as shipped (share_prefix=True by default); "
        "`rewardkit-no-prefix` passes share_prefix=False; `rewardkit-padded` also switches packing off.\n"
    )
    payload = {"environment": info, "args": vars(args), "matmul_peak_flops": peaks,
               "parameters": total_params, "non_embedding_parameters": non_embedding, "rows": rows}
    json_path, md_path = write_results(args.output, payload, notes)
    print(f"wrote {json_path} and {md_path}")


if __name__ == "__main__":
    main()
