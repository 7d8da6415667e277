"""`run_mitigations` at a tiny size on a tiny demo seed: every comparison runs and the report pieces exist."""

from __future__ import annotations

import json
import math

import pytest
from PIL import Image

from rewardkit.demo.mitigations import MitigationsConfig, mitigation_blocks, run_mitigations
from rewardkit.progress import Console
from rewardkit.reporting import Document
from tests.conftest import single_thread_fixture

TINY = MitigationsConfig(members=2, bon_prompts=4, bon_samples=16, bon_n_max=8, ppo_aggregations=("uwo",),
                         ppo_steps=2, dpo_epochs=1.0, dpo_batch_size=16, dpo_eval_points=2)

single_thread = single_thread_fixture()


@pytest.fixture(scope="module")
def mitigations(seed_one):
    output, demo = seed_one
    seed_dir = output / "seed-1"
    return seed_dir, demo, run_mitigations(seed_dir, TINY, Console(enabled=False))


def test_results_hold_every_comparison(mitigations):
    seed_dir, demo, results = mitigations
    assert set(results) >= {"config", "ensemble", "accuracy", "best_of_n", "ppo", "dpo", "summary"}
    assert json.loads((seed_dir / "mitigations.json").read_text())["summary"] == results["summary"]
    assert json.loads((seed_dir / "ensemble" / "ensemble.json").read_text())["bootstrap"] is True
    accuracy = results["accuracy"]
    assert set(accuracy) == {"single RM", "member 0", "member 1", "ensemble mean", "ensemble min", "ensemble uwo",
                             "DPO implicit (reference)", "DPO implicit (sum)", "DPO implicit (mean)"}
    assert all(0 <= row[key] <= 1 for row in accuracy.values() for key in ("accuracy_vs_labels", "accuracy_vs_gold"))
    # the gold-labelled pairs reproduce the demo's own accuracy against gold (ties in gold left out both times)
    demo_rm = demo["ceilings"]["judges"]["RM (biased noisy labels)"]
    assert accuracy["single RM"]["accuracy_vs_gold"] == pytest.approx(demo_rm["vs_gold"]["value"])
    assert accuracy["single RM"]["accuracy_vs_labels"] == pytest.approx(demo_rm["vs_labels"]["value"])
    assert results["ensemble"]["val_disagreement"] > 0


def test_best_of_n_re_ranks_one_sample_set(mitigations):
    _, _, results = mitigations
    curves = results["best_of_n"]
    assert set(curves) == {"single RM", "ensemble mean", "ensemble min", "ensemble uwo", "ensemble uwo λ=2",
                           "member 0", "member 1"}
    for run in curves.values():
        assert [p["n"] for p in run["points"]] == [1, 2, 4, 8]
        assert run["points"][0]["gold"]["value"] == 0.0  # centred on plain sampling
        assert run["points"][-1]["kl"] == pytest.approx(math.log(8) - 7 / 8, rel=1e-5)  # 6 digits in the json
    assert len({run["disagreement_at_sft"] for run in curves.values()}) == 1  # the same samples for every scorer


def test_ppo_and_dpo_are_evaluated_like_the_demo(mitigations):
    _, _, results = mitigations
    assert list(results["ppo"]) == ["PPO β=0, single RM", "PPO β=0, ensemble uwo"]
    for run in results["ppo"].values():
        assert [p["step"] for p in run["points"]] == [0, 1, 2] and run["points"][0]["kl"] == 0.0  # the demo's steps
        assert run["end"]["disagreement"]["value"] >= 0
    dpo = results["dpo"]
    assert [p["step"] for p in dpo["points"]] == [0, 2, 3]  # 40 groups / 16 per step: 3 steps, 2 eval points
    assert dpo["points"][0]["kl"] == 0.0  # the SFT policy against itself
    assert {"gold", "proxy", "length", "format_rate"} <= set(dpo["end"])


def test_plot_and_markdown_section(mitigations):
    seed_dir, _, results = mitigations
    with Image.open(seed_dir / "plots" / "mitigations.png") as image:
        assert image.format == "PNG" and image.size[0] > 400
    markdown = (seed_dir / "mitigations.md").read_text()
    assert "ensembles and DPO" in markdown and "plots/mitigations.png" in markdown
    document = Document("report")
    document.blocks.extend(mitigation_blocks(results))
    assert "<table>" in document.to_html() and "Best-of-8 gold" in document.to_markdown()
