"""`rewardkit serve` as the user runs it: real subprocesses, one-line errors, SIGTERM, several workers."""

from __future__ import annotations

import argparse
import socket
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import pytest

from rewardkit.cli_options import Terminated
from rewardkit.client import RewardClient
from rewardkit.serving.cli import add_serve_parser, main, run_serve
from tests.serving.helpers import PROMPTS, RESPONSES, Served, call, expected, metric

SERVE = [sys.executable, "-m", "rewardkit", "serve"]


def test_add_serve_parser_registers_the_subcommand_with_loopback_defaults():
    parser = argparse.ArgumentParser(prog="rewardkit")
    add_serve_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["serve", "--model", "rm"])
    assert args.handler is run_serve
    assert (args.host, args.port, args.workers, args.max_batch_size, args.max_wait_ms, args.strict,
            args.api_key_file) == ("127.0.0.1", 8000, 1, 32, 5.0, False, None)


def _run(args: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run([*SERVE, *args], capture_output=True, text=True, timeout=300)


def _key_file(tmp_path, content: bytes, mode: int = 0o600):
    path = tmp_path / "key"
    path.write_bytes(content)
    path.chmod(mode)
    return path


@pytest.mark.parametrize(("make", "message"), [
    (lambda tmp: tmp, "is a directory"),
    (lambda tmp: tmp / "missing", "does not exist"),
    (lambda tmp: _key_file(tmp, b"\n\n"), "is empty"),
    (lambda tmp: _key_file(tmp, b"\xff\xfek3y\n"), "is not UTF-8"),
    (lambda tmp: _key_file(tmp, b"k3y\nanother\n"), "has 2 non-empty lines"),
    (lambda tmp: _key_file(tmp, "k\u00e9y\n".encode()), "printable ASCII"),
], ids=["directory", "missing", "empty", "not-utf8", "two-lines", "non-ascii"])
def test_bad_api_key_files_are_one_line_errors(rm_dir, tmp_path, make, message):
    result = _run(["--model", str(rm_dir), "--api-key-file", str(make(tmp_path))])
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines() == [result.stderr.strip()] and message in result.stderr
    assert result.stderr.startswith("rewardkit: error: API key")


def test_a_world_readable_key_file_is_a_one_line_warning(rm_dir, tmp_path):
    key = _key_file(tmp_path, b"k3y\n", mode=0o644)
    no_model = str(rm_dir / "missing")  # the key is read, then the command stops before loading
    result = _run(["--model", no_model, "--api-key-file", str(key)])
    warning, error = result.stderr.strip().splitlines()
    assert "readable by every user" in warning and "chmod 600" in warning and warning.startswith("rewardkit: warning")
    assert error.startswith("rewardkit: error: --model")
    key.chmod(0o600)
    assert "readable" not in _run(["--model", no_model, "--api-key-file", str(key)]).stderr


@pytest.mark.parametrize(("args", "message"), [
    (["--port", "-1"], "--port must be in [0, 65535] (got -1)"),
    (["--port", "70000"], "--port must be in [0, 65535] (got 70000)"),
    (["--port", "http"], "--port expects an integer (got 'http')"),
    (["--workers", "0"], "--workers must be >= 1 (got 0)"),
    (["--request-timeout", "0"], "--request-timeout must be > 0 (got 0)"),
    (["--max-connections", "0"], "--max-connections must be >= 1 (got 0)"),
    (["--max-wait-ms", "-1"], "--max-wait-ms must be >= 0 (got -1)"),
    (["--threads", "0"], "--threads must be >= 1 (got 0)"),
    (["--max-length", "4"], "--max-length must be >= 8 (got 4)"),
], ids=["port-negative", "port-too-large", "port-text", "workers", "request-timeout", "max-connections", "max-wait",
        "threads", "max-length"])
def test_bad_options_are_one_line_errors_before_the_model_loads(rm_dir, args, message):
    result = _run(["--model", str(rm_dir), *args])
    assert result.returncode == 2 and result.stderr.startswith(f"rewardkit: error: {message}")
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr


def test_a_port_in_use_is_a_one_line_error(rm_dir):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        result = _run(["--model", str(rm_dir), "--port", str(taken.getsockname()[1])])
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1
    assert "cannot listen on 127.0.0.1" in result.stderr and "another server is using it" in result.stderr


def test_a_model_directory_that_does_not_exist_is_a_one_line_error(tmp_path):
    result = _run(["--model", str(tmp_path / "nope")])
    assert result.returncode == 2 and result.stderr.strip().splitlines() == [result.stderr.strip()]
    assert "is not a directory" in result.stderr


def test_serve_subprocess_scores_then_exits_cleanly_on_sigterm(rm_dir, model, tmp_path):
    key = _key_file(tmp_path, b"k3y\n")
    served = Served(["--model", str(rm_dir), "--port", "0", "--api-key-file", str(key), "--max-batch-size", "8",
                      "--max-wait-ms", "2"])
    try:
        client = RewardClient(served.url, api_key="k3y", max_retries=0)
        assert client.score(PROMPTS, RESPONSES) == pytest.approx(expected(model, PROMPTS, RESPONSES), abs=1e-5)
        assert served.stop() == 0
    finally:
        served.kill()
    assert any("server stopped" in line for line in served.seen)
    assert not any("Traceback" in line or "uvicorn" in line.lower() for line in served.seen)  # no library noise


def test_workers_each_serve_with_their_own_model_and_share_metrics(rm_dir, model):
    served = Served(["--model", str(rm_dir), "--port", "0", "--workers", "2", "--threads", "1"])
    try:
        pids, health_requests = set(), 0
        for _ in range(300):  # fresh connections until both workers have answered (bounded)
            pids.add(call(served.url, "GET", "/health")[2]["pid"])
            health_requests += 1
            if len(pids) == 2:
                break
        assert len(pids) == 2 and served.process.pid not in pids
        client = RewardClient(served.url)
        with ThreadPoolExecutor(max_workers=8) as pool:
            replies = list(pool.map(lambda i: client.score(PROMPTS[i % 3:], RESPONSES[i % 3:]), range(24)))
        for i, rewards in enumerate(replies):
            assert rewards == pytest.approx(expected(model, PROMPTS[i % 3:], RESPONSES[i % 3:]), abs=1e-5)
        text = call(served.url, "GET", "/metrics")[2]  # whichever worker answers counts for both
        assert metric(text, "rewardkit_requests_total", endpoint="/health", status="200") == health_requests
        assert metric(text, "rewardkit_requests_total", endpoint="/score", status="200") == 24
        assert metric(text, "rewardkit_sequences_scored_total") == sum(len(r) for r in replies)
        assert served.stop() == 0
    finally:
        served.kill()
    assert sum("server stopped" in line for line in served.seen) == 2


@pytest.mark.parametrize(("stop", "status", "line"), [(KeyboardInterrupt, 130, "rewardkit: interrupted"),
                                                      (Terminated, 143, "rewardkit: terminated")])
def test_stopped_while_loading_is_one_line_and_a_shell_exit_status(tmp_path, monkeypatch, capsys, stop, status, line):
    def run_server(*args, **kwargs):  # Ctrl-C or SIGTERM while the model loads, before uvicorn's handlers exist
        raise stop

    monkeypatch.setattr("rewardkit.serving.asgi.run_server", run_server)
    assert main(["--model", str(tmp_path)]) == status
    assert capsys.readouterr().err.strip() == f"{line} (stopped before serving)"
