"""The fast paths on a GPU: packed and prefix-shared decoders, packed encoders, scoring and training, in fp32 and
under bf16 autocast. Skipped without CUDA (CI has none); `benchmarks/gpu_check.sh` runs them where a GPU is lent."""

from __future__ import annotations

import pytest
import torch

from rewardkit.data.collate import pad_sequences
from rewardkit.device import precision_dtype
from rewardkit.model import RewardModel
from rewardkit.model.encoder_packing import encoder_rewards
from rewardkit.model.prefix_sharing import unpad
from rewardkit.testing import save_tiny_encoder
from rewardkit.training import TrainConfig, train
from tests.conftest import keyword_pairs, write_jsonl

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
CUDA = torch.device("cuda")
PROMPT = "Human: Tell me about the quick brown fox and the lazy dog, and then about bread.\n\nAssistant:"


def _batch(model: RewardModel) -> tuple[torch.Tensor, torch.Tensor]:
    """Responses sharing long prompts, and sequences sharing nothing, of very different lengths."""
    pairs = [(PROMPT * k, reply) for k in (1, 2) for reply in (" yes please, the fox is nice." * 3, " no.", " maybe")]
    pairs += [("What is the capital of France?", " Paris"), ("Tell me a joke.", " No." * 9)]
    sequences = [model.encode(prompt, response).input_ids for prompt, response in pairs]
    input_ids, attention_mask = pad_sequences(sequences, model.tokenizer.pad_token_id)
    return input_ids.to(CUDA), attention_mask.to(CUDA)


def _grads(model: RewardModel) -> dict[str, torch.Tensor]:
    return {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}


def _fast_and_padded(model: RewardModel, fast) -> tuple[torch.Tensor, torch.Tensor, dict, dict]:
    input_ids, attention_mask = _batch(model)
    model.zero_grad()
    padded = model.padded_forward(input_ids, attention_mask)
    (padded * torch.linspace(-1, 1, len(padded), device=CUDA)).sum().backward()
    expected = _grads(model)
    model.zero_grad()
    rewards = fast(input_ids, attention_mask)
    (rewards * torch.linspace(-1, 1, len(rewards), device=CUDA)).sum().backward()
    return rewards, padded, _grads(model), expected


@pytest.fixture(params=["decoder", "encoder"])
def model(request, tiny_sft, tmp_path) -> RewardModel:
    path = tiny_sft if request.param == "decoder" else save_tiny_encoder(tmp_path, "bert")
    torch.manual_seed(0)
    return RewardModel.from_sft(path, max_length=128).to(CUDA).eval()


def fast_path(model: RewardModel):
    if model.is_decoder:  # packed rows, each shared prompt once, the last layer at reward tokens
        return lambda ids, mask: model(ids, mask, share_prefix=True)
    return lambda ids, mask: encoder_rewards(model, unpad(ids, mask))


def test_fast_paths_equal_the_padded_forward_in_fp32(model):
    rewards, padded, got, expected = _fast_and_padded(model, fast_path(model))
    torch.testing.assert_close(rewards, padded, atol=1e-4, rtol=1e-3)
    for name in expected:
        torch.testing.assert_close(got[name], expected[name], atol=1e-4, rtol=1e-2, msg=name)


def test_fast_paths_under_bf16_autocast_stay_close_to_fp32(model):
    input_ids, attention_mask = _batch(model)
    with torch.no_grad():
        fp32 = model.padded_forward(input_ids, attention_mask)
        with torch.autocast("cuda", dtype=torch.bfloat16):
            bf16 = fast_path(model)(input_ids, attention_mask).float()
    assert (bf16 - fp32).abs().max() <= 2**-7 * fp32.abs().max() + 0.25 * fp32.std()


def test_scores_on_the_gpu_equal_the_cpu_scores(model):
    input_ids, attention_mask = _batch(model)
    sequences = unpad(input_ids, attention_mask)
    model.precision = "fp32"
    on_gpu = model.score_encoded(sequences, batch_size=4)
    on_cpu = model.to("cpu").score_encoded(sequences, batch_size=4)
    torch.testing.assert_close(on_gpu, on_cpu, atol=1e-4, rtol=1e-3)


def test_auto_precision_is_bf16_on_gpus_that_support_it():
    expected = torch.bfloat16 if torch.cuda.is_bf16_supported() else None
    assert precision_dtype("auto", CUDA) == expected


def test_training_on_the_gpu_in_bf16(tiny_sft, tmp_path):
    data = write_jsonl(tmp_path / "pairs.jsonl", keyword_pairs(32))
    config = TrainConfig(model=str(tiny_sft), data=[str(data)], output_dir=str(tmp_path / "run"), max_length=128,
                         batch_size=8, learning_rate=3e-3, max_steps=6, device="cuda", precision="bf16",
                         eval_fraction=0.25, progress_bar=False)  # fmt: skip
    result = train(config)
    assert result.summary["device"].startswith("cuda") and result.summary["autocast"] == str(torch.bfloat16)
    assert result.eval_metrics["accuracy"] == result.eval_metrics["accuracy"]  # a number, not NaN
