"""`rewardkit experiment scaling` on tiny sizes: one fitted cell per (size, data, seed), combined over seeds, and one
fitted entry per (policy size, seed) against one fixed RM."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import pytest

from rewardkit.experiments.scaling import ScalingConfig, backbone_config, run_scaling
from rewardkit.experiments.scaling_cli import write_report
from rewardkit.progress import Console
from tests.conftest import one_thread
from tests.demo.conftest import TINY

# policy width 32 is no RM's backbone: trained for the policy part alone; 16 and 64 reuse the RMs' backbones
CONFIG = ScalingConfig(seeds=(0, 1), setup=TINY, rm_sizes=(16, 64), data_fractions=(0.5, 1.0),
                       policy_sizes=(16, 32, 64))


@pytest.fixture(scope="module")
def scaling(tmp_path_factory):
    output = tmp_path_factory.mktemp("scaling")
    with one_thread():
        results = run_scaling(CONFIG, output, Console(enabled=False))
    return output, results


def test_one_fitted_cell_per_size_data_and_seed(scaling):
    output, results = scaling
    cells = results["cells"]
    keys = [(c["hidden_size"], c["data_prompts"], c["seed"]) for c in cells]
    assert sorted(keys) == sorted((size, count, seed) for size in (16, 64) for count in (20, 40) for seed in (0, 1))
    for cell in cells:
        assert math.isfinite(cell["alpha"]["value"]) and math.isfinite(cell["beta"]["value"])
        assert cell["alpha"]["low"] <= cell["alpha"]["value"] <= cell["alpha"]["high"]
        assert 0.0 <= cell["accuracy_vs_gold"]["value"] <= 1.0 and 0.0 <= cell["accuracy_vs_labels"]["value"] <= 1.0
        assert "r2_cv" in cell and cell["peak_n"] in (1, 2, 4, 8)
    # the larger width has more parameters; more data, more comparisons
    parameters = {c["hidden_size"]: c["parameters"] for c in cells}
    assert parameters[64] > 5 * parameters[16]
    assert {c["data_prompts"]: c["comparisons"] for c in cells}[40] > {c["data_prompts"]: c["comparisons"]
                                                                      for c in cells}[20]
    assert len(results["summary"]) == 4 and all(s["seeds"] == [0, 1] for s in results["summary"])
    assert results["summary"][0]["alpha"]["per_seed"] == [c["alpha"]["value"] for c in cells
                                                          if (c["hidden_size"], c["data_prompts"]) == (16, 20)]
    # the largest minus the smallest RM (at the most data) and the most minus the least data (at the largest RM)
    trends = results["largest_minus_smallest"]
    by_cell = {(c["seed"], c["hidden_size"], c["data_prompts"]): c["accuracy_vs_gold"]["value"] for c in cells}
    assert (trends["rm_size"]["larger"], trends["rm_size"]["smaller"], trends["data"]["larger"]) == (64, 16, 40)
    assert trends["rm_size"]["accuracy_vs_gold"]["per_seed"] == pytest.approx(
        [by_cell[seed, 64, 40] - by_cell[seed, 16, 40] for seed in (0, 1)])
    assert trends["data"]["alpha"]["verdict"]  # a verdict, or "not resolved at this sample size"
    # the policy's own width reuses the SFT policy as its backbone; the other width gets its own
    assert (output / "seed-0" / "backbone-16" / "config.json").exists()
    assert not (output / "seed-0" / "backbone-64").exists()


def test_one_fitted_entry_per_policy_size_and_seed_against_one_fixed_rm(scaling):
    output, results = scaling
    section = results["policy_sizes"]
    entries = section["entries"]
    assert sorted((e["policy_size"], e["seed"]) for e in entries) == [(s, seed) for s in (16, 32, 64)
                                                                      for seed in (0, 1)]
    # the fixed RM: the cells' RM at the SFT policy's width (64) on all 40 training rankings, the same for every policy
    assert section["fixed_rm"] == {"hidden_size": 64, "data_prompts": 40, "path": "rm-runs/size-64-prompts-40"}
    assert {e["reward_model"] for e in entries} == {"rm-runs/size-64-prompts-40"}
    for seed in (0, 1):
        # reused, not retrained: the SFT policy's entry re-ranks the cells' shared samples with that cell's RM, so
        # its fit is the cell's fit
        cell = next(c for c in results["cells"] if (c["hidden_size"], c["data_prompts"], c["seed"]) == (64, 40, seed))
        sft_entry = next(e for e in entries if (e["policy_size"], e["seed"]) == (64, seed))
        assert sft_entry["alpha"] == cell["alpha"] and sft_entry["peak_gold"] == cell["peak_gold"]
    assert (output / "seed-0" / "backbone-32" / "config.json").exists()  # a policy-only width is trained
    assert len({e["policy_parameters"] for e in entries}) == 3
    for entry in entries:
        assert math.isfinite(entry["alpha"]["value"]) and math.isfinite(entry["beta"]["value"])
        assert entry["gold_at_start"]["low"] <= entry["gold_at_start"]["value"] <= entry["gold_at_start"]["high"]
        points = entry["points"]
        assert [p["n"] for p in points] == [1, 2, 4, 8] and points[0]["gold"]["value"] == 0.0  # gains from n = 1
        assert [p["kl"] for p in points] == pytest.approx([math.log(n) - (n - 1) / n for n in (1, 2, 4, 8)])
        gap = entry["proxy_gold_gap_at_n_max"]["value"]
        assert gap == pytest.approx(entry["proxy_gain_at_n_max"]["value"] - entry["gold_gain_at_n_max"]["value"])
    assert [s["policy_size"] for s in section["summary"]] == [16, 32, 64]
    assert all(s["seeds"] == [0, 1] for s in section["summary"])
    comparison = section["largest_minus_smallest"]
    assert (comparison["larger"], comparison["smaller"]) == (64, 16)
    start = comparison["gold_at_start"]
    assert start["per_seed"] == pytest.approx([
        next(e for e in entries if (e["policy_size"], e["seed"]) == (64, seed))["gold_at_start"]["value"]
        - next(e for e in entries if (e["policy_size"], e["seed"]) == (16, seed))["gold_at_start"]["value"]
        for seed in (0, 1)])
    for key in ("gold_at_start", "gold_gain_at_n_max", "proxy_gold_gap_at_n_max"):
        entry = comparison[key]
        resolved = entry["low"] > 0 or entry["high"] < 0
        assert (entry["verdict"] == "not resolved at this sample size") == (not resolved)


def test_report_and_plots(scaling, tmp_path):
    output, results = scaling
    files = write_report(results, json.loads((output / "timings.json").read_text()), tmp_path)
    markdown = files["markdown"].read_text()
    assert "8 fitted cells" in markdown
    assert "Policy size at a fixed RM" in markdown and "plots/policy_sizes.png" in markdown
    assert "hidden 64 minus hidden 16" in markdown and "40 minus 20 training prompts, hidden size 64" in markdown
    for png in ("scaling_parameters.png", "scaling_data.png", "policy_sizes.png"):
        assert (tmp_path / "plots" / png).read_bytes()[:4] == b"\x89PNG"


def test_backbone_widths_keep_the_recipe():
    config = backbone_config(TINY, 32)
    assert (config.hidden_size, config.intermediate_size, config.num_heads) == (32, 64, 2)
    assert config.steps == TINY.sft.steps and config.seed == TINY.sft.seed


@pytest.mark.parametrize("flag", ["--sizes", "--policy-sizes"])
def test_cli_rejects_bad_sizes_in_one_line(tmp_path, flag):
    process = subprocess.run([sys.executable, "-m", "rewardkit", "experiment", "scaling", flag, "10",
                              "--output", str(tmp_path / "out")], capture_output=True, text=True, timeout=120)
    assert process.returncode == 2
    assert process.stderr.strip() == f"rewardkit: error: {flag} must be multiples of 4, at least 4, got 10"
