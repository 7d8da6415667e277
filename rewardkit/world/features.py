"""Surface features of a response that labellers notice and the gold reward does not value.

Logged during optimization to watch reward hacking: a policy exploiting the labellers' (and so the reward
model's) biases grows longer and more list-formatted while the gold reward stalls or falls.
"""

from __future__ import annotations

from rewardkit.world.vocab import MARKERS

_MARKERS = frozenset(MARKERS)


def response_length(responses: list[str]) -> list[int]:
    """Length of each response in words (list markers included: a reader has to read them too)."""
    return [len(r.split()) for r in responses]


def format_rate(responses: list[str]) -> list[float]:
    """Share of each response's words that are list markers ("-" or "*"); 0.0 for an empty response."""
    rates = []
    for r in responses:
        words = r.split()
        rates.append(sum(w in _MARKERS for w in words) / len(words) if words else 0.0)
    return rates
