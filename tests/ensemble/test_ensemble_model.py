"""Train two tiny members, save and load the ensemble, score with every aggregation, and the CLI."""

from __future__ import annotations

import json
import math

import pytest
import torch

from rewardkit.data import load_preferences
from rewardkit.data.collate import encode_dataset
from rewardkit.ensemble import EnsembleConfig, RewardEnsemble, evaluate_ensemble, train_ensemble
from rewardkit.errors import RewardkitError
from rewardkit.evaluation.pairwise import evaluate
from rewardkit.model import RewardModel
from rewardkit.training import TrainConfig
from tests.conftest import keyword_pairs, run_rewardkit, write_jsonl

PROMPTS = ["Human: Tell me about bread.\n\nAssistant:"] * 3 + ["Human: And France?\n\nAssistant:"]
RESPONSES = [" yes please, bread is nice.", " no thanks, bread is bad.", " bread", " yes please, France is nice."]
ITEMS = [{"prompt": p, "response": r} for p, r in zip(PROMPTS, RESPONSES, strict=True)]


def _config(tiny_sft, data, output, **overrides) -> TrainConfig:
    values = dict(model=str(tiny_sft), data=[str(data)], output_dir=str(output), max_length=128, batch_size=4,
                  learning_rate=3e-3, eval_fraction=0.25, max_steps=4, eval_steps=10**6, save_steps=10**6,
                  progress_bar=False)
    return TrainConfig(**{**values, **overrides})


@pytest.fixture(scope="module")
def trained(tiny_sft, tmp_path_factory):
    root = tmp_path_factory.mktemp("ensemble")
    data = write_jsonl(root / "pairs.jsonl", keyword_pairs(32))
    result = train_ensemble(_config(tiny_sft, data, root / "ens"), EnsembleConfig(2, bootstrap=True,
                                                                                   aggregate="uwo", lam=0.5))
    return root, data, result


def test_the_directory_holds_standard_members_and_a_manifest(trained):
    root, _, result = trained
    manifest = json.loads((root / "ens" / "ensemble.json").read_text())
    assert [m["path"] for m in manifest["members"]] == ["member-0", "member-1"]
    assert [m["seed"] for m in manifest["members"]] == [0, 1]
    assert manifest["bootstrap"] and manifest["aggregate"] == "uwo" and manifest["lambda"] == 0.5
    assert all(m["distinct_train_records"] < 24 for m in manifest["members"])  # 32 pairs, 8 held out
    assert manifest["eval_data"] == [str(root / "ens" / "data" / "eval.jsonl")]
    for member in manifest["members"]:
        assert RewardModel.from_pretrained(root / "ens" / member["path"]).normalization is not None
    assert len(result.member_summaries) == 2


def test_loaded_ensemble_scores_like_the_trained_one_and_like_its_members(trained):
    root, _, result = trained
    loaded = RewardEnsemble.from_pretrained(root / "ens")
    assert loaded.aggregate == "uwo" and loaded.lam == 0.5
    expected = result.ensemble.score(PROMPTS, RESPONSES)
    out = loaded.score(PROMPTS, RESPONSES, return_details=True)
    torch.testing.assert_close(out.rewards, expected)

    members = torch.stack([RewardModel.from_pretrained(root / "ens" / f"member-{m}").score(PROMPTS, RESPONSES)
                           for m in range(2)])
    torch.testing.assert_close(out.member_rewards, members)
    torch.testing.assert_close(out.mean, members.mean(0))
    torch.testing.assert_close(out.min, members.min(0).values)
    # two members: the sample std is |r0 - r1| / sqrt(2), per example
    torch.testing.assert_close(out.std, (members[0] - members[1]).abs() / math.sqrt(2))
    torch.testing.assert_close(out.rewards, out.mean - 0.5 * out.std)
    assert out.std.max() > 0 and len(set(out.std.tolist())) > 1  # members differ, and by how much varies
    torch.testing.assert_close(loaded.score(PROMPTS, RESPONSES, aggregate="min"), out.min)
    torch.testing.assert_close(loaded.score(PROMPTS, RESPONSES, aggregate="uwo", lam=2.0), out.mean - 2.0 * out.std)


def test_save_pretrained_round_trip(trained, tmp_path):
    _, _, result = trained
    result.ensemble.save_pretrained(tmp_path / "copy")
    copy = RewardEnsemble.from_pretrained(tmp_path / "copy")
    torch.testing.assert_close(copy.score(PROMPTS, RESPONSES), result.ensemble.score(PROMPTS, RESPONSES))
    assert [m["seed"] for m in copy.manifest["members"]] == [0, 1]


def test_pairwise_evaluation_accepts_the_ensemble(trained):
    root, _, result = trained
    ensemble = result.ensemble
    encoded = encode_dataset(load_preferences(root / "ens" / "data" / "eval.jsonl"), ensemble.tokenizer,
                             ensemble.max_length)
    metrics = evaluate_ensemble(ensemble, encoded)
    assert set(metrics) == {"member-0", "member-1", "mean", "min", "uwo"}
    assert evaluate(ensemble, encoded).accuracy == metrics["uwo"].accuracy  # duck-typed like a RewardModel
    # normalization is a positive affine map: a member's accuracy is that of its raw rewards
    assert metrics["member-1"].accuracy == evaluate(ensemble.members[1], encoded).accuracy
    assert metrics["mean"].num_comparisons == 8


def test_cli_score_writes_aggregate_and_disagreement(trained, capsys):
    root, _, _ = trained
    items = write_jsonl(root / "items.jsonl", ITEMS)
    code, out, _ = run_rewardkit(capsys, "ensemble", "score", "--model", root / "ens", "--data", items,
                                 "--aggregate", "min", "--output", root / "scores.jsonl")
    assert code == 0
    rows = [json.loads(line) for line in (root / "scores.jsonl").read_text().splitlines()]
    assert len(rows) == 4 and rows[0]["response"] == RESPONSES[0]
    for row in rows:
        assert row["reward"] == row["min"] == min(row["members"]) and row["std"] >= 0
    assert "scored 4 responses with 2 members (min)" in out


def test_cli_train_and_eval(tiny_sft, trained, capsys):
    root, data, _ = trained
    code, out, _ = run_rewardkit(capsys, "ensemble", "train", "--model", tiny_sft, "--data", data, "--output",
                                 root / "cli", "--members", "2", "--max-steps", "2", "--batch-size", "4",
                                 "--max-length", "128", "--eval-steps", "1000", "--save-steps", "1000", "--no-progress")
    assert code == 0 and "ensemble of 2 reward models" in out
    assert RewardEnsemble.from_pretrained(root / "cli").manifest["bootstrap"] is False
    code, printed, _ = run_rewardkit(capsys, "ensemble", "eval", "--model", root / "cli", "--data",
                                     root / "cli" / "data" / "eval.jsonl")
    assert code == 0
    assert all(name in printed for name in ("member-0", "member-1", "mean", "min", "uwo"))


def test_a_plain_directory_is_not_an_ensemble(tiny_sft):
    with pytest.raises(RewardkitError, match="has no ensemble.json"):
        RewardEnsemble.from_pretrained(tiny_sft)


def test_a_broken_manifest_is_a_user_error(tmp_path):
    (tmp_path / "ensemble.json").write_text('{"aggregate": "mean"}')
    with pytest.raises(RewardkitError, match="not a valid ensemble manifest"):
        RewardEnsemble.from_pretrained(tmp_path)
