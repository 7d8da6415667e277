import copy

import torch
from torch import nn

from rewardkit.lm import sample_responses


def test_same_seed_same_samples_different_seed_different(policy, tokenizer, prompts):
    first = sample_responses(policy, tokenizer, prompts, max_new_tokens=8, temperature=1.0, seed=3)
    again = sample_responses(policy, tokenizer, prompts, max_new_tokens=8, temperature=1.0, seed=3)
    other = sample_responses(policy, tokenizer, prompts, max_new_tokens=8, temperature=1.0, seed=4)
    assert first.texts == again.texts
    assert torch.equal(first.input_ids, again.input_ids)
    assert first.texts != other.texts


def bias_towards_eos(policy, tokenizer, bias: float) -> None:
    """Give the LM head a bias that makes EOS likely, so some responses stop early."""
    head = nn.Linear(policy.lm_head.in_features, policy.lm_head.out_features, bias=True)
    head.weight = policy.lm_head.weight
    nn.init.zeros_(head.bias)
    with torch.no_grad():
        head.bias[tokenizer.eos_token_id] = bias
    policy.lm_head = head


def check_layout(samples, tokenizer, pad_id: int) -> None:
    mask = samples.response_mask
    prompt_length = samples.prompt_length
    assert torch.equal(samples.input_ids[:, prompt_length:], samples.response_ids)
    assert torch.equal(samples.attention_mask[:, prompt_length:].bool(), mask)
    # right-padded: once a response has ended it stays ended, and the token that ended it is EOS
    assert (mask[:, 1:] <= mask[:, :-1]).all()
    for row in range(len(samples.texts)):
        length = int(mask[row].sum())
        ids = samples.response_ids[row]
        assert (ids[length:] == pad_id).all()
        assert tokenizer.eos_token_id not in ids[: length - 1].tolist()
        if length < mask.shape[1]:
            assert ids[length - 1] == tokenizer.eos_token_id
        assert samples.texts[row] == tokenizer.decode(ids[:length], skip_special_tokens=True)


def test_stops_at_eos_with_right_padded_responses(policy, tokenizer, prompts):
    bias_towards_eos(policy, tokenizer, bias=3.0)
    samples = sample_responses(policy, tokenizer, prompts * 4, max_new_tokens=10, seed=0)
    lengths = samples.response_lengths
    assert lengths.min() < 10 and lengths.max() > 1  # some stopped early, some did not
    check_layout(samples, tokenizer, tokenizer.pad_token_id)
    assert "<eos>" not in " ".join(samples.texts)
    cut_short = sample_responses(policy, tokenizer, prompts * 4, max_new_tokens=2, seed=0)
    for drawn in (samples, cut_short):
        last = drawn.response_ids.gather(1, (drawn.response_lengths - 1)[:, None]).squeeze(1)
        assert torch.equal(drawn.finished, last == tokenizer.eos_token_id)  # ended with EOS, not cut at the limit
    assert samples.finished.all() and not cut_short.finished.all()  # 10 tokens: all stopped; 2: some were cut


def test_pad_equal_to_eos_is_handled(policy, tokenizer, prompts):
    tokenizer = copy.deepcopy(tokenizer)
    tokenizer.pad_token = tokenizer.eos_token  # as in many released tokenizers
    bias_towards_eos(policy, tokenizer, bias=3.0)
    samples = sample_responses(policy, tokenizer, prompts * 4, max_new_tokens=10, seed=0)
    check_layout(samples, tokenizer, tokenizer.eos_token_id)


def test_greedy_matches_full_forward_and_ignores_left_padding(policy, tokenizer):
    prompts = ["the cat", "a small fish swam fast in the park"]
    batch = sample_responses(policy, tokenizer, prompts, max_new_tokens=6, temperature=0)
    for row, prompt in enumerate(prompts):
        alone = sample_responses(policy, tokenizer, [prompt], max_new_tokens=6, temperature=0)
        assert alone.texts[0] == batch.texts[row]
        # the cached decoding loop picks the argmax of a plain, unpadded forward pass at every step
        ids = alone.input_ids
        with torch.no_grad():
            logits = policy(ids).logits[0]
        start = alone.prompt_length
        assert torch.equal(logits[start - 1 : -1].argmax(-1), ids[0, start:])
    top1 = sample_responses(policy, tokenizer, prompts, max_new_tokens=6, temperature=1.0, top_k=1, seed=0)
    assert top1.texts == batch.texts
