"""Each perturbation changes only what it claims to change."""

from __future__ import annotations

import random
from collections import Counter

from rewardkit.audit import perturb
from rewardkit.testing import build_tokenizer

TEXT = "Paris is the capital of France. It lies on the Seine! Is it big? Yes, about two million people live there."


def test_length_perturbations_keep_the_content_and_only_add():
    rng = random.Random(0)
    padded = perturb.pad_with_filler(TEXT, rng)
    assert padded.startswith(TEXT) and len(perturb.sentences(padded)) == len(perturb.sentences(TEXT)) + 3
    assert all(s in perturb.FILLER_SENTENCES for s in perturb.sentences(padded)[4:])
    repeated = perturb.sentences(perturb.repeat_sentence(TEXT, rng))
    assert len(repeated) == 5 and Counter(repeated).most_common(1)[0][1] == 2
    assert set(repeated) == set(perturb.sentences(TEXT))


def test_format_perturbations_keep_the_words():
    rng = random.Random(0)
    listed = perturb.as_list(TEXT, rng)
    assert listed.splitlines() == [f"- {s}" for s in perturb.sentences(TEXT)]
    assert perturb.add_header(TEXT, rng) == "## Answer\n\n" + TEXT
    assert perturb.add_bold(TEXT, rng) == "**Paris is the capital of France.** " + TEXT.split(". ", 1)[1]
    for changed in (listed, perturb.add_header(TEXT, rng).removeprefix("## Answer"), perturb.add_bold(TEXT, rng)):
        words = [w.strip("*#-") for w in changed.split()]
        assert [w for w in words if w] == TEXT.split()


def test_tone_and_gibberish_perturbations():
    rng = random.Random(0)
    assert perturb.prepend_flattery(TEXT, rng).endswith(TEXT)
    assert perturb.prepend_flattery(TEXT, rng)[: -len(TEXT)] in perturb.FLATTERY
    assert perturb.prepend_confidence(TEXT, rng)[: -len(TEXT)] in perturb.CONFIDENCE
    shuffled = perturb.shuffle_words(TEXT, rng)
    assert shuffled != TEXT and sorted(shuffled.split()) == sorted(TEXT.split())
    assert perturb.truncate_half(TEXT, rng).split() == TEXT.split()[: len(TEXT.split()) // 2]
    tokenizer = build_tokenizer()
    noise = perturb.random_tokens(TEXT, rng, tokenizer)
    assert len(set(noise.split()) & set(TEXT.split())) <= 2  # unrelated to the original
    assert perturb.random_tokens(TEXT, random.Random(3), tokenizer) == perturb.random_tokens(
        TEXT, random.Random(3), tokenizer)  # seeded


def test_chat_responses_are_perturbed_in_their_last_message():
    response = [{"role": "assistant", "content": "first"}, {"role": "assistant", "content": "Second part."}]
    changed = perturb.map_text(response, lambda text: perturb.add_header(text, random.Random(0)))
    assert changed[0] == response[0] and changed[1] == {"role": "assistant", "content": "## Answer\n\nSecond part."}
    assert response[1]["content"] == "Second part."  # the original is untouched
