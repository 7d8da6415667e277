"""Several processes, one job: Hugging Face Accelerate over torch.distributed.

Launch any command with `accelerate launch -m rewardkit ...` or `torchrun -m rewardkit ...` (plain DDP), with
`accelerate launch --config_file examples/accelerate/<fsdp|deepspeed...>.yaml -m rewardkit train ...`, or, on one
machine, `rewardkit train --num-processes N`. How the work is split:

- training: optimizer step s takes the groups that a 1-process run with batch `batch_size * N` takes in step s,
  and each process takes whole groups of them, so a K-wise group is never split across processes (`shard_step`).
- scoring and evaluation: each process scores every N-th item and every process gets all results, in input
  order (`map_sharded`, `shard_and_score`, `sharded_evaluate`).
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

import torch
from accelerate import Accelerator, PartialState
from accelerate.state import AcceleratorState
from accelerate.utils import DistributedType, GradientAccumulationPlugin, gather_object

if TYPE_CHECKING:  # the model code (transformers) is imported where used: `train --num-processes` relaunches fast
    from rewardkit.data.collate import EncodedDataset
    from rewardkit.data.records import Text
    from rewardkit.model.metrics import PairwiseMetrics
    from rewardkit.model.reward_model import RewardModel, ScoreOutput
    from rewardkit.model.step_scores import StepScores
    from rewardkit.training.config import TrainConfig

Item = TypeVar("Item")
Result = TypeVar("Result")
logger = logging.getLogger(__name__)


# ----------------------------------------------------------------------------------------------------- processes
def use_cpu(device: str = "auto") -> bool:
    # Without CUDA, Accelerate forms the (gloo) process group of a torchrun launch only when told it runs on the CPU;
    # otherwise every process would silently train alone.
    return device == "cpu" or not torch.cuda.is_available()


def process_state() -> PartialState:
    """This process's rank and device among the launched processes (one process when not launched)."""
    return PartialState(cpu=use_cpu())


def launched() -> bool:
    """True inside a process started by `accelerate launch` or `torchrun` (both set WORLD_SIZE)."""
    return "WORLD_SIZE" in os.environ


LAUNCHER_GRACE_SECONDS = 30.0  # for Accelerate's launcher to stop its workers after Ctrl-C / SIGTERM


def relaunch(num_processes: int, argv: Sequence[str]) -> int:
    """Run `rewardkit <argv>` as `num_processes` DDP processes on this machine through Accelerate's launcher.

    The started processes see WORLD_SIZE and run the command themselves instead of launching again.
    """
    command = [
        sys.executable, "-m", "accelerate.commands.launch",
        "--multi_gpu",  # Accelerate's name for multi-process DDP; on a machine without CUDA the processes use gloo
        "--num_processes", str(num_processes),
        "--num_machines", "1",
        "--main_process_port", "0",  # a free port, so that two jobs on one machine do not collide
        "--mixed_precision", "no",  # precision is rewardkit's own --precision
        "--dynamo_backend", "no",
        "-m", "rewardkit", *argv,
    ]  # fmt: skip
    with subprocess.Popen(command) as launcher:
        try:
            return launcher.wait()
        except KeyboardInterrupt:  # Ctrl-C, or SIGTERM raised as one by the CLI
            # SIGTERM lets the launcher stop its worker processes first; SIGKILL (what subprocess.run sends) cannot
            # be passed on, and the workers would go on training with nobody waiting for them.
            launcher.terminate()
            try:
                launcher.wait(timeout=LAUNCHER_GRACE_SECONDS)
            except subprocess.TimeoutExpired:
                launcher.kill()
            raise



# ------------------------------------------------------------------------------------------------------ training
SHARDING_LAUNCH_VARIABLES = (("FSDP", "ACCELERATE_USE_FSDP"), ("DeepSpeed", "ACCELERATE_USE_DEEPSPEED"))


def build_accelerator(config: TrainConfig) -> Accelerator:
    # Accelerate keeps one state per process, and a new Accelerator inherits the mixed precision of the first: after
    # a transformers / TRL Trainer with bf16 ran in this process, every rewardkit forward would silently run under
    # its bf16 autocast (15-200x slower on CPUs without bf16 units). rewardkit applies --precision itself, so the
    # state is rebuilt from this run's settings (as transformers' Trainer does); the process group is kept.
    AcceleratorState._reset_state()
    accelerator = Accelerator(
        cpu=use_cpu(config.device),
        # Passed as a plugin so ACCELERATE_GRADIENT_ACCUMULATION_STEPS cannot change it behind the trainer's back:
        # the trainer's loss weights assume exactly this many micro-batches per step.
        gradient_accumulation_plugin=GradientAccumulationPlugin(
            num_steps=config.gradient_accumulation_steps, sync_with_dataloader=False
        ),
        device_placement=False,  # the trainer places the model (on one process it honours --device cuda:N)
    )
    requested = [name for name, variable in SHARDING_LAUNCH_VARIABLES if os.environ.get(variable) == "true"]
    if requested and not is_sharded(accelerator) and accelerator.is_main_process:
        # Accelerate shards only on accelerators: on the CPU a FSDP / DeepSpeed config silently becomes DDP.
        logger.warning("%s was requested, but Accelerate runs %s here (it shards only on GPUs): every process "
                       "holds the whole model and optimizer state", requested[0], accelerator.distributed_type.value)
    if accelerator.state.deepspeed_plugin is not None:
        # DeepSpeed wants the micro-batch size, which it would otherwise read off a prepared DataLoader.
        accelerator.state.deepspeed_plugin.deepspeed_config["train_micro_batch_size_per_gpu"] = config.batch_size
    return accelerator


def is_sharded(accelerator: Accelerator) -> bool:
    """FSDP or DeepSpeed: weights or optimizer states are split across the processes."""
    return accelerator.distributed_type in (DistributedType.FSDP, DistributedType.DEEPSPEED)


def save_model(accelerator: Accelerator, wrapped: torch.nn.Module, model: RewardModel, directory: Path) -> None:
    """Write `model` as a standard checkpoint from the main process.

    Every process must call it: under FSDP and ZeRO-3 the full weights are first gathered from all of them.
    """
    if not is_sharded(accelerator):
        if accelerator.is_main_process:
            model.save_pretrained(directory)
        return
    state_dict = accelerator.get_state_dict(wrapped)  # keys of the RewardModel: "model." + the transformers model's
    if accelerator.is_main_process:
        hf_state_dict = {name.removeprefix("model."): tensor for name, tensor in state_dict.items()}
        model.hf_model.save_pretrained(directory, state_dict=hf_state_dict)
        model.tokenizer.save_pretrained(directory)


def shard_step(micro_batches: list[list[int]], accumulation: int, rank: int, world: int) -> list[list[int]]:
    """This process's part of one optimizer step: every `world`-th group of each micro-batch, whole groups only.

    It always has `accumulation` micro-batches, some maybe empty (the short last step of an epoch), so that every
    process runs as many forward/backward passes and gradient syncs as the others.
    """
    padded = micro_batches + [[] for _ in range(accumulation - len(micro_batches))]
    return [micro[rank::world] for micro in padded]


# ------------------------------------------------------------------------------------------- scoring, evaluation
def map_sharded(function: Callable[[list[Item]], Sequence[Result]], items: Sequence[Item]) -> list[Result]:
    """`function(items)` with each process doing every N-th item; every process returns all results in order.

    Under FSDP / DeepSpeed every process does every item instead: there a forward pass is a collective (weights are
    gathered from all processes), and only identical inputs guarantee that every process runs the same number of
    forwards, whatever batching by length or skipping `function` does inside.
    """
    state = process_state()
    rank, world = state.process_index, state.num_processes
    if world == 1 or state.distributed_type in (DistributedType.FSDP, DistributedType.DEEPSPEED):
        return list(function(list(items)))
    results = list(function(list(items[rank::world])))
    merged: list = [None] * len(items)
    for process, share in enumerate(gather_object([results])):  # one list per process, in rank order
        merged[process::world] = share
    return merged


def shard_and_score(
    model: RewardModel,
    prompts: Sequence[Text],
    responses: Sequence[Text],
    batch_size: int = 32,
    normalize: bool = True,
    progress: bool = False,
) -> ScoreOutput:
    """`model.score(..., return_details=True)` shared by all launched processes; each gets every row, in order.
    `progress`: a bar over the main process's share."""
    from rewardkit.model.reward_model import ScoreOutput

    show = progress and process_state().is_main_process

    def score(pairs: list[tuple[Text, Text]]) -> list[tuple]:
        prompts, responses = [p for p, _ in pairs], [r for _, r in pairs]
        out = model.score(prompts, responses, batch_size, normalize, return_details=True, progress=show)
        return list(zip(out.rewards.tolist(), out.raw_rewards.tolist(), out.truncated, out.num_tokens, strict=True))

    rows = map_sharded(score, list(zip(prompts, responses, strict=True)))
    return ScoreOutput(
        rewards=torch.tensor([row[0] for row in rows], dtype=torch.float32),
        raw_rewards=torch.tensor([row[1] for row in rows], dtype=torch.float32),
        truncated=[row[2] for row in rows],
        num_tokens=[row[3] for row in rows],
    )


def shard_and_score_steps(
    model: RewardModel,
    prompts: Sequence[Text],
    solutions: Sequence[Sequence[str]],
    batch_size: int = 32,
    normalize: bool = True,
    progress: bool = False,
) -> StepScores:
    """`model.score_steps(...)` shared by all launched processes; each gets every solution, in order."""
    from rewardkit.model.step_scores import StepScores

    show = progress and process_state().is_main_process

    def score(share: list[tuple[Text, Sequence[str]]]) -> list[tuple]:
        out = model.score_steps([p for p, _ in share], [s for _, s in share], batch_size, normalize, progress=show)
        return [(r.tolist(), raw.tolist(), n, t) for r, raw, n, t in
                zip(out.rewards, out.raw_rewards, out.num_steps, out.truncated, strict=True)]  # fmt: skip

    rows = map_sharded(score, list(zip(prompts, solutions, strict=True)))
    return StepScores([torch.tensor(r[0]) for r in rows], [torch.tensor(r[1]) for r in rows],
                      [r[2] for r in rows], [r[3] for r in rows])


class ShardedScorer:
    """A RewardModel whose `score_encoded` is shared by the launched processes, for `evaluate`,
    `score_encoded_dataset` and the code built on them."""

    def __init__(self, model: RewardModel, progress: bool | str = False):
        self.model = model
        self.progress = progress if process_state().is_main_process else False  # a bar over the main's share

    def __getattr__(self, name: str):  # tokenizer, max_length, ...: the model's own
        return getattr(self.model, name)

    def score_encoded(
        self, sequences: Sequence[Sequence[int]], batch_size: int = 32, autocast_dtype: torch.dtype | None = None
    ) -> torch.Tensor:
        def score(share: list[Sequence[int]]) -> list[float]:
            return self.model.score_encoded(share, batch_size, autocast_dtype, progress=self.progress).tolist()

        return torch.tensor(map_sharded(score, sequences), dtype=torch.float32)

    def score_encoded_steps(
        self,
        sequences: Sequence[Sequence[int]],
        reward_positions: Sequence[Sequence[int]],
        batch_size: int = 32,
        autocast_dtype: torch.dtype | None = None,
    ) -> list[torch.Tensor]:
        def score(share: list[tuple[Sequence[int], Sequence[int]]]) -> list[list[float]]:
            rewards = self.model.score_encoded_steps([s for s, _ in share], [p for _, p in share], batch_size,
                                                     autocast_dtype, progress=self.progress)
            return [r.tolist() for r in rewards]

        rows = map_sharded(score, list(zip(sequences, reward_positions, strict=True)))
        return [torch.tensor(row, dtype=torch.float32) for row in rows]


def sharded_evaluate(model: RewardModel, encoded: EncodedDataset, batch_size: int = 32) -> PairwiseMetrics:
    """`evaluate` with the scoring shared by all launched processes; every process gets the same metrics."""
    from rewardkit.model.metrics import evaluate

    return evaluate(ShardedScorer(model), encoded, batch_size)  # type: ignore[arg-type]  # duck-typed RewardModel
