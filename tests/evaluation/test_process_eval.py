"""Process RM evaluation: ProcessBench's first-error protocol, step AUROC, solution scores, the CLI and its report."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from rewardkit.cli import main
from rewardkit.model.step_metrics import (
    auroc,
    best_threshold,
    first_error_scores,
    predicted_first_errors,
    right_intervals,
    scores_at,
    threshold_grid,
)
from rewardkit.training import TrainConfig, train
from tests.conftest import step_records, write_jsonl


@pytest.fixture(scope="module")
def prm(tiny_sft, tmp_path_factory):
    """A tiny process RM trained on learnable step labels, and held-out step data of the same kind."""
    root = tmp_path_factory.mktemp("prm")
    data = write_jsonl(root / "train.jsonl", step_records(80))
    config = TrainConfig(model=str(tiny_sft), data=[str(data)], output_dir=str(root / "prm"), max_length=128,
                         batch_size=4, learning_rate=3e-3, max_steps=30, eval_fraction=0.0, save_steps=1000,
                         progress_bar=False)
    train(config)
    held_out = write_jsonl(root / "test.jsonl", step_records(60, seed=1))
    return root / "prm", held_out


def test_auroc_counts_ties_half_and_needs_both_classes():
    assert auroc(np.array([1, 2, 3, 3]), np.array([0, 0, 1, 0])) == pytest.approx(2.5 / 3)
    assert auroc(np.array([0.1, 0.9]), np.array([0, 1])) == 1.0
    assert np.isnan(auroc(np.array([1.0, 2.0]), np.array([1, 1])))


def test_first_error_prediction_and_the_processbench_scores():
    logit = torch.logit
    rewards = [logit(torch.tensor([0.9, 0.2, 0.8])), logit(torch.tensor([0.9, 0.7])), logit(torch.tensor([0.4]))]
    assert predicted_first_errors(rewards, 0.5).tolist() == [1, -1, 0]
    scores = first_error_scores(np.array([1, -1, 0]), np.array([1, -1, -1]))
    assert (scores.accuracy_erroneous, scores.accuracy_correct) == (1.0, 0.5)
    assert scores.f1 == pytest.approx(2 / 3)
    threshold, best = best_threshold(rewards, np.array([1, -1, -1]))
    assert best.f1 == 1.0 and 0.2 < threshold <= 0.4  # flags 0.2 but not 0.4


def test_vectorized_scores_equal_predictions_at_every_threshold():
    generator = torch.Generator().manual_seed(0)
    rewards = [torch.randn(int(torch.randint(1, 8, (1,), generator=generator)), generator=generator)
               for _ in range(200)]
    first_errors = np.array([int(torch.randint(-1, len(r), (1,), generator=generator)) for r in rewards])
    thresholds = threshold_grid(rewards)
    acc_err, acc_cor, f1 = scores_at(*right_intervals(rewards, first_errors), first_errors >= 0, thresholds)
    for t in range(0, len(thresholds), 37):
        expected = first_error_scores(predicted_first_errors(rewards, float(thresholds[t])), first_errors)
        assert (acc_err[t], acc_cor[t], f1[t]) == pytest.approx(
            (expected.accuracy_erroneous, expected.accuracy_correct, expected.f1))
    assert f1.max() == best_threshold(rewards, first_errors)[1].f1


def test_eval_on_step_data_follows_the_processbench_protocol_and_writes_a_report(prm, tmp_path, capsys):
    model, held_out = prm
    report, output = tmp_path / "report", tmp_path / "metrics.json"
    assert main(["eval", "--model", str(model), "--data", str(held_out), "--bootstrap", "200", "--report",
                 str(report), "--output", str(output), "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert "F1" in printed and "step AUROC" in printed
    result = json.loads(output.read_text())[str(held_out)]
    first_error = result["first_error"]
    assert "validation split" in first_error["threshold_source"] and result["measured_on"].startswith("the other")
    assert first_error["validation"]["num_solutions"] + result["num_solutions"] == 60
    assert first_error["f1"] > 0.8 and result["step"]["auroc"] > 0.85
    assert first_error["f1_ci"]["low"] <= first_error["f1"] <= first_error["f1_ci"]["high"]
    assert result["oracle"]["f1"] >= first_error["f1"] and "upper bound" in result["oracle"]["note"]
    assert set(result["solution"]) == {"min", "product", "last", "mean"}
    assert result["solution"]["min"]["auroc_no_error"] > 0.9
    for name in ("report.md", "report.html", "metrics.json"):
        assert (report / name).is_file()
    assert len(list((report / "plots").glob("*.png"))) == 2
    assert "oracle F1 (upper bound)" in (report / "report.md").read_text()


def test_a_given_threshold_or_one_chosen_on_other_data_is_measured_on_all_solutions(prm, tmp_path):
    model, held_out = prm
    output = tmp_path / "m.json"
    assert main(["eval", "--model", str(model), "--data", str(held_out), "--threshold", "0.5", "--bootstrap", "50",
                 "--output", str(output), "--no-progress"]) == 0
    result = json.loads(output.read_text())[str(held_out)]
    assert result["num_solutions"] == 60 and result["first_error"]["threshold"] == 0.5
    assert result["first_error"]["threshold_source"] == "given (--threshold)"
    other = write_jsonl(tmp_path / "other.jsonl", step_records(30, seed=2))
    assert main(["eval", "--model", str(model), "--data", str(held_out), "--threshold-data", str(other),
                 "--bootstrap", "50", "--output", str(output), "--no-progress"]) == 0
    result = json.loads(output.read_text())[str(held_out)]
    assert str(other) in result["first_error"]["threshold_source"] and result["num_solutions"] == 60


def test_score_writes_step_rewards_and_solution_scores(prm, tmp_path):
    model, _ = prm
    items = [{"id": "a", "problem": "Human: Solve problem 5 about bread.\n\nAssistant:",
              "steps": ["yes please, step 0 of 3.", "no thanks, step 1 of 4."]},
             {"id": "b", "prompt": "Human: Solve problem 6.\n\nAssistant:", "steps": ["yes please, step 0 of 1."]}]
    data, output = write_jsonl(tmp_path / "solutions.jsonl", items), tmp_path / "scores.jsonl"
    assert main(["score", "--model", str(model), "--data", str(data), "--output", str(output), "--no-progress"]) == 0
    rows = [json.loads(line) for line in output.read_text().splitlines()]
    assert [r["id"] for r in rows] == ["a", "b"] and [r["steps_scored"] for r in rows] == [2, 1]
    probabilities = torch.sigmoid(torch.tensor(rows[0]["step_rewards"]))
    assert probabilities[0] > 0.5 > probabilities[1]
    assert rows[0]["min"] == pytest.approx(float(probabilities.min()), rel=1e-5)
    assert rows[0]["product"] == pytest.approx(float(probabilities.prod()), rel=1e-5)
    assert rows[1]["last"] == rows[1]["min"] == rows[1]["mean"]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--threshold", "2"], "--threshold must be in (0, 1) (got 2)"),
        (["--validation-fraction", "1"], "--validation-fraction must be in (0, 1) (got 1)"),
    ],
)
def test_bad_step_eval_options_are_one_line_errors(prm, argv, message):
    model, held_out = prm
    done = subprocess.run([sys.executable, "-m", "rewardkit", "eval", "--model", str(model), "--data", str(held_out),
                           *argv], capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and done.stderr.startswith(f"rewardkit: error: {message}")
    assert "Traceback" not in done.stderr and len(done.stderr.strip().splitlines()) == 1


def test_a_bad_step_record_names_its_line_when_scoring(prm, tmp_path):
    model, _ = prm
    data = write_jsonl(tmp_path / "bad.jsonl", [{"problem": "p", "steps": ["a"]}, {"problem": "p", "steps": ["a", ""]}])
    done = subprocess.run([sys.executable, "-m", "rewardkit", "score", "--model", str(model), "--data", str(data)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    expected = f"rewardkit: error: {data} line 2, field 'steps[1]': empty step (expected non-empty text)"
    assert done.stderr.strip() == expected


def test_platt_fit_recovers_offset_and_scale_and_refuses_uninformative_rewards():
    from rewardkit.model.step_metrics import fit_platt

    rng = np.random.default_rng(0)
    rewards = rng.normal(size=20_000) * 2
    labels = (rng.random(20_000) < 1 / (1 + np.exp(-(rewards - 1.0) / 2.0))).astype(float)
    offset, scale = fit_platt(rewards, labels)
    assert offset == pytest.approx(1.0, abs=0.1) and scale == pytest.approx(2.0, abs=0.1)
    assert fit_platt(np.ones(10), labels[:10]) == (0.0, 1.0)
    assert fit_platt(rewards, 1.0 - (rewards > 0)) == (0.0, 1.0)  # anti-correlated: no positive scale
