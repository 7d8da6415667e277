"""The command line: train -> score -> eval end to end, and one-line errors for user mistakes."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from rewardkit.cli import main
from tests.conftest import keyword_pairs, write_jsonl


@pytest.fixture(scope="module")
def trained(tiny_sft, tmp_path_factory):
    root = tmp_path_factory.mktemp("cli")
    data = write_jsonl(root / "pairs.jsonl", keyword_pairs(48))
    config = root / "train.yaml"
    config.write_text("batch_size: 4\nlearning_rate: 3.0e-3\neval_fraction: 0.25\nlogging_steps: 5\n")
    code = main([
        "train", "--model", str(tiny_sft), "--data", str(data), "--output", str(root / "rm"),
        "--max-steps", "20", "--max-length", "128", "--config", str(config), "--no-progress",
    ])
    assert code == 0
    return root


def test_train_writes_a_model_and_respects_the_config_file(trained):
    summary = json.loads((trained / "rm" / "train_summary.json").read_text())
    assert summary["steps"] == 20
    assert summary["eval_comparisons"] == 12  # eval_fraction 0.25 of 48 pairs came from the YAML file
    assert summary["eval"]["accuracy"] >= 0.9


def test_score_writes_one_line_per_response(trained, capsys):
    items = [{"prompt": "Human: bread?\n\nAssistant:", "response": r} for r in (" yes please", " no thanks")]
    write_jsonl(trained / "to_score.jsonl", items)
    assert main(["score", "--model", str(trained / "rm"), "--data", str(trained / "to_score.jsonl"),
                 "--output", str(trained / "scores.jsonl")]) == 0
    lines = [json.loads(line) for line in (trained / "scores.jsonl").read_text().splitlines()]
    assert [line["response"] for line in lines] == [" yes please", " no thanks"]
    assert lines[0]["reward"] > lines[1]["reward"]
    assert lines[0]["truncated"] is False

    captured = capsys.readouterr()
    assert "scored 2 responses" in captured.out
    assert "scoring: 100%" in captured.err and "2/2" in captured.err  # the progress bar, on stderr
    # Preference data is accepted too: every response of every pair is scored, in order.
    assert main(["score", "--model", str(trained / "rm"), "--data", str(trained / "pairs.jsonl"), "--raw",
                 "--no-progress"]) == 0
    captured = capsys.readouterr()
    out = [json.loads(line) for line in captured.out.splitlines()]
    assert len(out) == 96 and [o["response_index"] for o in out[:4]] == [0, 1, 0, 1]
    assert "scoring" not in captured.err


def test_eval_prints_a_table_and_writes_json(trained, capsys):
    assert main(["eval", "--model", str(trained / "rm"), "--data", str(trained / "pairs.jsonl"),
                 "--output", str(trained / "eval.json")]) == 0
    captured = capsys.readouterr()
    printed = captured.out
    assert "accuracy" in printed and "pairs.jsonl" in printed
    assert "scoring: 100%" in captured.err and "96/96" in captured.err
    metrics = json.loads((trained / "eval.json").read_text())[str(trained / "pairs.jsonl")]
    assert metrics["num_comparisons"] == 48 and metrics["accuracy"] >= 0.9


def _run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "rewardkit", *args], capture_output=True, text=True, timeout=120)


def test_user_mistakes_are_one_line_errors_without_traceback(trained, tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"prompt": "p", "chosen": "a", "rejected": "b"}) + "\n"
                   + json.dumps({"prompt": "p", "chosen": "  ", "rejected": "b"}) + "\n")
    cases = {
        ("eval", "--model", str(trained / "rm"), "--data", str(tmp_path / "missing.jsonl")): "missing.jsonl",
        ("eval", "--model", str(trained / "rm"), "--data", str(bad)): "bad.jsonl line 2, field 'chosen'",
        ("score", "--model", str(tmp_path / "no-model"), "--data", str(bad)): "could not load a tokenizer",
    }
    for args, expected in cases.items():
        result = _run_cli(*args)
        assert result.returncode == 2, result.stderr
        assert "Traceback" not in result.stderr
        assert result.stderr.startswith("rewardkit: error:") and expected in result.stderr


def test_help_is_complete_for_every_command():
    for command, flags in {
        "train": ["--model", "--data", "--output", "--eval-data", "--max-length", "--max-steps", "--epochs",
                  "--batch-size", "--lr", "--seed", "--config", "--resume", "--skip-bad-records", "--lora-rank"],
        "score": ["--model", "--data", "--output", "--raw"],
        "eval": ["--model", "--data", "--output"],
    }.items():
        result = _run_cli(command, "--help")
        assert result.returncode == 0
        for flag in flags:
            assert flag in result.stdout, (command, flag)
