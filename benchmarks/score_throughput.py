"""Scoring throughput: `RewardModel.score` (what `rewardkit score` runs) against a plain transformers loop.

    python benchmarks/score_throughput.py --threads 2       # ~2 min on 2 idle CPU cores
    python benchmarks/score_throughput.py --repeats 5 --threads 2 --no-ablations

Model: the same ~3.3M-parameter Llama as benchmarks/train_throughput.py, saved as a reward model, so both
systems load the same weights. Workloads (texts that fit --max-length, so nobody truncates):
  hh-pairs    HH-RLHF prompts with both their responses (what scoring a preference file does)
  hh-unique   one response per prompt: nothing to share, only padding to save
  best-of-8   8 responses per HH prompt (best-of-n reranking), responses drawn from other dialogues
Systems:
  transformers   AutoModelForSequenceClassification + tokenizer, padded batches of 32 in input order under
                 torch.no_grad (the loop people write); texts rendered exactly as rewardkit renders them
  rewardkit      RewardModel.score(prompts, responses, batch_size=32): tokenization included
Ablations, on the first workload only (skip with --no-ablations): `rewardkit (token ids)` (score_encoded on
pre-tokenized ids), `sorted-padded` (score_encoded before packing: length-sorted padded batches, inference mode),
rewardkit under bf16 autocast, and rewardkit with torch.compile'd decoder layers. Systems alternate in one
process after a warm-up; medians over --repeats. Both systems' rewards are compared (max |difference|).
"""

from __future__ import annotations

import argparse
import logging
import random
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch
from common import (
    FlopCounter,
    Work,
    build_model_dir,
    environment,
    group_fits,
    hh_texts,
    load_hh,
    markdown_table,
    matmul_peaks,
    parameter_counts,
    plain_work,
    resolve_device,
    run_alternating,
    shared_prefix_work,
    summarize,
    with_eos,
    write_results,
)
from transformers import AutoModelForSequenceClassification, AutoTokenizer
from transformers.utils import logging as hf_logging

from rewardkit.data.collate import pad_sequences
from rewardkit.data.records import PreferenceGroup
from rewardkit.data.tokenize import render
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
def transformers_loop(model, tokenizer, texts: list[str], device: torch.device) -> torch.Tensor:
    """The plain loop: padded batches of 32 in input order, torch.no_grad."""
    rewards = []
    with torch.no_grad():
        for start in range(0, len(texts), BATCH_SIZE):
            inputs = tokenizer(texts[start : start + BATCH_SIZE], padding=True, return_tensors="pt").to(device)
            rewards.append(model(**inputs).logits[:, 0].float().cpu())
    return torch.cat(rewards)


@torch.inference_mode()
def sorted_padded(model: RewardModel, sequences: list[tuple[int, ...]]) -> torch.Tensor:
    """`score_encoded` before packing: length-sorted, padded batches of 32 (the ablation baseline)."""
    order = sorted(range(len(sequences)), key=lambda i: len(sequences[i]))
    rewards = torch.empty(len(sequences))
    for start in range(0, len(order), BATCH_SIZE):
        rows = order[start : start + BATCH_SIZE]
        input_ids, attention_mask = pad_sequences([sequences[i] for i in rows], model.tokenizer.pad_token_id)
        rewards[rows] = model.padded_forward(input_ids.to(model.device), attention_mask.to(model.device)).cpu()
    return rewards


def make_systems(workload: Workload, rm_dir: Path, device: torch.device, ablations: bool) -> tuple[dict, dict]:
    tokenizer = AutoTokenizer.from_pretrained(rm_dir)
    hf_model = AutoModelForSequenceClassification.from_pretrained(rm_dir).to(device).eval()
    model = RewardModel.from_pretrained(rm_dir).to(device).eval()
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

    systems = {
        "transformers": timed("transformers", lambda: transformers_loop(hf_model, tokenizer, workload.texts, device)),
        "rewardkit": timed("rewardkit", lambda: model.score(workload.prompts, workload.responses, BATCH_SIZE, False)),
    }
    if ablations:
        compiled = RewardModel.from_pretrained(rm_dir).to(device).eval()
        for layer in compiled.hf_model.model.layers:
            layer.compile(dynamic=True)
        systems |= {
            "rewardkit (token ids)": timed(
                "rewardkit (token ids)", lambda: model.score_encoded(workload.sequences, BATCH_SIZE)
            ),
            "sorted-padded": timed("sorted-padded", lambda: sorted_padded(model, workload.sequences)),
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
    ("sequences_per_s", "sequences/s"),
    ("vs_transformers", "x transformers"),
    ("tokens_per_s", "tokens/s"),
    ("mfu_fp32_pct", "MFU fp32 %"),
    ("seconds", "s"),
    ("max_abs_diff", "max abs diff"),
    ("warmup_seconds", "warm-up s"),
    ("peak_rss_mib", "peak RSS MiB"),
]


def report_rows(workload: Workload, runs: dict, outputs: dict, flops: FlopCounter, peak: float) -> list[dict]:
    works = work(workload)
    reference = outputs["transformers"]
    keys = ["seconds", "warmup_seconds", "peak_rss_mib", "rss_growth_mib"]
    summaries = {name: summarize(system_runs, keys) for name, system_runs in runs.items()}
    baseline = summaries["transformers"]["seconds"]
    rows = []
    for name, summary in summaries.items():
        seconds = summary.pop("seconds")
        computed = works["plain" if name in ("transformers", "sorted-padded") else "shared"]
        rows.append({
            "workload": workload.name,
            "system": name,
            "sequences_per_s": len(workload.sequences) / seconds,
            "vs_transformers": baseline / seconds,
            "tokens_per_s": computed.tokens / seconds,
            "mfu_fp32_pct": 100 * flops.forward(computed) / seconds / peak,
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
                        help="skip sorted-padded, bf16 autocast and torch.compile")
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    logging.getLogger("rewardkit").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", category=UserWarning)
    device = resolve_device(args.device)
    workdir = Path(tempfile.mkdtemp(prefix="rewardkit-score-bench-"))

    started = time.perf_counter()
    hh = load_hh()
    sft_dir = build_model_dir(workdir / "sft", hh_texts(hh))
    rm_dir = workdir / "rm"
    RewardModel.from_sft(sft_dir, max_length=args.max_length).save_pretrained(rm_dir)
    tokenizer = AutoTokenizer.from_pretrained(rm_dir)
    config = AutoModelForSequenceClassification.from_pretrained(rm_dir).config
    total_params, _ = parameter_counts(config)
    flops = FlopCounter.for_config(config)
    peaks = matmul_peaks(device)
    print(f"model: {total_params / 1e6:.2f}M parameters; matmul peak fp32 {peaks['fp32'] / 1e9:.1f} GFLOP/s, "
          f"bf16 {peaks['bf16'] / 1e9:.1f} GFLOP/s; {args.threads} thread(s)")
    hh = with_eos(hh, tokenizer.eos_token)

    rows = []
    for position, workload in enumerate(make_workloads(hh, tokenizer, args)):
        print(f"\n{workload.name}: {len(workload.texts)} texts, {sum(map(len, workload.sequences)):,} tokens")
        ablations = args.ablations and position == 0  # bf16 on this CPU is slow: ablate on one workload only
        systems, outputs = make_systems(workload, rm_dir, device, ablations)
        runs = run_alternating(systems, args.repeats, device)
        workload_rows = report_rows(workload, runs, outputs, flops, peaks["fp32"])
        print(markdown_table(workload_rows, COLUMNS))
        rows += workload_rows

    table = markdown_table(rows, COLUMNS)
    print(f"\n{table}\n\ntotal wall time {time.perf_counter() - started:.0f} s")
    notes = (
        "# Scoring throughput: RewardModel.score vs a plain transformers loop\n\n"
        f"`python benchmarks/score_throughput.py {' '.join(sys.argv[1:])}`; medians of "
        f"{args.repeats} repeats (systems alternating after a warm-up); {args.threads} torch thread(s) on {device}; "
        f"model {total_params / 1e6:.2f}M parameters; matmul peak fp32 {peaks['fp32'] / 1e9:.1f} GFLOP/s, "
        f"bf16 {peaks['bf16'] / 1e9:.1f} GFLOP/s.\n\n{table}\n\n"
        "tokens/s and MFU (forward FLOPs against the fp32 matmul peak) count what each system must compute: every "
        "token for padded loops, each shared prompt once for rewardkit. max abs diff: largest reward difference "
        "to the transformers loop. rewardkit's time includes its tokenization (offsets, truncation policy).\n"
    )
    payload = {"environment": environment(device), "args": vars(args), "matmul_peak_flops": peaks,
               "parameters": total_params, "rows": rows}
    json_path, md_path = write_results("score_throughput", payload, notes)
    print(f"wrote {json_path} and {md_path}")


if __name__ == "__main__":
    main()
