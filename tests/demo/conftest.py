"""A tiny demo, run once per session: seeds 0 and 1 in a fresh process (as a user would, output to a pipe), and
seed 1 alone in this process, for the reproducibility, report and mitigations tests."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from rewardkit.demo import DemoConfig, run_demo
from rewardkit.progress import Console
from rewardkit.world import SFTConfig
from tests.conftest import one_thread

TINY = DemoConfig(
    sft=SFTConfig(num_demonstrations=400, steps=30, batch_size=32),
    train_prompts=40, val_prompts=12, rm_epochs=1.0, data_fractions=(1.0,),
    eval_prompts=6, bon_samples=16, bon_n_max=8,
    ppo_betas=(0.0, 0.05), ppo_steps=4, ppo_batch_size=8, ppo_checkpoints=2, ppo_eval_samples=2,
    control_ppo_steps=2, max_new_tokens=12, bootstrap_samples=100,
)

RUN_SEEDS = """
import json, sys
from rewardkit.demo import DemoConfig, run_demo
run_demo(DemoConfig.from_dict(json.loads(sys.argv[1])), sys.argv[2], seeds=[0, 1], workers=2)
"""


@pytest.fixture(scope="session")
def two_seeds(tmp_path_factory) -> tuple[Path, subprocess.CompletedProcess]:
    """Seeds 0 and 1 through `run_demo` in a child process whose stdout and stderr are pipes (not a terminal), the
    PPO runs in two worker processes."""
    output = tmp_path_factory.mktemp("demo-seeds")
    process = subprocess.run([sys.executable, "-c", RUN_SEEDS, json.dumps(TINY.to_dict()), str(output)],
                             capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"}, timeout=600)
    assert process.returncode == 0, process.stderr[-3000:]
    return output, process


@pytest.fixture(scope="session")
def seed_one(tmp_path_factory) -> tuple[Path, dict]:
    """Seed 1 alone, in this process, every PPO run in it too."""
    output = tmp_path_factory.mktemp("demo-seed-1")
    with one_thread():
        results = run_demo(TINY, output, seeds=[1], console=Console(enabled=False))
    return output, results
