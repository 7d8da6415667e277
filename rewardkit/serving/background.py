"""Run a reward server on its own event loop in a background thread: for notebooks, tests and benchmarks.

    with BackgroundServer(model, ServerConfig(port=0)) as server:
        RewardClient(server.url).score(prompts, responses)

Leaving the block shuts the server down gracefully, exactly as SIGTERM does for `rewardkit serve`.
"""

from __future__ import annotations

from rewardkit.model import RewardModel
from rewardkit.serving.asgi import BackgroundAsgiServer
from rewardkit.serving.server import RewardServer, ServerConfig


class BackgroundServer(BackgroundAsgiServer):
    def __init__(self, model: RewardModel, config: ServerConfig | None = None):
        self.reward_server = RewardServer(model, config)
        super().__init__(self.reward_server, self.reward_server.config, self.reward_server.hooks)
