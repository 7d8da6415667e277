"""Active selection: put the items a reward-model ensemble disagrees on most at the front of the queue.

For an item's K responses each member m gives rewards r_m; for every pair (i, j) the member's preference
probability is p_m = sigmoid(r_mi - r_mj). The item's disagreement is the standard deviation of p_m over members,
averaged over its C(K,2) pairs: high where the members would train on the item in different directions, which is
where a label is expected to teach the ensemble most (query by committee, Seung et al. 1992).
"""

from __future__ import annotations

from itertools import combinations
from typing import Any

import numpy as np

from rewardkit.label.store import LabelStore


def pair_disagreement(member_rewards: np.ndarray) -> float:
    """[members, K] rewards -> mean over response pairs of the std over members of sigmoid(r_i - r_j)."""
    rewards = np.asarray(member_rewards, dtype=np.float64)
    i, j = np.array(list(combinations(range(rewards.shape[1]), 2))).T
    probabilities = 1.0 / (1.0 + np.exp(-(rewards[:, i] - rewards[:, j])))
    return float(probabilities.std(axis=0).mean())


def disagreement_priorities(store: LabelStore, project: str, ensemble: Any, batch_size: int = 32) -> dict[int, float]:
    """Score the open items (fewer rankings than wanted) with `ensemble` (a `RewardEnsemble` or its directory) and
    set each one's queue priority to its disagreement; returns {item id: disagreement}."""
    from rewardkit.ensemble import RewardEnsemble

    if not isinstance(ensemble, RewardEnsemble):
        ensemble = RewardEnsemble.from_pretrained(ensemble)
    items = [item for item in store.items(project) if item.completed < item.target]
    if not items:
        return {}
    prompts = [item.prompt for item in items for _ in item.responses]
    responses = [response for item in items for response in item.responses]
    members = ensemble.score(prompts, responses, batch_size=batch_size, return_details=True).member_rewards.numpy()
    priorities, start = {}, 0
    for item in items:
        priorities[item.id] = pair_disagreement(members[:, start:start + len(item.responses)])
        start += len(item.responses)
    store.set_priorities(project, priorities)
    return priorities
