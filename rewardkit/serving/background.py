"""Run a RewardServer on its own event loop in a background thread: for notebooks, tests and benchmarks.

    with BackgroundServer(model, ServerConfig(port=0)) as server:
        RewardClient(server.url).score(prompts, responses)

Leaving the block shuts the server down gracefully, exactly as SIGTERM does for `rewardkit serve`.
"""

from __future__ import annotations

import asyncio
import threading

from rewardkit.model import RewardModel
from rewardkit.serving.server import RewardServer, ServerConfig


class BackgroundServer:
    def __init__(self, model: RewardModel, config: ServerConfig | None = None):
        self.server = RewardServer(model, config)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None

    @property
    def url(self) -> str:
        return self.server.url

    def start(self) -> BackgroundServer:
        """Start serving; returns once the socket is bound (or raises what prevented it, e.g. port in use)."""
        self._thread = threading.Thread(target=self._run, name="rewardkit-server", daemon=True)
        self._thread.start()
        self._ready.wait()
        if self._error is not None:
            self._thread.join()
            raise self._error
        return self

    def _run(self) -> None:
        asyncio.run(self._main())

    async def _main(self) -> None:
        try:
            self._loop = asyncio.get_running_loop()
            await self.server.start()
        except BaseException as error:
            self._error = error
            self._ready.set()
            return
        self._ready.set()
        await self.server.serve_forever()

    def request_shutdown(self) -> None:
        """Begin a graceful shutdown without waiting for it (what a signal does); see `wait`."""
        self._loop.call_soon_threadsafe(self.server.request_shutdown)

    def wait(self, timeout: float | None = None) -> bool:
        """Wait for the server thread to end; True when it has."""
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def stop(self) -> None:
        if self._thread is not None and self._thread.is_alive():
            self.request_shutdown()
            self.wait()

    def __enter__(self) -> BackgroundServer:
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()
