"""Two processes (gloo, on the CPU) train, score and evaluate like one process.

One torchrun job trains with 2 x batch 2 and then scores and evaluates; it is compared with a 1-process run with
batch 4 in this process. The step's groups fall unevenly on the ranks at the end of each epoch (19 groups, 8 per
step: the third step has 3, so one rank holds 2 groups and the other 1, and the second micro-batch has none), where
a plain per-rank mean would give a different gradient. A second job resumes the 2-process run through
`rewardkit train --num-processes 2`, which starts itself again through `accelerate launch`.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.distributed
from safetensors.torch import load_file

from rewardkit import distributed
from rewardkit.cli import main
from rewardkit.distributed import map_sharded, shard_step
from tests.conftest import keyword_pairs, ranking_records, step_records, write_jsonl

pytestmark = pytest.mark.skipif(
    not (torch.distributed.is_available() and torch.distributed.is_gloo_available()), reason="needs torch gloo"
)

AUDITED_CLI = Path(__file__).with_name("audited_cli.py")
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}  # 2 processes share 2 cores
TIMEOUT = 300


def _train_args(root: Path, output: str, batch_size: int) -> list[str]:
    return [
        "train", "--model", str(root / "sft"), "--data", str(root / "pairs.jsonl"), str(root / "ranks.jsonl"),
        "--eval-data", str(root / "eval.jsonl"), "--output", str(root / output), "--batch-size", str(batch_size),
        "--grad-accum", "2", "--epochs", "2", "--lr", "1e-3", "--max-length", "64", "--save-steps", "3",
        "--eval-steps", "3", "--logging-steps", "1", "--seed", "3", "--no-progress",
    ]  # fmt: skip


def _step_train_args(root: Path, output: str, batch_size: int) -> list[str]:
    return [
        "train", "--model", str(root / "sft"), "--data", str(root / "steps.jsonl"), "--output", str(root / output),
        "--batch-size", str(batch_size), "--max-steps", "3", "--lr", "1e-3", "--max-length", "96",
        "--eval-fraction", "0.25", "--save-steps", "2", "--eval-steps", "3", "--logging-steps", "1", "--seed", "3",
        "--no-progress",
    ]  # fmt: skip


def _score_args(root: Path, output: str) -> list[str]:
    model, data = str(root / "rm-2proc"), str(root / "to-score.jsonl")
    return ["score", "--model", model, "--data", data, "--batch-size", "2", "--output", str(root / output)]


def _eval_args(root: Path, output: str) -> list[str]:
    model, data = str(root / "rm-2proc"), str(root / "ranks.jsonl")
    return ["eval", "--model", model, "--data", data, "--batch-size", "3", "--output", str(root / output)]


def _run(command: list[str]) -> None:
    done = subprocess.run(command, env=ENV, capture_output=True, text=True, timeout=TIMEOUT)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-5000:]


def write_training_data(root: Path, tiny_sft: Path) -> Path:
    """The SFT model and the data of `_train_args` under `root`."""
    shutil.copytree(tiny_sft, root / "sft")
    write_jsonl(root / "pairs.jsonl", keyword_pairs(15))
    write_jsonl(root / "ranks.jsonl", ranking_records(4, k=4))  # K-wise groups: 6 comparisons each
    write_jsonl(root / "eval.jsonl", keyword_pairs(6, seed=1))
    return root


@pytest.fixture(scope="module")
def runs(tiny_sft, tmp_path_factory) -> Path:
    root = write_training_data(tmp_path_factory.mktemp("runs"), tiny_sft)
    write_jsonl(root / "to-score.jsonl", [{"prompt": f"Question {i}:", "response": " yes " * i} for i in range(7)])
    write_jsonl(root / "steps.jsonl", step_records(21, solutions_per_problem=3))

    # 2 processes: train, then score and evaluate the result, recording what each rank writes under `root`.
    commands = [
        _train_args(root, "rm-2proc", 2), _score_args(root, "scores-2proc.jsonl"), _eval_args(root, "eval-2proc.json"),
        _step_train_args(root, "prm-2proc", 2),
    ]
    audit = tmp_path_factory.mktemp("audit")
    (audit / "commands.json").write_text(json.dumps(commands))
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    _run([*torchrun, str(AUDITED_CLI), str(audit / "commands.json"), str(root), str(audit)])
    shutil.copytree(audit, root / "audit")

    # The same in 1 process with batch 4 (2 x 2), in this process.
    assert main(_train_args(root, "rm-1proc", 4)) == 0
    assert main(_score_args(root, "scores-1proc.jsonl")) == 0
    assert main(_eval_args(root, "eval-1proc.json")) == 0
    assert main(_step_train_args(root, "prm-1proc", 4)) == 0
    return root


def _records(run: Path, split: str) -> list[dict]:
    lines = (run / "metrics.jsonl").read_text().splitlines()
    return [record for record in map(json.loads, lines) if record["split"] == split]


def _max_difference(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
    assert a.keys() == b.keys()
    return max((a[name] - b[name]).abs().max().item() for name in a)


def test_two_processes_with_batch_b_train_like_one_process_with_batch_2b(runs):
    one, two = runs / "rm-1proc", runs / "rm-2proc"
    train_one, train_two = _records(one, "train"), _records(two, "train")
    assert [r["step"] for r in train_two] == [r["step"] for r in train_one] == [1, 2, 3, 4, 5, 6]
    for a, b in zip(train_one, train_two, strict=True):
        # The reduced loss and the norm of the synced gradient: a per-rank mean would change step 3's and 6's.
        assert b["loss"] == pytest.approx(a["loss"], rel=1e-4), a["step"]
        assert b["grad_norm"] == pytest.approx(a["grad_norm"], rel=1e-4), a["step"]
        assert b["accuracy"] == pytest.approx(a["accuracy"], abs=1e-6)
    for a, b in zip(_records(one, "eval"), _records(two, "eval"), strict=True):
        assert b["accuracy"] == a["accuracy"] and b["mean_margin"] == pytest.approx(a["mean_margin"], abs=1e-4)

    initial = load_file(runs / "rm-1proc" / "checkpoints" / "step-000003" / "model.safetensors")
    weights_one, weights_two = load_file(one / "model.safetensors"), load_file(two / "model.safetensors")
    assert _max_difference(weights_one, initial) > 5e-4  # steps 4-6 alone move weights by up to ~3 x lr
    # Measured: ~1e-5, float noise of other batch shapes that Adam amplifies where gradients are near 0 (the
    # losses and gradient norms above are the sharper check: they agree to ~1e-6).
    assert _max_difference(weights_one, weights_two) < 1e-4

    summary_one, summary_two = (json.loads((run / "train_summary.json").read_text()) for run in (one, two))
    assert (summary_one["num_processes"], summary_two["num_processes"]) == (1, 2)
    assert summary_two["normalization"] == pytest.approx(summary_one["normalization"], abs=1e-4)


def test_two_processes_train_a_process_rm_like_one_process(runs):
    one, two = runs / "prm-1proc", runs / "prm-2proc"
    for a, b in zip(_records(one, "train"), _records(two, "train"), strict=True):
        assert b["loss"] == pytest.approx(a["loss"], rel=1e-4) and b["accuracy"] == pytest.approx(a["accuracy"])
        assert b["grad_norm"] == pytest.approx(a["grad_norm"], rel=1e-4)
    (eval_one,), (eval_two,) = _records(one, "eval"), _records(two, "eval")
    assert eval_two["auroc"] == pytest.approx(eval_one["auroc"], abs=1e-6) and eval_two["num_steps"] > 0
    assert _max_difference(load_file(one / "model.safetensors"), load_file(two / "model.safetensors")) < 1e-4
    assert (two / "checkpoints" / "step-000002" / "accelerate_state").is_dir()


def test_only_the_main_process_writes(runs):
    rank0 = json.loads((runs / "audit" / "rank-0.json").read_text())
    rank1 = json.loads((runs / "audit" / "rank-1.json").read_text())
    # Rank 1 writes only into the checkpoint's Accelerate state (its own RNG states, which a resume needs).
    assert all(write.endswith("/accelerate_state") and ".tmp-step-" in write for write in rank1), rank1
    written = " ".join(rank0)
    for expected in ("metrics.jsonl", ".tmp-step-000003/trainer_state.json", "os.rename", "train_summary.json",
                     "scores-2proc.jsonl", "eval-2proc.json"):
        assert expected in written


def test_scoring_and_evaluation_are_sharded_and_merged_in_input_order(runs):
    one = [json.loads(line) for line in (runs / "scores-1proc.jsonl").read_text().splitlines()]
    two = [json.loads(line) for line in (runs / "scores-2proc.jsonl").read_text().splitlines()]
    assert [r["prompt"] for r in two] == [r["prompt"] for r in one] == [f"Question {i}:" for i in range(7)]
    assert [r["reward"] for r in two] == pytest.approx([r["reward"] for r in one], abs=1e-5)
    assert [r["truncated"] for r in two] == [r["truncated"] for r in one]

    eval_one, eval_two = (json.loads((runs / name).read_text()) for name in ("eval-1proc.json", "eval-2proc.json"))
    (metrics_one,), (metrics_two,) = eval_one.values(), eval_two.values()
    assert metrics_two["num_comparisons"] == metrics_one["num_comparisons"] == 24
    assert _numbers(metrics_two) == pytest.approx(_numbers(metrics_one), abs=1e-5, nan_ok=True)


def _numbers(metrics: dict, prefix: str = "") -> dict[str, float]:
    """The report's numeric leaves, flattened ("accuracy_ci.low": 0.7, ...), for a tolerance comparison."""
    flat = {}
    for key, value in metrics.items():
        if isinstance(value, dict):
            flat |= _numbers(value, f"{prefix}{key}.")
        elif isinstance(value, int | float) and not isinstance(value, bool):
            flat[f"{prefix}{key}"] = value
    return flat


def test_resume_with_two_processes_through_num_processes_reaches_the_same_weights(runs):
    # An interrupted run: its step-3 checkpoint and log, nothing after.
    resumed = runs / "rm-resumed"
    shutil.copytree(runs / "rm-2proc" / "checkpoints", resumed / "checkpoints")
    (resumed / "metrics.jsonl").write_text((runs / "rm-2proc" / "metrics.jsonl").read_text())
    assert [p.name for p in (resumed / "checkpoints").iterdir()] == ["step-000003"]

    argv = [*_train_args(runs, "rm-resumed", 2), "--resume", "--num-processes", "2"]
    _run([sys.executable, "-m", "rewardkit", *argv])

    straight = load_file(runs / "rm-2proc" / "model.safetensors")
    assert _max_difference(load_file(resumed / "model.safetensors"), straight) < 1e-6
    assert [r["step"] for r in _records(resumed, "train")] == [1, 2, 3, 4, 5, 6]
    summary = json.loads((resumed / "train_summary.json").read_text())
    assert summary["num_processes"] == 2


def test_a_short_step_is_shared_in_whole_groups_with_the_same_total_weight():
    # 3 groups left for a step of 2 micro-batches x 2 processes x 2 groups.
    micro_batches = [[7, 1, 4]]
    shares = [shard_step(micro_batches, accumulation=2, rank=rank, world=2) for rank in (0, 1)]
    assert shares == [[[7, 4], []], [[1], []]]
    # The trainer's weight per (process, micro-batch) is groups * world * accumulation / step groups; DDP and
    # accumulation average, so the mean over the 4 passes must give each group 1/3.
    weights = [len(micro) * 2 * 2 / 3 for share in shares for micro in share]
    assert sum(weights) / 4 == pytest.approx(1.0)


def test_map_sharded_in_one_process_is_a_plain_call():
    assert map_sharded(lambda items: [x * 2 for x in items], [3, 1, 2]) == [6, 2, 4]


def cpu_fsdp_config(directory: Path) -> Path:
    """examples/accelerate/fsdp.yaml for 2 processes on the CPU, written into `directory`."""
    example = (Path(__file__).parents[2] / "examples" / "accelerate" / "fsdp.yaml").read_text()
    config = example.replace("num_processes: 8", "num_processes: 2").replace("use_cpu: false", "use_cpu: true")
    assert config != example
    (directory / "fsdp.yaml").write_text(config)
    return directory / "fsdp.yaml"


def test_a_fsdp_config_on_the_cpu_says_it_runs_as_ddp(runs, tmp_path):
    # examples/accelerate/fsdp.yaml with 2 CPU processes: Accelerate shards only on GPUs and runs plain DDP on the
    # CPU. Training must say so, and still train like one process.
    launch = [sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(cpu_fsdp_config(tmp_path))]
    done = subprocess.run([*launch, "-m", "rewardkit", *_train_args(runs, "rm-fsdp-cpu", 2)], env=ENV,
                          capture_output=True, text=True, timeout=TIMEOUT)  # fmt: skip
    assert done.returncode == 0, done.stderr[-5000:]
    assert done.stderr.count("FSDP was requested, but Accelerate runs MULTI_CPU here") == 1  # rank 0 only
    one, two = load_file(runs / "rm-1proc" / "model.safetensors"), load_file(runs / "rm-fsdp-cpu" / "model.safetensors")
    assert _max_difference(one, two) < 1e-4


def test_an_interrupted_relaunch_lets_the_launcher_stop_its_workers(monkeypatch):
    """Ctrl-C or SIGTERM in `train --num-processes`: the launcher gets SIGTERM (which it passes on to its workers)
    and time to use it, and is killed only if it does not exit; the interrupt goes on to the CLI."""
    calls = []

    class Launcher:
        def __init__(self, command):
            calls.append(("start", command[command.index("-m", 3) + 1:]))
            self.waits = 0

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

        def wait(self, timeout=None):
            self.waits += 1
            calls.append(("wait", timeout))
            if self.waits == 1:
                raise KeyboardInterrupt  # while training
            raise subprocess.TimeoutExpired("accelerate", timeout)  # a launcher that does not exit

        def terminate(self):
            calls.append(("terminate",))

        def kill(self):
            calls.append(("kill",))

    monkeypatch.setattr(distributed.subprocess, "Popen", Launcher)
    with pytest.raises(KeyboardInterrupt):
        distributed.relaunch(2, ["train", "--model", "m"])
    assert calls == [("start", ["rewardkit", "train", "--model", "m"]), ("wait", None), ("terminate",),
                     ("wait", distributed.LAUNCHER_GRACE_SECONDS), ("kill",)]
