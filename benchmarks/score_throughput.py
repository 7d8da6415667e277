"""Scoring throughput: `RewardModel.score` (what `rewardkit score` runs) against plain transformers loops.

    python benchmarks/score_throughput.py --threads 2       # ~5 min on 2 idle CPU cores
    python benchmarks/score_throughput.py --backbone minilm --workloads hh-pairs --max-length 512 --threads 2
    python benchmarks/score_throughput.py --repeats 5 --threads 2 --no-ablations

Model (--backbone): `bench`, the same ~3.3M-parameter Llama as benchmarks/train_throughput.py, or `minilm`, the
pretrained MiniLM-L6 encoder with a new head; saved as a reward model, so every system loads the same weights.
Workloads (texts that fit --max-length, so nobody truncates):
  hh-pairs    HH-RLHF prompts with both their responses (what scoring a preference file does)
  hh-unique   one response per prompt: nothing to share, only padding to save
  best-of-8   8 responses per HH prompt (best-of-n reranking), responses drawn from other dialogues
Systems (all at --precision, resolved once and reported):
  transformers-sorted  the best plain loop: AutoModelForSequenceClassification + tokenizer, texts ordered by token
                       count, padded batches of 32, inference mode; the headline ratio is against it
  transformers         the same loop in input order (what most scripts do)
  rewardkit            RewardModel.score(prompts, responses, batch_size=32): tokenization included
Ablations, on the first workload of the decoder only (skip with --no-ablations): `rewardkit (token ids)`
(score_encoded on pre-tokenized ids), rewardkit under bf16 autocast, and rewardkit with torch.compile'd decoder
layers. Systems alternate in one process after a warm-up; medians over --repeats, with peak RSS. Every system's
rewards are compared with the input-order loop's (max |difference|).
"""

from __future__ import annotations

import argparse
import logging
import os
import random
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch
from common import (
    SHAPES,
    FlopCounter,
    Work,
    build_model_dir,
    environment,
    group_fits,
    hh_texts,
    load_hh,
    markdown_table,
    matmul_peaks,
    minilm_path,
    plain_work,
    run_alternating,
    shared_prefix_work,
    summarize,
    with_eos,
    write_results,
)
from transformers import AutoModelForSequenceClassification, AutoTokenizer
from transformers.utils import logging as hf_logging

from rewardkit.data.records import PreferenceGroup
from rewardkit.data.tokenize import render
from rewardkit.device import precision_dtype, precision_name, resolve_device
from rewardkit.model import RewardModel
from rewardkit.model.prefix_sharing import prefix_clusters

BATCH_SIZE = 32


@dataclass
class Workload:
    name: str
    prompts: list[str]
    responses: list[str]
    texts: list[str]  # rendered prompt + response, for the transformers loop
    sequences: list[tuple[int, ...]]  # rewardkit's encoding of the same, for token and FLOP counts


def make_workloads(hh, tokenizer, args) -> list[Workload]:
    rng = random.Random(args.seed)
    groups = list(hh)
    rng.shuffle(groups)
    pool = [response for group in groups for response in group.responses]
    plans = {
        "hh-pairs": [(g.prompt, r) for g in groups[: args.texts // 2] for r in g.responses],
        "hh-unique": [(g.prompt, g.responses[0]) for g in groups[args.texts // 2 : args.texts // 2 + args.texts]],
        "best-of-8": [(g.prompt, r) for g in groups[: args.texts // 8] for r in rng.sample(pool, 8)],
    }
    workloads = []
    for name in args.workloads:
        pairs = [(p, r) for p, r in plans[name] if _fits(p, r, tokenizer, args.max_length)]
        prompts, responses = [p for p, _ in pairs], [r for _, r in pairs]
        texts = [render(p, r, tokenizer)[0] for p, r in pairs]
        sequences = [tuple(tokenizer(text)["input_ids"]) for text in texts]
        workloads.append(Workload(name, prompts, responses, texts, sequences))
    return workloads


def _fits(prompt: str, response: str, tokenizer, max_length: int) -> bool:
    return group_fits(PreferenceGroup(prompt, [response], []), tokenizer, max_length)


# ---------------------------------------------------------------------------------------------------- systems
def transformers_loop(model, tokenizer, texts: list[str], device: torch.device, autocast: torch.dtype | None,
                      sort: bool) -> torch.Tensor:  # fmt: skip
    """The plain loop people write: tokenize, padded batches of 32, inference mode. `sort=True` is the best such
    loop: texts ordered by token count first, so each batch is padded only to similar lengths."""
    encoded = tokenizer(texts)["input_ids"]
    order = sorted(range(len(texts)), key=lambda i: len(encoded[i])) if sort else list(range(len(texts)))
    rewards = torch.empty(len(texts))
    with torch.inference_mode(), torch.autocast(device.type, dtype=autocast, enabled=autocast is not None):
        for start in range(0, len(order), BATCH_SIZE):
            rows = order[start : start + BATCH_SIZE]
            inputs = tokenizer.pad({"input_ids": [encoded[i] for i in rows]}, return_tensors="pt").to(device)
            rewards[rows] = model(**inputs).logits[:, 0].float().cpu()
    return rewards


def make_systems(workload: Workload, rm_dir: Path, device: torch.device, ablations: bool, precision: str
                 ) -> tuple[dict, dict]:  # fmt: skip
    tokenizer = AutoTokenizer.from_pretrained(rm_dir)
    hf_model = AutoModelForSequenceClassification.from_pretrained(rm_dir).to(device).eval()
    model = RewardModel.from_pretrained(rm_dir).to(device).eval()
    model.precision = precision  # pinned: the same for every system
    autocast = precision_dtype(precision, device)
    outputs: dict[str, torch.Tensor] = {}
    warmups: dict[str, float] = {}

    def timed(name: str, fn):
        def run(warmup: bool) -> dict:
            tick = time.perf_counter()
            rewards = fn()
            seconds = time.perf_counter() - tick
            outputs.setdefault(name, rewards)
            if warmup:
                warmups[name] = seconds  # torch.compile compiles here
            return {"seconds": seconds, "warmup_seconds": warmups.get(name)}

        return run

    def loop(sort: bool):
        return lambda: transformers_loop(hf_model, tokenizer, workload.texts, device, autocast, sort)

    systems = {
        "transformers-sorted": timed("transformers-sorted", loop(sort=True)),
        "transformers": timed("transformers", loop(sort=False)),
        "rewardkit": timed("rewardkit", lambda: model.score(workload.prompts, workload.responses, BATCH_SIZE, False)),
    }
    if ablations and model.is_decoder:
        compiled = RewardModel.from_pretrained(rm_dir).to(device).eval()
        for layer in compiled.hf_model.model.layers:
            layer.compile(dynamic=True)
        systems |= {
            "rewardkit (token ids)": timed(
                "rewardkit (token ids)", lambda: model.score_encoded(workload.sequences, BATCH_SIZE)
            ),
            "rewardkit bf16 autocast": timed(
                "rewardkit bf16 autocast",
                lambda: model.score_encoded(workload.sequences, BATCH_SIZE, autocast_dtype=torch.bfloat16),
            ),
            "rewardkit compiled": timed(
                "rewardkit compiled", lambda: compiled.score(workload.prompts, workload.responses, BATCH_SIZE, False)
            ),
        }
    return systems, outputs


# ------------------------------------------------------------------------------------------------------ report
def work(workload: Workload) -> dict[str, Work]:
    """Every token for the padded loops; each shared prefix once, the last layer at reward tokens, for rewardkit."""
    shared = Work()
    for cluster in prefix_clusters(workload.sequences):
        shared += shared_prefix_work([workload.sequences[i] for i in cluster])
    return {"plain": plain_work(workload.sequences), "shared": shared.at_reward_tokens(workload.sequences)}


COLUMNS = [
    ("workload", "workload"),
    ("system", "system"),
    ("precision", "precision"),
    ("sequences_per_s", "sequences/s"),
    ("vs_sorted", "x sorted loop"),
    ("vs_transformers", "x input-order loop"),
    ("tokens_per_s", "tokens/s"),
    ("mfu_fp32_pct", "MFU fp32 %"),
    ("seconds", "s"),
    ("max_abs_diff", "max abs diff"),
    ("warmup_seconds", "warm-up s"),
    ("peak_rss_mib", "peak RSS MiB"),
]


def report_rows(workload: Workload, runs: dict, outputs: dict, flops: FlopCounter | None, peak: float,
                precision: str, shares_prompts: bool) -> list[dict]:  # fmt: skip
    works = work(workload)
    reference = outputs["transformers"]
    keys = ["seconds", "warmup_seconds", "peak_rss_mib", "rss_growth_mib", "cpu_user_s", "cpu_sys_s"]
    summaries = {name: summarize(system_runs, keys) for name, system_runs in runs.items()}
    best_loop, input_order_loop = summaries["transformers-sorted"]["seconds"], summaries["transformers"]["seconds"]
    rows = []
    for name, summary in summaries.items():
        seconds = summary.pop("seconds")
        computed = works["shared" if shares_prompts and not name.startswith("transformers") else "plain"]
        rows.append({
            "workload": workload.name,
            "system": name,
            "precision": "bf16" if "bf16" in name else precision,
            "sequences_per_s": len(workload.sequences) / seconds,
            "vs_sorted": best_loop / seconds,
            "vs_transformers": input_order_loop / seconds,
            "tokens_per_s": computed.tokens / seconds,
            "mfu_fp32_pct": 100 * flops.forward(computed) / seconds / peak if flops else float("nan"),
            "seconds": seconds,
            "max_abs_diff": (outputs[name] - reference).abs().max().item(),
            "tokens": computed.tokens,
            **summary,
        })
    return rows


# ---------------------------------------------------------------------------------------------------------- main
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workloads", nargs="+", choices=["hh-pairs", "hh-unique", "best-of-8"],
                        default=["hh-pairs", "hh-unique", "best-of-8"])
    parser.add_argument("--texts", type=int, default=256, help="about this many texts per workload")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--max-length", type=int, default=256)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=1, help="1: the cores are shared (see train_throughput.py)")
    parser.add_argument("--no-ablations", dest="ablations", action="store_false",
                        help="skip token ids, bf16 autocast and torch.compile")
    parser.add_argument("--backbone", choices=["bench", "minilm"], default="bench",
                        help="bench: a Llama built from a config (--shape); minilm: the pretrained MiniLM-L6 encoder")
    parser.add_argument("--shape", choices=sorted(SHAPES), default="bench", help="the Llama's shape (common.SHAPES)")
    parser.add_argument("--precision", choices=["auto", "fp32", "bf16"], default="auto",
                        help="every system's, resolved once and reported (auto: bf16 where the CPU computes it fast)")
    parser.add_argument("--output", help="results name under benchmarks/results/ (default: score_throughput)")
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    logging.getLogger("rewardkit").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", category=UserWarning)
    device = resolve_device(args.device)
    workdir = Path(tempfile.mkdtemp(prefix="rewardkit-score-bench-"))

    started = time.perf_counter()
    info = environment(device)
    args.precision = precision_name(precision_dtype(args.precision, device))
    hh = load_hh()
    if args.backbone == "minilm":
        sft_dir = minilm_path()
    else:
        sft_dir = build_model_dir(workdir / "sft", hh_texts(hh), spec=SHAPES[args.shape])
    rm_dir = workdir / "rm"
    torch.manual_seed(args.seed)  # the encoder's new head
    RewardModel.from_sft(sft_dir, max_length=args.max_length).save_pretrained(rm_dir)
    tokenizer = AutoTokenizer.from_pretrained(rm_dir)
    config = AutoModelForSequenceClassification.from_pretrained(rm_dir).config
    total_params = sum(p.numel() for p in AutoModelForSequenceClassification.from_pretrained(rm_dir).parameters())
    flops = FlopCounter.for_config(config) if args.backbone == "bench" else None  # MFU: Llama FLOP counts only
    peaks = matmul_peaks(device)
    print(f"model: {total_params / 1e6:.2f}M parameters; matmul peak fp32 {peaks['fp32'] / 1e9:.1f} GFLOP/s, "
          f"bf16 {peaks['bf16'] / 1e9:.1f} GFLOP/s; {args.threads} thread(s)")
    if tokenizer.eos_token:  # as rewardkit's decoders see responses; BERT-like tokenizers end with [SEP] themselves
        hh = with_eos(hh, tokenizer.eos_token)

    rows = []
    for position, workload in enumerate(make_workloads(hh, tokenizer, args)):
        print(f"\n{workload.name}: {len(workload.texts)} texts, {sum(map(len, workload.sequences)):,} tokens")
        ablations = args.ablations and position == 0  # bf16 on this CPU is slow: ablate on one workload only
        systems, outputs = make_systems(workload, rm_dir, device, ablations, args.precision)
        runs = run_alternating(systems, args.repeats, device)
        workload_rows = report_rows(workload, runs, outputs, flops, peaks["fp32"], args.precision,
                                    shares_prompts=args.backbone == "bench")  # encoders cannot share prompts
        print(markdown_table(workload_rows, COLUMNS))
        rows += workload_rows

    table = markdown_table(rows, COLUMNS)
    print(f"\n{table}\n\ntotal wall time {time.perf_counter() - started:.0f} s")
    notes = (
        "# Scoring throughput: RewardModel.score vs plain transformers loops\n\n"
        f"`python benchmarks/score_throughput.py {' '.join(sys.argv[1:])}` ({(time.perf_counter() - started) / 60:.0f} "
        f"min); medians of {args.repeats} repeats (systems alternating after a warm-up); {args.threads} torch "
        f"thread(s) on {device}; CPU {info['cpu_model']} ({info['cpu_flags']}); load average "
        f"{info['load_average_at_start']:.1f} at start, {os.getloadavg()[0]:.1f} at end; backbone {args.backbone}, "
        f"{total_params / 1e6:.1f}M parameters; precision {args.precision} for every system unless the row says "
        f"otherwise; matmul peak fp32 {peaks['fp32'] / 1e9:.1f} GFLOP/s, bf16 {peaks['bf16'] / 1e9:.1f} GFLOP/s."
        f"\n\n{table}\n\n"
        "Baselines: `transformers-sorted` is the best plain loop (texts ordered by token count, padded batches of 32, "
        "inference mode) and the headline ratio (x sorted loop) is against it; `transformers` is the same loop in "
        "input order. tokens/s and MFU (forward FLOPs against the fp32 matmul peak) count what each system must "
        "compute: every token for padded loops, each shared prompt once for rewardkit. max abs diff: largest reward "
        "difference to the input-order loop. Every system's time includes its tokenization.\n"
    )
    payload = {"environment": info, "args": {k: str(v) for k, v in vars(args).items()}, "matmul_peak_flops": peaks,
               "parameters": total_params, "rows": rows}
    json_path, md_path = write_results(args.output or "score_throughput", payload, notes)
    print(f"wrote {json_path} and {md_path}")


if __name__ == "__main__":
    main()
