"""Training a process reward model with the same loop: it learns step labels, resumes exactly, shares problems."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoModelForTokenClassification, set_seed

from rewardkit.data.steps import STEP_SEPARATOR
from rewardkit.model import RewardModel
from rewardkit.training import TrainConfig, train
from rewardkit.training.checkpoint import ACCELERATE_STATE_DIR, list_checkpoints
from tests.conftest import step_records, write_jsonl


def _config(tiny_sft, data, output, **overrides) -> TrainConfig:
    values = dict(model=str(tiny_sft), data=[str(data)], output_dir=str(output), max_length=128, batch_size=4,
                  learning_rate=3e-3, eval_fraction=0.25, eval_steps=5, save_steps=4, logging_steps=2,
                  progress_bar=False)
    return TrainConfig(**{**values, **overrides})


def test_a_process_rm_learns_step_labels_and_writes_a_token_classification_checkpoint(tiny_sft, tmp_path):
    data = write_jsonl(tmp_path / "steps.jsonl", step_records(80))
    result = train(_config(tiny_sft, data, tmp_path / "prm", max_steps=30))
    summary = result.summary
    assert summary["objective"] == "steps" and summary["train_steps"] > 100 and summary["steps_per_second"] > 0
    assert result.eval_metrics["accuracy"] > 0.9 and result.eval_metrics["auroc"] > 0.95
    config = json.loads((tmp_path / "prm" / "config.json").read_text())
    assert config["architectures"] == ["LlamaForTokenClassification"]
    assert config["rewardkit"]["step_separator"] == STEP_SEPARATOR
    offset, scale = config["rewardkit"]["reward_offset"], config["rewardkit"]["reward_scale"]
    assert scale > 0 and (offset, scale) != (0.0, 1.0)  # a Platt fit on the held-out steps
    AutoModelForTokenClassification.from_pretrained(tmp_path / "prm")  # loads in plain transformers

    model = RewardModel.from_pretrained(tmp_path / "prm")
    scores = model.score_steps(["Human: Solve problem 999 about bread and the fox.\n\nAssistant:"],
                               [["yes please, step 0 of 1.", "no thanks, step 1 of 2.", "yes please, step 2."]])
    probabilities = torch.sigmoid(scores.rewards[0])
    assert probabilities[0] > 0.5 > probabilities[1]
    records = [json.loads(line) for line in (tmp_path / "prm" / "metrics.jsonl").read_text().splitlines()]
    assert {"auroc", "log_loss", "accuracy"} <= records[-1].keys() and records[-1]["split"] == "eval"
    assert all("accuracy" in r and "loss" in r for r in records if r["split"] == "train")


def test_step_training_resumes_to_the_same_weights_from_accelerate_state(tiny_sft, tmp_path):
    data = write_jsonl(tmp_path / "steps.jsonl", step_records(40))
    common = dict(max_steps=8, save_steps=3, gradient_accumulation_steps=2, batch_size=2, eval_steps=4)
    train(_config(tiny_sft, data, tmp_path / "straight", **common))

    class Crash(Exception):
        pass

    def crash_at_7(step, metrics, model):
        if step == 7:
            raise Crash

    with pytest.raises(Crash):
        train(_config(tiny_sft, data, tmp_path / "resumed", **common), callbacks=[crash_at_7])
    last = list_checkpoints(tmp_path / "resumed")[-1]
    assert last.name == "step-000006" and (last / ACCELERATE_STATE_DIR / "optimizer.bin").is_file()
    assert (last / "model.safetensors").is_file()  # and a plain transformers model beside it
    assert train(_config(tiny_sft, data, tmp_path / "resumed", resume=True, **common)).steps == 8
    straight, resumed = (load_file(tmp_path / run / "model.safetensors") for run in ("straight", "resumed"))
    for name in straight:
        torch.testing.assert_close(resumed[name], straight[name], atol=1e-6, rtol=1e-5, msg=name)


def test_shared_problems_reach_the_padded_runs_weights(tiny_sft, tmp_path):
    data = write_jsonl(tmp_path / "steps.jsonl", step_records(24, solutions_per_problem=4))
    common = dict(max_steps=3, save_steps=100, eval_steps=100, eval_fraction=0.0)
    train(_config(tiny_sft, data, tmp_path / "plain", share_prefix=False, **common))
    train(_config(tiny_sft, data, tmp_path / "shared", **common))
    plain, shared = (load_file(tmp_path / run / "model.safetensors") for run in ("plain", "shared"))
    for name in plain:
        torch.testing.assert_close(shared[name], plain[name], atol=1e-5, rtol=1e-4, msg=name)


def test_soft_monte_carlo_labels_train_and_lora_trains_the_separator_row(tiny_sft, tmp_path):
    pytest.importorskip("peft")
    records = [{"problem": r["problem"], "steps": r["steps"],
                "step_labels": [0.9 if s.startswith("yes") else 0.1 for s in r["steps"]]} for r in step_records(40)]
    data = write_jsonl(tmp_path / "mc.jsonl", records)
    set_seed(0)  # as the trainer does before building the model: the same initial separator row
    before = RewardModel.from_sft(tiny_sft, process=True)
    separator = before.settings["step_separator_id"]
    result = train(_config(tiny_sft, data, tmp_path / "lora", max_steps=6, lora_rank=4, learning_rate=1e-2))
    assert result.summary["objective"] == "steps" and result.eval_metrics["num_steps"] > 0
    weights = load_file(tmp_path / "lora" / "model.safetensors")
    assert not any("lora" in name or "trainable_tokens" in name for name in weights)
    embedding = weights["model.embed_tokens.weight"]
    initial = before.hf_model.get_input_embeddings().weight.detach()
    assert torch.equal(embedding[:separator], initial[:separator])  # frozen under LoRA
    assert not torch.allclose(embedding[separator], initial[separator])  # the separator's row learned


def test_step_options_are_checked_with_a_clear_message(tiny_sft, tmp_path):
    from rewardkit.errors import RewardkitError

    data = write_jsonl(tmp_path / "steps.jsonl", step_records(8))
    with pytest.raises(RewardkitError, match="--format pairs is not a step format"):
        train(_config(tiny_sft, data, tmp_path / "a", objective="steps", format="pairs", max_steps=1))
    with pytest.raises(RewardkitError, match="--neutral-steps must be one of positive, negative, ignore"):
        train(_config(tiny_sft, data, tmp_path / "b", neutral_steps="maybe", max_steps=1))
    with pytest.raises(RewardkitError, match="--objective must be one of auto, bradley_terry, steps"):
        train(_config(tiny_sft, data, tmp_path / "c", objective="ppo", max_steps=1))
