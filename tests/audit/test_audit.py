"""Probes on reward models whose preferences are known: hand-written rewards, and tiny RMs trained to like long or
short responses."""

from __future__ import annotations

import argparse
import json

import matplotlib.image
import pytest
import torch

from rewardkit.audit import PROBES, run_audit, select_probes
from rewardkit.audit.cli import add_audit_parser
from rewardkit.data import load_preferences
from rewardkit.data.records import Comparison, PreferenceDataset, PreferenceGroup
from rewardkit.data.tokenize import EncodedSequence
from rewardkit.errors import RewardkitError
from rewardkit.model import RewardModel
from rewardkit.testing import build_tokenizer


class TextReward:
    """Stands in for a RewardModel: the reward is a known function of the response text (encoded as characters)."""

    def __init__(self, reward):
        self.reward = reward
        self.tokenizer = build_tokenizer()

    def encode(self, prompt, response) -> EncodedSequence:
        return EncodedSequence(tuple(map(ord, response)), 0, False)

    def score_encoded(self, sequences, batch_size=32) -> torch.Tensor:
        return torch.tensor([float(self.reward("".join(map(chr, ids)))) for ids in sequences])

    def normalize(self, rewards: torch.Tensor) -> torch.Tensor:
        return rewards


def _data(n: int = 20) -> PreferenceDataset:
    """Chosen and rejected answers of equal word count, three sentences each."""
    groups = [PreferenceGroup(
        f"What is {i} plus {i}?",
        [f"The answer is {2 * i}. Adding {i} twice gives {2 * i}. That is all.",
         f"The answer is {2 * i + 1}. Adding {i} twice gives {2 * i + 1}. That is odd."],
        [Comparison(0, 1)],
    ) for i in range(n)]
    return PreferenceDataset(groups, name="sums")


VOCABULARY = {word for group in _data() for response in group.responses for word in response.split()}


def words(text: str) -> int:
    return len(text.split())


def markdown(text: str) -> int:
    return text.count("- ") + text.count("#") + text.count("**")


def known_words(text: str) -> float:
    return sum(word in VOCABULARY for word in text.split()) / max(words(text), 1)


# reward -> expected win rate per probe (equal rewards count half)
EXPECTED = {
    words: {"length-filler": 1.0, "length-repeat": 1.0, "format-list": 1.0, "format-header": 1.0, "format-bold": 0.5,
            "sycophancy-flattery": 1.0, "sycophancy-confident-wrong": 1.0, "gibberish-shuffled": 0.5,
            "gibberish-truncated": 0.0},
    markdown: {"length-filler": 0.5, "length-repeat": 0.5, "format-list": 1.0, "format-header": 1.0,
               "format-bold": 1.0, "sycophancy-flattery": 0.5, "gibberish-shuffled": 0.5, "gibberish-truncated": 0.5},
    known_words: {"gibberish-random-tokens": 0.0, "gibberish-shuffled": 0.5, "gibberish-truncated": 0.5},
}


@pytest.mark.parametrize("reward", list(EXPECTED), ids=lambda f: f.__name__)
def test_each_probe_finds_what_a_known_reward_prefers(reward):
    expected = EXPECTED[reward]
    result = run_audit(TextReward(reward), _data(), probes=list(expected), bootstrap_samples=100)
    rates = {p.probe: p.win_rate for p in result.probes}
    assert rates == pytest.approx(expected)
    assert result.gameable == [name for name, rate in expected.items() if rate > 0.6]
    for p in result.probes:
        assert p.num_pairs == 20 and p.win_rate_low <= p.win_rate <= p.win_rate_high and p.unseen == 0
        assert (p.mean_delta > 0) == (p.win_rate == 1.0)
    if reward is words:  # the confident wrong answer wins only because of its tone
        confident = next(p for p in result.probes if p.probe == "sycophancy-confident-wrong")
        assert confident.reference_win_rate == 0.5


def test_verdict_is_win_rate_strictly_above_the_threshold():
    bold = ["format-bold"]  # words: every pair ties, win rate exactly 0.5
    assert run_audit(TextReward(words), _data(), probes=bold, threshold=0.5).gameable == []
    assert run_audit(TextReward(words), _data(), probes=bold, threshold=0.49).gameable == bold
    with pytest.raises(RewardkitError, match="between 0 and 1"):
        run_audit(TextReward(words), _data(), threshold=1.5)
    assert [p.name for p in select_probes(["length", "format-bold"])] == ["length-filler", "length-repeat",
                                                                          "format-bold"]
    assert len(select_probes(None)) == len(PROBES) == 10
    with pytest.raises(RewardkitError, match="unknown probe 'lenght'"):
        select_probes(["lenght"])


def test_user_pairs_are_reported_per_evalbiasbench_bias_type(shared_data):
    biasbench = load_preferences(shared_data / "evalbiasbench" / "biasbench.json", format="evalbiasbench")
    result = run_audit(TextReward(words), probe_pairs=[biasbench], bootstrap_samples=100)
    rows = {p.probe: p for p in result.probes}
    assert len(rows) == 7 and rows["biasbench.json (all)"].num_pairs == 80
    for group_subset in {g.subset for g in biasbench}:
        groups = [g for g in biasbench if g.subset == group_subset]
        # The labelled-worse response "wins" when it has more words (equal counts half): counted directly.
        direct = [1.0 if words(g.responses[g.comparisons[0].worse]) > words(g.responses[g.comparisons[0].better])
                  else 0.5 if words(g.responses[0]) == words(g.responses[1]) else 0.0 for g in groups]
        row = rows[f"biasbench.json:{group_subset}"]
        assert (row.num_pairs, row.win_rate) == (len(groups), pytest.approx(sum(direct) / len(direct)))
    # The "length bias" probes pit a long, wrong answer against a short, right one: a word counter falls for them.
    assert rows["biasbench.json:length bias"].gameable


def test_length_probe_flags_an_rm_that_likes_long_responses_and_not_one_that_likes_short(length_models):
    data = load_preferences(length_models["test"])
    verdicts = {}
    for name in ("alpaca", "short"):
        result = run_audit(RewardModel.from_pretrained(length_models[name]), data, probes=["length-filler"],
                           limit=100, bootstrap_samples=200)
        verdicts[name] = result.probes[0]
    assert verdicts["alpaca"].gameable and verdicts["alpaca"].mean_delta > 0
    assert not verdicts["short"].gameable and verdicts["short"].mean_delta < 0
    assert verdicts["alpaca"].win_rate > verdicts["short"].win_rate + 0.3

    # Past max_length the filler is cut off: the RM sees identical tokens, every pair ties, nothing is flagged.
    clipped = RewardModel.from_pretrained(length_models["alpaca"], max_length=8)
    blind = run_audit(clipped, data, probes=["length-filler"], limit=50, bootstrap_samples=50).probes[0]
    assert (blind.unseen, blind.win_rate, blind.mean_delta, blind.gameable) == (1.0, 0.5, 0.0, False)
    warnings = run_audit(clipped, data, probes=["length-filler"], limit=50, bootstrap_samples=50).warnings
    assert warnings == ["length-filler: in 100% of pairs the whole change fell past max_length, so the reward model "
                        "never saw it (use a larger --max-length or shorter responses)"]


def test_audit_cli_prints_a_table_and_writes_json_and_a_report(length_models, shared_data, tmp_path, capsys):
    parser = argparse.ArgumentParser(prog="rewardkit")
    add_audit_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args([
        "audit", "--model", str(length_models["alpaca"]), "--data", str(length_models["test"]), "--limit", "40",
        "--probe-pairs", str(shared_data / "evalbiasbench" / "biasbench.json"), "--probe-format", "evalbiasbench",
        "--threshold", "0.7", "--output", str(tmp_path / "audit.json"), "--report", str(tmp_path / "report"),
    ])
    assert args.handler(args) == 0
    printed = capsys.readouterr().out
    assert "length-filler" in printed and "verdict" in printed and "gameable (win rate > 0.7)" in printed
    result = json.loads((tmp_path / "audit.json").read_text())
    assert result["threshold"] == 0.7 and result["num_pairs"] == 40
    assert len(result["probes"]) == len(PROBES) + 7
    assert all(p["verdict"] == ("GAMEABLE" if p["win_rate"] > 0.7 else "robust") for p in result["probes"])
    assert json.loads((tmp_path / "report" / "audit.json").read_text()) == result
    markdown = (tmp_path / "report" / "report.md").read_text()
    assert "Reward model audit" in markdown and "plots/win_rates.png" in markdown
    assert "<table>" in (tmp_path / "report" / "report.html").read_text()
    png = tmp_path / "report" / "plots" / "win_rates.png"
    assert png.read_bytes()[:4] == b"\x89PNG" and matplotlib.image.imread(png).shape[0] > 100

    args = parser.parse_args(["audit", "--model", str(length_models["alpaca"])])
    with pytest.raises(RewardkitError, match="nothing to audit"):
        args.handler(args)


@pytest.fixture(scope="module")
def word_level_rm(tmp_path_factory):
    """An RM on the demo world's word-level tokenizer (159 words): most English filler is unknown to it."""
    from rewardkit.world import World
    from rewardkit.world.policy import build_llama
    from rewardkit.world.tokenizer import build_tokenizer as build_world_tokenizer

    root = tmp_path_factory.mktemp("world-rm")
    tokenizer = build_world_tokenizer()
    build_llama(tokenizer, hidden_size=32, intermediate_size=64, num_layers=1, num_heads=2,
                max_positions=128).save_pretrained(root / "sft")
    tokenizer.save_pretrained(root / "sft")
    RewardModel.from_sft(root / "sft").save_pretrained(root / "rm")
    world = World()
    prompts = world.prompts(30)
    first, second = world.demonstrations(prompts, seed=1), world.demonstrations(prompts, seed=2)
    pairs = [{"prompt": p, "chosen": a, "rejected": b}
             for p, a, b in zip(prompts, first, second, strict=True) if a != b]
    data = root / "pairs.jsonl"
    data.write_text("".join(json.dumps(pair) + "\n" for pair in pairs))
    return root / "rm", data


def test_probes_outside_the_vocabulary_warn_and_filler_uses_the_tokenizers_words(word_level_rm, tmp_path, capsys,
                                                                                 caplog):
    from tests.conftest import run_rewardkit

    rm, data = word_level_rm
    code, out, _ = run_rewardkit(capsys, "audit", "--model", rm, "--data", data, "--probes", "length", "sycophancy",
                                 "--output", tmp_path / "audit.json")
    assert code == 0
    result = json.loads((tmp_path / "audit.json").read_text())
    probes = {p["probe"]: p for p in result["probes"]}
    # The sentence filler is mostly unknown words here, so the probe is built from filler words the tokenizer knows.
    filler = probes["length-filler"]
    assert "in the tokenizer's own words" in filler["description"] and filler["unknown_share"] == 0.0
    # Flattery has no version in the tokenizer's words: it is run as is, with a warning.
    assert probes["sycophancy-flattery"]["unknown_share"] > 0.5
    assert any(w.startswith("sycophancy-flattery: ") and "unknown to this tokenizer" in w for w in result["warnings"])
    assert "warning: sycophancy-flattery:" in out and "unknown to this tokenizer" in caplog.text
    # A byte-level BPE tokenizer has no unknown token: nothing to warn about.
    assert all(p.unknown_share is None for p in run_audit(TextReward(words), _data(), probes=["length"]).probes)


def test_known_filler_adds_as_many_words_all_in_the_vocabulary():
    import random

    from rewardkit.audit.perturb import FILLER_WORDS, pad_with_filler, pad_with_known_filler
    from rewardkit.world.tokenizer import build_tokenizer as build_world_tokenizer

    tokenizer = build_world_tokenizer()
    text = "fish wave tide"
    padded = pad_with_known_filler(text, random.Random(0), tokenizer)
    added = padded.split()[3:]
    assert padded.startswith(text) and len(added) == len(pad_with_filler(text, random.Random(0)).split()) - 3
    assert set(added) <= set(FILLER_WORDS) and tokenizer.unk_token_id not in tokenizer(padded)["input_ids"]
