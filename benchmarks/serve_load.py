"""Load test for `rewardkit serve`, side by side with an earlier version of the server, in one run.

    python benchmarks/serve_load.py --baseline-commit d2d5c71      # the hand-written HTTP/1.1 server before issue 13
    python benchmarks/serve_load.py --baseline-commit d2d5c71 --memory --profile

Both servers run as real subprocesses on 127.0.0.1 (`python -m rewardkit.serving`, one torch thread each), with the
same model, settings and load generator (RewardClient.ascore from N concurrent asyncio tasks); the baseline's code
is `git archive`d from the commit into a temporary directory and put first on its PYTHONPATH. For each batching mode
(on: --max-batch-size 32 --max-wait-ms 5; off: 1 and 0) and each concurrency (16, 64), the two servers are measured
alternately, `--repeats` times; the tables give medians and the current/baseline throughput ratio.

--memory: each server's resident memory (VmRSS) after 20,000 requests (a smaller model, so the HTTP layer dominates),
then while 40 connections without the API key each announce and send an 8 MiB body, and 5 s after they end.
--profile: py-spy samples each server's threads under load; CPU samples are grouped by where they land (HTTP
parsing, framework, JSON, tokenizer, forward pass, ...), as shares and as thread milliseconds per request.

Writes benchmarks/results/serve_load.json and .md, with the machine, the load average before and after, and the
command line. Run under `flock /tmp/rewardkit-heavy.lock` on a shared machine.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import os
import platform
import queue
import random
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

from rewardkit.client import RewardClient

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"
WORDS = ("the quick brown fox jumps over a lazy dog while bread bakes in France and a spider with eight legs "
         "tells a joke about locks numbers and the capital city").split()
KEY = "benchmark-key"
MODES = {"batching": (32, 5.0), "no_batching": (1, 0.0)}


def build_model(directory: Path, hidden_size: int, num_layers: int, max_length: int) -> Path:
    """A small random Llama reward model."""
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
    """`python -m rewardkit.serving` from `src` on a free loopback port; stopped with SIGTERM."""

    def __init__(self, src: Path, model: Path, max_batch_size: int, max_wait_ms: float, key_file: Path | None = None):
        command = [sys.executable, "-m", "rewardkit.serving", "--model", str(model), "--host", "127.0.0.1",
                   "--port", "0", "--max-batch-size", str(max_batch_size), "--max-wait-ms", str(max_wait_ms),
                   "--device", "cpu", "--threads", "1"] + (["--api-key-file", str(key_file)] if key_file else [])
        self.process = subprocess.Popen(command, stderr=subprocess.PIPE, text=True, cwd=src,
                                        env={**os.environ, "PYTHONPATH": str(src), "PYTHONUNBUFFERED": "1"})
        lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=lambda: [lines.put(line) for line in self.process.stderr], daemon=True).start()
        while True:
            line = lines.get(timeout=300)
            if match := re.search(r"serving on (http://\S+) ", line):
                self.url = match.group(1)
                return

    def rss_mb(self) -> float:
        status = Path(f"/proc/{self.process.pid}/status").read_text()
        return int(re.search(r"VmRSS:\s+(\d+) kB", status).group(1)) / 1024

    def stop(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=120)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


async def _load(url: str, workload: list, concurrency: int, api_key: str | None) -> tuple[float, list[float]]:
    client = RewardClient(url, api_key=api_key, max_retries=0)
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
    seconds = time.perf_counter() - start
    await client.aclose()
    return seconds, latencies


def run_load(url: str, workload: list, concurrency: int, api_key: str | None = None) -> tuple[float, list[float]]:
    """Send every request in `workload` from `concurrency` clients; (wall seconds, per-request latencies)."""
    return asyncio.run(_load(url, workload, concurrency, api_key))


def batch_stats(url: str) -> tuple[float, float]:
    """(sequences in forward passes, forward passes) so far, from the server's /metrics."""
    text = httpx.get(url + "/metrics", timeout=60).text
    values = []
    for name in ("rewardkit_batch_size_sum", "rewardkit_batch_size_count"):
        match = re.search(rf"^{name} (\S+)$", text, re.MULTILINE)
        values.append(float(match.group(1)) if match else 0.0)
    return values[0], values[1]


def percentile(values: list[float], q: int) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1] if len(values) > 1 else values[0]


def measure(server: ServerProcess, workload: list, concurrency: int) -> dict:
    seq_before, passes_before = batch_stats(server.url)
    seconds, latencies = run_load(server.url, workload, concurrency)
    seq_after, passes_after = batch_stats(server.url)
    return {
        "requests_per_s": round(len(workload) / seconds, 1),
        "latency_p50_ms": round(percentile(latencies, 50) * 1000, 2),
        "latency_p99_ms": round(percentile(latencies, 99) * 1000, 2),
        "mean_batch_size": round((seq_after - seq_before) / max(passes_after - passes_before, 1), 2),
    }


# ---------------------------------------------------------------------------------------------- memory
def _unauthenticated_upload(url: str, body_bytes: int, deadline: float) -> None:
    """Announce a large body without the API key (asking to continue), then send it anyway, as an attacker would."""
    host, port = url.removeprefix("http://").rsplit(":", 1)
    chunk = b"x" * 65536
    try:
        with socket.create_connection((host, int(port)), timeout=10) as sock:
            sock.sendall(b"POST /score HTTP/1.1\r\nHost: rm\r\nContent-Type: application/json\r\n"
                         b"Expect: 100-continue\r\nContent-Length: %d\r\n\r\n" % body_bytes)
            sent = 0
            while sent < body_bytes and time.monotonic() < deadline:
                sock.sendall(chunk)
                sent += len(chunk)
            sock.settimeout(5)
            while sock.recv(65536):
                pass
    except OSError:
        pass  # refused or dropped by the server: the point is what it cost the server meanwhile


def memory_run(src: Path, model: Path, key_file: Path, requests: int, uploads: int, upload_bytes: int) -> dict:
    server = ServerProcess(src, model, 32, 5.0, key_file)
    try:
        run_load(server.url, make_workload(500, 1, seed=2), 16, KEY)
        rss = {"after_warmup_500": round(server.rss_mb(), 1)}
        workload = make_workload(5000, 1, seed=3)
        for done in range(5000, requests + 1, 5000):
            run_load(server.url, workload, 16, KEY)
            rss[f"after_{done}"] = round(server.rss_mb(), 1)
        before = server.rss_mb()
        deadline = time.monotonic() + 60
        threads = [threading.Thread(target=_unauthenticated_upload, args=(server.url, upload_bytes, deadline))
                   for _ in range(uploads)]
        for thread in threads:
            thread.start()
        peak = before
        while any(thread.is_alive() for thread in threads):
            peak = max(peak, server.rss_mb())
            time.sleep(0.1)
        time.sleep(5)
        rss.update(before_uploads=round(before, 1), peak_during_uploads=round(peak, 1),
                   five_s_after_uploads=round(server.rss_mb(), 1))
        status = httpx.get(server.url + "/health", headers={"Authorization": f"Bearer {KEY}"}, timeout=60).status_code
        rss["healthy_after"] = status == 200
    finally:
        server.stop()
    return rss


# ---------------------------------------------------------------------------------------------- profile
EVENT_LOOP_CATEGORIES = [  # the event-loop thread, by the innermost frame that matches
    ("JSON encode/decode", ("json/",)),
    ("HTTP parsing and protocol", ("httptools", "uvicorn/", "serving/http.py", "serving/asgi.py",
                                   "asyncio/streams.py")),
    ("Starlette routing, request, response", ("starlette/",)),
    ("metrics", ("prometheus_client", "serving/metrics.py")),
    ("rewardkit handlers and validation", ("rewardkit/serving", "rewardkit/data")),
    ("batcher scheduling", ("batcher.py",)),
]


def _category(stack: str) -> str:
    """Where one py-spy sample (a collapsed stack, outermost frame first) spent its time."""
    if "_forward (rewardkit/serving/batcher.py" in stack:
        return "forward pass (model thread)"
    if "_encode (rewardkit/serving/server.py" in stack:
        return "tokenizer (tokenizer thread)"
    if "concurrent/futures/thread.py" in stack:
        return "thread hand-off (worker threads outside their work)"
    frames = stack.split(";")
    loop_frames = [i for i, frame in enumerate(frames) if "asyncio/runners.py" in frame or "asyncio/base_events.py"
                   in frame or "asyncio/events.py" in frame]
    inside_loop = frames[loop_frames[-1] + 1:] if loop_frames else frames  # not the frames that started the loop
    for frame in reversed(inside_loop):
        for name, markers in EVENT_LOOP_CATEGORIES:
            if any(marker in frame for marker in markers):
                return name
    return "event loop internals (sockets, scheduling; C code)"


def profile_run(src: Path, model: Path, workload: list, concurrency: int, rounds: int, rate: int) -> dict:
    """py-spy over `rounds` passes of the workload; per category, the share of CPU samples and the milliseconds of
    thread time per request."""
    server = ServerProcess(src, model, 32, 5.0)
    out = Path(tempfile.mkstemp(suffix=".txt")[1])
    try:
        run_load(server.url, workload[:200], concurrency)
        spy = subprocess.Popen(["py-spy", "record", "--pid", str(server.process.pid), "--rate", str(rate),
                                "--format", "raw", "--output", str(out), "--nonblocking"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(1)  # py-spy attaches
        for _ in range(rounds):
            run_load(server.url, workload, concurrency)
        spy.send_signal(signal.SIGINT)  # py-spy writes what it sampled and exits
        spy.wait(timeout=120)
    finally:
        server.stop()
    counts: collections.Counter[str] = collections.Counter()
    for line in out.read_text().splitlines():
        stack, _, n = line.rpartition(" ")
        if stack and n.isdigit():
            counts[_category(stack)] += int(n)
    out.unlink()
    total, requests = sum(counts.values()) or 1, rounds * len(workload)
    return {"samples": total, "requests": requests, "categories": {
        name: {"percent": round(100 * n / total, 1), "ms_per_request": round(1000 * n / rate / requests, 3)}
        for name, n in counts.most_common()}}


# ---------------------------------------------------------------------------------------------- main
def baseline_source(commit: str, directory: Path) -> Path:
    """The commit's rewardkit/ package in `directory` (git archive from the repository we are run in)."""
    directory.mkdir(parents=True)
    archive = subprocess.run(["git", "archive", commit, "rewardkit"], check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(directory)], input=archive, check=True)
    return directory


def environment() -> dict:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    import torch

    return {"python": platform.python_version(), "torch": torch.__version__, "cpu": cpu, "cpu_count": os.cpu_count(),
            "server_torch_threads": 1, "load_average_before": [round(x, 2) for x in os.getloadavg()]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--baseline-commit", required=True, help="git commit whose rewardkit/ is the baseline server")
    parser.add_argument("--requests", type=int, default=600, help="requests per measurement (600)")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[16, 64])
    parser.add_argument("--repeats", type=int, default=3, help="alternating measurements per setting (3)")
    parser.add_argument("--modes", nargs="+", choices=list(MODES), default=list(MODES))
    parser.add_argument("--hidden-size", type=int, default=256, help="synthetic model width (256)")
    parser.add_argument("--layers", type=int, default=4, help="synthetic model depth (4)")
    parser.add_argument("--memory", action="store_true", help="also measure memory (20,000 requests, 40 uploads)")
    parser.add_argument("--memory-requests", type=int, default=20_000)
    parser.add_argument("--profile", action="store_true", help="also profile both servers under load (py-spy)")
    parser.add_argument("--output", type=Path, default=RESULTS / "serve_load.json")
    args = parser.parse_args()

    env = environment()
    workload = make_workload(args.requests, 1)
    head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    report: dict = {"command": "python benchmarks/serve_load.py " + " ".join(sys.argv[1:]),
                    "current_commit": head, "config": vars(args) | {"output": str(args.output)},
                    "environment": env, "runs": []}
    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        stacks = {"current": REPO, "baseline": baseline_source(args.baseline_commit, scratch / "baseline")}
        model = build_model(scratch / "model", args.hidden_size, args.layers, 128)
        for mode in args.modes:
            max_batch, max_wait = MODES[mode]
            servers = {name: ServerProcess(src, model, max_batch, max_wait) for name, src in stacks.items()}
            try:
                for server in servers.values():
                    run_load(server.url, make_workload(200, 1, seed=1), 16)  # warm-up
                for concurrency in args.concurrency:
                    for repeat in range(args.repeats):
                        order = list(servers) if repeat % 2 == 0 else list(reversed(servers))
                        for name in order:
                            run = measure(servers[name], workload, concurrency)
                            report["runs"].append({"stack": name, "mode": mode, "concurrency": concurrency,
                                                   "repeat": repeat, **run})
                            print(f"{mode:<12} c={concurrency:<3} {name:<9} {run}", flush=True)
            finally:
                for server in servers.values():
                    server.stop()
        if args.memory:
            small = build_model(scratch / "small", 64, 2, 128)
            key_file = scratch / "key"
            key_file.write_text(KEY + "\n")
            key_file.chmod(0o600)
            report["memory_mb"] = {name: memory_run(src, small, key_file, args.memory_requests, 40, 8 * 1024 * 1024)
                                   for name, src in stacks.items()}
            print("memory (MB):", json.dumps(report["memory_mb"], indent=1), flush=True)
        if args.profile:
            report["profile_percent_of_cpu_samples"] = {
                name: profile_run(src, model, workload, 16, 3, 250) for name, src in stacks.items()}
            print("profile:", json.dumps(report["profile_percent_of_cpu_samples"], indent=1), flush=True)
    env["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
    report["summary"] = summarize(report["runs"])
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2) + "\n")
    args.output.with_suffix(".md").write_text(markdown(report))
    print(markdown(report))
    print(f"results -> {args.output} and {args.output.with_suffix('.md')}")


def summarize(runs: list[dict]) -> list[dict]:
    rows = []
    keys = sorted({(r["mode"], r["concurrency"]) for r in runs}, key=lambda k: (list(MODES).index(k[0]), k[1]))
    for mode, concurrency in keys:
        row: dict = {"mode": mode, "concurrency": concurrency}
        for stack in ("current", "baseline"):
            mine = [r for r in runs if (r["mode"], r["concurrency"], r["stack"]) == (mode, concurrency, stack)]
            for field in ("requests_per_s", "latency_p50_ms", "latency_p99_ms", "mean_batch_size"):
                row[f"{stack}_{field}"] = round(statistics.median(r[field] for r in mine), 2)
        pairs = [(c["requests_per_s"], b["requests_per_s"]) for c in runs for b in runs
                 if (c["stack"], b["stack"]) == ("current", "baseline")
                 and (c["mode"], c["concurrency"], c["repeat"]) == (b["mode"], b["concurrency"], b["repeat"])
                 and (c["mode"], c["concurrency"]) == (mode, concurrency)]
        ratios = sorted(c / b for c, b in pairs)
        row["throughput_ratio_median"] = round(statistics.median(ratios), 3)
        row["throughput_ratio_range"] = [round(ratios[0], 3), round(ratios[-1], 3)]
        rows.append(row)
    return rows


def markdown(report: dict) -> str:
    env = report["environment"]
    lines = [
        "# `rewardkit serve` under load: current (uvicorn + Starlette) vs baseline (hand-written HTTP)",
        "",
        f"`{report['command']}` — {env['cpu']}, {env['cpu_count']} cores, one torch thread per server, torch "
        f"{env['torch']}; load average {env['load_average_before']} before, {env.get('load_average_after')} after "
        "(the machine is shared; ratios come from alternating runs).",
        "",
        f"{report['config']['requests']} requests of 1 sequence per measurement, synthetic Llama RM hidden="
        f"{report['config']['hidden_size']} layers={report['config']['layers']}; medians of "
        f"{report['config']['repeats']} alternating repeats.",
        "",
        "| batching | clients | current req/s | baseline req/s | ratio (median, range) | current p50 / p99 ms | "
        "baseline p50 / p99 ms | mean batch (cur / base) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in report["summary"]:
        lines.append(
            f"| {'on' if row['mode'] == 'batching' else 'off'} | {row['concurrency']} | "
            f"{row['current_requests_per_s']:.1f} | {row['baseline_requests_per_s']:.1f} | "
            f"{row['throughput_ratio_median']:.3f} ({row['throughput_ratio_range'][0]:.3f}-"
            f"{row['throughput_ratio_range'][1]:.3f}) | {row['current_latency_p50_ms']:.0f} / "
            f"{row['current_latency_p99_ms']:.0f} | {row['baseline_latency_p50_ms']:.0f} / "
            f"{row['baseline_latency_p99_ms']:.0f} | {row['current_mean_batch_size']:.1f} / "
            f"{row['baseline_mean_batch_size']:.1f} |")
    if "memory_mb" in report:
        lines += ["", "Resident memory of the server process (MB):", "",
                  "| server | " + " | ".join(next(iter(report["memory_mb"].values()))) + " |",
                  "|---|" + "---|" * len(next(iter(report["memory_mb"].values())))]
        for name, values in report["memory_mb"].items():
            lines.append(f"| {name} | " + " | ".join(str(v) for v in values.values()) + " |")
    if "profile_percent_of_cpu_samples" in report:
        profiles = report["profile_percent_of_cpu_samples"]
        names = list(dict.fromkeys(k for p in profiles.values() for k in p["categories"]))
        lines += ["", "Where the server's CPU time goes (py-spy over "
                  f"{next(iter(profiles.values()))['requests']} requests, batching on, 16 clients): % of the samples "
                  "of busy threads, and thread milliseconds per request:", "",
                  "| where | " + " | ".join(profiles) + " |", "|---|" + "---|" * len(profiles)]
        for name in names:
            cells = []
            for profile in profiles.values():
                c = profile["categories"].get(name)
                cells.append(f"{c['percent']}% ({c['ms_per_request']:.2f} ms)" if c else "-")
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
