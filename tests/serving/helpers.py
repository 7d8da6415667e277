"""Plain-HTTP helpers and an instrumented (but real) reward model for the serving tests."""

from __future__ import annotations

import http.client
import json
import os
import queue
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import Executor, Future
from typing import Any
from urllib.parse import urlsplit

import torch

from rewardkit.model import RewardModel

PROMPTS = ["Human: How do I bake bread?\n\nAssistant:", "What is the capital of France?", "Tell me a joke."]
RESPONSES = [" Mix flour and water.", "Paris", "Why did the chicken cross the road? To get to the other side!"]
CHAT_PROMPT = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "How many legs does a spider have?"},
]
CHAT_RESPONSE = [{"role": "assistant", "content": "A spider has eight legs."}]


def call(url: str, method: str, path: str, body: Any = None, headers: dict | None = None) -> tuple[int, dict, Any]:
    """One request over a fresh connection: (status, lower-cased headers, decoded JSON or text)."""
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=120)
    try:
        data = body if isinstance(body, bytes) or body is None else json.dumps(body).encode()
        connection.request(method, path, body=data, headers={"Content-Type": "application/json", **(headers or {})})
        response = connection.getresponse()
        raw = response.read()
        content_type = response.getheader("Content-Type", "")
        payload = json.loads(raw) if content_type.startswith("application/json") else raw.decode()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, payload
    finally:
        connection.close()


def raw_exchange(url: str, data: bytes, timeout: float = 120) -> bytes:
    """Send raw bytes, return everything the server answers before it closes the connection."""
    with raw_socket(url, timeout) as sock:
        sock.sendall(data)
        sock.shutdown(socket.SHUT_WR)  # the client is done sending, as a client that died mid-request would be
        return read_until_closed(sock)


def raw_socket(url: str, timeout: float = 120) -> socket.socket:
    """A plain TCP connection to the server (loopback only, every read bounded by `timeout`)."""
    parts = urlsplit(url)
    assert parts.hostname in ("127.0.0.1", "localhost", "::1"), "raw-socket tests stay on loopback"
    return socket.create_connection((parts.hostname, parts.port), timeout=timeout)


def read_until_closed(sock: socket.socket) -> bytes:
    chunks = []
    try:
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    except ConnectionResetError:
        pass
    return b"".join(chunks)


def status_lines(reply: bytes) -> list[bytes]:
    """The status lines of every HTTP response in a raw reply (to count answers, e.g. to a smuggled request)."""
    return [line for line in reply.split(b"\r\n") if line.startswith(b"HTTP/1.")]


def json_body(reply: bytes) -> dict:
    """The JSON body of the first response in a raw reply."""
    return json.loads(reply.split(b"\r\n\r\n", 1)[1])


def metric(text: str, name: str, **labels: str) -> float:
    """The value of one Prometheus series in /metrics output (0 when absent)."""
    wanted = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    series = f"{name}{{{wanted}}}" if labels else name
    for line in text.splitlines():
        if line.startswith(series + " "):
            return float(line.split()[-1])
    return 0.0


def batch_count(text: str, min_size: int) -> float:
    """How many forward passes held at least `min_size` sequences, from the batch-size histogram."""
    total = metric(text, "rewardkit_batch_size_count")
    below = 0.0
    for line in text.splitlines():
        if line.startswith("rewardkit_batch_size_bucket{"):
            bound = line.split('le="')[1].split('"')[0]
            if bound != "+Inf" and float(bound) < min_size:
                below = max(below, float(line.split()[-1]))
    return total - below


class InstrumentedRewardModel(RewardModel):
    """The real reward model (same weights, same forward), plus hooks to hold or fail a forward pass.

    - `gate`: while set to an unset Event, every forward pass waits for it (a request stays in flight).
    - `poison_id`: a forward pass whose batch contains this token id raises.
    - `failures_left`: the next N forward passes raise (a transient server-side failure).
    """

    def __init__(self, base: RewardModel):
        super().__init__(base.model, base.tokenizer)
        self.gate: threading.Event | None = None
        self.entered = threading.Event()  # set when a forward pass has started
        self.poison_id: int | None = None
        self.failures_left = 0

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        self.entered.set()
        if self.gate is not None:
            self.gate.wait(timeout=120)
        if self.poison_id is not None and bool((input_ids == self.poison_id).any()):
            raise RuntimeError("poisoned input")
        if self.failures_left > 0:
            self.failures_left -= 1
            raise RuntimeError("transient failure")
        return super().forward(input_ids, attention_mask)


def expected(model: RewardModel, prompts, responses) -> list[float]:
    return model.score(prompts, responses).tolist()


def wait_for_metric(url: str, name: str, at_least: float, **labels: str) -> None:
    """Poll /metrics until a series reaches a value; bounded, so a broken server fails instead of hanging."""
    for _ in range(2000):
        if metric(call(url, "GET", "/metrics")[2], name, **labels) >= at_least:
            return
        time.sleep(0.01)
    raise AssertionError(f"{name}{labels} never reached {at_least}")


def hold_and_queue(url: str, held: InstrumentedRewardModel, pool: Executor, first: dict, queued: list[dict],
                   depth: int) -> tuple[Future, list[Future]]:
    """POST `first` to /score and wait until its forward pass is held at `held.gate`, then POST each of `queued`
    and wait until the server's queue holds `depth` sequences: a deterministic queue behind a busy worker."""
    first_reply = pool.submit(call, url, "POST", "/score", first)
    assert held.entered.wait(timeout=120)
    replies = [pool.submit(call, url, "POST", "/score", body) for body in queued]
    wait_for_metric(url, "rewardkit_queue_depth", depth)
    return first_reply, replies


class Served:
    """`rewardkit serve` in a subprocess; its stderr lines are collected by a thread, every wait bounded."""

    def __init__(self, args: list[str]):
        self.process = subprocess.Popen([sys.executable, "-m", "rewardkit", "serve", *args], stderr=subprocess.PIPE,
                                        text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
        self.lines: queue.Queue[str] = queue.Queue()
        self.seen: list[str] = []
        threading.Thread(target=lambda: [self.lines.put(line) for line in self.process.stderr], daemon=True).start()
        self.url = self.wait_for(r"serving on (http://127\.0\.0\.1:\d+)").group(1)

    def wait_for(self, pattern: str) -> re.Match:
        while True:
            line = self.lines.get(timeout=300)
            self.seen.append(line)
            if match := re.search(pattern, line):
                return match

    def stop(self) -> int:
        self.process.send_signal(signal.SIGTERM)
        code = self.process.wait(timeout=300)
        while not self.lines.empty():
            self.seen.append(self.lines.get())
        return code

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
