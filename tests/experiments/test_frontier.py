"""`rewardkit experiment frontier` on tiny sizes: every method of every seed evaluated at the same steps, centred on
SFT, combined over seeds with matched-KL verdicts, and reported."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace

import pytest

from rewardkit.experiments.common import finished_seed
from rewardkit.experiments.frontier import BASELINE, FrontierConfig, gold_at_matched_kl, run_frontier
from rewardkit.experiments.frontier_cli import write_report
from rewardkit.progress import Console
from rewardkit.rl.statistics import NOT_RESOLVED
from tests.conftest import one_thread
from tests.demo.conftest import TINY

CONFIG = FrontierConfig(seeds=(0, 1), setup=TINY, ppo_betas=(0.0, 0.05), rl_steps=4, rl_batch_size=8,
                        rl_learning_rate=1e-3, checkpoints=2, workers=1, adaptive_kl_horizon=64)


@pytest.fixture(scope="module")
def frontier(tmp_path_factory):
    output = tmp_path_factory.mktemp("frontier")
    with one_thread():
        results = run_frontier(CONFIG, output, Console(enabled=False))
    return output, results


def test_the_sweep_holds_every_beta_the_controller_rloo_and_grpo():
    names = [m.name for m in FrontierConfig().methods()]
    assert names == ["PPO β=0", "PPO β=0.01", "PPO β=0.02", "PPO β=0.05", "PPO β=0.1", "PPO adaptive (KL target 4)",
                     "RLOO k=4 β=0.05", "GRPO k=4 β=0.04"]
    assert FrontierConfig.quick().methods() == FrontierConfig().methods()  # --quick: the same methods, smaller


def test_every_method_of_every_seed_is_evaluated_at_the_same_steps(frontier):
    output, results = frontier
    names = [m.name for m in CONFIG.methods()]
    assert list(results["methods"]) == names and len(names) == 5
    for seed in CONFIG.seeds:
        per_seed = json.loads((output / f"seed-{seed}" / "results.json").read_text())
        for name in names:
            points = per_seed["methods"][name]["points"]
            assert [p["step"] for p in points] == CONFIG.checkpoint_steps() == [0, 1, 4]
            assert points[0]["gold"]["value"] == 0.0 and points[0]["kl"] == pytest.approx(0.0, abs=1e-6)  # SFT = 0
    # over two seeds every estimate carries both seeds' values
    assert len(results["methods"][BASELINE]["end"]["gold"]["per_seed"]) == 2


def test_matched_kl_entries_verdicts_and_timings(frontier):
    output, results = frontier
    matched = results["matched_kl_vs_ppo_beta_0"]
    assert set(matched) == {m.name for m in CONFIG.methods()} - {BASELINE}
    for entry in matched.values():
        assert len(entry["per_seed"]) == 2
        if entry["difference"] is not None and entry["difference"]["low"] <= 0 <= entry["difference"]["high"]:
            assert entry["verdict"].startswith(NOT_RESOLVED)
    timings = json.loads((output / "timings.json").read_text())
    assert set(timings["seconds"]) == {"0", "1"}
    assert all(timings["seconds"]["0"][m.name]["training"] > 0 for m in CONFIG.methods())
    assert "timing" not in (output / "results.json").read_text()


def test_report_and_plots(frontier, tmp_path):
    output, results = frontier
    files = write_report(results, json.loads((output / "timings.json").read_text()), tmp_path)
    text = files["markdown"].read_text()
    assert "RLOO" in text and "GRPO" in text and "PPO adaptive" in text and "matched KL" in text
    for png in ("frontier.png", "frontier_proxy.png"):
        assert (tmp_path / "plots" / png).read_bytes()[:4] == b"\x89PNG"
    assert files["html"].exists()


def test_resume_reuses_finished_seeds_and_only_with_the_same_config(frontier, tmp_path):
    output, results = frontier
    before = {seed: (output / f"seed-{seed}" / "results.json").stat().st_mtime_ns for seed in CONFIG.seeds}
    written = (output / "results.json").read_text()
    with one_thread():
        again = run_frontier(CONFIG, output, Console(enabled=False), resume=True)
    assert again == results and (output / "results.json").read_text() == written
    assert before == {seed: (output / f"seed-{seed}" / "results.json").stat().st_mtime_ns for seed in CONFIG.seeds}
    assert finished_seed(output / "seed-0", CONFIG.to_dict()) is not None
    assert finished_seed(output / "seed-0", replace(CONFIG, rl_steps=5).to_dict()) is None
    assert finished_seed(tmp_path, CONFIG.to_dict()) is None


def test_gold_at_matched_kl_interpolates_the_baseline_in_sqrt_kl():
    baseline = [{"sqrt_kl": 0.0, "gold": {"value": 0.0}}, {"sqrt_kl": 1.0, "gold": {"value": 0.4}},
                {"sqrt_kl": 3.0, "gold": {"value": -0.6}}]
    run = [{"sqrt_kl": 0.0, "gold": {"value": 0.0}}, {"sqrt_kl": 2.0, "gold": {"value": 0.3}}]
    row = gold_at_matched_kl(run, baseline)
    assert row["baseline_gold"] == pytest.approx(-0.1)  # halfway between 0.4 and -0.6
    assert row["difference"] == pytest.approx(0.4)
    beyond = gold_at_matched_kl([{"sqrt_kl": 4.0, "gold": {"value": 0.1}}], baseline)
    assert beyond["difference"] is None  # no extrapolation beyond β=0's reach


def test_seeds_must_be_distinct():
    with pytest.raises(ValueError, match="distinct"):
        run_frontier(replace(CONFIG, seeds=(1, 1)), "unused")


def test_cli_rejects_bad_flags_in_one_line(tmp_path):
    process = subprocess.run([sys.executable, "-m", "rewardkit", "experiment", "frontier", "--steps", "0",
                              "--output", str(tmp_path / "out")], capture_output=True, text=True, timeout=120)
    assert process.returncode == 2
    assert process.stderr.strip() == "rewardkit: error: --steps must be at least 1, got 0"
    assert not (tmp_path / "out").exists()
