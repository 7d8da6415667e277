"""A short DPO run on a tiny Llama learns a learnable preference; the reference stays frozen; its progress is
plain lines when stderr is not a terminal."""

from __future__ import annotations

import contextlib
import copy
import io

import pytest
from transformers import AutoModelForCausalLM, AutoTokenizer

from rewardkit.data import load_preferences
from rewardkit.dpo import DPOConfig, DPOScorer, train_dpo
from tests.conftest import keyword_pairs, write_jsonl


@pytest.fixture(scope="module")
def run(tiny_sft, tmp_path_factory):
    root = tmp_path_factory.mktemp("dpo")
    train = load_preferences(write_jsonl(root / "train.jsonl", keyword_pairs(48)))
    held_out = load_preferences(write_jsonl(root / "held_out.jsonl", keyword_pairs(16, seed=1)))
    tokenizer = AutoTokenizer.from_pretrained(tiny_sft)
    ref = AutoModelForCausalLM.from_pretrained(tiny_sft).eval()
    policy = copy.deepcopy(ref)
    before = DPOScorer(policy, tokenizer, ref=ref, beta=0.5).evaluate(held_out).accuracy
    ref_state = copy.deepcopy(ref.state_dict())
    calls, stderr = [], io.StringIO()  # not a terminal
    with contextlib.redirect_stderr(stderr):
        result = train_dpo(policy, ref, tokenizer, train,
                           DPOConfig(beta=0.5, max_steps=20, batch_size=8, learning_rate=3e-3, progress=True),
                           callback=lambda row, model: calls.append(row["step"]))
    after = DPOScorer(result.policy, tokenizer, ref=ref, beta=0.5).evaluate(held_out).accuracy
    return before, after, result, ref, ref_state, calls, stderr.getvalue()


def test_dpo_raises_implicit_reward_accuracy_on_held_out_pairs(run):
    before, after, result, *_ = run
    assert before == 0.5  # policy == reference: every implicit reward is 0, every pair a tie
    assert after >= 0.9
    log = result.log
    assert log[0]["loss"] == pytest.approx(0.6931, abs=1e-3)
    assert sum(r["loss"] for r in log[-5:]) / 5 < 0.5
    assert log[-1]["better_reward"] > log[-1]["worse_reward"]


def test_reference_is_frozen_and_callback_sees_every_step(run):
    _, _, result, ref, ref_state, calls, _ = run
    assert all(p.equal(ref_state[name]) for name, p in ref.state_dict().items())
    assert calls == list(range(20)) and len(result.log) == 20


def test_progress_is_plain_lines_named_by_the_run_when_stderr_is_not_a_terminal(run):
    progress = run[-1]
    assert "\r" not in progress
    lines = [line for line in progress.splitlines() if line.startswith("DPO")]
    assert lines[0] == "DPO β=0.5, 48 preference groups: 20 steps"
    assert lines[-1].startswith("DPO β=0.5, 48 preference groups: 20/20 steps in ")
    assert len(lines) <= 5  # start, quarters, end: not a line per step
