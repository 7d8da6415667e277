"""Atomic checkpoints that resume to the same weights as an uninterrupted run.

A checkpoint is a directory `checkpoints/step-000040/` holding a standard transformers model (loadable by any
tool), the optimizer and scheduler states, the RNG states, and `trainer_state.json`. It is written under a
temporary name and renamed into place, so a kill mid-write never leaves a half checkpoint that looks complete.
"""

from __future__ import annotations

import json
import random
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from rewardkit.model.reward_model import RewardModel

CHECKPOINT_DIR = "checkpoints"
STATE_FILE = "trainer_state.json"
ADAPTER_FILE = "trainable_state.safetensors"  # LoRA runs: adapters + head, as named inside the peft wrapper


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
    output_dir: str | Path,
    model: RewardModel,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    state: dict[str, Any],
    keep: int,
) -> Path:
    root = _checkpoint_root(Path(output_dir))
    root.mkdir(parents=True, exist_ok=True)
    final = root / f"step-{state['step']:06d}"
    temporary = root / f".tmp-{final.name}"
    shutil.rmtree(temporary, ignore_errors=True)
    temporary.mkdir()

    model.save_pretrained(temporary)
    if hasattr(model.model, "get_base_model"):  # LoRA: the merged model above cannot be resumed into adapters
        trainable = {n: p.detach().cpu().contiguous() for n, p in model.model.named_parameters() if p.requires_grad}
        save_file(trainable, temporary / ADAPTER_FILE)
    torch.save(optimizer.state_dict(), temporary / "optimizer.pt")
    torch.save(scheduler.state_dict(), temporary / "scheduler.pt")
    torch.save(_rng_state(), temporary / "rng_state.pt")
    # The state file is written last: its presence marks the checkpoint complete.
    (temporary / STATE_FILE).write_text(json.dumps(state, indent=2))

    shutil.rmtree(final, ignore_errors=True)
    temporary.rename(final)
    for old in list_checkpoints(output_dir)[:-keep] if keep > 0 else []:
        shutil.rmtree(old, ignore_errors=True)
    return final


def load_trainer_state(
    checkpoint: Path,
    model: RewardModel,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
) -> dict[str, Any]:
    """Restore optimizer, scheduler, RNGs (and LoRA weights) into an already-built model; return the state."""
    if (checkpoint / ADAPTER_FILE).is_file():
        model.model.load_state_dict(load_file(checkpoint / ADAPTER_FILE), strict=False)
    optimizer.load_state_dict(torch.load(checkpoint / "optimizer.pt", weights_only=True))
    scheduler.load_state_dict(torch.load(checkpoint / "scheduler.pt", weights_only=True))
    _set_rng_state(torch.load(checkpoint / "rng_state.pt", weights_only=False))
    return json.loads((checkpoint / STATE_FILE).read_text())


def _rng_state() -> dict[str, Any]:
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
