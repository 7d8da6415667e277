"""Tiny word-level tokenizer and Llama policies, small enough for PPO tests on 2 CPU cores."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
from tokenizers import Tokenizer, models, pre_tokenizers, processors, trainers
from transformers import LlamaForCausalLM, PreTrainedTokenizerFast

from rewardkit.testing import build_tiny_llama
from tests.conftest import single_thread_fixture

LINES = [
    "the cat sat on the mat",
    "a dog ran in the park",
    "the bird sang a happy song",
    "good food makes a happy day",
    "the red ball is big",
    "a small fish swam fast",
]
PROMPTS = ["the cat", "a dog", "the bird", "good food", "the red ball", "a small fish", "the park", "a happy"]


def make_tokenizer() -> PreTrainedTokenizerFast:
    tokenizer = Tokenizer(models.WordLevel(unk_token="<unk>"))
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    trainer = trainers.WordLevelTrainer(special_tokens=["<pad>", "<bos>", "<eos>", "<unk>"])
    tokenizer.train_from_iterator(LINES, trainer)
    tokenizer.post_processor = processors.TemplateProcessing(
        single="<bos> $A", special_tokens=[("<bos>", tokenizer.token_to_id("<bos>"))]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer, bos_token="<bos>", eos_token="<eos>", pad_token="<pad>", unk_token="<unk>"
    )


def make_policy(tokenizer: PreTrainedTokenizerFast, seed: int = 0) -> LlamaForCausalLM:
    return build_tiny_llama(tokenizer, hidden_size=32, num_heads=2, num_kv_heads=2, max_positions=64, seed=seed).eval()


single_thread = single_thread_fixture()  # tiny PPO models: threads only add contention


@pytest.fixture(scope="session")
def tokenizer() -> PreTrainedTokenizerFast:
    return make_tokenizer()


@pytest.fixture(scope="session")
def policy_factory(tokenizer: PreTrainedTokenizerFast) -> Callable[[int], LlamaForCausalLM]:
    """A fresh tiny policy per call; the same seed gives the same weights."""
    return lambda seed=0: make_policy(tokenizer, seed)


@pytest.fixture
def policy(tokenizer: PreTrainedTokenizerFast) -> LlamaForCausalLM:
    return make_policy(tokenizer)


@pytest.fixture(scope="session")
def prompts() -> list[str]:
    return list(PROMPTS)


def count_word(word: str) -> Callable[[list[str], list[str]], torch.Tensor]:
    """Toy reward with a known optimum: occurrences of `word` in the response."""

    def reward(prompts: list[str], texts: list[str]) -> torch.Tensor:
        return torch.tensor([text.split().count(word) for text in texts], dtype=torch.float)

    return reward


@pytest.fixture(scope="session")
def happy_reward() -> Callable[[list[str], list[str]], torch.Tensor]:
    return count_word("happy")
