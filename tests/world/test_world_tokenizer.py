"""The word-level tokenizer: round trips, special tokens, and a separable prompt/response format."""

from __future__ import annotations

from transformers import AutoTokenizer

from rewardkit.world import World, build_tokenizer, format_prompt
from rewardkit.world.vocab import all_words

PROMPT = "describe space including comet and orbit"
RESPONSE = "- comet orbit star - moon very galaxy"


def test_vocabulary_and_special_tokens():
    tokenizer = build_tokenizer(World())
    assert len(tokenizer) == len(all_words()) + 5
    ids = {tokenizer.pad_token_id, tokenizer.bos_token_id, tokenizer.eos_token_id, tokenizer.unk_token_id}
    assert len(ids) == 4 and None not in ids  # pad is distinct from eos
    assert tokenizer.sep_token == "<sep>"


def test_round_trip_one_token_per_word():
    tokenizer = build_tokenizer(World())
    world = World()
    for prompt, response in zip(world.prompts(20), world.demonstrations(world.prompts(20)), strict=True):
        ids = tokenizer(response, add_special_tokens=False)["input_ids"]
        assert len(ids) == len(response.split())
        assert tokenizer.unk_token_id not in ids
        assert tokenizer.decode(ids) == response
        assert tokenizer.decode(tokenizer(prompt)["input_ids"], skip_special_tokens=True) == prompt
    assert tokenizer("zebra fish")["input_ids"][1] == tokenizer.unk_token_id


def test_prompt_and_response_are_separable():
    tokenizer = build_tokenizer(World())
    prompt_ids = tokenizer(format_prompt(PROMPT))["input_ids"]
    full_ids = tokenizer(PROMPT, RESPONSE)["input_ids"]
    assert prompt_ids[0] == tokenizer.bos_token_id and prompt_ids[-1] == tokenizer.sep_token_id
    assert full_ids[: len(prompt_ids)] == prompt_ids  # the policy's input is a prefix of the whole sequence
    assert full_ids[-1] == tokenizer.eos_token_id
    assert tokenizer.decode(full_ids[len(prompt_ids) : -1]) == RESPONSE
    assert full_ids.count(tokenizer.sep_token_id) == 1
    # The chat template renders the very same sequence.
    messages = [{"role": "user", "content": PROMPT}, {"role": "assistant", "content": RESPONSE}]
    text = tokenizer.apply_chat_template(messages, tokenize=False)
    assert tokenizer(text, add_special_tokens=False)["input_ids"] == full_ids


def test_save_and_load(tmp_path):
    tokenizer = build_tokenizer(World())
    tokenizer.save_pretrained(tmp_path)
    loaded = AutoTokenizer.from_pretrained(tmp_path)
    assert loaded(PROMPT, RESPONSE)["input_ids"] == tokenizer(PROMPT, RESPONSE)["input_ids"]
    assert loaded.pad_token_id == tokenizer.pad_token_id != loaded.eos_token_id
