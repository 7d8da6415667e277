"""Token ids of (prompt, response) for a *policy*: the reward model's rendering plus the closing <eos>.

The text goes through `encode_pair`, the one rendering path of training, evaluation and serving (in the demo
world the rankings' prompts are already `format_prompt`-ed, so this is exactly the policy's sampling input
followed by its response). A plain-text response then gets the tokenizer's <eos>: a sampled response ends with
<eos> (stopping is an action), so log pi(y|x) includes it, as in the KL and PPO code. Chat templates close the
assistant turn themselves, and a truncated response has no end to mark.
"""

from __future__ import annotations

from transformers import PreTrainedTokenizerBase

from rewardkit.data.collate import EncodedDataset, EncodedGroup, encode_dataset
from rewardkit.data.records import PreferenceDataset, Text
from rewardkit.data.tokenize import EncodedSequence, encode_pair


def encode_for_policy(
    prompt: Text, response: Text, tokenizer: PreTrainedTokenizerBase, max_length: int, append_eos: bool = True
) -> EncodedSequence:
    encoded = encode_pair(prompt, response, tokenizer, max_length - 1 if append_eos else max_length)
    return _close(encoded, tokenizer, append_eos and _plain(prompt, response))


def encode_preferences_for_policy(
    dataset: PreferenceDataset, tokenizer: PreTrainedTokenizerBase, max_length: int, append_eos: bool = True
) -> EncodedDataset:
    """`encode_dataset` for a policy: every response of every group, with <eos> (see the module docstring)."""
    encoded = encode_dataset(dataset, tokenizer, max_length - 1 if append_eos else max_length)
    groups = [
        EncodedGroup(
            tuple(_close(sequence, tokenizer, append_eos and _plain(group.prompt, response))
                  for sequence, response in zip(encoded_group.sequences, group.responses, strict=True)),
            encoded_group.comparisons,
            encoded_group.source,
        )
        for encoded_group, group in zip(encoded.groups, dataset.groups, strict=True)
    ]
    return EncodedDataset(groups, encoded.num_sequences, encoded.num_truncated)


def _plain(prompt: Text, response: Text) -> bool:
    return isinstance(prompt, str) and isinstance(response, str)


def _close(sequence: EncodedSequence, tokenizer: PreTrainedTokenizerBase, add_eos: bool) -> EncodedSequence:
    eos = tokenizer.eos_token_id
    if not add_eos or eos is None or sequence.truncated or sequence.input_ids[-1] == eos:
        return sequence
    return EncodedSequence(sequence.input_ids + (eos,), sequence.prompt_length, False)
