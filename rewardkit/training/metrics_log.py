"""Training metrics as JSON lines (always) and TensorBoard scalars (optional)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from rewardkit.errors import RewardkitError


class MetricsLog:
    def __init__(self, path: Path, tensorboard: bool = False, resume_after_step: int | None = None):
        """A fresh log, or, when resuming, the old one cut back to the checkpoint's step (the steps after it
        are trained again and would otherwise be logged twice)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        kept = []
        if resume_after_step is not None and path.is_file():
            kept = [line for line in path.read_text().splitlines() if json.loads(line)["step"] <= resume_after_step]
        self._file = path.open("w")
        self._file.writelines(line + "\n" for line in kept)
        self._writer = None
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError as error:
                raise RewardkitError("--tensorboard needs the tensorboard package: pip install tensorboard") from error
            self._writer = SummaryWriter(log_dir=str(path.parent / "tensorboard"))

    def write(self, record: dict[str, Any]) -> None:
        self._file.write(json.dumps(record) + "\n")
        self._file.flush()
        if self._writer is not None:
            for key, value in record.items():
                if isinstance(value, int | float) and key != "step":
                    self._writer.add_scalar(f"{record.get('split', 'train')}/{key}", value, record["step"])

    def close(self) -> None:
        self._file.close()
        if self._writer is not None:
            self._writer.close()
