"""`rewardkit serve` as the user runs it: a real subprocess, SIGTERM, and the argparse registration."""

from __future__ import annotations

import argparse
import os
import queue
import re
import signal
import subprocess
import sys
import threading

import pytest

from rewardkit.client import RewardClient
from rewardkit.serving.cli import add_serve_parser, main, run_serve
from tests.serving.helpers import PROMPTS, RESPONSES, expected


def test_add_serve_parser_registers_the_subcommand_with_loopback_defaults():
    parser = argparse.ArgumentParser(prog="rewardkit")
    add_serve_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["serve", "--model", "rm"])
    assert args.handler is run_serve
    assert (args.host, args.port, args.max_batch_size, args.max_wait_ms, args.strict, args.api_key_file) == (
        "127.0.0.1", 8000, 32, 5.0, False, None)


def test_empty_api_key_file_is_a_one_line_error(tmp_path, capsys):
    (tmp_path / "key").write_text("\n")
    assert main(["--model", str(tmp_path), "--api-key-file", str(tmp_path / "key")]) == 2
    assert "rewardkit: error: API key file" in capsys.readouterr().err


def test_serve_subprocess_scores_then_exits_cleanly_on_sigterm(rm_dir, model, tmp_path):
    (tmp_path / "key").write_text("k3y\n")
    command = [sys.executable, "-m", "rewardkit", "serve", "--model", str(rm_dir), "--port", "0",
               "--api-key-file", str(tmp_path / "key"), "--max-batch-size", "8", "--max-wait-ms", "2"]
    process = subprocess.Popen(command, stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in process.stderr], daemon=True).start()
    try:
        url = None
        while url is None:  # each wait is bounded; the process prints its address once it listens
            line = lines.get(timeout=300)
            if match := re.search(r"serving on (http://127\.0\.0\.1:\d+)", line):
                url = match.group(1)
        client = RewardClient(url, api_key="k3y", max_retries=0)
        assert client.score(PROMPTS, RESPONSES) == pytest.approx(expected(model, PROMPTS, RESPONSES), abs=1e-5)
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=300) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    remaining = []
    while not lines.empty():
        remaining.append(lines.get())
    assert any("server stopped" in line for line in remaining)
