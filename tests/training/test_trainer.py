"""The training loop: it learns, checkpoints atomically, resumes exactly, and stops cleanly on NaN."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file
from transformers import (
    AutoModelForSequenceClassification,
    Qwen2Config,
    Qwen2ForCausalLM,
    Qwen3Config,
    Qwen3ForCausalLM,
)
from transformers.models.llama.modeling_llama import LlamaDecoderLayer

from rewardkit.errors import RewardkitError
from rewardkit.model import RewardModel
from rewardkit.model import reward_model as reward_model_module
from rewardkit.testing import build_tokenizer, save_tiny_encoder
from rewardkit.training import TrainConfig, TrainingDivergedError, train
from rewardkit.training.checkpoint import list_checkpoints
from rewardkit.training.trainer import build_reward_model
from tests.conftest import keyword_pairs, ranking_records, write_jsonl


def _config(tiny_sft, data, output, **overrides) -> TrainConfig:
    values = dict(
        model=str(tiny_sft),
        data=[str(data)],
        output_dir=str(output),
        max_length=128,
        batch_size=4,
        learning_rate=3e-3,
        eval_fraction=0.2,
        eval_steps=5,
        save_steps=3,
        logging_steps=2,
        progress_bar=False,
    )
    return TrainConfig(**{**values, **overrides})


def test_training_learns_a_learnable_preference_and_writes_a_standard_checkpoint(tiny_sft, tmp_path):
    data = write_jsonl(tmp_path / "pairs.jsonl", keyword_pairs(60))
    result = train(_config(tiny_sft, data, tmp_path / "rm", max_steps=24))
    assert result.steps == 24
    assert result.eval_metrics["accuracy"] >= 0.9
    assert result.eval_metrics["num_comparisons"] == 12

    log = [json.loads(line) for line in (tmp_path / "rm" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log if r["split"] == "train"] == list(range(2, 25, 2))
    assert {"accuracy", "mean_margin", "better_reward_mean", "worse_reward_mean"} <= set(log[-1])
    summary = json.loads((tmp_path / "rm" / "train_summary.json").read_text())
    assert summary["train_comparisons"] == 48 and summary["eval_comparisons"] == 12
    assert summary["share_prefix"]  # a Llama decoder: each group's prompt computed once

    # The output directory is a plain transformers checkpoint; normalization centres the eval rewards.
    hf_model = AutoModelForSequenceClassification.from_pretrained(tmp_path / "rm")
    assert hf_model.config.num_labels == 1
    reloaded = RewardModel.from_pretrained(tmp_path / "rm")
    offset, scale = reloaded.normalization
    assert scale > 0
    assert [p.name for p in list_checkpoints(tmp_path / "rm")] == ["step-000018", "step-000021"]
    assert not list((tmp_path / "rm" / "checkpoints").glob(".tmp-*"))


def test_k_wise_rankings_train_with_all_pairs_of_a_prompt_in_one_batch(tiny_sft, tmp_path):
    data = write_jsonl(tmp_path / "ranks.jsonl", ranking_records(20, k=5))
    result = train(_config(tiny_sft, data, tmp_path / "rm", max_steps=12, eval_fraction=0.25))
    assert result.summary["train_comparisons"] == 15 * 10
    assert result.eval_metrics["num_comparisons"] == 5 * 10
    assert result.eval_metrics["accuracy"] > 0.7


class _Crash(Exception):
    pass


def _crash_at(step_to_crash: int):
    def callback(step, metrics, model):
        if step == step_to_crash:
            raise _Crash(f"simulated kill after step {step}")

    return callback


def test_resume_after_interruption_reaches_the_same_weights(tiny_sft, tmp_path, capsys):
    data = write_jsonl(tmp_path / "pairs.jsonl", keyword_pairs(40))
    common = dict(max_steps=10, save_steps=3, gradient_accumulation_steps=2, batch_size=3, eval_steps=4)
    train(_config(tiny_sft, data, tmp_path / "straight", **common))

    with pytest.raises(_Crash):  # dies after step 7; the last checkpoint is step 6
        train(_config(tiny_sft, data, tmp_path / "resumed", **common), callbacks=[_crash_at(7)])
    assert list_checkpoints(tmp_path / "resumed")[-1].name == "step-000006"
    capsys.readouterr()
    result = train(_config(tiny_sft, data, tmp_path / "resumed", resume=True, progress_bar=True, **common))
    assert result.steps == 10
    progress = capsys.readouterr().err  # not a terminal: plain lines, counting on from the checkpoint's step
    assert "\r" not in progress and "training reward model: 8/10 steps after" in progress
    assert "training reward model: 10/10 steps in" in progress

    straight = load_file(tmp_path / "straight" / "model.safetensors")
    resumed = load_file(tmp_path / "resumed" / "model.safetensors")
    assert straight.keys() == resumed.keys()
    for name in straight:
        torch.testing.assert_close(resumed[name], straight[name], atol=1e-6, rtol=1e-5, msg=name)
    def logged_steps(run):
        return [json.loads(line)["step"] for line in (tmp_path / run / "metrics.jsonl").read_text().splitlines()]

    assert logged_steps("resumed") == logged_steps("straight")  # nothing logged twice


def test_nan_loss_stops_with_a_clear_message_and_keeps_the_last_good_checkpoint(tiny_sft, tmp_path):
    data = write_jsonl(tmp_path / "pairs.jsonl", keyword_pairs(40))

    def poison(step, metrics, model):
        if step == 4:
            with torch.no_grad():
                model.hf_model.score.weight.fill_(float("nan"))

    with pytest.raises(TrainingDivergedError, match=r"loss became nan at step 5.*step-000003.*is kept"):
        train(_config(tiny_sft, data, tmp_path / "rm", max_steps=10), callbacks=[poison])
    kept = list_checkpoints(tmp_path / "rm")
    assert [p.name for p in kept] == ["step-000003"]
    weights = load_file(kept[0] / "model.safetensors")
    assert all(torch.isfinite(tensor).all() for tensor in weights.values())


def test_lora_training_saves_a_merged_checkpoint_that_loads_without_peft(tiny_sft, tmp_path):
    pytest.importorskip("peft")
    data = write_jsonl(tmp_path / "pairs.jsonl", keyword_pairs(40))
    result = train(_config(tiny_sft, data, tmp_path / "rm", max_steps=6, lora_rank=4, learning_rate=1e-2))
    names = set(load_file(tmp_path / "rm" / "model.safetensors"))
    assert not any("lora" in name for name in names)
    expected = result.model.score(["Human: hi\n\nAssistant:"], [" yes please"], normalize=False)
    reloaded = RewardModel.from_pretrained(tmp_path / "rm")
    torch.testing.assert_close(
        reloaded.score(["Human: hi\n\nAssistant:"], [" yes please"], normalize=False), expected, atol=1e-4, rtol=0
    )


def test_config_from_yaml_with_overrides_and_unknown_keys(tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text("model: sft\ndata: [a.jsonl]\nlearning_rate: 2.0e-5\nbatch_size: 16\n")
    config = TrainConfig.from_yaml(path, batch_size=4)
    assert (config.learning_rate, config.batch_size, config.data) == (2e-5, 4, ["a.jsonl"])
    path.write_text("model: sft\nlearnin_rate: 1\n")
    with pytest.raises(RewardkitError, match="unknown option\\(s\\) learnin_rate"):
        TrainConfig.from_yaml(path)
    with pytest.raises(RewardkitError, match=r"--batch-size must be >= 1 \(got 0\)"):
        TrainConfig(model="m", data=["d"], batch_size=0).validate()


def test_share_prefix_training_reaches_the_same_weights_as_the_padded_path(tiny_sft, tmp_path):
    data = write_jsonl(tmp_path / "ranks.jsonl", ranking_records(12, k=4))
    common = dict(max_steps=4, eval_fraction=0.25, save_steps=100, eval_steps=100)
    assert TrainConfig(model="m", data=["d"]).share_prefix  # the default
    train(_config(tiny_sft, data, tmp_path / "plain", share_prefix=False, **common))
    train(_config(tiny_sft, data, tmp_path / "shared", **common))
    plain, shared = (load_file(tmp_path / run / "model.safetensors") for run in ("plain", "shared"))
    for name in plain:
        torch.testing.assert_close(shared[name], plain[name], atol=1e-5, rtol=1e-4, msg=name)


def test_gradient_checkpointing_recomputes_activations_and_reaches_the_same_weights(tiny_sft, tmp_path, monkeypatch):
    data = write_jsonl(tmp_path / "ranks.jsonl", ranking_records(12, k=4))
    common = dict(max_steps=3, eval_fraction=0.25, save_steps=100, eval_steps=100, normalize_rewards=False)
    calls = []
    layer_forward = LlamaDecoderLayer.forward

    def counted(self, *args, **kwargs):
        calls.append(1)
        return layer_forward(self, *args, **kwargs)

    monkeypatch.setattr(LlamaDecoderLayer, "forward", counted)

    train(_config(tiny_sft, data, tmp_path / "plain", **common))
    plain_calls = len(calls)
    train(_config(tiny_sft, data, tmp_path / "checkpointed", gradient_checkpointing=True, **common))
    # Training passes run the first layer again in the backward (the last runs outside its module: last_layer.py).
    assert len(calls) > plain_calls
    plain, checkpointed = (load_file(tmp_path / run / "model.safetensors") for run in ("plain", "checkpointed"))
    for name in plain:
        torch.testing.assert_close(checkpointed[name], plain[name], atol=1e-5, rtol=1e-4, msg=name)


@pytest.mark.parametrize("family", ["qwen2", "qwen3"])
def test_other_decoder_families_train_with_shared_prompts_and_load_in_transformers(family, tmp_path):
    # A tiny causal LM of another family saved like an SFT checkpoint: the packed, shared-prompt path trains it and
    # the result is an ordinary AutoModelForSequenceClassification of that family.
    config_class, causal_lm = {
        "qwen2": (Qwen2Config, Qwen2ForCausalLM),
        "qwen3": (Qwen3Config, Qwen3ForCausalLM),
    }[family]
    tokenizer = build_tokenizer()
    config = config_class(
        vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256, tie_word_embeddings=False,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
    )  # fmt: skip
    torch.manual_seed(0)
    causal_lm(config).save_pretrained(tmp_path / "sft")
    tokenizer.save_pretrained(tmp_path / "sft")
    data = write_jsonl(tmp_path / "ranks.jsonl", ranking_records(16, k=4))

    result = train(_config(tmp_path / "sft", data, tmp_path / "rm", max_steps=6, eval_fraction=0.25))
    assert result.summary["share_prefix"] and result.eval_metrics["num_comparisons"] == 4 * 6

    hf_model = AutoModelForSequenceClassification.from_pretrained(tmp_path / "rm").eval()
    assert hf_model.config.model_type == family and hf_model.config.num_labels == 1
    model = RewardModel.from_pretrained(tmp_path / "rm")
    prompts, responses = ["Human: bread?\n\nAssistant:"] * 2, [" Knead it.", " No."]
    encoded = [model.encode(p, r).input_ids for p, r in zip(prompts, responses, strict=True)]
    with torch.no_grad():
        expected = [hf_model(input_ids=torch.tensor([ids])).logits[0, 0].item() for ids in encoded]
    assert model.score(prompts, responses, normalize=False).tolist() == pytest.approx(expected, abs=1e-4)


def _mixed_length_pairs(n: int) -> list[dict]:
    """Pairs whose lengths differ a lot, so batches are mostly padding."""
    return [{"prompt": "Human: tell me about the fox. " * (1 + i % 4) + "\n\nAssistant:",
             "chosen": " yes please, the fox is nice" * (1 + i % 3), "rejected": " no"} for i in range(n)]  # fmt: skip


def test_encoder_training_without_padding_reaches_the_padded_runs_weights(tmp_path, monkeypatch):
    encoder = save_tiny_encoder(tmp_path / "bert", "bert")
    data = write_jsonl(tmp_path / "pairs.jsonl", _mixed_length_pairs(16))
    common = dict(max_steps=3, eval_fraction=0.25, learning_rate=1e-3, normalize_rewards=False)
    calls = []
    original = reward_model_module.encoder_rewards
    monkeypatch.setattr(reward_model_module, "encoder_rewards", lambda *a, **k: calls.append(1) or original(*a, **k))
    train(_config(encoder, data, tmp_path / "packed", **common))
    assert calls  # the training batches went through the encoder's packed path
    monkeypatch.setattr(reward_model_module, "PACK_ABOVE_PADDING", float("inf"))
    train(_config(encoder, data, tmp_path / "padded", **common))
    packed, padded = (load_file(tmp_path / run / "model.safetensors") for run in ("packed", "padded"))
    initial = {f"bert.{name}": weight for name, weight in load_file(encoder / "model.safetensors").items()}
    # The two paths add the same numbers in another order, and Adam divides each weight's gradient by its own running
    # scale, so wherever a gradient is near 0 rounding noise becomes a step of up to lr: a single weight can end up
    # 8e-5 apart while the rest agree to 1e-7 (1 of 28 measured runs broke the former elementwise atol of 1e-5; which
    # weights are hit varies from process to process, even for one seed). So each tensor's difference is measured
    # against how far training moved it. Measured over 28 runs (one thread): at most 1.4e-3 of the movement, all
    # other runs under 2e-4; the bound leaves 10x, while packing that let a token see another sequence should move
    # weights differently by a large part of their movement. A key bias has a true gradient of 0 (it adds the same to
    # all of a query's scores), so its whole movement is such noise; so is the head's bias (it shifts both rewards of
    # a comparison), which is new like the head's weight (not in `initial`). Every other encoder tensor is compared.
    compared = [name for name in padded if name in initial and not name.endswith("key.bias")]
    assert len(compared) > 20
    for name in compared:
        apart, moved = (packed[name] - padded[name]).norm(), (padded[name] - initial[name]).norm()
        assert apart <= 1.5e-2 * moved, f"{name}: {apart:.2e} apart after moving {moved:.2e}"


def test_dropout_is_off_while_training_unless_asked_for(tmp_path):
    encoder = save_tiny_encoder(tmp_path / "bert", "bert")
    config = TrainConfig(model=str(encoder), data=["unused"], output_dir=str(tmp_path / "out"))
    rates = [m.p for m in build_reward_model(config, None).modules() if isinstance(m, torch.nn.Dropout)]
    assert rates and set(rates) == {0.0}
    config.dropout = True
    rates = [m.p for m in build_reward_model(config, None).modules() if isinstance(m, torch.nn.Dropout)]
    assert set(rates) == {0.1}  # the backbone's own hidden and attention dropout


def test_training_keeps_its_precision_after_a_bf16_accelerator_ran_in_the_same_process(tiny_sft, tmp_path):
    # Accelerate's per-process state used to hand an earlier Accelerator's bf16 mixed precision (TRL's defaults,
    # say) to rewardkit's, so an fp32 run silently trained under bf16 autocast.
    from accelerate import Accelerator
    from accelerate.state import AcceleratorState

    data = write_jsonl(tmp_path / "pairs.jsonl", keyword_pairs(16))
    common = dict(max_steps=2, eval_fraction=0.25, save_steps=100, eval_steps=100, precision="fp32")
    train(_config(tiny_sft, data, tmp_path / "alone", **common))
    try:
        AcceleratorState._reset_state()  # as transformers' Trainer does before building its own Accelerator
        assert Accelerator(cpu=True, mixed_precision="bf16").mixed_precision == "bf16"
        result = train(_config(tiny_sft, data, tmp_path / "after-bf16", **common))
    finally:
        AcceleratorState._reset_state()
    alone, after = (load_file(tmp_path / run / "model.safetensors") for run in ("alone", "after-bf16"))
    for name in alone:
        torch.testing.assert_close(after[name], alone[name], atol=0, rtol=0, msg=name)
    assert result.steps == 2
