"""RewardClient against the real server: sync and async scoring, retries, and the TRL reward function."""

from __future__ import annotations

import asyncio
import socket
import threading
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from rewardkit.client import RewardClient, RewardServerError, make_reward_fn
from rewardkit.serving import BackgroundServer, ServerConfig
from tests.serving.helpers import (
    CHAT_PROMPT,
    CHAT_RESPONSE,
    PROMPTS,
    RESPONSES,
    InstrumentedRewardModel,
    call,
    expected,
    hold_and_queue,
    metric,
    wait_for_metric,
)

FAST_RETRIES = {"backoff": 0.01, "max_backoff": 0.05}  # keep retry sleeps short in tests


def test_sync_and_async_scores_match_the_model(server, model):
    client = RewardClient(server.url)
    want = expected(model, PROMPTS, RESPONSES)
    assert client.score(PROMPTS, RESPONSES) == pytest.approx(want, abs=1e-5)

    async def many() -> list[list[float]]:
        return await asyncio.gather(*(client.ascore(PROMPTS[i:], RESPONSES[i:]) for i in range(3)))

    for i, rewards in enumerate(asyncio.run(many())):
        assert rewards == pytest.approx(want[i:], abs=1e-5)
    assert client.health()["status"] == "ok"


def test_reward_fn_has_trls_signature_and_takes_conversations(server, model):
    reward_fn = make_reward_fn(RewardClient(server.url), name="rm_score")
    assert reward_fn.__name__ == "rm_score"  # TRL logs rewards/<name>
    prompts, completions = [CHAT_PROMPT, CHAT_PROMPT], [CHAT_RESPONSE, [{"role": "assistant", "content": "Six."}]]
    # GRPOTrainer calls reward_func(prompts=..., completions=..., completion_ids=..., **dataset_columns).
    rewards = reward_fn(prompts=prompts, completions=completions, completion_ids=[[1, 2], [3]], answer=["8", "8"])
    assert rewards == pytest.approx(expected(model, prompts, completions), abs=1e-5)
    assert reward_fn(PROMPTS, RESPONSES) == pytest.approx(expected(model, PROMPTS, RESPONSES), abs=1e-5)


def test_client_retries_until_a_late_server_is_up(model):
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    listener.settimeout(120)
    port = listener.getsockname()[1]
    client = RewardClient(f"http://127.0.0.1:{port}", max_retries=1000, **FAST_RETRIES)
    with ThreadPoolExecutor(max_workers=1) as pool:
        reply = pool.submit(client.score, PROMPTS, RESPONSES)
        first_attempt, _ = listener.accept()
        first_attempt.close()  # dropped without an answer; then nothing listens until the server starts
        listener.close()
        with BackgroundServer(model, ServerConfig(port=port)):
            assert reply.result() == pytest.approx(expected(model, PROMPTS, RESPONSES), abs=1e-5)


def test_connection_errors_surface_after_the_last_retry():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # bound but not listening: connections are refused
        client = RewardClient(f"http://127.0.0.1:{port}", max_retries=2, **FAST_RETRIES)
        with pytest.raises(RewardServerError, match="after 3 attempts") as caught:
            client.score(["a"], ["b"])
        assert caught.value.status is None and isinstance(caught.value.__cause__, httpx.ConnectError)
        with pytest.raises(RewardServerError, match="after 3 attempts"):
            asyncio.run(client.ascore(["a"], ["b"]))


def test_5xx_is_retried_and_4xx_is_not(model):
    flaky = InstrumentedRewardModel(model)
    with BackgroundServer(flaky, ServerConfig(port=0, max_wait_ms=0)) as server:
        client = RewardClient(server.url, max_retries=3, **FAST_RETRIES)
        flaky.failures_left = 2
        assert client.score(PROMPTS, RESPONSES) == pytest.approx(expected(model, PROMPTS, RESPONSES), abs=1e-5)
        flaky.failures_left = 1
        assert asyncio.run(client.ascore(PROMPTS, RESPONSES)) == pytest.approx(
            expected(model, PROMPTS, RESPONSES), abs=1e-5)
        with pytest.raises(RewardServerError) as caught:
            client.score(["a", "b"], ["c"])
        assert caught.value.status == 422 and caught.value.field == "responses"
        flaky.failures_left = 10
        with pytest.raises(RewardServerError) as caught:
            client.score(PROMPTS, RESPONSES)
        assert caught.value.status == 500 and "transient failure" in str(caught.value)
        text = call(server.url, "GET", "/metrics")[2]
    assert metric(text, "rewardkit_requests_total", endpoint="/score", status="500") == 2 + 1 + 4
    assert metric(text, "rewardkit_requests_total", endpoint="/score", status="422") == 1  # not retried
    assert metric(text, "rewardkit_requests_total", endpoint="/score", status="200") == 2


def test_429_is_retried_until_the_queue_drains(model):
    held = InstrumentedRewardModel(model)
    held.gate = threading.Event()
    with BackgroundServer(held, ServerConfig(port=0, max_queue_size=1, max_wait_ms=0)) as server, \
            ThreadPoolExecutor(max_workers=3) as pool:
        first, (queued,) = hold_and_queue(  # the queue (limit 1) is then full
            server.url, held, pool, {"prompts": PROMPTS[:1], "responses": RESPONSES[:1]},
            [{"prompts": PROMPTS[1:2], "responses": RESPONSES[1:2]}], depth=1,
        )
        client = RewardClient(server.url, max_retries=1000, backoff=0.01, max_backoff=0.05)  # caps Retry-After: 1
        retried = pool.submit(client.score, PROMPTS[2:], RESPONSES[2:])
        wait_for_metric(server.url, "rewardkit_requests_total", 1, endpoint="/score", status="429")
        held.gate.set()
        assert first.result()[0] == 200 and queued.result()[0] == 200
        assert retried.result() == pytest.approx(expected(model, PROMPTS[2:], RESPONSES[2:]), abs=1e-5)


def test_base_url_forms():
    assert RewardClient("127.0.0.1:8000").base_url == "http://127.0.0.1:8000"
    assert RewardClient("http://127.0.0.1:8000/").base_url == "http://127.0.0.1:8000"
    with pytest.raises(ValueError, match="base_url"):
        RewardClient("ftp://127.0.0.1")
