"""The task family and its gold reward: write a few words on a topic, mentioning two requested words.

A prompt names one of eight topics and two of that topic's sixteen words:

    "write about ocean and mention coral and tide"

A response is a short sequence of words, optionally formatted as a list ("- coral tide reef - whale ...").
The gold reward g(x, y) is a known function of the prompt x and the response's *content* words c (y without
its list markers), n_c = len(c), L* = `optimal_length`:

    g =  1.5 * coverage     min(#distinct on-topic words, L*) / L*     say many different relevant things
       + 1.0 * keywords     share of the two requested words mentioned  the small sub-task
       + 1.0 * topicality   (#on-topic - #other-topic words) / n_c      stay on topic
       - 1.5 * repetition   (n_c - #distinct words) / n_c               don't repeat yourself
       - 2.0 * length       ((n_c - L*) / L*) ** 2                       too short and too long both lose
       - 0.1 * #markers                                                  a marker adds nothing a reader needs

The best response has L* = 10 distinct on-topic words including both requested ones (g = 3.5). Length and list
formatting are *not* rewarded: past L* every word costs, and each marker costs 0.1. Filler words ("very",
"really", ...) are free to produce but dilute topicality and add length.

Demonstrations (what the SFT policy imitates) are good but imperfect and varied: 4-14 content words (mean 9,
a little below L*), a per-demonstration carefulness that mixes in repeats, filler and off-topic words, each
requested word mentioned with probability 0.7, and 30% formatted as a list. So SFT samples spread in length,
format and quality - room for a reward model to learn from and for a policy to exploit labeller biases
(see `labeller.py`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch

from rewardkit.world.vocab import FILLER, MARKERS, TEMPLATES, TOPICS

_MARKERS = frozenset(MARKERS)
_TOPIC_OF_WORD = {w: topic for topic, words in TOPICS.items() for w in words}

# Independent random streams, so that e.g. drawing more prompts never changes the demonstrations.
_STREAM_SPLIT, _STREAM_PROMPTS, _STREAM_DEMOS = 1, 2, 3


@dataclass
class WorldConfig:
    seed: int = 0
    test_fraction: float = 0.2  # share of all prompts held out for evaluation
    # gold reward
    optimal_length: int = 10  # L*, in content words
    coverage_weight: float = 1.5
    keyword_weight: float = 1.0
    topicality_weight: float = 1.0
    repetition_weight: float = 1.5
    length_weight: float = 2.0
    marker_cost: float = 0.1
    # demonstrations
    demo_length_range: tuple[int, int] = (4, 14)  # content words, inclusive
    demo_care_range: tuple[float, float] = (0.55, 0.95)  # P(next word is a new on-topic word)
    demo_keyword_prob: float = 0.7
    demo_list_prob: float = 0.3

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> WorldConfig:
        d = dict(d)
        for key in ("demo_length_range", "demo_care_range"):
            if key in d:
                d[key] = tuple(d[key])
        return cls(**d)


class World:
    """Prompts, demonstrations and the gold reward of one seeded world."""

    def __init__(self, config: WorldConfig | None = None):
        self.config = config or WorldConfig()
        # Gold is reported minus this offset, so that the SFT policy scores ~0 (Gao et al.); see
        # `rewardkit.world.policy.estimate_gold_offset`.
        self.gold_offset = 0.0
        all_prompts = [
            template.format(topic=topic, a=words[i], b=words[j])
            for template in TEMPLATES
            for topic, words in TOPICS.items()
            for i in range(len(words))
            for j in range(len(words))
            if i != j
        ]
        order = self._rng(_STREAM_SPLIT).permutation(len(all_prompts))
        num_test = int(round(self.config.test_fraction * len(all_prompts)))
        self._splits = {
            "test": [all_prompts[i] for i in order[:num_test]],
            "train": [all_prompts[i] for i in order[num_test:]],
        }

    def _rng(self, *keys: int) -> np.random.Generator:
        return np.random.default_rng([self.config.seed, *keys])

    # ---- prompts -------------------------------------------------------------------------------------------

    def num_prompts(self, split: str = "train") -> int:
        return len(self._splits[split])

    def prompts(self, n: int, split: str = "train", seed: int = 0) -> list[str]:
        """`n` prompts from a split, no repeats while the split lasts; deterministic in (n, split, seed)."""
        pool = self._splits[split]
        rng = self._rng(_STREAM_PROMPTS, ["train", "test"].index(split), seed)
        order = np.concatenate([rng.permutation(len(pool)) for _ in range(n // len(pool) + 1)])
        return [pool[i] for i in order[:n]]

    @staticmethod
    def parse_prompt(prompt: str) -> tuple[str, tuple[str, ...]]:
        """(topic, requested words) of a prompt: the topic name in it, and the topic's words in it."""
        words = prompt.split()
        topic = next(w for w in words if w in TOPICS)
        keywords = tuple(w for w in words if _TOPIC_OF_WORD.get(w) == topic)
        return topic, keywords

    # ---- gold reward ---------------------------------------------------------------------------------------

    def gold_terms(self, prompt: str, response: str) -> dict[str, float]:
        """The unweighted terms of g(x, y) (see the module docstring), for analysis and tests."""
        topic, keywords = self.parse_prompt(prompt)
        content = [w for w in response.split() if w not in _MARKERS]
        n, L = len(content), self.config.optimal_length
        on_topic = [w for w in content if _TOPIC_OF_WORD.get(w) == topic]
        other_topic = sum(1 for w in content if w in _TOPIC_OF_WORD and _TOPIC_OF_WORD[w] != topic)
        return {
            "coverage": min(len(set(on_topic)), L) / L,
            "keywords": sum(k in content for k in keywords) / max(len(keywords), 1),
            "topicality": (len(on_topic) - other_topic) / n if n else 0.0,
            "repetition": (n - len(set(content))) / n if n else 0.0,
            "length": ((n - L) / L) ** 2,
            "markers": float(len(response.split()) - n),
        }

    def gold_contributions(self, prompt: str, response: str) -> dict[str, float]:
        """Each term of g(x, y) with its weight and sign: they sum to the raw gold reward, so a change in gold
        splits exactly into changes in coverage, keywords, topicality, repetition, length and markers."""
        c, t = self.config, self.gold_terms(prompt, response)
        return {
            "coverage": c.coverage_weight * t["coverage"],
            "keywords": c.keyword_weight * t["keywords"],
            "topicality": c.topicality_weight * t["topicality"],
            "repetition": -c.repetition_weight * t["repetition"],
            "length": -c.length_weight * t["length"],
            "markers": -c.marker_cost * t["markers"],
        }

    def gold_score(self, prompt: str, response: str) -> float:
        """Raw (uncentred) gold reward of one response."""
        return sum(self.gold_contributions(prompt, response).values())

    def measure(self, prompts: list[str], responses: list[str]) -> dict[str, np.ndarray]:
        """What a response is made of, per response: its length in words and share of list markers, the unweighted
        gold terms (coverage, keywords, topicality, repetition) and each term's contribution to gold
        ("gold:<term>", summing to the raw gold reward)."""
        rows = []
        for prompt, response in zip(prompts, responses, strict=True):
            terms, words = self.gold_terms(prompt, response), response.split()
            row = {"length": float(len(words)), "format_rate": terms["markers"] / len(words) if words else 0.0}
            row |= {name: terms[name] for name in ("coverage", "keywords", "topicality", "repetition")}
            row |= {f"gold:{name}": value for name, value in self.gold_contributions(prompt, response).items()}
            rows.append(row)
        names = rows[0].keys() if rows else []
        return {name: np.array([row[name] for row in rows]) for name in names}

    def gold_reward(self, prompts: list[str], responses: list[str], centred: bool = True) -> torch.Tensor:
        """Gold reward of each (prompt, response), minus `gold_offset` when `centred`; float32, shape (N,)."""
        assert len(prompts) == len(responses), f"{len(prompts)} prompts but {len(responses)} responses"
        offset = self.gold_offset if centred else 0.0
        scores = [self.gold_score(p, r) - offset for p, r in zip(prompts, responses, strict=True)]
        return torch.tensor(scores, dtype=torch.float32)

    # ---- demonstrations ------------------------------------------------------------------------------------

    def demonstrations(self, prompts: list[str], seed: int = 0) -> list[str]:
        """One good-but-imperfect demonstration per prompt (seeded; see the module docstring)."""
        rng = self._rng(_STREAM_DEMOS, seed)
        return [self._demonstration(p, rng) for p in prompts]

    def _demonstration(self, prompt: str, rng: np.random.Generator) -> str:
        c = self.config
        topic, keywords = self.parse_prompt(prompt)
        topic_words = TOPICS[topic]
        other_words = [w for t, ws in TOPICS.items() if t != topic for w in ws]
        n = int(rng.integers(c.demo_length_range[0], c.demo_length_range[1] + 1))
        care = rng.uniform(*c.demo_care_range)
        content = [k for k in keywords if rng.random() < c.demo_keyword_prob][:n]
        unused = [w for w in rng.permutation(topic_words) if w not in content]
        while len(content) < n:
            u = rng.random()
            if u < care and unused:
                content.append(unused.pop())
            elif u < care + (1 - care) * 0.3 and content:  # a repeat
                content.append(content[rng.integers(len(content))])
            elif u < care + (1 - care) * 0.8:
                content.append(FILLER[rng.integers(len(FILLER))])
            else:
                content.append(other_words[rng.integers(len(other_words))])
        content = [content[i] for i in rng.permutation(len(content))]
        if rng.random() >= c.demo_list_prob:
            return " ".join(content)
        # A list: items of 2-4 words, each after the same marker.
        marker, words, i = MARKERS[rng.integers(len(MARKERS))], [], 0
        while i < len(content):
            size = int(rng.integers(2, 5))
            words += [marker] + content[i : i + size]
            i += size
        return " ".join(words)
