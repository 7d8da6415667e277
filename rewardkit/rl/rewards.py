"""The reward-function signature shared by best-of-n and PPO, and one checked way to call it."""

from __future__ import annotations

from collections.abc import Callable

import torch

# (prompts, responses) -> one scalar per response. The reward model, the gold reward and any logged metric
# (length, format-feature rate, ...) are all adapted to this signature.
RewardFn = Callable[[list[str], list[str]], torch.Tensor]


def score_responses(fn: RewardFn, prompts: list[str], texts: list[str], batch_size: int | None = None) -> torch.Tensor:
    """`fn`'s scores as a float32 CPU tensor [len(texts)], at most `batch_size` pairs per call."""
    batch_size = batch_size or max(len(texts), 1)
    chunks = []
    for start in range(0, len(texts), batch_size):
        chunk = torch.as_tensor(fn(prompts[start : start + batch_size], texts[start : start + batch_size]))
        chunks.append(chunk.detach().float().cpu().reshape(-1))
    scores = torch.cat(chunks) if chunks else torch.zeros(0)
    if len(scores) != len(texts):
        raise ValueError(f"reward function returned {len(scores)} scores for {len(texts)} responses")
    return scores


def penalize_missing_eos(scores: torch.Tensor, finished: torch.Tensor, penalty: float | None) -> torch.Tensor:
    """r(x, y) - penalty for each response cut at max_new_tokens (no EOS), as TRL's `missing_eos_penalty`.

    Why: a reward that scores what is there (a PRM's min over the steps so far, say) ranks an unfinished solution
    as high as a finished one, and the policy learns to stop answering; the penalty makes finishing pay.
    """
    if penalty is None:
        return scores
    if penalty < 0:
        raise ValueError(f"missing_eos_penalty must be >= 0, got {penalty}")
    return scores - penalty * (~finished.to(scores.device)).to(scores.dtype)
