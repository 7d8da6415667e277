"""Process reward models: the step separator, the checkpoint form, and plain transformers reproducing step rewards.

The checkpoint is a standard token-classification model with one output; a step's reward is that output at the
separator token that ends the step. Plain transformers code (no rewardkit) must give rewardkit's step rewards.
"""

from __future__ import annotations

import json

import pytest
import torch
from transformers import AutoModelForTokenClassification, AutoTokenizer

from rewardkit.data.steps import STEP_SEPARATOR
from rewardkit.errors import RewardkitError
from rewardkit.model import RewardModel
from rewardkit.model.step_scores import aggregate_steps

PROBLEMS = ["Human: Tom has 3 apples and buys 4 more. How many?\n\nAssistant:", "What is 2 + 2?"]
SOLUTIONS = [["3 + 4 = 7.", "So Tom has 7 apples.", "The answer is 7."], ["2 + 2 = 5.", "The answer is 5."]]


def plain_transformers_step_rewards(directory, problem: str, steps: list[str]) -> torch.Tensor:
    """What a user without rewardkit writes, from the checkpoint's config and the documented rendering."""
    tokenizer = AutoTokenizer.from_pretrained(directory)
    model = AutoModelForTokenClassification.from_pretrained(directory).eval()
    separator = json.loads((directory / "config.json").read_text())["rewardkit"]["step_separator"]
    text = problem + "\n" + "\n".join(step + separator for step in steps)
    inputs = tokenizer(text, return_tensors="pt")
    with torch.no_grad():
        logits = model(**inputs).logits[0, :, 0]
    return logits[inputs["input_ids"][0] == tokenizer.convert_tokens_to_ids(separator)]


def _train_a_little(model: RewardModel) -> None:
    """Move the weights off their initial values so the test does not pass on an untouched head."""
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(0.02 * torch.randn_like(parameter))


@pytest.mark.parametrize("backbone", ["tiny_llama", "minilm"])
def test_plain_transformers_reproduces_step_rewards(backbone, tiny_sft, minilm_path, tmp_path):
    path = tiny_sft if backbone == "tiny_llama" else minilm_path
    torch.manual_seed(0)
    model = RewardModel.from_sft(path, process=True, max_length=128)
    _train_a_little(model)
    assert type(model.hf_model).__name__.endswith("ForTokenClassification")
    model.save_pretrained(tmp_path)

    loaded = RewardModel.from_pretrained(tmp_path)
    assert loaded.is_process and loaded.step_separator == STEP_SEPARATOR
    scores = loaded.score_steps(PROBLEMS, SOLUTIONS, normalize=False)
    for problem, steps, rewards in zip(PROBLEMS, SOLUTIONS, scores.raw_rewards, strict=True):
        assert rewards.shape == (len(steps),)
        expected = plain_transformers_step_rewards(tmp_path, problem, steps)
        torch.testing.assert_close(rewards, expected, atol=1e-4, rtol=0)
    assert scores.rewards[0].std() > 0  # distinct steps, distinct rewards


def test_separator_is_one_added_token_recorded_in_the_config(tiny_sft, tmp_path):
    model = RewardModel.from_sft(tiny_sft, process=True)
    ids = model.tokenizer(f"7 apples.{STEP_SEPARATOR}\nnext")["input_ids"]
    separator_id = model.tokenizer.convert_tokens_to_ids(STEP_SEPARATOR)
    assert ids.count(separator_id) == 1 and separator_id == len(model.tokenizer) - 1
    assert model.hf_model.get_input_embeddings().weight.shape[0] == len(model.tokenizer)
    model.save_pretrained(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["rewardkit"]["step_separator"] == STEP_SEPARATOR
    assert config["rewardkit"]["step_separator_id"] == separator_id
    assert config["architectures"] == ["LlamaForTokenClassification"] and len(config["id2label"]) == 1


def test_a_decoder_step_reward_is_the_reward_of_the_solution_cut_after_that_step(tiny_sft):
    torch.manual_seed(0)
    model = RewardModel.from_sft(tiny_sft, process=True)
    steps = SOLUTIONS[0]
    whole = model.score_steps([PROBLEMS[0]], [steps]).raw_rewards[0]
    cut = model.score_steps([PROBLEMS[0]] * len(steps), [steps[: k + 1] for k in range(len(steps))]).raw_rewards
    torch.testing.assert_close(whole, torch.stack([r[-1] for r in cut]), atol=1e-5, rtol=1e-4)


def test_outcome_model_scores_steps_at_their_last_token(tiny_sft):
    model = RewardModel.from_sft(tiny_sft)
    scores = model.score_steps(PROBLEMS, SOLUTIONS)
    assert [len(r) for r in scores.rewards] == [3, 2]
    # The last step's reward is the outcome reward of the whole solution.
    whole = model.score(PROBLEMS, ["\n".join(steps) for steps in SOLUTIONS])
    torch.testing.assert_close(torch.stack([r[-1] for r in scores.rewards]), whole, atol=1e-5, rtol=1e-4)


def test_truncated_steps_get_no_reward_and_aggregates_use_the_rest(tiny_sft):
    model = RewardModel.from_sft(tiny_sft, process=True, max_length=40)
    steps = [f"step {i} adds one more apple." for i in range(6)]
    scores = model.score_steps(["Count the apples."], [steps])
    scored = len(scores.rewards[0])
    assert 0 < scored < len(steps) and scores.truncated[0] and scores.num_steps[0] == len(steps)
    probabilities = torch.sigmoid(scores.rewards[0].double())
    assert aggregate_steps(scores.rewards[0], "min") == pytest.approx(float(probabilities.min()))
    assert aggregate_steps(scores.rewards[0], "product") == pytest.approx(float(probabilities.prod()))
    assert aggregate_steps(scores.rewards[0], "last") == pytest.approx(float(probabilities[-1]))
    assert aggregate_steps(scores.rewards[0], "mean") == pytest.approx(float(probabilities.mean()))


def test_bad_solutions_are_refused_with_a_message(tiny_sft, minilm_path):
    model = RewardModel.from_sft(tiny_sft, process=True)
    with pytest.raises(RewardkitError, match="solution 1: expected a non-empty list"):
        model.score_steps(PROBLEMS, [SOLUTIONS[0], []])
    encoder_orm = RewardModel.from_sft(minilm_path)
    with pytest.raises(RewardkitError, match="encoder"):
        encoder_orm.score_steps(PROBLEMS, SOLUTIONS)
