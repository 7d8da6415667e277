"""With an API key, every request without "Authorization: Bearer KEY" gets 401, on every endpoint."""

from __future__ import annotations

import pytest

from rewardkit.client import RewardClient, RewardServerError
from rewardkit.serving import BackgroundServer, ServerConfig
from tests.serving.helpers import PROMPTS, RESPONSES, call, expected

KEY = "s3cret-key"


@pytest.fixture(scope="module")
def secured(model):
    with BackgroundServer(model, ServerConfig(port=0, api_key=KEY)) as running:
        yield running


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer wrong"}, {"Authorization": KEY},
                                     {"Authorization": f"Basic {KEY}"}], ids=["none", "wrong", "no-scheme", "basic"])
@pytest.mark.parametrize(("method", "path"), [("POST", "/score"), ("POST", "/get_reward"), ("GET", "/health"),
                                              ("GET", "/metrics"), ("GET", "/unknown")])
def test_requests_without_the_key_get_401(secured, headers, method, path):
    status, response_headers, body = call(secured.url, method, path, {"prompts": ["a"], "responses": ["b"]}, headers)
    assert status == 401 and response_headers["www-authenticate"] == "Bearer" and "API key" in body["error"]


def test_requests_with_the_key_are_served(secured, model):
    status, _, body = call(secured.url, "POST", "/score", {"prompts": PROMPTS, "responses": RESPONSES},
                           {"Authorization": f"Bearer {KEY}"})
    assert status == 200 and body["rewards"] == pytest.approx(expected(model, PROMPTS, RESPONSES), abs=1e-5)
    assert RewardClient(secured.url, api_key=KEY).score(PROMPTS, RESPONSES) == pytest.approx(body["rewards"])


def test_client_without_the_key_fails_at_once(secured):
    with pytest.raises(RewardServerError) as caught:
        RewardClient(secured.url, max_retries=5).score(PROMPTS, RESPONSES)
    assert caught.value.status == 401
