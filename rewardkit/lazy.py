"""Packages that import their public names on first use, so `import rewardkit.x` (and every `--help`) stays fast:

    __getattr__ = lazy_exports(__name__, {"TrainConfig": "rewardkit.training.config", ...})
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any


def lazy_exports(package: str, exports: dict[str, str]) -> Callable[[str], Any]:
    """A module-level `__getattr__` that imports `exports[name]` (a module path) when `name` is first used."""

    def __getattr__(name: str) -> Any:
        if name in exports:
            return getattr(importlib.import_module(exports[name]), name)
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    return __getattr__
