"""`rewardkit serve`: the argparse subcommand, also runnable alone as `python -m rewardkit.serving`."""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import logging
import sys
from pathlib import Path

from rewardkit.errors import RewardkitError

logger = logging.getLogger("rewardkit.serving")


def _configure(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
    p.add_argument("--model", required=True, help="reward model directory (from `rewardkit train`)")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=8000, help="port to listen on; 0 picks a free one (8000)")
    p.add_argument("--max-batch-size", type=int, default=32,
                   help="sequences per forward pass across concurrent requests; 1 turns batching off (32)")
    p.add_argument("--max-wait-ms", type=float, default=5.0,
                   help="how long a sequence waits for others to fill its batch (5)")
    p.add_argument("--api-key-file", help="file holding an API key; requests must send 'Authorization: Bearer KEY'")
    p.add_argument("--strict", action="store_true",
                   help="refuse (422) sequences longer than the model's max_length instead of truncating them")
    p.add_argument("--max-length", type=int, help="override the checkpoint's max tokens per prompt+response")
    p.add_argument("--max-body-bytes", type=int, default=8 * 1024 * 1024, help="larger request bodies get 413 (8 MiB)")
    p.add_argument("--max-queue-size", type=int, default=4096,
                   help="sequences waiting for the model before new requests get 429 (4096)")
    p.add_argument("--shutdown-timeout", type=float, default=30.0,
                   help="seconds in-flight requests get to finish after SIGTERM/SIGINT (30)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N (auto)")
    p.add_argument("--threads", type=int,
                   help="torch CPU threads for the forward pass (default: torch's choice); 1 avoids stalls on busy "
                   "machines, where one descheduled thread holds up every parallel op")
    p.set_defaults(handler=run_serve)
    return p


def add_serve_parser(subparsers) -> argparse.ArgumentParser:
    """Register `serve` on the main CLI's subparsers (handler: `run_serve`)."""
    return _configure(subparsers.add_parser(
        "serve",
        help="serve a reward model over HTTP with dynamic batching",
        description="Score (prompt, response) pairs over HTTP: POST /score, the OpenRLHF-compatible POST "
        "/get_reward, GET /health and GET /metrics (Prometheus). Concurrent requests share forward passes. "
        "SIGTERM or Ctrl-C stops accepting connections, finishes in-flight requests, then exits.",
    ))


def read_api_key(path: str | Path) -> str:
    key = Path(path).read_text().strip()
    if not key:
        raise RewardkitError(f"API key file '{path}' is empty")
    return key


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def run_serve(args: argparse.Namespace) -> int:
    import torch

    from rewardkit.device import resolve_device
    from rewardkit.model import RewardModel
    from rewardkit.serving.server import ServerConfig, serve

    for name in ("max_batch_size", "max_body_bytes", "max_queue_size", "threads"):
        if getattr(args, name) is not None and getattr(args, name) < 1:
            raise RewardkitError(f"--{name.replace('_', '-')} must be at least 1, got {getattr(args, name)}")
    if args.max_wait_ms < 0:
        raise RewardkitError(f"--max-wait-ms must be >= 0, got {args.max_wait_ms}")
    api_key = read_api_key(args.api_key_file) if args.api_key_file else None
    if not _is_loopback(args.host) and api_key is None:
        logger.warning("listening on %s without --api-key-file: anyone who can reach this port can use the model",
                       args.host)

    if args.threads is not None:
        torch.set_num_threads(args.threads)
    model = RewardModel.from_pretrained(args.model, max_length=args.max_length).to(resolve_device(args.device))
    config = ServerConfig(
        host=args.host,
        port=args.port,
        max_batch_size=args.max_batch_size,
        max_wait_ms=args.max_wait_ms,
        api_key=api_key,
        strict=args.strict,
        max_body_bytes=args.max_body_bytes,
        max_queue_size=args.max_queue_size,
        shutdown_timeout=args.shutdown_timeout,
    )
    try:
        asyncio.run(serve(model, config))
    except KeyboardInterrupt:  # Ctrl-C before the signal handlers were installed (e.g. while loading)
        return 130
    return 0


def main(argv: list[str] | None = None) -> int:
    """`python -m rewardkit.serving ...`: the same as `rewardkit serve ...`."""
    from rewardkit.cli import main as rewardkit_main

    return rewardkit_main(["serve", *(sys.argv[1:] if argv is None else argv)])
