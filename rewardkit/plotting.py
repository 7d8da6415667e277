"""What every report's figures share: matplotlib without a display, one way to save a figure, titles that wrap."""

from __future__ import annotations

import re
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # PNG files only: no display on servers and in CI
import matplotlib.pyplot as plt  # noqa: E402


def save_figure(fig, path: Path, dpi: int = 110) -> Path:
    """Write `fig` to `path` and close it; the canvas grows to hold long labels and outside legends."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi, bbox_inches="tight")
    plt.close(fig)
    return path


def wrap_title(name: str, width: int) -> str:
    """The whole name on lines of at most `width` characters (paths break after a '/'), never cut."""
    lines, line = [], ""
    for part in re.split(r"(?<=/)", name):
        while len(part) > width:  # a single part longer than a line breaks inside
            lines.append(line + part[: width - len(line)])
            part, line = part[width - len(line):], ""
        if len(line) + len(part) > width:
            lines.append(line)
            line = ""
        line += part
    return "\n".join([*lines, line] if line else lines)
