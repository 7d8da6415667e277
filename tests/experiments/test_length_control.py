"""`rewardkit experiment length` on tiny sizes: ODIN's loss by hand, the two RMs, accuracy beside the length rule,
best-of-n by the three rankers, the quality head saved as a plain RM."""

from __future__ import annotations

import json

import pytest
import torch

from rewardkit.experiments.length_control import (
    LENGTH,
    ODIN,
    PLAIN,
    LengthControlConfig,
    odin_loss,
    pearson,
    run_length_control,
)
from rewardkit.experiments.length_control_cli import write_report
from rewardkit.model import RewardModel
from rewardkit.progress import Console
from rewardkit.rl.statistics import NOT_RESOLVED
from rewardkit.world.ceilings import LENGTH_RULE
from tests.conftest import one_thread
from tests.demo.conftest import TINY

CONFIG = LengthControlConfig(seeds=(0, 1), setup=TINY, pairs_per_step=32)


def test_odin_loss_by_hand():
    quality = torch.tensor([[1.0, 0.0], [0.0, 0.0]])  # chosen row 0, rejected row 1
    length_reward = torch.tensor([[0.0, 1.0], [0.0, 0.0]])
    lengths = torch.tensor([[1.0, 3.0], [1.0, 1.0]])
    w_q, w_l = torch.tensor([1.0, 0.0]), torch.tensor([0.0, 2.0])
    plain = LengthControlConfig(lambda_length=0.0, lambda_quality=0.0, lambda_orthogonal=0.0)
    bradley_terry = -torch.nn.functional.logsigmoid(torch.tensor([1.0, 1.0])).mean()
    assert odin_loss(quality, length_reward, lengths, w_q, w_l, plain).item() == pytest.approx(bradley_terry.item())
    full = odin_loss(quality, length_reward, lengths, w_q, w_l, LengthControlConfig())
    expected = (bradley_terry - pearson(length_reward.flatten(), lengths.flatten())
                + pearson(quality.flatten(), lengths.flatten()).abs() + 0.0)  # orthogonal heads: 0
    assert full.item() == pytest.approx(expected.item())
    assert pearson(torch.tensor([1.0, 2.0, 3.0]), torch.tensor([2.0, 4.0, 6.0])).item() == pytest.approx(1.0)


@pytest.fixture(scope="module")
def length_control(tmp_path_factory):
    output = tmp_path_factory.mktemp("length")
    with one_thread():
        results = run_length_control(CONFIG, output, Console(enabled=False))
    return output, results


def test_both_rms_the_length_rule_and_best_of_n(length_control):
    output, results = length_control
    assert set(results["accuracy"]) == {PLAIN, ODIN, LENGTH_RULE}
    assert set(results["best_of_n"]) == {PLAIN, ODIN, LENGTH}
    assert set(results["odin_minus_at_n_max"]) == set(results["verdicts"]) == {PLAIN, LENGTH}
    for name, difference in results["odin_minus_at_n_max"].items():
        assert len(difference["per_seed"]) == 2
        if difference["low"] <= 0 <= difference["high"]:
            assert results["verdicts"][name] == NOT_RESOLVED
    # the length head learned length better than the quality head kept it
    correlation = results["length_correlation"]
    assert correlation["ODIN length head"] > abs(correlation["ODIN quality head"])  # means over the seeds
    quality_rm = RewardModel.from_pretrained(output / "seed-0" / "odin-quality-rm")
    assert quality_rm.score(["q"], ["an answer"]).shape == (1,)


def test_report_and_plot(length_control, tmp_path):
    output, results = length_control
    files = write_report(results, json.loads((output / "timings.json").read_text()), tmp_path)
    assert "ODIN" in files["markdown"].read_text() and LENGTH_RULE in files["markdown"].read_text()
    assert (tmp_path / "plots" / "length_control.png").read_bytes()[:4] == b"\x89PNG"


@pytest.mark.parametrize("experiment", ["length", "scaling"])
def test_shared_options_fail_in_one_line(experiment, tmp_path):
    import subprocess
    import sys

    def cli(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "rewardkit", "experiment", experiment, *args],
                              capture_output=True, text=True, timeout=120)

    repeated = cli("--seeds", "1", "1", "--output", str(tmp_path / "out"))
    assert (repeated.returncode, repeated.stderr.strip()) == (2, "rewardkit: error: --seeds must be distinct, got 1 1")
    (tmp_path / "file").write_text("")
    taken = cli("--output", str(tmp_path / "file"))
    assert taken.returncode == 2
    assert taken.stderr.strip() == f"rewardkit: error: --output {tmp_path / 'file'} exists and is not a directory"
    assert not (tmp_path / "out").exists()
