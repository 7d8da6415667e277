"""The last decoder layer computed only at reward tokens gives the padded forward's rewards and gradients."""

from __future__ import annotations

import pytest
import torch
from transformers import AutoModelForSequenceClassification, LlamaConfig, MistralConfig, Qwen2Config, Qwen3Config

from rewardkit.data.collate import pad_sequences
from rewardkit.model import RewardModel
from rewardkit.model.last_layer import supports_last_layer_skip
from rewardkit.testing import build_tokenizer
from tests.conftest import single_thread_fixture

TOLERANCE = dict(atol=2e-5, rtol=1e-4)
single_thread = single_thread_fixture()
PROMPT = "Human: Tell me about the quick brown fox and the lazy dog, and then about bread.\n\nAssistant:"
CONFIGS = {
    "llama": LlamaConfig,
    "mistral": MistralConfig,  # its 256-token sliding window is wider than max_length 128: packing stays exact
    "qwen2": Qwen2Config,
    "qwen3": Qwen3Config,  # per-head q/k RMSNorm
}


def _model(model_type: str, attention: str) -> RewardModel:
    tokenizer = build_tokenizer()
    config = CONFIGS[model_type](
        vocab_size=len(tokenizer), hidden_size=32, intermediate_size=48, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256, sliding_window=256,
        num_labels=1, pad_token_id=tokenizer.pad_token_id,
        attn_implementation=attention, tie_word_embeddings=False,
    )  # fmt: skip
    torch.manual_seed(0)
    hf_model = AutoModelForSequenceClassification.from_config(config)
    with torch.no_grad():  # a random head's rewards are tiny: make differences visible
        hf_model.score.weight.normal_(std=1.0)
    return RewardModel(hf_model, tokenizer, max_length=128).eval()


def _batch(model: RewardModel) -> tuple[torch.Tensor, torch.Tensor]:
    """Responses sharing a prompt (one tree: several reward tokens in a row) and sequences sharing nothing."""
    pairs = [(PROMPT, " yes please, the fox is nice."), (PROMPT, " no thanks."), (PROMPT, " Why did the chicken?")]
    pairs += [("What is the capital of France?", " Paris"), ("Tell me a joke.", " No.")]
    sequences = [model.encode(prompt, response).input_ids for prompt, response in pairs]
    return pad_sequences(sequences, model.tokenizer.pad_token_id)


def _forward_counting_last_layer_queries(model: RewardModel, input_ids, attention_mask, share_prefix: bool):
    """Rewards, and how many token positions the last layer's query projection computed for them."""
    seen = []
    projection = model.hf_model.model.layers[-1].self_attn.q_proj
    handle = projection.register_forward_hook(lambda module, args, output: seen.append(args[0].shape[:-1].numel()))
    try:
        rewards = model(input_ids, attention_mask, share_prefix=share_prefix)
    finally:
        handle.remove()
    return rewards, sum(seen)


@pytest.mark.parametrize("attention", ["sdpa", "eager"])
@pytest.mark.parametrize("model_type", sorted(CONFIGS))
def test_rewards_and_gradients_equal_the_padded_forward(model_type, attention):
    model = _model(model_type, attention)
    assert supports_last_layer_skip(model.hf_model.model)
    input_ids, attention_mask = _batch(model)
    target = torch.linspace(-1, 1, len(input_ids))

    expected = model.padded_forward(input_ids, attention_mask)
    ((expected - target) ** 2).sum().backward()
    expected_grads = {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}
    model.zero_grad()

    for share_prefix in (True, False):  # one tree with 3 reward tokens; plain rows with one each
        rewards, computed = _forward_counting_last_layer_queries(model, input_ids, attention_mask, share_prefix)
        assert computed == len(input_ids)  # queries at the reward tokens only, not at every position
        torch.testing.assert_close(rewards, expected, **TOLERANCE)
        ((rewards - target) ** 2).sum().backward()
        for name, param in model.named_parameters():
            if name in expected_grads:  # float rounding relative to the gradient's scale
                scale = expected_grads[name].abs().max().item()
                torch.testing.assert_close(param.grad, expected_grads[name], atol=1e-5 * scale, rtol=1e-4, msg=name)
        model.zero_grad()


def test_other_layouts_and_sharded_weights_keep_the_whole_backbone():
    model = _model("llama", "sdpa")
    backbone = model.hf_model.model
    assert supports_last_layer_skip(backbone)
    backbone.config.model_type = "gemma"  # scales embeddings: its backbone forward is not the Llama one
    assert not supports_last_layer_skip(backbone)
    backbone.config.model_type = "llama"
    handle = backbone.layers[-1].register_forward_pre_hook(lambda module, args: None)  # as FSDP2 / ZeRO-3 do
    assert not supports_last_layer_skip(backbone)
    handle.remove()
    assert supports_last_layer_skip(backbone)
    layer = backbone.layers[-1]
    layer.forward = layer.forward  # what Accelerate's device-map hooks do (add_hook_to_module)
    assert not supports_last_layer_skip(backbone)
    del layer.forward
    assert supports_last_layer_skip(backbone)
    query = backbone.layers[-1].self_attn.q_proj
    query.weight = torch.nn.Parameter(torch.empty(0))  # what ZeRO-3 leaves outside its gather hooks
    assert not supports_last_layer_skip(backbone)
