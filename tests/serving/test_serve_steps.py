"""Per-step rewards from a process reward model over HTTP: a real server on loopback, a tiny PRM built from a config."""

from __future__ import annotations

import pytest

from rewardkit.model import RewardModel
from rewardkit.serving import BackgroundServer, ServerConfig
from tests.serving.helpers import call

PROBLEMS = ["What is 2 + 3 * 4?", "Human: Add 7 and 5.\n\nAssistant:"]
SOLUTIONS = [["3 * 4 = 12.", "2 + 12 = 14.", "The answer is 14."], ["7 + 5 = 12.", "So 12."]]


@pytest.fixture(scope="module")
def prm(tiny_sft, tmp_path_factory) -> RewardModel:
    model = RewardModel.from_sft(tiny_sft, max_length=128, process=True)
    model.set_normalization(offset=0.1, scale=1.5)  # every comparison also checks the normalization is applied
    directory = tmp_path_factory.mktemp("prm")
    model.save_pretrained(directory)
    return RewardModel.from_pretrained(directory)


@pytest.fixture(scope="module")
def prm_server(prm):
    with BackgroundServer(prm, ServerConfig(port=0, max_batch_size=4)) as running:
        yield running


def test_step_rewards_equal_score_steps_and_solution_scores_aggregate_them(prm_server, prm):
    expected = prm.score_steps(PROBLEMS, SOLUTIONS)
    for aggregation in ("min", "product", "last", "mean"):
        status, _, body = call(prm_server.url, "POST", "/score",
                               {"prompts": PROBLEMS, "steps": SOLUTIONS, "aggregation": aggregation})
        assert status == 200, body
        assert body["aggregation"] == aggregation and body["steps_scored"] == [3, 2]
        assert body["truncated"] == [False, False]
        for got, want in zip(body["step_rewards"], expected.rewards, strict=True):
            assert got == pytest.approx(want.tolist(), abs=1e-5)
        assert body["rewards"] == pytest.approx(expected.aggregate(aggregation).tolist(), abs=1e-6)
    status, _, body = call(prm_server.url, "POST", "/score", {"prompts": PROBLEMS[:1], "steps": SOLUTIONS[:1]})
    assert body["aggregation"] == "min"  # the default
    raw = prm.score_steps(PROBLEMS[:1], SOLUTIONS[:1], normalize=False).rewards[0].tolist()
    assert body["step_rewards"][0] != pytest.approx(raw, abs=1e-3)  # the checkpoint's offset/scale was applied
    assert call(prm_server.url, "GET", "/health")[2]["process"] is True


def test_steps_cut_by_max_length_get_no_reward_and_a_solution_with_none_left_scores_null(prm_server, prm):
    long_steps = [f"Step {i}: add {i} to the running total, which is now larger." for i in range(12)]
    hopeless = ["Count the words.", ["word " * 400]]  # its one step ends past max_length
    status, _, body = call(prm_server.url, "POST", "/score",
                           {"prompts": [PROBLEMS[0], hopeless[0]], "steps": [long_steps, hopeless[1]]})
    assert status == 200, body
    expected = prm.score_steps([PROBLEMS[0], hopeless[0]], [long_steps, hopeless[1]])
    assert body["truncated"] == [True, True]
    assert 0 < body["steps_scored"][0] == len(expected.rewards[0]) < len(long_steps)
    assert body["step_rewards"][0] == pytest.approx(expected.rewards[0].tolist(), abs=1e-5)
    assert body["steps_scored"][1] == 0 and body["step_rewards"][1] == [] and body["rewards"][1] is None


@pytest.mark.parametrize(("payload", "field", "text"), [
    ({"prompts": PROBLEMS, "steps": [SOLUTIONS[0], []]}, "steps[1]", "at least one step"),
    ({"prompts": PROBLEMS, "steps": [SOLUTIONS[0], ["7 + 5 = 12.", "  "]]}, "steps[1][1]", "empty step"),
    ({"prompts": PROBLEMS, "steps": [SOLUTIONS[0], "7 + 5 = 12."]}, "steps[1]", "list of step texts"),
    ({"prompts": PROBLEMS, "steps": [SOLUTIONS[0], ["7 + 5", 12]]}, "steps[1][1]", "expected text, got int"),
    ({"prompts": PROBLEMS[:1], "steps": SOLUTIONS}, "steps", "has 2 items but 'prompts' has 1"),
    ({"prompts": PROBLEMS, "steps": SOLUTIONS, "aggregation": "max"}, "aggregation", "min, product, last, mean"),
    ({"prompts": PROBLEMS, "steps": SOLUTIONS, "responses": ["a", "b"]}, "responses", "not both"),
    ({"prompts": PROBLEMS, "responses": ["a", "b"]}, "prompts", "process reward model"),
], ids=["no-steps", "empty-step", "not-a-list", "not-text", "lengths", "aggregation", "both", "responses"])
def test_bad_step_requests_get_one_422_naming_the_field(prm_server, payload, field, text):
    status, _, body = call(prm_server.url, "POST", "/score", payload)
    assert status == 422 and body["field"] == field and text in body["error"], body


def test_a_process_rm_refuses_openrlhf_queries_and_an_outcome_rm_refuses_steps(prm_server, server):
    status, _, body = call(prm_server.url, "POST", "/get_reward", {"query": ["2 + 2 = 4"], "prompts": [""]})
    assert status == 422 and "send each solution as 'steps'" in body["error"]
    status, _, body = call(server.url, "POST", "/score", {"prompts": PROBLEMS, "steps": SOLUTIONS})
    assert status == 422 and body["field"] == "steps" and "outcome reward model" in body["error"], body
    assert call(server.url, "GET", "/health")[2]["process"] is False
