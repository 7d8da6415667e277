"""log pi(y | x) of whole responses under a causal LM: the sum of the response tokens' log-probabilities.

Sequences are left-padded, so every one ends in the last column and a response of r tokens is the last r
columns of its row; `rewardkit.lm.response_logprobs` then gives the per-token log-probs with a mask.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from transformers import PreTrainedModel

from rewardkit.data.collate import pad_sequences
from rewardkit.data.tokenize import EncodedSequence
from rewardkit.lm import response_logprobs


def response_lengths(sequences: Sequence[EncodedSequence]) -> list[int]:
    """Response tokens of each sequence. A first token has no context to be predicted from, so it never counts."""
    return [len(s.input_ids) - max(s.prompt_length, 1) for s in sequences]


def sequence_logprobs(
    model: PreTrainedModel, sequences: Sequence[EncodedSequence], pad_token_id: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """(sum of response-token log-probs [N], number of response tokens [N]) in one forward pass; differentiable."""
    lengths = response_lengths(sequences)
    input_ids, attention_mask = pad_sequences([s.input_ids for s in sequences], pad_token_id, padding_side="left")
    counts = torch.tensor(lengths, dtype=torch.float32)
    width = max(max(lengths), 1)
    response_mask = (torch.arange(width) >= width - counts[:, None]).float()  # the last `length` columns
    device = model.device
    logp = response_logprobs(model, input_ids.to(device), attention_mask.to(device), response_mask.to(device))
    return logp.sum(-1), counts.to(device)


@torch.inference_mode()
def batched_sequence_logprobs(
    model: PreTrainedModel, sequences: Sequence[EncodedSequence], pad_token_id: int, batch_size: int = 32
) -> tuple[torch.Tensor, torch.Tensor]:
    """`sequence_logprobs` over length-sorted batches, without gradients; float32 CPU tensors in input order."""
    was_training = model.training
    model.eval()
    order = sorted(range(len(sequences)), key=lambda i: len(sequences[i].input_ids))
    sums, counts = torch.zeros(len(sequences)), torch.zeros(len(sequences))
    for start in range(0, len(order), batch_size):
        rows = order[start : start + batch_size]
        batch_sums, batch_counts = sequence_logprobs(model, [sequences[i] for i in rows], pad_token_id)
        sums[rows], counts[rows] = batch_sums.float().cpu(), batch_counts.float().cpu()
    model.train(was_training)
    return sums, counts
