"""The words of the world: eight topics with sixteen words each, filler, list markers and prompt templates.

Every word is one whitespace-separated token and belongs to exactly one group, so the gold reward can tell
what a word is by looking it up. 159 words: small enough for a tiny model to learn in seconds.
"""

from __future__ import annotations

# Topic name, then the sixteen words relevant to it. A prompt names the topic and asks for two of its words.
_TOPIC_TABLE = """
ocean:   fish wave tide coral salt whale shore reef
         boat shark sand kelp shell dolphin harbor sailor
forest:  tree leaf moss pine oak fern owl deer
         trail bark root branch mushroom wolf canopy acorn
space:   star planet orbit rocket moon comet galaxy astronaut
         gravity nebula telescope asteroid sun crater satellite cosmos
kitchen: knife pan stove oven spoon flour bread butter
         pot recipe bowl onion garlic pepper sugar kettle
music:   song melody guitar piano drum rhythm chord singer
         band violin note tempo lyric concert harmony bass
sport:   ball goal team coach match score player race
         tennis soccer medal stadium referee sprint training trophy
farm:    cow barn tractor wheat hay pig chicken egg
         field harvest farmer goat corn fence seed milk
city:    street traffic building subway park tower bridge bus
         market crowd apartment taxi mayor museum cafe skyline
"""


def _parse_topics(table: str) -> dict[str, tuple[str, ...]]:
    topics: dict[str, list[str]] = {}
    for line in table.strip().splitlines():
        if ":" in line:  # "topic: words" starts a topic, an indented line continues it
            topic, line = line.split(":")
            topics[topic] = []
        topics[topic] += line.split()
    return {topic: tuple(words) for topic, words in topics.items()}


TOPICS: dict[str, tuple[str, ...]] = _parse_topics(_TOPIC_TABLE)

# Words that carry no information: cheap padding a policy can use to grow a response.
FILLER: tuple[str, ...] = tuple("very really also just quite many some good great nice thing stuff".split())

# List markers: the surface format labellers like and the gold reward does not.
MARKERS: tuple[str, ...] = ("-", "*")

# Prompt templates: {topic} is the topic name, {a} and {b} two of its words the response should mention.
TEMPLATES: tuple[str, ...] = (
    "write about {topic} and mention {a} and {b}",
    "tell me about {topic} with {a} and {b}",
    "describe {topic} including {a} and {b}",
)
TEMPLATE_WORDS: tuple[str, ...] = tuple("write about and mention tell me with describe including".split())

PAD, BOS, EOS, UNK, SEP = "<pad>", "<bos>", "<eos>", "<unk>", "<sep>"
SPECIAL_TOKENS: tuple[str, ...] = (PAD, BOS, EOS, UNK, SEP)


def all_words() -> list[str]:
    """Every non-special word, in a fixed order (the tokenizer's ids follow it)."""
    words = list(TEMPLATE_WORDS) + list(TOPICS) + [w for ws in TOPICS.values() for w in ws]
    words += list(FILLER) + list(MARKERS)
    assert len(words) == len(set(words)), "a word must belong to exactly one group"
    return words
