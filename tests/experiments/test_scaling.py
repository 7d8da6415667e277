"""`rewardkit experiment scaling` on tiny sizes: one fitted cell per (size, data, seed), combined over seeds."""

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

CONFIG = ScalingConfig(seeds=(0, 1), setup=TINY, rm_sizes=(16, 64), data_fractions=(0.5, 1.0))


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
    # the policy's own width reuses the SFT policy as its backbone; the other width gets its own
    assert (output / "seed-0" / "backbone-16" / "config.json").exists()
    assert not (output / "seed-0" / "backbone-64").exists()


def test_report_and_plots(scaling, tmp_path):
    output, results = scaling
    files = write_report(results, json.loads((output / "timings.json").read_text()), tmp_path)
    assert "8 fitted cells" in files["markdown"].read_text()
    for png in ("scaling_parameters.png", "scaling_data.png"):
        assert (tmp_path / "plots" / png).read_bytes()[:4] == b"\x89PNG"


def test_backbone_widths_keep_the_recipe():
    config = backbone_config(TINY, 32)
    assert (config.hidden_size, config.intermediate_size, config.num_heads) == (32, 64, 2)
    assert config.steps == TINY.sft.steps and config.seed == TINY.sft.seed


def test_cli_rejects_bad_sizes_in_one_line(tmp_path):
    process = subprocess.run([sys.executable, "-m", "rewardkit", "experiment", "scaling", "--sizes", "10",
                              "--output", str(tmp_path / "out")], capture_output=True, text=True, timeout=120)
    assert process.returncode == 2
    assert process.stderr.strip() == "rewardkit: error: --sizes must be multiples of 4, at least 4, got 10"
