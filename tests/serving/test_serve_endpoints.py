"""The endpoints against a real server: scores equal RewardModel.score, OpenRLHF's protocol, health, metrics."""

from __future__ import annotations

import http.client
import json
import os
from urllib.parse import urlsplit

import pytest

from tests.serving.helpers import (
    CHAT_PROMPT,
    CHAT_RESPONSE,
    PROMPTS,
    RESPONSES,
    batch_count,
    call,
    expected,
    metric,
)


def test_score_matches_the_model_with_normalization(server, model):
    status, headers, body = call(server.url, "POST", "/score", {"prompts": PROMPTS, "responses": RESPONSES})
    assert status == 200 and headers["content-type"] == "application/json"
    assert body["rewards"] == pytest.approx(expected(model, PROMPTS, RESPONSES), abs=1e-5)
    assert body["truncated"] == [False, False, False]
    raw = model.score(PROMPTS, RESPONSES, normalize=False).tolist()
    assert body["rewards"] != pytest.approx(raw, abs=1e-3)  # the checkpoint's offset/scale was applied


def test_score_accepts_chat_messages_and_mixed_items(server, model):
    prompts, responses = [CHAT_PROMPT, "Tell me a joke."], [CHAT_RESPONSE, " No."]
    status, _, body = call(server.url, "POST", "/score", {"prompts": prompts, "responses": responses})
    assert status == 200
    assert body["rewards"] == pytest.approx(expected(model, prompts, responses), abs=1e-5)


def test_get_reward_speaks_openrlhf_remote_rm_protocol(server, model):
    queries = [p + r for p, r in zip(PROMPTS, RESPONSES, strict=True)]
    payload = {"query": queries, "prompts": PROMPTS, "labels": ["", "", ""]}  # labels: sent by OpenRLHF, ignored
    status, _, body = call(server.url, "POST", "/get_reward", payload)
    assert status == 200
    # The response is the query with its prompt removed, so rewards equal scoring (prompt, response) directly.
    assert body["rewards"] == pytest.approx(expected(model, PROMPTS, RESPONSES), abs=1e-5)
    assert body["scores"] == body["rewards"]


def test_get_reward_strips_padding_and_accepts_query_only(server, model):
    pad = model.tokenizer.pad_token
    status, _, body = call(server.url, "POST", "/get_reward",
                           {"query": [pad * 3 + PROMPTS[1] + RESPONSES[1] + pad], "prompts": [PROMPTS[1]]})
    assert status == 200
    assert body["rewards"] == pytest.approx(expected(model, PROMPTS[1:2], RESPONSES[1:2]), abs=1e-5)
    # Older OpenRLHF clients send only "query": the whole text is scored as a response to an empty prompt.
    status, _, body = call(server.url, "POST", "/get_reward", {"query": ["Paris is nice."]})
    assert status == 200
    assert body["rewards"] == pytest.approx(expected(model, [""], ["Paris is nice."]), abs=1e-5)


def test_health_reports_the_model(server, rm_dir):
    status, _, body = call(server.url, "GET", "/health")
    assert status == 200
    assert body == {"status": "ok", "pid": os.getpid(), "model": str(rm_dir), "max_length": 64, "normalized": True,
                    "process": False, "max_batch_size": 32, "strict": False}


def test_metrics_in_prometheus_text_format(server):
    call(server.url, "POST", "/score", {"prompts": PROMPTS[:1], "responses": RESPONSES[:1]})
    call(server.url, "POST", "/score", {"prompts": []})
    status, headers, text = call(server.url, "GET", "/metrics")
    assert status == 200 and headers["content-type"].startswith("text/plain; version=")
    assert metric(text, "rewardkit_requests_total", endpoint="/score", status="200") >= 1
    assert metric(text, "rewardkit_requests_total", endpoint="/score", status="422") >= 1
    assert metric(text, "rewardkit_request_duration_seconds_count", endpoint="/score") >= 2
    assert batch_count(text, 1) >= 1
    assert "# TYPE rewardkit_batch_size histogram" in text
    assert 'rewardkit_batch_size_bucket{le="+Inf"}' in text
    assert "# TYPE rewardkit_queue_depth gauge" in text and metric(text, "rewardkit_queue_depth") == 0
    assert metric(text, "rewardkit_sequences_scored_total") >= 1


def test_keep_alive_connection_serves_several_requests(server, model):
    parts = urlsplit(server.url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=120)
    try:
        sockets = []
        for i in range(3):
            body = json.dumps({"prompts": PROMPTS[i:], "responses": RESPONSES[i:]}).encode()
            connection.request("POST", "/score", body=body, headers={"Content-Type": "application/json"})
            response = connection.getresponse()
            assert response.status == 200, i
            assert response.getheader("Connection") is None  # HTTP/1.1: open unless "close" is said
            assert json.loads(response.read())["rewards"] == pytest.approx(
                expected(model, PROMPTS[i:], RESPONSES[i:]), abs=1e-5)
            sockets.append(connection.sock)
        assert sockets[0] is not None and sockets[0] is sockets[1] is sockets[2]  # one connection served all three
    finally:
        connection.close()
