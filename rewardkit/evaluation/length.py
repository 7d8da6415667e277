"""Length bias: does the reward just count tokens? (Singhal et al. 2023: a length-only reward reproduces much of
RLHF's gains.)

- correlation (Pearson and Spearman) between reward and response length, in tokens and in characters, over every
  scored response;
- accuracy on decisive pairs whose favoured response is the longer one vs the shorter one (a length-biased RM is
  right on the first and wrong on the second);
- `length_only_accuracy`: the accuracy of an "RM" whose reward is the token count (equal lengths count half): how
  much of the data length alone decides; and `rm_prefers_longer`: how often this RM gives the longer response of
  a pair the higher reward;
- mean reward per length decile, for the plot.

Pair lengths are compared in tokens; pairs of equal length are left out of the split and counted.
"""

from __future__ import annotations

import numpy as np

from rewardkit.evaluation.pairwise import outcomes
from rewardkit.evaluation.scored import ScoredDataset


def ranks(values: np.ndarray) -> np.ndarray:
    """Ranks 0..n-1 with tied values sharing their mean rank (what Spearman's rho needs)."""
    values = np.asarray(values)
    order = np.argsort(values, kind="mergesort")
    positions = np.empty(len(values), dtype=np.float64)
    positions[order] = np.arange(len(values))
    _, tie_group = np.unique(values, return_inverse=True)
    return (np.bincount(tie_group, weights=positions) / np.bincount(tie_group))[tie_group]


def pearson(x: np.ndarray, y: np.ndarray) -> float:
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if len(x) < 2 or x.std() == 0 or y.std() == 0:
        return float("nan")
    return float(np.corrcoef(x, y)[0, 1])


def spearman(x: np.ndarray, y: np.ndarray) -> float:
    return pearson(ranks(x), ranks(y))


def _mean(values: np.ndarray) -> float:
    return float(values.mean()) if len(values) else float("nan")


def length_bias(scored: ScoredDataset, num_bins: int = 10) -> dict:
    rewards, tokens, characters = scored.response_values()
    pairs = scored.pairs()
    decisive = pairs.decisive
    longer = pairs.tokens_better > pairs.tokens_worse
    shorter = pairs.tokens_better < pairs.tokens_worse
    outcome = pairs.outcome
    # The RM "prefers the longer" when the longer response gets the higher reward (equal rewards count half).
    longer_reward = np.where(longer, pairs.difference, -pairs.difference)
    unequal = decisive & (longer | shorter)

    edges = np.unique(np.quantile(tokens, np.linspace(0, 1, num_bins + 1))) if len(tokens) else np.array([])
    bins = []
    for low, high in zip(edges[:-1], edges[1:], strict=True):
        mask = (tokens >= low) & ((tokens < high) | (high == edges[-1]))
        if mask.any():
            bins.append({"tokens_low": float(low), "tokens_high": float(high),
                         "mean_reward": float(rewards[mask].mean()), "count": int(mask.sum())})
    return {
        "pearson_tokens": pearson(rewards, tokens),
        "spearman_tokens": spearman(rewards, tokens),
        "pearson_characters": pearson(rewards, characters),
        "spearman_characters": spearman(rewards, characters),
        "accuracy_chosen_longer": _mean(outcome[decisive & longer]),
        "accuracy_chosen_shorter": _mean(outcome[decisive & shorter]),
        "num_chosen_longer": int((decisive & longer).sum()),
        "num_chosen_shorter": int((decisive & shorter).sum()),
        "num_equal_length": int((decisive & ~longer & ~shorter).sum()),
        "length_only_accuracy": _mean(outcomes(pairs.tokens_better - pairs.tokens_worse)[decisive]),
        "rm_prefers_longer": _mean(outcomes(longer_reward[unequal])),
        "reward_by_length": bins,
    }
