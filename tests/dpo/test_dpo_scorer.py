"""The implicit reward: beta * (log pi - log pi_ref) over response tokens, reference-free sum and mean, and the
policy's own rendering of (prompt, response)."""

from __future__ import annotations

import json

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from rewardkit.data import load_preferences
from rewardkit.data.tokenize import encode_pair
from rewardkit.dpo import DPOScorer, encode_for_policy
from rewardkit.errors import RewardkitError
from rewardkit.lm import encode_prompts
from rewardkit.testing import build_tiny_llama
from rewardkit.world import World, build_tokenizer, format_prompt
from tests.conftest import keyword_pairs, run_rewardkit, write_jsonl

PROMPTS = ["Human: Tell me about bread.\n\nAssistant:", "Human: France?\n\nAssistant:", "Human: Hi\n\nAssistant:"]
RESPONSES = [" yes please, bread is nice and warm.", " no thanks.", " Paris"]
ITEMS = [{"prompt": p, "response": r} for p, r in zip(PROMPTS, RESPONSES, strict=True)]


@pytest.fixture(scope="module")
def models(tiny_sft):
    tokenizer = AutoTokenizer.from_pretrained(tiny_sft)
    policy = AutoModelForCausalLM.from_pretrained(tiny_sft).eval()
    ref = build_tiny_llama(tokenizer, seed=1).eval()
    return policy, ref, tokenizer


def _by_hand(model, tokenizer, prompt, response) -> tuple[float, int]:
    """Sum of log pi over the response tokens and <eos>, one unpadded sequence at a time."""
    encoded = encode_pair(prompt, response, tokenizer, 128)
    ids = list(encoded.input_ids) + [tokenizer.eos_token_id]
    with torch.no_grad():
        logp = torch.log_softmax(model(input_ids=torch.tensor([ids])).logits[0].float(), dim=-1)
    terms = [logp[t - 1, ids[t]].item() for t in range(encoded.prompt_length, len(ids))]
    return sum(terms), len(terms)


def test_reference_mode_is_beta_times_the_log_ratio(models):
    policy, ref, tokenizer = models
    scorer = DPOScorer(policy, tokenizer, ref=ref, beta=0.3)
    assert scorer.mode == "reference"
    expected = [0.3 * (_by_hand(policy, tokenizer, p, r)[0] - _by_hand(ref, tokenizer, p, r)[0])
                for p, r in zip(PROMPTS, RESPONSES, strict=True)]
    # three lengths in one left-padded batch: padding must not change anything
    assert scorer.score(PROMPTS, RESPONSES).tolist() == pytest.approx(expected, abs=1e-4)


def test_reference_free_sum_and_mean(models):
    policy, _, tokenizer = models
    by_hand = [_by_hand(policy, tokenizer, p, r) for p, r in zip(PROMPTS, RESPONSES, strict=True)]
    total = DPOScorer(policy, tokenizer, mode="sum").score(PROMPTS, RESPONSES, batch_size=2)
    mean = DPOScorer(policy, tokenizer, mode="mean").score(PROMPTS, RESPONSES)
    assert total.tolist() == pytest.approx([s for s, _ in by_hand], abs=1e-4)
    assert mean.tolist() == pytest.approx([s / n for s, n in by_hand], abs=1e-5)


def test_policy_identical_to_its_reference_has_zero_reward(models):
    policy, _, tokenizer = models
    assert DPOScorer(policy, tokenizer, ref=policy).score(PROMPTS, RESPONSES).abs().max() < 1e-6


def test_reference_mode_needs_a_reference(models):
    policy, _, tokenizer = models
    assert DPOScorer(policy, tokenizer).mode == "sum"
    with pytest.raises(RewardkitError, match="needs the reference model"):
        DPOScorer(policy, tokenizer, mode="reference")
    with pytest.raises(RewardkitError, match="unknown DPO reward mode"):
        DPOScorer(policy, tokenizer, mode="l2")


def test_evaluate_gives_pairwise_metrics(models, tmp_path):
    policy, ref, tokenizer = models
    data = load_preferences(write_jsonl(tmp_path / "pairs.jsonl", keyword_pairs(6)))
    metrics = DPOScorer(policy, tokenizer, ref=ref).evaluate(data)
    assert metrics.num_comparisons == 6 and 0.0 <= metrics.accuracy <= 1.0
    assert DPOScorer(policy, tokenizer, ref=policy).evaluate(data).accuracy == 0.5  # all ties count half


def test_world_rendering_is_the_sampling_input_plus_response_and_eos():
    tokenizer = build_tokenizer(World())
    prompt = format_prompt("write about ocean and mention coral and tide")
    encoded = encode_for_policy(prompt, "coral tide - reef", tokenizer, 64)
    prompt_ids = encode_prompts(tokenizer, [prompt])[0][0].tolist()
    response_ids = tokenizer("coral tide - reef", add_special_tokens=False)["input_ids"]
    assert list(encoded.input_ids) == prompt_ids + response_ids + [tokenizer.eos_token_id]
    assert encoded.prompt_length == len(prompt_ids)


def test_cli_score_and_eval(models, tiny_sft, tmp_path, capsys):
    policy, _, tokenizer = models
    items = write_jsonl(tmp_path / "items.jsonl", ITEMS)
    assert run_rewardkit(capsys, "dpo", "score", "--policy", tiny_sft, "--mode", "mean", "--data", items,
                         "--output", tmp_path / "scores.jsonl")[0] == 0
    rewards = [json.loads(line)["reward"] for line in (tmp_path / "scores.jsonl").read_text().splitlines()]
    assert rewards == pytest.approx(DPOScorer(policy, tokenizer, mode="mean").score(PROMPTS, RESPONSES).tolist(),
                                    abs=1e-5)
    pairs = write_jsonl(tmp_path / "pairs.jsonl", keyword_pairs(4))
    code, out, _ = run_rewardkit(capsys, "dpo", "eval", "--policy", tiny_sft, "--ref", tiny_sft, "--data", pairs)
    assert code == 0 and "reference" in out  # the default mode with a reference
