"""Serve a reward model over HTTP: `rewardkit serve --model DIR`, or from Python:

    from rewardkit.serving import BackgroundServer, ServerConfig
    with BackgroundServer(RewardModel.from_pretrained("rm"), ServerConfig(port=0)) as server:
        print(server.url)

The client side lives in `rewardkit.client`. Names are imported on first use, so `rewardkit serve --help` does
not wait for torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

_EXPORTS = {
    "BackgroundServer": "rewardkit.serving.background",
    "RewardServer": "rewardkit.serving.server",
    "ServerConfig": "rewardkit.serving.config",
    "serve": "rewardkit.serving.server",
}

__all__ = ["BackgroundServer", "RewardServer", "ServerConfig", "serve"]

if TYPE_CHECKING:
    from rewardkit.serving.background import BackgroundServer
    from rewardkit.serving.config import ServerConfig
    from rewardkit.serving.server import RewardServer, serve


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'rewardkit.serving' has no attribute {name!r}")
