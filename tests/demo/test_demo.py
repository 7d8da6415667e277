"""The demo end to end at a tiny size: every stage runs, results.json has every figure, the plots exist."""

from __future__ import annotations

import json

import pytest
import torch
from PIL import Image

from rewardkit.demo import DemoConfig, run_demo, write_report
from rewardkit.world import SFTConfig


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    output = tmp_path_factory.mktemp("demo")
    config = DemoConfig(
        sft=SFTConfig(num_demonstrations=600, steps=40, batch_size=32),
        train_prompts=60, val_prompts=20, rm_epochs=1.0, data_fractions=(0.5, 1.0),
        bon_prompts=6, bon_samples=32, bon_n_max=16,
        ppo_betas=(0.0, 0.05), ppo_steps=5, ppo_batch_size=16, ppo_eval_points=2, max_new_tokens=16,
    )
    threads = torch.get_num_threads()
    results = run_demo(config, output, progress=False)
    assert torch.get_num_threads() == threads  # the demo's single-thread setting does not leak
    return output, results, write_report(results, output)


def test_results_json_holds_every_stage(demo_run):
    output, results, _ = demo_run
    saved = json.loads((output / "results.json").read_text())
    assert set(saved) >= {"config", "data", "reward_models", "best_of_n", "ppo", "seconds"}
    data = saved["data"]
    assert data["train_prompts"] == 60 and 4 <= data["mean_k"] <= 9
    assert 0.5 < data["labeller_agreement"] < 0.95
    rms = saved["reward_models"]
    assert set(rms["final"]) == {"SFT init", "random init"}
    for metrics in rms["final"].values():
        assert 0.0 <= metrics["accuracy_vs_labels"] <= 1.0 and 0.0 <= metrics["accuracy_vs_gold"] <= 1.0
    assert [len(points) for points in rms["data_scaling"].values()] == [2, 2]

    curve = saved["best_of_n"]["curve"]
    assert [row["n"] for row in curve] == [1, 2, 4, 8, 16]
    assert curve[0]["proxy"] == 0.0 and curve[0]["gold"] == 0.0  # centred on plain sampling
    assert curve[-1]["kl"] == pytest.approx(torch.log(torch.tensor(16.0)).item() - 15 / 16)
    assert curve[-1]["proxy"] > 0  # best-of-16 picks responses the RM likes more than a random draw
    assert {"alpha", "beta", "r2"} <= set(saved["best_of_n"]["gold_fit"])

    assert list(saved["ppo"]) == ["PPO β=0", "PPO β=0.05"]
    for run in saved["ppo"].values():
        assert len(run["log"]) == 5 and [p["step"] for p in run["eval"]] == [0, 2, 4]  # step 0 = the SFT policy
        assert {"proxy", "gold", "kl", "length", "format_rate"} <= set(run["eval"][0])
    assert saved["seconds"]["total"] > 0


def test_checkpoints_are_standard_hf_models(demo_run):
    output, _, _ = demo_run
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification

    assert AutoModelForCausalLM.from_pretrained(output / "sft-policy").config.model_type == "llama"
    assert AutoModelForSequenceClassification.from_pretrained(output / "reward-model").config.num_labels == 1
    lines = (output / "data" / "train.jsonl").read_text().splitlines()
    assert len(lines) == 60 and {"prompt", "responses", "ranking"} <= set(json.loads(lines[0]))


def test_report_has_text_tables_and_real_png_plots(demo_run):
    output, results, files = demo_run
    markdown = files["markdown"].read_text()
    assert "labellers agree" in markdown and "Best-of-n" in markdown and "PPO β=0.05" in markdown
    assert "<table>" in files["html"].read_text()
    for name in ("best_of_n", "ppo", "ppo_features", "reward_models"):
        with Image.open(files[name]) as image:
            assert image.format == "PNG" and image.size[0] > 400
        assert f"plots/{files[name].name}" in markdown
