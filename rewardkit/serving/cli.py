"""`rewardkit serve`: the argparse subcommand, also runnable alone as `python -m rewardkit.serving`.

Options come from the fields of `ServerConfig` (and their help texts), so the command line and the Python API
cannot drift apart. Everything is checked before the model loads.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import stat
from pathlib import Path

from rewardkit.cli_options import ArgumentParser, add_config_options, bounded, report_interrupt, run
from rewardkit.data.options import DataOptions
from rewardkit.errors import RewardkitError
from rewardkit.serving.config import ServerConfig

logger = logging.getLogger("rewardkit.serving")


def _configure(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
    p.add_argument("--model", required=True, help="reward model directory (from `rewardkit train`)")
    add_config_options(p, ServerConfig)
    p.add_argument("--api-key-file", help="file holding an API key; requests must send 'Authorization: Bearer KEY'")
    add_config_options(p, DataOptions, only=["max_length"])  # the checkpoint's own unless given
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N (auto)")
    p.add_argument("--threads", type=bounded("--threads", at_least=1),
                   help="torch CPU threads per worker for the forward pass (default: torch's choice with one worker, "
                   "the cores divided among workers otherwise); 1 avoids stalls on busy machines, where one "
                   "descheduled thread holds up every parallel op")
    p.set_defaults(handler=run_serve)
    return p


def add_serve_parser(subparsers) -> argparse.ArgumentParser:
    """Register `serve` on the main CLI's subparsers (handler: `run_serve`)."""
    return _configure(subparsers.add_parser(
        "serve",
        help="serve a reward model over HTTP with dynamic batching",
        description="Score (prompt, response) pairs over HTTP: POST /score, the OpenRLHF-compatible POST "
        "/get_reward, GET /health and GET /metrics (Prometheus), on uvicorn. Concurrent requests share forward "
        "passes. SIGTERM or Ctrl-C stops accepting connections, finishes in-flight requests, then exits.",
    ))


def read_api_key(path: str | Path) -> str:
    """The key in `path`: one line of printable ASCII. Warns when other users can read the file."""
    path = Path(path)
    try:
        info = path.stat()
        if stat.S_ISDIR(info.st_mode):
            raise RewardkitError(f"API key file '{path}' is a directory; give the file that holds the key")
        raw = path.read_bytes()
    except FileNotFoundError:
        raise RewardkitError(f"API key file '{path}' does not exist") from None
    except PermissionError:
        raise RewardkitError(f"API key file '{path}' cannot be read (permission denied)") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise RewardkitError(f"API key file '{path}' is not UTF-8 text; put the key in it as one line") from None
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if not lines:
        raise RewardkitError(f"API key file '{path}' is empty")
    if len(lines) > 1:
        raise RewardkitError(f"API key file '{path}' has {len(lines)} non-empty lines; put only the key in it, on one "
                             "line")
    key = lines[0]
    if not key.isascii() or not key.isprintable() or " " in key:
        raise RewardkitError(f"API key in '{path}' must be printable ASCII without spaces (it travels in an HTTP "
                             "header)")
    if info.st_mode & stat.S_IROTH:
        logger.warning("warning: API key file '%s' is readable by every user of this machine (mode %o); "
                       "`chmod 600 %s`", path, stat.S_IMODE(info.st_mode), path)
    return key


def server_config(args: argparse.Namespace) -> ServerConfig:
    """The ServerConfig the options describe, checked (one-line errors), with the API key read."""
    values = {f.name: getattr(args, f.name) for f in dataclasses.fields(ServerConfig) if hasattr(args, f.name)}
    config = ServerConfig(**values, api_key=read_api_key(args.api_key_file) if args.api_key_file else None)
    config.check()
    if not Path(args.model).is_dir():
        raise RewardkitError(f"--model '{args.model}' is not a directory; give the output directory of "
                             "`rewardkit train`")
    return config


def build_app(model_dir: str, config: ServerConfig, device: str, threads: int | None, max_length: int | None):
    """Load the model and build the app: run by every worker process (so each has its own model)."""
    import torch

    from rewardkit.device import resolve_device
    from rewardkit.model import RewardModel
    from rewardkit.serving.server import RewardServer

    if threads is not None:
        torch.set_num_threads(threads)
    model = RewardModel.from_pretrained(model_dir, max_length=max_length).to(resolve_device(device))
    server = RewardServer(model, config)
    return server, server.hooks


def run_serve(args: argparse.Namespace) -> int:
    config = server_config(args)  # first: a mistake is reported in a second, not after torch and transformers load
    from rewardkit.serving.asgi import AppFactory, is_loopback, run_server
    from rewardkit.serving.server import describe

    if not is_loopback(config.host) and config.api_key is None:
        logger.warning("warning: listening on %s without --api-key-file: anyone who can reach this port can use "
                       "the model", config.host)
    threads = args.threads
    if threads is None and config.workers > 1:  # N workers each using every core would fight over them
        threads = max(1, (os.cpu_count() or 1) // config.workers)
    factory = AppFactory(build_app, (args.model, config, args.device, threads, args.max_length))
    try:
        run_server(factory, config, lambda url: logger.info("serving on %s (%s)", url, describe(config)))
    except KeyboardInterrupt as interrupt:  # Ctrl-C or SIGTERM before the server's own handlers (while loading)
        return report_interrupt(interrupt, "stopped before serving")
    return 0


def main(argv: list[str] | None = None) -> int:
    """`python -m rewardkit.serving ...`: the same as `rewardkit serve ...`."""
    parser = ArgumentParser(prog="python -m rewardkit.serving", description="Serve a reward model over HTTP.")
    return run(_configure(parser), argv)
