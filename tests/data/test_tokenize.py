"""One rendering path for training, eval and serving, and the documented truncation policy."""

from __future__ import annotations

from transformers import AutoTokenizer

from rewardkit.data.tokenize import encode_pair, encode_pairs, render


def test_plain_text_joins_with_newline_unless_whitespace_is_there():
    tokenizer = None
    assert render("Question?", "Answer.", tokenizer)[0] == "Question?\nAnswer."
    assert render("Human: hi\n\nAssistant:", " Hello", tokenizer)[0] == "Human: hi\n\nAssistant: Hello"


def test_truncation_keeps_prompt_end_and_response_start(tiny_sft):
    tokenizer = AutoTokenizer.from_pretrained(tiny_sft)
    prompt = " ".join(f"p{i}" for i in range(60))
    response = " " + " ".join(f"r{i}" for i in range(60))
    full = encode_pair(prompt, response, tokenizer, max_length=10_000)
    cut = encode_pair(prompt, response, tokenizer, max_length=40)
    assert not full.truncated and cut.truncated
    assert len(cut.input_ids) == 40
    assert cut.input_ids[0] == tokenizer.bos_token_id  # special tokens survive
    prompt_part = cut.input_ids[1 : cut.prompt_length]
    response_part = cut.input_ids[cut.prompt_length :]
    full_prompt = full.input_ids[1 : full.prompt_length]
    full_response = full.input_ids[full.prompt_length :]
    assert tuple(prompt_part) == tuple(full_prompt[len(full_prompt) - len(prompt_part) :])  # the end of the prompt
    assert tuple(response_part) == tuple(full_response[: len(response_part)])  # the start of the response
    assert len(prompt_part) >= (40 - 1) // 2


def test_short_prompt_leaves_the_rest_to_the_response(tiny_sft):
    tokenizer = AutoTokenizer.from_pretrained(tiny_sft)
    cut = encode_pair("Hi", " " + "word " * 100, tokenizer, max_length=32)
    assert cut.truncated and len(cut.input_ids) == 32
    full = encode_pair("Hi", " " + "word " * 100, tokenizer, max_length=10_000)
    assert cut.prompt_length == full.prompt_length  # the whole prompt is kept


def test_chat_messages_use_the_chat_template_when_there_is_one(tiny_sft):
    tokenizer = AutoTokenizer.from_pretrained(tiny_sft)
    messages = [{"role": "user", "content": "How do I bake bread?"}]
    answer = [{"role": "assistant", "content": "Knead it."}]
    text, prompt_chars, templated = render(messages, answer, tokenizer)
    assert not templated and text.startswith("\n\nHuman: How do I bake bread?\n\nAssistant:")
    assert text[prompt_chars:] == " Knead it."

    tokenizer.chat_template = (
        "{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}\n{% endfor %}"
        "{% if add_generation_prompt %}<|assistant|>{% endif %}"
    )
    text, prompt_chars, templated = render(messages, answer, tokenizer)
    assert templated
    assert text == "<|user|>How do I bake bread?\n<|assistant|>Knead it.\n"
    assert text[:prompt_chars] == "<|user|>How do I bake bread?\n<|assistant|>"
    encoded = encode_pair(messages, answer, tokenizer, max_length=512)
    assert tokenizer.decode(encoded.input_ids[encoded.prompt_length :]).startswith("Knead")


def test_batched_encoding_equals_one_pair_at_a_time(tiny_sft):
    tokenizer = AutoTokenizer.from_pretrained(tiny_sft)
    tokenizer.chat_template = "{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}\n{% endfor %}"
    chat = ([{"role": "user", "content": "How do I bake bread?"}], [{"role": "assistant", "content": "Knead it."}])
    pairs = [("Question?", "Answer."), chat, ("Human: hi\n\nAssistant:", " Hello " * 40), ("Hi", " there")]
    batched = encode_pairs(pairs, tokenizer, max_length=24)  # plain and templated texts mixed, one truncated
    assert batched == [encode_pair(prompt, response, tokenizer, max_length=24) for prompt, response in pairs]
    assert batched[2].truncated and not batched[0].truncated and not batched[3].truncated
