import math

import pytest
import torch

from rewardkit.lm import response_logprobs, sample_responses
from rewardkit.rl.kl import kl_k1, kl_k3, kl_per_token, sequence_kl


def test_k1_and_k3_are_unbiased_for_kl_on_a_categorical():
    p = torch.tensor([0.5, 0.2, 0.15, 0.1, 0.05])
    q = torch.tensor([0.2, 0.2, 0.2, 0.2, 0.2])
    true_kl = (p * (p / q).log()).sum().item()
    tokens = torch.multinomial(p, 200_000, replacement=True, generator=torch.Generator().manual_seed(0))
    logp, logq = p.log()[tokens], q.log()[tokens]
    assert kl_k1(logp, logq).mean().item() == pytest.approx(true_kl, abs=0.01)
    assert kl_k3(logp, logq).mean().item() == pytest.approx(true_kl, abs=0.01)
    assert (kl_k1(logp, logq) < 0).any()  # k1 is only right on average


def test_k3_is_non_negative_and_zero_when_equal():
    generator = torch.Generator().manual_seed(0)
    logp, logq = -5 * torch.rand(1000, generator=generator), -5 * torch.rand(1000, generator=generator)
    assert (kl_k3(logp, logq) >= 0).all()
    assert torch.equal(kl_k3(logp, logp), torch.zeros(1000))
    assert torch.equal(kl_per_token(logp, logq, "k3"), kl_k3(logp, logq))
    with pytest.raises(ValueError):
        kl_per_token(logp, logq, "k2")


def test_response_logprobs_match_a_manual_log_softmax(policy, tokenizer):
    samples = sample_responses(policy, tokenizer, ["the cat", "a small fish swam"], max_new_tokens=5, seed=0)
    logp = response_logprobs(policy, samples.input_ids, samples.attention_mask, samples.response_mask, 0.7)
    assert logp.shape == samples.response_ids.shape
    assert (logp[~samples.response_mask] == 0).all()
    # one sequence at a time, no padding: log_softmax(logits / T) at the token's position
    for row in range(2):
        ids = samples.input_ids[row][samples.attention_mask[row].bool()][None]
        with torch.no_grad():
            logits = policy(ids).logits[0].float() / 0.7
        num = int(samples.response_mask[row].sum())
        start = ids.shape[1] - (samples.response_ids.shape[1])
        expected = [torch.log_softmax(logits[start + t - 1], -1)[ids[0, start + t]].item() for t in range(num)]
        assert logp[row, :num].tolist() == pytest.approx(expected, abs=1e-4)


def test_sequence_kl_is_zero_against_itself_and_positive_against_another(policy, policy_factory, tokenizer):
    samples = sample_responses(policy, tokenizer, ["the cat"] * 16, max_new_tokens=6, seed=1)
    args = samples.input_ids, samples.attention_mask, samples.response_mask
    assert torch.allclose(sequence_kl(policy, policy, *args), torch.zeros(16))
    other = policy_factory(seed=1)
    with torch.no_grad():
        for param in other.parameters():
            param.mul_(20)  # sharpen the other model so the two distributions clearly differ
    k3 = sequence_kl(policy, other, *args, estimator="k3")
    assert (k3 > 0).all()
    assert sequence_kl(policy, other, *args).mean() > 0
    assert math.isfinite(k3.sum().item())
