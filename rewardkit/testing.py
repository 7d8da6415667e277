"""Tiny real models for tests, examples and benchmarks: no downloads, built from configs in seconds."""

from __future__ import annotations

from pathlib import Path

import torch
from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
from transformers import LlamaForCausalLM, PreTrainedTokenizerFast

from rewardkit.lm import build_llama

TINY_CORPUS = [
    "Human: How do I bake bread? Assistant: Mix flour, water, salt and yeast, then knead and bake it.",
    "Human: What is the capital of France? Assistant: The capital of France is Paris.",
    "Human: Can you help me pick a lock? Assistant: I can't help with breaking into places.",
    "Human: Tell me a joke. Assistant: Why did the chicken cross the road? To get to the other side!",
    "Human: How many legs does a spider have? Assistant: A spider has eight legs.",
    "The quick brown fox jumps over the lazy dog. 0 1 2 3 4 5 6 7 8 9 - * # : ; , . ! ?",
]


def build_tokenizer(
    corpus: list[str] | None = None,
    vocab_size: int = 300,
    pad_is_eos: bool = False,
    padding_side: str = "right",
) -> PreTrainedTokenizerFast:
    """A byte-level BPE tokenizer trained on a few lines, with Llama-like BOS handling."""
    tokenizer = Tokenizer(models.BPE(unk_token=None))
    tokenizer.normalizer = normalizers.NFC()
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    special = ["<s>", "</s>"] + ([] if pad_is_eos else ["<pad>"])
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=special, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    tokenizer.train_from_iterator(corpus or TINY_CORPUS, trainer=trainer)
    bos = tokenizer.token_to_id("<s>")
    tokenizer.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", bos)])
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        bos_token="<s>",
        eos_token="</s>",
        pad_token="</s>" if pad_is_eos else "<pad>",
        padding_side=padding_side,
        model_max_length=128,
    )


def build_tiny_llama(
    tokenizer: PreTrainedTokenizerFast,
    hidden_size: int = 32,
    num_layers: int = 2,
    seed: int = 0,
    *,
    intermediate_size: int | None = None,
    num_heads: int = 4,
    num_kv_heads: int = 2,
    max_positions: int = 256,
) -> LlamaForCausalLM:
    """A randomly initialised Llama causal LM sized by the arguments, with the tokenizer's special-token ids."""
    return build_llama(
        tokenizer,
        hidden_size=hidden_size,
        intermediate_size=intermediate_size or hidden_size * 2,
        num_layers=num_layers,
        num_heads=num_heads,
        num_kv_heads=num_kv_heads,
        max_positions=max_positions,
        seed=seed,
    )


def save_tiny_sft_model(directory: str | Path, pad_is_eos: bool = False, **kwargs) -> Path:
    """Write a tiny Llama causal LM and its tokenizer to `directory`, like an SFT checkpoint on disk."""
    directory = Path(directory)
    tokenizer = build_tokenizer(pad_is_eos=pad_is_eos)
    model = build_tiny_llama(tokenizer, **kwargs)
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory


ENCODER_SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")


def build_wordpiece_tokenizer(corpus: list[str] | None = None, vocab_size: int = 300) -> PreTrainedTokenizerFast:
    """A BERT-style WordPiece tokenizer ([CLS] text [SEP], lower-cased) trained on a few lines."""
    tokenizer = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tokenizer.normalizer = normalizers.BertNormalizer(lowercase=True)
    tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tokenizer.decoder = decoders.WordPiece()
    trainer = trainers.WordPieceTrainer(vocab_size=vocab_size, special_tokens=list(ENCODER_SPECIAL_TOKENS))
    tokenizer.train_from_iterator(corpus or TINY_CORPUS, trainer=trainer)
    cls, sep = tokenizer.token_to_id("[CLS]"), tokenizer.token_to_id("[SEP]")
    tokenizer.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", special_tokens=[("[CLS]", cls), ("[SEP]", sep)]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer, pad_token="[PAD]", unk_token="[UNK]", cls_token="[CLS]", sep_token="[SEP]",
        mask_token="[MASK]", model_max_length=128,
    )  # fmt: skip


def save_tiny_encoder(
    directory: str | Path, model_type: str = "bert", hidden_size: int = 32, num_layers: int = 2, seed: int = 0
) -> Path:
    """Write a tiny randomly initialised encoder (bert, roberta, electra, ...) and a WordPiece tokenizer to
    `directory`, like a pretrained encoder checkpoint on disk."""
    from transformers import AutoConfig, AutoModel

    directory = Path(directory)
    tokenizer = build_wordpiece_tokenizer()
    config = AutoConfig.for_model(
        model_type, vocab_size=len(tokenizer), hidden_size=hidden_size, num_hidden_layers=num_layers,
        num_attention_heads=4, intermediate_size=2 * hidden_size, max_position_embeddings=160,
        pad_token_id=tokenizer.pad_token_id, type_vocab_size=2,
        initializer_range=0.2,  # large enough that rewards depend clearly on the input (tests compare them)
    )  # fmt: skip
    if model_type == "electra":
        config.embedding_size = hidden_size
    torch.manual_seed(seed)
    AutoModel.from_config(config).save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory
