"""Nothing a client sends crashes the server: every bad input is a 4xx with a JSON error naming the field."""

from __future__ import annotations

import json

import pytest

from rewardkit.serving import BackgroundServer, ServerConfig
from tests.serving.helpers import PROMPTS, RESPONSES, call, expected

LONG_RESPONSE = " and then" * 60  # far more than max_length=64 tokens

BAD_SCORE_BODIES = [
    pytest.param(b'{"prompts": ["a"], "responses": [', 400, "body", id="malformed-json"),
    pytest.param(b'["a", "b"]', 400, "body", id="not-an-object"),
    pytest.param(b'{"prompts": ["\xff"], "responses": ["a"]}', 400, "body", id="not-utf8"),
    pytest.param(b"[" * 100_000 + b"]" * 100_000, 400, "body", id="absurd-nesting"),
    pytest.param(b'{"prompts": [1' + b"0" * 5000 + b'], "responses": ["a"]}', 400, "body", id="5000-digit-number"),
    pytest.param({"prompts": ["a"]}, 422, "responses", id="missing-field"),
    pytest.param({"prompts": "a", "responses": ["b"]}, 422, "prompts", id="not-a-list"),
    pytest.param({"prompts": [], "responses": []}, 422, "prompts", id="empty-lists"),
    pytest.param({"prompts": ["a", "b"], "responses": ["c"]}, 422, "responses", id="length-mismatch"),
    pytest.param({"prompts": ["a", 3], "responses": ["b", "c"]}, 422, "prompts[1]", id="number-as-text"),
    pytest.param({"prompts": ["a"], "responses": [None]}, 422, "responses[0]", id="null-response"),
    pytest.param({"prompts": [[{"role": "user"}]], "responses": ["b"]}, 422, "prompts[0][0]", id="bad-message"),
    pytest.param({"prompts": [["hi"]], "responses": ["b"]}, 422, "prompts[0][0]", id="message-not-a-dict"),
]

BAD_GET_REWARD_BODIES = [
    pytest.param({"prompts": ["a"]}, "query", id="missing-query"),
    pytest.param({"query": ["ab", 7], "prompts": ["a", "a"]}, "query[1]", id="query-not-text"),
    pytest.param({"query": ["ab"], "prompts": ["a", "b"]}, "prompts", id="length-mismatch"),
    pytest.param({"query": ["hello"], "prompts": ["bye"]}, "query[0]", id="query-without-its-prompt"),
    pytest.param({"query": [], "prompts": []}, "query", id="empty"),
]


@pytest.mark.parametrize(("body", "status", "field"), BAD_SCORE_BODIES)
def test_bad_score_bodies_get_4xx_naming_the_field(server, body, status, field):
    got, headers, payload = call(server.url, "POST", "/score", body)
    assert (got, payload["field"]) == (status, field), payload
    assert headers["content-type"] == "application/json" and payload["error"]


@pytest.mark.parametrize(("body", "field"), BAD_GET_REWARD_BODIES)
def test_bad_get_reward_bodies_get_422_naming_the_field(server, body, field):
    got, _, payload = call(server.url, "POST", "/get_reward", body)
    assert (got, payload["field"]) == (422, field), payload


def test_oversize_body_is_refused_with_413_and_the_server_keeps_serving(server, model):
    body = json.dumps({"prompts": ["x" * 300_000], "responses": ["y"]}).encode()  # limit: 256 KiB
    status, _, payload = call(server.url, "POST", "/score", body)
    assert status == 413 and payload["field"] == "body"
    status, _, payload = call(server.url, "POST", "/score", {"prompts": PROMPTS, "responses": RESPONSES})
    assert status == 200 and payload["rewards"] == pytest.approx(expected(model, PROMPTS, RESPONSES), abs=1e-5)


def test_unknown_path_and_wrong_method(server):
    status, _, payload = call(server.url, "POST", "/nope", {})
    assert status == 404 and "/score" in payload["error"]
    status, headers, _ = call(server.url, "GET", "/score")
    assert status == 405 and headers["allow"] == "POST"


def test_long_sequences_are_truncated_and_flagged(server, model):
    prompts, responses = [PROMPTS[0], PROMPTS[1]], [RESPONSES[0], LONG_RESPONSE]
    status, _, payload = call(server.url, "POST", "/score", {"prompts": prompts, "responses": responses})
    assert status == 200
    assert payload["truncated"] == [False, True]
    # Truncated the way RewardModel.score truncates (the module's policy), so the rewards agree.
    assert payload["rewards"] == pytest.approx(expected(model, prompts, responses), abs=1e-5)


def test_strict_server_refuses_long_sequences_with_422(model):
    with BackgroundServer(model, ServerConfig(port=0, strict=True)) as strict:
        body = {"prompts": [PROMPTS[0], PROMPTS[1]], "responses": [RESPONSES[0], LONG_RESPONSE]}
        status, _, payload = call(strict.url, "POST", "/score", body)
        assert status == 422 and payload["field"] == "responses[1]" and "max_length=64" in payload["error"]
        query = {"query": [PROMPTS[1] + LONG_RESPONSE], "prompts": [PROMPTS[1]]}
        status, _, payload = call(strict.url, "POST", "/get_reward", query)
        assert status == 422 and payload["field"] == "query[0]"
        status, _, payload = call(strict.url, "POST", "/score", {"prompts": PROMPTS, "responses": RESPONSES})
        assert status == 200 and payload["truncated"] == [False, False, False]
