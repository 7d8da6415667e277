"""RewardClient with several servers: requests are spread, and when one server dies mid-run the requests it held
are retried on another; every request gets its own rewards, in order, exactly once."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from rewardkit.client import RewardClient
from tests.serving.helpers import PROMPTS, RESPONSES, Served, expected


class _LoggingClient(RewardClient):
    """The real client, noting which server each attempt went to and how it ended."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.attempts: list[tuple[str, str]] = []
        self._log_lock = threading.Lock()

    def _send(self, url, method, path, body, headers):
        try:
            reply = super()._send(url, method, path, body, headers)
        except Exception as error:
            with self._log_lock:
                self.attempts.append((url, type(getattr(error, "error", error)).__name__))
            raise
        with self._log_lock:
            self.attempts.append((url, str(reply[0])))
        return reply


def test_requests_in_flight_on_a_dying_server_are_answered_by_the_other(rm_dir, model):
    # A long batching wait keeps every request in flight for ~0.2 s, so the kill lands on some.
    args = ["--model", str(rm_dir), "--port", "0", "--max-wait-ms", "200", "--threads", "1"]
    doomed, survivor = Served(args), Served(args)
    try:
        client = _LoggingClient([doomed.url, survivor.url], max_retries=4, backoff=0.01, cooldown=60)
        requests = [([PROMPTS[i % 3]] * 2, [f"{RESPONSES[i % 3]} take {i}", f"and {i} more"]) for i in range(48)]
        with ThreadPoolExecutor(max_workers=8) as pool:
            futures = [pool.submit(client.score, prompts, responses) for prompts, responses in requests]
            for _ in range(600):  # bounded: kill once the doomed server has answered a few
                if sum(url == doomed.url and outcome == "200" for url, outcome in client.attempts) >= 4:
                    break
                time.sleep(0.05)
            doomed.kill()  # SIGKILL: no graceful shutdown, connections reset
            results = [future.result(timeout=300) for future in futures]
    finally:
        doomed.kill()
        survivor.kill()
    assert len(results) == len(requests)
    for (prompts, responses), rewards in zip(requests, results, strict=True):
        assert rewards == pytest.approx(expected(model, prompts, responses), abs=1e-5)  # its own, in order
    answered = [url for url, outcome in client.attempts if outcome == "200"]
    lost = [outcome for url, outcome in client.attempts if url == doomed.url and outcome != "200"]
    assert answered.count(doomed.url) >= 4 and answered.count(survivor.url) >= 4  # spread over both
    assert len(answered) == len(requests)  # each request answered once: nothing lost, nothing scored twice
    assert all(outcome in {cls.__name__ for cls in _transport_errors()} for outcome in lost), lost
    # Some attempts were cut while in flight (not merely refused afterwards) and were answered by the survivor.
    assert [outcome for outcome in lost if outcome not in ("ConnectError", "ConnectTimeout")], lost


def _transport_errors() -> list[type]:
    return [cls for cls in vars(httpx).values() if isinstance(cls, type) and issubclass(cls, httpx.TransportError)]


def test_requests_are_spread_in_turn_and_a_dead_server_is_tried_last():
    client = RewardClient(["http://127.0.0.1:1", "http://127.0.0.1:2", "http://127.0.0.1:3"], cooldown=60)
    firsts = [client._servers_for_request()[0] for _ in range(6)]
    assert firsts == ["http://127.0.0.1:1", "http://127.0.0.1:2", "http://127.0.0.1:3"] * 2
    client._down_until["http://127.0.0.1:2"] = time.monotonic() + 60
    assert [client._servers_for_request() for _ in range(3)] == [
        ["http://127.0.0.1:1", "http://127.0.0.1:3", "http://127.0.0.1:2"],
        ["http://127.0.0.1:3", "http://127.0.0.1:1", "http://127.0.0.1:2"],
        ["http://127.0.0.1:3", "http://127.0.0.1:1", "http://127.0.0.1:2"],
    ]
