"""`run_mitigations` at a tiny size on a tiny demo run: every comparison runs and the report pieces exist."""

from __future__ import annotations

import json
import math

import pytest
import torch
from PIL import Image

from rewardkit.demo import DemoConfig, run_demo
from rewardkit.demo.document import Document
from rewardkit.demo.mitigations import MitigationsConfig, mitigation_blocks, run_ensemble_ppo, run_mitigations
from rewardkit.world import SFTConfig
from tests.conftest import single_thread_fixture

TINY = MitigationsConfig(members=2, bon_prompts=4, bon_samples=16, bon_n_max=8, ppo_aggregations=("uwo",),
                         ppo_steps=2, ppo_eval_points=2, dpo_epochs=1.0, dpo_batch_size=16, dpo_eval_points=2,
                         dpo_eval_prompts=6, dpo_eval_samples=2)


single_thread = single_thread_fixture()


@pytest.fixture(scope="module")
def mitigations(tmp_path_factory):
    output = tmp_path_factory.mktemp("mitigations")
    demo = run_demo(DemoConfig(
        sft=SFTConfig(num_demonstrations=400, steps=30, batch_size=32),
        train_prompts=40, val_prompts=12, rm_epochs=1.0, data_fractions=(1.0,),
        bon_prompts=4, bon_samples=16, bon_n_max=8,
        ppo_betas=(0.0,), ppo_steps=4, ppo_batch_size=8, ppo_eval_points=2, max_new_tokens=12,
    ), output, progress=False)
    threads = torch.get_num_threads()
    results = run_mitigations(output, TINY, progress=False)
    assert torch.get_num_threads() == threads
    return output, demo, results


def test_results_hold_every_comparison(mitigations):
    output, demo, results = mitigations
    assert set(results) >= {"config", "ensemble", "accuracy", "best_of_n", "ppo", "dpo", "seconds", "summary"}
    assert json.loads((output / "mitigations.json").read_text())["summary"] == results["summary"]
    assert json.loads((output / "ensemble" / "ensemble.json").read_text())["bootstrap"] is True

    accuracy = results["accuracy"]
    assert set(accuracy) == {"single RM", "member 0", "member 1", "ensemble mean", "ensemble min", "ensemble uwo",
                             "DPO implicit (reference)", "DPO implicit (sum)", "DPO implicit (mean)"}
    assert all(0 <= row[key] <= 1 for row in accuracy.values() for key in ("accuracy_vs_labels", "accuracy_vs_gold"))
    # gold-labelled pairs reproduce the demo's own accuracy-against-gold measurement
    demo_rm = demo["reward_models"]["final"]["SFT init"]
    assert accuracy["single RM"]["accuracy_vs_gold"] == pytest.approx(demo_rm["accuracy_vs_gold"])
    assert accuracy["single RM"]["accuracy_vs_labels"] == pytest.approx(demo_rm["accuracy_vs_labels"])
    assert results["ensemble"]["val_disagreement"] > 0


def test_best_of_n_re_ranks_one_sample_set(mitigations):
    _, _, results = mitigations
    curves = results["best_of_n"]
    assert set(curves) == {"single RM", "ensemble mean", "ensemble min", "ensemble uwo", "ensemble uwo λ=2",
                           "member 0", "member 1"}
    for run in curves.values():
        assert [row["n"] for row in run["curve"]] == [1, 2, 4, 8]
        assert run["curve"][0]["gold"] == 0.0 and run["curve"][0]["proxy"] == 0.0  # centred on plain sampling
        assert run["curve"][-1]["kl"] == pytest.approx(math.log(8) - 7 / 8)
    # n = 1 is the mean over the same samples whoever ranks them
    assert len({round(run["curve"][0]["length"], 6) for run in curves.values()}) == 1
    assert len({round(run["curve"][0]["disagreement"], 6) for run in curves.values()}) == 1


def test_ppo_and_dpo_trajectories(mitigations):
    _, demo, results = mitigations
    single, ensemble = results["ppo"]["PPO β=0, single RM"], results["ppo"]["PPO β=0, ensemble uwo"]
    assert single["source"] == "demo" and single["eval"] == demo["ppo"]["PPO β=0"]["eval"]
    assert ensemble["source"] == "mitigations" and len(ensemble["eval"]) == 2
    assert ensemble["disagreement_start"] >= 0 and ensemble["disagreement_end"] >= 0

    dpo = results["dpo"]
    assert [p["step"] for p in dpo["points"]] == [0, 2, 3]  # 40 groups / 16 per step: 3 steps, 2 eval points
    assert dpo["points"][0]["kl"] == 0.0  # the SFT policy against itself
    assert {"gold", "kl", "proxy", "length", "format_rate"} <= set(dpo["points"][-1])


def test_single_rm_ppo_is_run_when_the_demo_has_no_run_with_that_beta(mitigations):
    output, _, _ = mitigations
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from rewardkit.ensemble import RewardEnsemble
    from rewardkit.model import RewardModel
    from rewardkit.world import load_world

    demo_results = json.loads((output / "results.json").read_text())
    del demo_results["ppo"]
    sft = AutoModelForCausalLM.from_pretrained(output / "sft-policy").requires_grad_(False)
    ensemble = RewardEnsemble.from_pretrained(output / "ensemble")
    scorers = {"single RM": RewardModel.from_pretrained(output / "reward-model").score,
               "ensemble uwo": lambda p, r: ensemble.score(p, r, aggregate="uwo")}
    runs = run_ensemble_ppo(load_world(str(output / "sft-policy")), sft, AutoTokenizer.from_pretrained(
        output / "sft-policy"), scorers, ensemble, demo_results, TINY, progress=False)
    assert list(runs) == ["PPO β=0, single RM", "PPO β=0, ensemble uwo"]
    assert all(run["source"] == "mitigations" for run in runs.values())


def test_plot_and_markdown_section(mitigations):
    output, _, results = mitigations
    with Image.open(output / "plots" / "mitigations.png") as image:
        assert image.format == "PNG" and image.size[0] > 400
    markdown = (output / "mitigations.md").read_text()
    assert "ensembles and DPO" in markdown and "plots/mitigations.png" in markdown and "DPO β=0.1" in markdown
    document = Document("report")
    document.blocks.extend(mitigation_blocks(results))
    assert "<table>" in document.to_html() and "Best-of-8 gold" in document.to_markdown()
