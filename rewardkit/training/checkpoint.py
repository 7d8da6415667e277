"""Atomic checkpoints that resume to the same weights as an uninterrupted run, under DDP, FSDP and DeepSpeed.

A checkpoint is a directory `checkpoints/step-000040/` holding a standard transformers model (loadable by any
tool), `trainer_state.json`, and `accelerate_state/`: what `Accelerator.save_state` writes for the wrapped model,
the optimizer, the learning-rate schedule and every process's RNG states. Accelerate saves sharded FSDP weights
and optimizer states and DeepSpeed engines in their own formats, so a resumed run continues whatever wrapped the
model. The directory is written under a temporary name and renamed into place, so a kill mid-write never leaves a
half checkpoint that looks complete.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import torch
from accelerate import Accelerator

from rewardkit.distributed import save_model
from rewardkit.model.reward_model import RewardModel

CHECKPOINT_DIR = "checkpoints"
STATE_FILE = "trainer_state.json"
ACCELERATE_STATE_DIR = "accelerate_state"


def _checkpoint_root(output_dir: Path) -> Path:
    return output_dir / CHECKPOINT_DIR


def list_checkpoints(output_dir: str | Path) -> list[Path]:
    """Complete checkpoints, oldest first (temporary directories from an interrupted write are ignored)."""
    root = _checkpoint_root(Path(output_dir))
    if not root.is_dir():
        return []
    done = [path for path in root.glob("step-*") if (path / STATE_FILE).is_file()]
    return sorted(done, key=lambda path: int(path.name.split("-")[1]))


def latest_checkpoint(output_dir: str | Path) -> Path | None:
    checkpoints = list_checkpoints(output_dir)
    return checkpoints[-1] if checkpoints else None


def save_checkpoint(
    accelerator: Accelerator,
    output_dir: str | Path,
    wrapped: torch.nn.Module,
    model: RewardModel,
    state: dict[str, Any],
    keep: int,
) -> Path:
    """Write a checkpoint of step `state["step"]`. Every process calls it: FSDP and DeepSpeed write shards."""
    root = _checkpoint_root(Path(output_dir))
    final = root / f"step-{state['step']:06d}"
    temporary = root / f".tmp-{final.name}"
    if accelerator.is_main_process:
        shutil.rmtree(temporary, ignore_errors=True)
        temporary.mkdir(parents=True)
    accelerator.wait_for_everyone()
    accelerator.save_state(str(temporary / ACCELERATE_STATE_DIR))
    save_model(accelerator, wrapped, model, temporary)
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        # The state file is written last: its presence marks the checkpoint complete.
        (temporary / STATE_FILE).write_text(json.dumps(state, indent=2))
        shutil.rmtree(final, ignore_errors=True)
        temporary.rename(final)
        for old in list_checkpoints(output_dir)[:-keep] if keep > 0 else []:
            shutil.rmtree(old, ignore_errors=True)
    accelerator.wait_for_everyone()
    return final


def load_checkpoint(accelerator: Accelerator, checkpoint: Path) -> dict[str, Any]:
    """Restore the prepared model, optimizer, schedule and RNGs from `checkpoint`; return its trainer state."""
    accelerator.load_state(str(checkpoint / ACCELERATE_STATE_DIR))
    return json.loads((checkpoint / STATE_FILE).read_text())
