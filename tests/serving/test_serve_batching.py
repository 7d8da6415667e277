"""Dynamic batching across concurrent requests, and a failing forward pass failing only its own requests."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from rewardkit.serving import BackgroundServer, ServerConfig
from tests.serving.helpers import (
    PROMPTS,
    RESPONSES,
    InstrumentedRewardModel,
    batch_count,
    call,
    expected,
    hold_and_queue,
    metric,
)


def test_concurrent_requests_share_forward_passes_and_get_their_own_rewards(model):
    held = InstrumentedRewardModel(model)
    held.gate = threading.Event()
    requests = [([PROMPTS[i % 3]], [f"{RESPONSES[i % 3]} variant {i}"]) for i in range(8)]
    with BackgroundServer(held, ServerConfig(port=0, max_batch_size=32, max_wait_ms=0)) as server, \
            ThreadPoolExecutor(max_workers=9) as pool:
        # Hold the first forward pass so the 8 concurrent requests queue up behind it deterministically.
        first, replies = hold_and_queue(server.url, held, pool, {"prompts": PROMPTS, "responses": RESPONSES},
                                        [{"prompts": p, "responses": r} for p, r in requests], depth=8)
        held.gate.set()
        assert first.result()[2]["rewards"] == pytest.approx(expected(model, PROMPTS, RESPONSES), abs=1e-5)
        for (prompts, responses), reply in zip(requests, replies, strict=True):
            status, _, body = reply.result()
            assert status == 200
            assert body["rewards"] == pytest.approx(expected(model, prompts, responses), abs=1e-5)
        text = call(server.url, "GET", "/metrics")[2]
    assert batch_count(text, 8) == 1  # the 8 waiting sequences went through one forward pass
    assert metric(text, "rewardkit_sequences_scored_total") == 11


def test_a_request_larger_than_the_batch_is_split_and_reassembled_in_order(model):
    prompts = [PROMPTS[i % 3] for i in range(10)]
    responses = [f"{RESPONSES[i % 3]}{' again' * i}" for i in range(10)]  # distinct lengths, so sorting reorders
    with BackgroundServer(model, ServerConfig(port=0, max_batch_size=4)) as server:
        status, _, body = call(server.url, "POST", "/score", {"prompts": prompts, "responses": responses})
        text = call(server.url, "GET", "/metrics")[2]
    assert status == 200
    assert body["rewards"] == pytest.approx(expected(model, prompts, responses), abs=1e-5)
    assert batch_count(text, 5) == 0 and metric(text, "rewardkit_batch_size_count") == 3


def test_a_failing_forward_pass_fails_only_its_batch_and_the_server_keeps_serving(model):
    poisoned = InstrumentedRewardModel(model)
    poisoned.poison_id = model.tokenizer.convert_tokens_to_ids("~")
    assert poisoned.poison_id is not None and not any("~" in text for text in PROMPTS + RESPONSES)
    with BackgroundServer(poisoned, ServerConfig(port=0, max_batch_size=1, max_wait_ms=0)) as server:
        status, _, body = call(server.url, "POST", "/score", {"prompts": ["Hi"], "responses": ["~~~"]})
        assert status == 500 and "poisoned input" in body["error"]

        # Concurrently: while one forward pass is held, a poisoned and two good requests queue up. With one
        # sequence per batch, only the poisoned request fails.
        poisoned.gate = threading.Event()
        poisoned.entered.clear()
        with ThreadPoolExecutor(max_workers=4) as pool:
            held, (bad, good) = hold_and_queue(
                server.url, poisoned, pool, {"prompts": PROMPTS[:1], "responses": RESPONSES[:1]},
                [{"prompts": ["Hi"], "responses": ["a ~ b"]}, {"prompts": PROMPTS[1:], "responses": RESPONSES[1:]}],
                depth=3,
            )
            poisoned.gate.set()
            assert held.result()[0] == 200 and bad.result()[0] == 500
            status, _, body = good.result()
            assert status == 200 and body["rewards"] == pytest.approx(expected(model, PROMPTS[1:], RESPONSES[1:]),
                                                                      abs=1e-5)
        status, _, body = call(server.url, "POST", "/score", {"prompts": PROMPTS, "responses": RESPONSES})
        assert status == 200 and body["rewards"] == pytest.approx(expected(model, PROMPTS, RESPONSES), abs=1e-5)
        text = call(server.url, "GET", "/metrics")[2]
    assert metric(text, "rewardkit_batch_failures_total") == 2
    assert metric(text, "rewardkit_requests_total", endpoint="/score", status="500") == 2


def test_a_full_queue_answers_429_with_retry_after(model):
    held = InstrumentedRewardModel(model)
    held.gate = threading.Event()
    with BackgroundServer(held, ServerConfig(port=0, max_queue_size=2, max_wait_ms=0)) as server, \
            ThreadPoolExecutor(max_workers=2) as pool:
        first, (second,) = hold_and_queue(server.url, held, pool, {"prompts": PROMPTS[:1], "responses": RESPONSES[:1]},
                                          [{"prompts": PROMPTS[:2], "responses": RESPONSES[:2]}], depth=2)
        status, headers, body = call(server.url, "POST", "/score", {"prompts": ["a"], "responses": ["b"]})
        held.gate.set()
        assert status == 429 and headers["retry-after"] == "1" and "busy" in body["error"]
        assert first.result()[0] == 200 and second.result()[0] == 200
        # A request that could never fit is refused outright (413), not sent back to retry forever.
        status, _, body = call(server.url, "POST", "/score", {"prompts": ["a"] * 3, "responses": ["b"] * 3})
        assert status == 413 and body["field"] == "prompts"
