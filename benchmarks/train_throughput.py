"""Reward-model training throughput: rewardkit against TRL's RewardTrainer, same model, data, steps and seed.

    python benchmarks/train_throughput.py --threads 2          # HH pairs, K=4 and K=9 rankings; ~2 min on 2 cores
    python benchmarks/train_throughput.py --workloads hh --repeats 5 --threads 2
    python benchmarks/train_throughput.py --calibrate          # the packing cost model's attention overhead
    python benchmarks/train_throughput.py --profile            # where rewardkit's training step spends its time

Model: a ~3.3M-parameter Llama built from a config, BPE tokenizer trained on the HH text (benchmarks/common.py).
Workloads (each system trains one epoch over the same comparisons, then is evaluated on the same held-out ones):
  hh  HH-RLHF harmless dialogues, long shared prompts, pairs that fit --max-length (so nobody truncates/filters)
  k4  K=4 rankings, k9  K=9 rankings, synthetic from HH text (common.synthetic_rankings); TRL gets every
      ranking expanded to its C(K,2) pairs, which is how its users must feed it
Systems:
  trl                  RewardTrainer + RewardConfig; gradient_checkpointing=False (its default is True, which
                       would slow it down), bf16 only where rewardkit also uses it (GPU); strings rendered exactly
                       as rewardkit renders them, EOS appended to every response for both (TRL appends it anyway)
  rewardkit-padded     train() with share_prefix=False and packing switched off: one padded forward per micro-batch
                       (each distinct response once; what grouping alone is worth)
  rewardkit-no-prefix  train() with share_prefix=False: batches that are mostly padding are packed (RewardModel.forward)
  rewardkit            the public `rewardkit.training.train(TrainConfig(...))` as shipped: each group's prompt is
                       computed once and its responses attend to it (share_prefix=True, the default), packed
Both get the same learning rate, cosine schedule without warmup, AdamW (weight decay 0), grad clip 1.0, seed,
comparisons per optimizer step and number of steps. Timed: the training loop only (TRL's train_runtime,
rewardkit's summary["seconds"]); no evaluation or saving inside it. Systems alternate in one process after a
1-step warm-up each; figures are medians over --repeats.

By default torch uses 1 thread: the 2 cores are shared with other jobs, and with 2 threads OpenMP's barriers
made every system 2-7x slower and the ranking erratic. Pass --threads 2 on an idle machine.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import logging
import math
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import torch
from common import (
    FlopCounter,
    Work,
    build_model_dir,
    environment,
    fits,
    group_fits,
    hh_texts,
    load_hh,
    markdown_table,
    matmul_peaks,
    median,
    parameter_counts,
    plain_work,
    resolve_device,
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
from rewardkit.evaluation.pairwise import evaluate
from rewardkit.model import RewardModel
from rewardkit.model import reward_model as reward_model_module
from rewardkit.model.prefix_sharing import ATTENTION_OVERHEAD, PackingCost, tree_attention_mask
from rewardkit.training import TrainConfig, train

SYSTEMS = ("trl", "rewardkit-padded", "rewardkit-no-prefix", "rewardkit")


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
    plan = {"hh": (2, args.hh_steps, 8), "k4": (4, args.k4_steps, 4), "k9": (9, args.k9_steps, 1)}
    workloads = []
    for name in args.workloads:
        k, steps, groups_per_step = plan[name]
        num_train, num_eval = steps * groups_per_step, args.eval_comparisons // math.comb(k, 2)
        if k == 2:
            records = [{"prompt": g.prompt, "chosen": g.responses[0], "rejected": g.responses[1]} for g in hh]
            data_format = "pairs"
        else:  # more than needed: some rankings get a reply too long for --max-length and are dropped below
            records = synthetic_rankings(hh, k, 2 * (num_train + num_eval), seed=args.seed)
            data_format = "ranking"
        # Keep the groups that fit --max-length, shuffle, split; rewardkit reads the train split from a file.
        loaded = load_preferences(str(write_jsonl(workdir / f"{name}-all.jsonl", records)), format=data_format)
        keep = [i for i, group in enumerate(loaded) if group_fits(group, tokenizer, args.max_length)]
        generator = torch.Generator().manual_seed(args.seed)
        keep = [keep[i] for i in torch.randperm(len(keep), generator=generator).tolist()]
        train_keep, eval_keep = keep[:num_train], keep[num_train : num_train + num_eval]
        train_path = write_jsonl(workdir / f"{name}-train.jsonl", [records[i] for i in train_keep])
        train_set = load_preferences(str(train_path), format=data_format)
        eval_groups = PreferenceDataset([loaded[i] for i in eval_keep])
        eval_set = encode_dataset(eval_groups, tokenizer, args.max_length)
        workload = Workload(name, k, steps, groups_per_step, train_path, data_format, train_set, eval_set)
        workload.trl_pairs = [
            {"chosen": render(g.prompt, g.responses[c.better], tokenizer)[0],
             "rejected": render(g.prompt, g.responses[c.worse], tokenizer)[0]}
            for g in train_set for c in g.comparisons
        ]  # fmt: skip
        workloads.append(workload)
    return workloads


def work(workload: Workload, tokenizer, max_length: int) -> dict[str, Work]:
    """What each system must compute for one epoch: the FLOPs MFU credits."""
    encoded = encode_dataset(workload.train_set, tokenizer, max_length)
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
        max_length=args.max_length,
        max_steps=steps,
        batch_size=workload.groups_per_step,
        learning_rate=args.lr,
        warmup_ratio=0.0,
        seed=args.seed,
        device=args.device,
        precision="auto",  # fp32 on CPU, bf16 autocast on GPUs that support it
        eval_steps=10**9,
        save_steps=10**9,
        logging_steps=10**9,
        normalize_rewards=False,
        progress_bar=False,
        share_prefix=name == "rewardkit",
    )
    with variant(name):
        result = train(config)
    return {"seconds": result.summary["seconds"], "model": result.model}


def run_trl(workload: Workload, args, model_dir: Path, workdir: Path, steps: int, check_tokens: bool) -> dict:
    from datasets import Dataset
    from transformers import PrinterCallback
    from trl import RewardConfig, RewardTrainer

    pairs = workload.pairs_per_step
    micro = min(d for d in range(min(8, pairs), pairs + 1) if pairs % d == 0)  # ~8 pairs per micro-batch
    use_bf16 = args.device != "cpu" and torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    config = RewardConfig(
        output_dir=str(workdir / "trl-run"),
        per_device_train_batch_size=micro,
        gradient_accumulation_steps=pairs // micro,
        max_steps=steps,
        learning_rate=args.lr,
        lr_scheduler_type="cosine",
        warmup_steps=0,
        weight_decay=0.0,
        max_grad_norm=1.0,
        seed=args.seed,
        gradient_checkpointing=False,  # TRL's default is True: recomputing activations would handicap it
        bf16=use_bf16,  # TRL's default is True; on a CPU without bf16 units that is ~10x slower
        max_length=args.max_length,  # the pairs were chosen to fit: TRL filters none of them
        report_to="none",
        save_strategy="no",
        eval_strategy="no",
        logging_strategy="no",
        disable_tqdm=True,
        use_cpu=resolve_device(args.device).type == "cpu",
    )
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    dataset = Dataset.from_list(workload.trl_pairs)
    trainer = RewardTrainer(model=str(model_dir), args=config, train_dataset=dataset, processing_class=tokenizer)
    trainer.remove_callback(PrinterCallback)  # with disable_tqdm it prints the final metrics dict
    assert not trainer.model.is_gradient_checkpointing
    if len(trainer.train_dataset) != len(workload.trl_pairs):
        raise RuntimeError("TRL filtered pairs: raise --max-length or select shorter pairs")
    if check_tokens:
        _check_same_tokens(trainer.train_dataset, workload, tokenizer, args.max_length)
    seconds = trainer.train().metrics["train_runtime"]
    return {"seconds": seconds, "model": RewardModel(trainer.model, tokenizer, max_length=args.max_length)}


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
            if name == "trl":
                result = run_trl(workload, args, model_dir, workdir, steps, check_tokens=warmup)
            else:
                result = run_rewardkit(workload, args, model_dir, workdir, steps, name)
            model = result.pop("model")
            if not warmup and name not in evaluated:  # every repeat trains the same way: evaluate the first
                evaluated[name] = evaluate(model, workload.eval_set, batch_size=64).accuracy
            result["accuracy"] = evaluated.get(name)
            return result

        return run

    return {name: system(name) for name in args.systems}


# ------------------------------------------------------------------------------------------------------ report
def report_rows(workload: Workload, runs: dict, works: dict, flops: FlopCounter, peak: float) -> list[dict]:
    keys = ["seconds", "accuracy", "peak_rss_mib", "rss_growth_mib"]
    summaries = {name: summarize(system_runs, keys) for name, system_runs in runs.items()}
    rates = {name: workload.comparisons / summary["seconds"] for name, summary in summaries.items()}
    rows = []
    for name, summary in summaries.items():
        tokens = works[name].tokens
        seconds = summary.pop("seconds")
        rows.append({
            "workload": workload.name,
            "system": name,
            "comparisons_per_s": rates[name],
            "vs_trl": rates[name] / rates["trl"] if "trl" in rates else float("nan"),
            "tokens_per_s": tokens / seconds,
            "mfu_fp32_pct": 100 * flops.train(works[name]) / seconds / peak,
            "seconds": seconds,
            "tokens_per_epoch": tokens,
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
    ("comparisons_per_s", "comparisons/s"),
    ("vs_trl", "x TRL"),
    ("tokens_per_s", "tokens/s"),
    ("mfu_fp32_pct", "MFU fp32 %"),
    ("seconds", "loop s"),
    ("accuracy", "val acc"),
    ("peak_rss_mib", "peak RSS MiB"),
    ("rss_growth_mib", "RSS growth MiB"),
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

    model = RewardModel.from_sft(model_dir, max_length=args.max_length)
    encoded = encode_dataset(workload.train_set, model.tokenizer, args.max_length)
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
    parser.add_argument("--workloads", nargs="+", choices=["hh", "k4", "k9"], default=["hh", "k4", "k9"])
    parser.add_argument("--systems", nargs="+", choices=SYSTEMS, default=list(SYSTEMS))
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--hh-steps", type=int, default=6, help="8 pairs per step")
    parser.add_argument("--k4-steps", type=int, default=3, help="4 rankings (24 comparisons) per step")
    parser.add_argument("--k9-steps", type=int, default=3, help="1 ranking (36 comparisons) per step")
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
    hh = load_hh()
    model_dir = build_model_dir(workdir / "sft", hh_texts(hh))
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
        works = work(workload, tokenizer, args.max_length)
        print(f"\n{workload.name}: {len(workload.train_set)} groups (K={workload.k}), {workload.comparisons} "
              f"comparisons, {workload.steps} steps of {workload.pairs_per_step} comparisons; "
              f"tokens per epoch: " + ", ".join(f"{k} {v.tokens:,}" for k, v in works.items()))
        systems = make_systems(workload, args, model_dir, workdir)
        runs = run_alternating(systems, args.repeats, device)
        workload_rows = report_rows(workload, runs, works, flops, peaks["fp32"])
        print(markdown_table(workload_rows, COLUMNS))
        rows += workload_rows

    table = markdown_table(rows, COLUMNS)
    print(f"\n{table}\n\n{verdicts(rows)}\n\ntotal wall time {time.perf_counter() - started:.0f} s")
    notes = (
        f"# Training throughput: rewardkit vs TRL RewardTrainer\n\n"
        f"`python benchmarks/train_throughput.py {' '.join(sys.argv[1:])}`; medians of {args.repeats} repeats "
        f"(systems alternating after a 1-step warm-up); {args.threads} torch thread(s) on {device}; model "
        f"{total_params / 1e6:.2f}M parameters; matmul peak fp32 {peaks['fp32'] / 1e9:.1f} GFLOP/s, bf16 "
        f"{peaks['bf16'] / 1e9:.1f} GFLOP/s (MFU is against the fp32 peak; bf16 autocast is not used on this CPU).\n\n"
        f"{table}\n\n{verdicts(rows)}\n\n"
        "comparisons/s = the epoch's comparisons / training-loop seconds. tokens/s and MFU count the tokens each "
        "system must compute (TRL: both sequences of every pair; rewardkit-padded and -no-prefix: each distinct "
        "response once; rewardkit: each prompt once, too). val acc: accuracy on the same held-out comparisons after "
        "the same steps (one epoch). `rewardkit` is train() as shipped (share_prefix=True by default); "
        "`rewardkit-no-prefix` passes share_prefix=False; `rewardkit-padded` also switches packing off.\n"
    )
    payload = {"environment": environment(device), "args": vars(args), "matmul_peak_flops": peaks,
               "parameters": total_params, "non_embedding_parameters": non_embedding, "rows": rows}
    json_path, md_path = write_results(args.output, payload, notes)
    print(f"wrote {json_path} and {md_path}")


if __name__ == "__main__":
    main()
