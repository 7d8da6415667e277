"""A word-level tokenizer for the world, wrapped as a Hugging Face fast tokenizer.

One token per word (`tokenizers` WordLevel + whitespace split). Text format, the same everywhere (SFT, reward
model training, evaluation, RL):

    <bos> prompt words <sep> response words <eos>

- `tokenizer(prompt_text)` adds <bos>; `format_prompt(prompt)` appends " <sep>": the policy's input.
- `tokenizer(prompts, responses)` (a text pair) gives the whole sequence above, <eos> included.
- `apply_chat_template([{"role": "user", ...}, {"role": "assistant", ...}])` renders the same format.
<pad> is its own token (not <eos>), so padding never hides a real end of sequence.
"""

from __future__ import annotations

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors
from transformers import PreTrainedTokenizerFast

from rewardkit.world.vocab import BOS, EOS, PAD, SEP, SPECIAL_TOKENS, UNK, all_words
from rewardkit.world.world import World

CHAT_TEMPLATE = (
    "{{ bos_token }}"
    "{% for m in messages %}"
    "{% if m['role'] == 'assistant' %}{{ ' ' + m['content'] + ' ' + eos_token }}"
    "{% else %}{{ m['content'] + ' <sep>' }}{% endif %}"
    "{% endfor %}"
)


def format_prompt(prompt: str) -> str:
    """The policy's input text for a prompt: generation continues after <sep>."""
    return f"{prompt} {SEP}"


def build_tokenizer(world: World | None = None) -> PreTrainedTokenizerFast:
    """The world's tokenizer (the vocabulary is fixed, so every world gets the same ids)."""
    return word_tokenizer(all_words())


def word_tokenizer(words: list[str]) -> PreTrainedTokenizerFast:
    """A word-level tokenizer over `words` in the format above (also the step world's, `world/steps.py`)."""
    vocab = {word: i for i, word in enumerate(list(SPECIAL_TOKENS) + words)}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token=UNK))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok.post_processor = processors.TemplateProcessing(
        single=f"{BOS} $A",
        pair=f"{BOS} $A {SEP} $B {EOS}",
        special_tokens=[(t, vocab[t]) for t in (BOS, SEP, EOS)],
    )
    tok.decoder = decoders.WordPiece(prefix="##", cleanup=False)  # joins words with single spaces
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token=BOS,
        eos_token=EOS,
        pad_token=PAD,
        unk_token=UNK,
        sep_token=SEP,
        model_max_length=128,
    )
    tokenizer.chat_template = CHAT_TEMPLATE
    return tokenizer
