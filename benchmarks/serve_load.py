"""Load test for `rewardkit serve`: dynamic batching on vs off, in one run.

    python benchmarks/serve_load.py                      # a small synthetic Llama RM, 400 requests, 16 clients
    python benchmarks/serve_load.py --model runs/rm --requests 2000 --concurrency 64

For each mode the server runs as a real subprocess on 127.0.0.1 (so client and server do not share a GIL), gets a
few warm-up requests, then a fixed number of requests from N concurrent async clients. Prints throughput and
latency percentiles for both modes and their ratio; writes benchmarks/results/serve_load.json.
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import json
import os
import platform
import queue
import random
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

import torch

from rewardkit.client import RewardClient

RESULTS = Path(__file__).resolve().parent / "results" / "serve_load.json"
WORDS = ("the quick brown fox jumps over a lazy dog while bread bakes in France and a spider with eight legs "
         "tells a joke about locks numbers and the capital city").split()


def build_model(directory: Path, hidden_size: int, num_layers: int, max_length: int) -> Path:
    """A small random Llama reward model: big enough that a forward pass costs more than HTTP does."""
    from rewardkit.model import RewardModel
    from rewardkit.testing import save_tiny_sft_model

    sft = save_tiny_sft_model(directory / "sft", hidden_size=hidden_size, num_layers=num_layers)
    model = RewardModel.from_sft(sft, max_length=max_length)
    model.save_pretrained(directory / "rm")
    return directory / "rm"


def make_workload(n: int, per_request: int, seed: int = 0) -> list[tuple[list[str], list[str]]]:
    """Prompt/response pairs of varied length (4-40 words), fixed by the seed."""
    rng = random.Random(seed)

    def text(lo: int, hi: int) -> str:
        return " ".join(rng.choice(WORDS) for _ in range(rng.randint(lo, hi)))

    return [([f"Human: {text(4, 20)}?\n\nAssistant:" for _ in range(per_request)],
             [f" {text(4, 40)}." for _ in range(per_request)]) for _ in range(n)]


class ServerProcess:
    """`python -m rewardkit.serving` on a free loopback port; stopped with SIGTERM like a real deployment."""

    def __init__(self, model: Path, max_batch_size: int, max_wait_ms: float, threads: int | None):
        command = [sys.executable, "-m", "rewardkit.serving", "--model", str(model), "--host", "127.0.0.1",
                   "--port", "0", "--max-batch-size", str(max_batch_size), "--max-wait-ms", str(max_wait_ms),
                   "--device", "cpu"] + (["--threads", str(threads)] if threads else [])
        self.process = subprocess.Popen(command, stderr=subprocess.PIPE, text=True,
                                        env={**os.environ, "PYTHONUNBUFFERED": "1"})
        lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=lambda: [lines.put(line) for line in self.process.stderr], daemon=True).start()
        while True:
            line = lines.get(timeout=300)
            if match := re.search(r"serving on (http://\S+) ", line):
                self.url = match.group(1)
                return

    def stop(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        self.process.wait(timeout=120)


async def run_load(url: str, workload: list, concurrency: int) -> tuple[float, list[float]]:
    """Send every request in `workload` from `concurrency` clients; returns (wall seconds, per-request latency)."""
    client = RewardClient(url, max_retries=0)
    pending = iter(workload)
    latencies: list[float] = []

    async def worker() -> None:
        for prompts, responses in pending:  # the shared iterator hands each request to exactly one worker
            start = time.perf_counter()
            rewards = await client.ascore(prompts, responses)
            latencies.append(time.perf_counter() - start)
            assert len(rewards) == len(prompts)

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return time.perf_counter() - start, latencies


def batch_stats(url: str) -> dict[str, float]:
    """Forward-pass count and total batch size so far, from the server's /metrics."""
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=60)
    try:
        connection.request("GET", "/metrics")
        text = connection.getresponse().read().decode()
    finally:
        connection.close()
    values = {}
    for name in ("rewardkit_batch_size_sum", "rewardkit_batch_size_count"):
        match = re.search(rf"^{name} (\S+)$", text, re.MULTILINE)
        values[name] = float(match.group(1)) if match else 0.0
    return values


def percentile(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1] if len(values) > 1 else values[0]


def measure(model: Path, name: str, max_batch_size: int, max_wait_ms: float, workload: list, concurrency: int,
            warmup: list, threads: int | None) -> dict:
    server = ServerProcess(model, max_batch_size, max_wait_ms, threads)
    try:
        asyncio.run(run_load(server.url, warmup, concurrency))
        before = batch_stats(server.url)
        seconds, latencies = asyncio.run(run_load(server.url, workload, concurrency))
        after = batch_stats(server.url)
    finally:
        server.stop()
    sequences = sum(len(prompts) for prompts, _ in workload)
    forward_passes = after["rewardkit_batch_size_count"] - before["rewardkit_batch_size_count"]
    return {
        "mode": name,
        "max_batch_size": max_batch_size,
        "max_wait_ms": max_wait_ms,
        "requests": len(workload),
        "sequences": sequences,
        "seconds": round(seconds, 3),
        "requests_per_s": round(len(workload) / seconds, 1),
        "sequences_per_s": round(sequences / seconds, 1),
        "latency_p50_ms": round(percentile(latencies, 50) * 1000, 2),
        "latency_p99_ms": round(percentile(latencies, 99) * 1000, 2),
        "forward_passes": int(forward_passes),
        "mean_batch_size": round((after["rewardkit_batch_size_sum"] - before["rewardkit_batch_size_sum"])
                                 / max(forward_passes, 1), 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", help="reward model directory (default: build a small random Llama RM)")
    parser.add_argument("--requests", type=int, default=400)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--per-request", type=int, default=1, help="(prompt, response) pairs per request (1)")
    parser.add_argument("--max-batch-size", type=int, default=32)
    parser.add_argument("--max-wait-ms", type=float, default=5.0)
    parser.add_argument("--hidden-size", type=int, default=256, help="synthetic model width (256)")
    parser.add_argument("--layers", type=int, default=4, help="synthetic model depth (4)")
    parser.add_argument("--server-threads", type=int, default=1,
                        help="torch threads in the server (1: the load generator shares the CPU; 0: torch's default)")
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args()

    workload = make_workload(args.requests, args.per_request)
    warmup = make_workload(2 * args.concurrency, args.per_request, seed=1)
    with tempfile.TemporaryDirectory() as scratch:
        model = Path(args.model) if args.model else build_model(Path(scratch), args.hidden_size, args.layers, 128)
        runs = [
            measure(model, "batching", args.max_batch_size, args.max_wait_ms, workload, args.concurrency, warmup,
                    args.server_threads),
            measure(model, "no_batching", 1, 0.0, workload, args.concurrency, warmup, args.server_threads),
        ]

    on, off = runs
    ratio = on["sequences_per_s"] / off["sequences_per_s"]
    model_name = args.model or f"synthetic Llama RM hidden={args.hidden_size} layers={args.layers} max_len=128"
    print(f"{args.requests} requests x {args.per_request} sequence(s), {args.concurrency} concurrent clients, "
          f"model: {model_name}")
    print(f"{'mode':<12} {'max_batch':>9} {'req/s':>8} {'seq/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'mean batch':>10}")
    for run in runs:
        print(f"{run['mode']:<12} {run['max_batch_size']:>9} {run['requests_per_s']:>8.1f} "
              f"{run['sequences_per_s']:>8.1f} {run['latency_p50_ms']:>8.1f} {run['latency_p99_ms']:>8.1f} "
              f"{run['mean_batch_size']:>10.2f}")
    print(f"throughput ratio (batching / no batching): {ratio:.2f}x")

    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps({
        "config": {
            "requests": args.requests, "concurrency": args.concurrency, "per_request": args.per_request,
            "model": model_name,
        },
        "environment": {
            "python": platform.python_version(), "torch": torch.__version__, "cpu_count": os.cpu_count(),
            "server_torch_threads": args.server_threads or torch.get_num_threads(), "device": "cpu",
        },
        "runs": runs,
        "throughput_ratio": round(ratio, 2),
    }, indent=2) + "\n")
    print(f"results -> {args.output}")


if __name__ == "__main__":
    main()
