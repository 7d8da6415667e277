"""FSDP2 with 2 CPU processes (gloo): a run stopped at its checkpoint resumes to the weights of an uninterrupted one.

Accelerate shards only on accelerators, so `fsdp_cpu_cli.py` sets the FSDP state it would set on GPUs; from there
on the model is really sharded (each process holds half of every weight and of the Adam moments) and checkpoints
go through Accelerate's sharded `save_state` / `load_state`, as on GPUs. The run is the one of test_multiprocess.py
(6 steps, a checkpoint at step 3, an uneven last step per epoch), so it also trains like one process with batch 4.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoModelForSequenceClassification

from rewardkit.cli import main
from tests.distributed.test_multiprocess import (
    _max_difference,
    _records,
    _run,
    _train_args,
    cpu_fsdp_config,
    write_training_data,
)

pytestmark = pytest.mark.skipif(
    not (torch.distributed.is_available() and torch.distributed.is_gloo_available()), reason="needs torch gloo"
)

FSDP_CPU_CLI = Path(__file__).with_name("fsdp_cpu_cli.py")


@pytest.fixture(scope="module")
def runs(tiny_sft, tmp_path_factory) -> Path:
    root = write_training_data(tmp_path_factory.mktemp("fsdp"), tiny_sft)
    launch = [sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(cpu_fsdp_config(root))]
    _run([*launch, str(FSDP_CPU_CLI), *_train_args(root, "straight", 2)])

    # An interrupted run: the step-3 checkpoint and the log up to it, nothing after; then --resume.
    shutil.copytree(root / "straight" / "checkpoints", root / "resumed" / "checkpoints")
    log = _records(root / "straight", "train") + _records(root / "straight", "eval")
    upto_3 = "".join(json.dumps(record) + "\n" for record in log if record["step"] <= 3)
    (root / "resumed" / "metrics.jsonl").write_text(upto_3)
    _run([*launch, str(FSDP_CPU_CLI), *_train_args(root, "resumed", 2), "--resume"])

    assert main(_train_args(root, "one-process", 4)) == 0  # the same groups per step, in this process
    return root


def test_the_checkpoint_holds_each_process_s_shard(runs):
    state = runs / "straight" / "checkpoints" / "step-000003" / "accelerate_state"
    # Accelerate's sharded FSDP format (torch.distributed.checkpoint): one file per process, and .metadata.
    for part in ("pytorch_model_fsdp_0", "optimizer_0"):
        assert {"__0_0.distcp", "__1_0.distcp"} <= {path.name for path in (state / part).iterdir()}, part
    assert not (state / "model.safetensors").exists()


def test_a_resumed_fsdp_run_reaches_the_weights_of_an_uninterrupted_one(runs):
    straight, resumed = (load_file(runs / name / "model.safetensors") for name in ("straight", "resumed"))
    initial = load_file(runs / "straight" / "checkpoints" / "step-000003" / "model.safetensors")
    assert _max_difference(straight, initial) > 5e-4  # steps 4-6 move the weights
    assert _max_difference(resumed, straight) < 1e-6  # the same collectives on the same shards: measured 0
    assert [r["step"] for r in _records(runs / "resumed", "train")] == [1, 2, 3, 4, 5, 6]
    summary = json.loads((runs / "resumed" / "train_summary.json").read_text())
    assert summary["steps"] == 6 and summary["num_processes"] == 2


def test_fsdp_trains_like_one_process(runs):
    for a, b in zip(_records(runs / "one-process", "train"), _records(runs / "straight", "train"), strict=True):
        assert b["loss"] == pytest.approx(a["loss"], rel=1e-4), a["step"]
        assert b["grad_norm"] == pytest.approx(a["grad_norm"], rel=1e-4), a["step"]
    one, fsdp = (load_file(runs / name / "model.safetensors") for name in ("one-process", "straight"))
    assert _max_difference(one, fsdp) < 1e-4  # as for DDP: float noise of other batch shapes, amplified by Adam


def test_the_saved_fsdp_model_loads_with_plain_transformers(runs):
    directory = runs / "resumed"
    model = AutoModelForSequenceClassification.from_pretrained(directory)
    saved = load_file(directory / "model.safetensors")
    loaded = model.state_dict()
    assert saved.keys() <= loaded.keys() and "score.weight" in saved
    assert _max_difference(saved, {name: loaded[name] for name in saved}) == 0
    # Full weights, gathered from both processes' shards.
    config = json.loads((directory / "config.json").read_text())
    assert saved["model.embed_tokens.weight"].shape == (config["vocab_size"], config["hidden_size"])
    settings, summary = config["rewardkit"], json.loads((directory / "train_summary.json").read_text())
    assert [settings["reward_offset"], settings["reward_scale"]] == summary["normalization"]
