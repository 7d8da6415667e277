"""Simulated human labellers: noisy, and biased towards long and list-formatted responses.

A labeller ranks K responses to a prompt by a Plackett-Luce draw on the utility

    u(x, y) = g(x, y) + length_bias * response_length(y) + format_bias * format_rate(y)

i.e. it sorts u / temperature + Gumbel noise (the Gumbel-max trick samples Plackett-Luce exactly). Every pair
inside such a ranking then follows Bradley-Terry: P(y_i above y_j) = sigmoid((u_i - u_j) / temperature).

The gold reward g does not value length or format; the biases are the human-like part (Singhal et al. 2023)
that a reward model trained on these labels will learn, and that a policy optimized against it can exploit.

Why reward hacking can emerge (it is not scripted): the SFT policy's mean length sits a little below L*, so
within its samples longer is usually better for gold too, and a reward model learns "longer and more markers
score higher" from these labels. Nothing in the labels shows that very long or marker-heavy responses are bad
(the labellers' own optimum is only ~2 words past L*, and the SFT policy rarely goes there), so a policy
pushed far enough against the reward model grows length and format while gold first rises, then falls.

The temperature sets how often two independent labellers agree. InstructGPT's training labellers agreed on
72.6 +- 1.5% of pairs; `calibrate_temperature` finds the temperature that gives a target agreement on a sample
(bisection on the exact expected agreement), `pairwise_agreement` measures it by drawing two labellers.
"""

from __future__ import annotations

import numpy as np

from rewardkit.world.features import format_rate, response_length
from rewardkit.world.world import World

INSTRUCTGPT_AGREEMENT = 0.726
# Calibrated on samples of the default SFT policy (default WorldConfig/SFTConfig, 2,000 prompts x K = 4..9);
# `collect_rankings` recalibrates on the very responses it labels unless given a labeller.
DEFAULT_TEMPERATURE = 0.53  # expected agreement 0.724 on SFT samples, 0.736 on demonstrations
DEFAULT_LENGTH_BIAS = 0.08  # utility per word: +0.8 for ten more words
DEFAULT_FORMAT_BIAS = 1.5  # utility per unit of format rate; a typical list has rate ~0.25

Group = tuple[str, list[str]]  # a prompt and its K responses


def utilities(
    world: World, prompt: str, responses: list[str], length_bias: float, format_bias: float
) -> np.ndarray:
    """Noise-free labeller utility u of each response (raw gold plus the biases)."""
    gold = world.gold_reward([prompt] * len(responses), responses, centred=False).double().numpy()
    length, fmt = np.array(response_length(responses)), np.array(format_rate(responses))
    return gold + length_bias * length + format_bias * fmt


class Labeller:
    """One simulated labeller with its own noise stream: `rank` gives indices best first."""

    def __init__(
        self,
        world: World,
        temperature: float = DEFAULT_TEMPERATURE,
        length_bias: float = DEFAULT_LENGTH_BIAS,
        format_bias: float = DEFAULT_FORMAT_BIAS,
        seed: int = 0,
    ):
        assert temperature > 0, "temperature must be positive (a noise-free labeller is `utilities`)"
        self.world, self.temperature = world, temperature
        self.length_bias, self.format_bias = length_bias, format_bias
        self.rng = np.random.default_rng([world.config.seed, 100, seed])

    @classmethod
    def calibrated(
        cls,
        world: World,
        groups: list[Group],
        target: float = INSTRUCTGPT_AGREEMENT,
        length_bias: float = DEFAULT_LENGTH_BIAS,
        format_bias: float = DEFAULT_FORMAT_BIAS,
        seed: int = 0,
    ) -> Labeller:
        """A labeller whose temperature makes two independent copies agree on `target` of `groups`' pairs."""
        temperature = calibrate_temperature(world, groups, target, length_bias, format_bias)
        return cls(world, temperature, length_bias, format_bias, seed)

    def utility(self, prompt: str, responses: list[str]) -> np.ndarray:
        return utilities(self.world, prompt, responses, self.length_bias, self.format_bias)

    def preference_prob(self, prompt: str, a: str, b: str) -> float:
        """P(this labeller ranks `a` above `b`) under Bradley-Terry."""
        return float(self.preference_matrix(prompt, [a, b])[0, 1])

    def preference_matrix(self, prompt: str, responses: list[str]) -> np.ndarray:
        """[K, K]: entry (i, j) is P(this labeller ranks response i above response j) = sigmoid((u_i - u_j) / T)."""
        u = self.utility(prompt, responses)
        return 1.0 / (1.0 + np.exp(-(u[:, None] - u[None, :]) / self.temperature))

    def rank(self, prompt: str, responses: list[str]) -> list[int]:
        """A Plackett-Luce draw: indices of `responses`, best first."""
        noisy = self.utility(prompt, responses) / self.temperature + self.rng.gumbel(size=len(responses))
        return [int(i) for i in np.argsort(-noisy, kind="stable")]


def _agree_pairs(rank_a: list[int], rank_b: list[int]) -> tuple[int, int]:
    pos_a, pos_b = np.argsort(rank_a), np.argsort(rank_b)  # response index -> position
    i, j = np.triu_indices(len(rank_a), k=1)
    same = (pos_a[i] < pos_a[j]) == (pos_b[i] < pos_b[j])
    return int(same.sum()), len(i)


def pairwise_agreement(labeller_a: Labeller, labeller_b: Labeller, groups: list[Group]) -> float:
    """Share of response pairs that two labellers order the same way, each ranking every group once."""
    agree = total = 0
    for prompt, responses in groups:
        a, t = _agree_pairs(labeller_a.rank(prompt, responses), labeller_b.rank(prompt, responses))
        agree, total = agree + a, total + t
    return agree / total


def _pair_gaps(world: World, groups: list[Group], length_bias: float, format_bias: float) -> np.ndarray:
    gaps = []
    for prompt, responses in groups:
        u = utilities(world, prompt, responses, length_bias, format_bias)
        i, j = np.triu_indices(len(responses), k=1)
        gaps.append(np.abs(u[i] - u[j]))
    return np.concatenate(gaps)


def expected_agreement(
    world: World,
    groups: list[Group],
    temperature: float,
    length_bias: float = DEFAULT_LENGTH_BIAS,
    format_bias: float = DEFAULT_FORMAT_BIAS,
) -> float:
    """Exact expected agreement of two independent labellers: mean over pairs of p^2 + (1 - p)^2."""
    p = 1.0 / (1.0 + np.exp(-_pair_gaps(world, groups, length_bias, format_bias) / temperature))
    return float(np.mean(p**2 + (1 - p) ** 2))


def calibrate_temperature(
    world: World,
    groups: list[Group],
    target: float = INSTRUCTGPT_AGREEMENT,
    length_bias: float = DEFAULT_LENGTH_BIAS,
    format_bias: float = DEFAULT_FORMAT_BIAS,
    iters: int = 50,
) -> float:
    """Temperature at which two independent labellers agree on `target` of `groups`' pairs (bisection)."""
    gaps = _pair_gaps(world, groups, length_bias, format_bias)
    assert 0.5 < target < 1.0, "agreement of two noisy labellers lies in (0.5, 1)"
    assert gaps.max() > 0, "all responses have equal utility: no temperature reaches the target"

    def agreement(t: float) -> float:
        p = 1.0 / (1.0 + np.exp(-gaps / t))
        return float(np.mean(p**2 + (1 - p) ** 2))

    lo, hi = -8.0, 8.0  # log temperature; agreement falls as temperature rises
    for _ in range(iters):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if agreement(float(np.exp(mid))) > target else (lo, mid)
    return float(np.exp((lo + hi) / 2))
