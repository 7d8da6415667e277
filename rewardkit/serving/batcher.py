"""Dynamic batching: sequences from concurrent requests share forward passes.

Requests put token-id sequences on a queue and await one future per sequence. A single collector task takes
the first waiting sequence, then keeps collecting until `max_batch_size` sequences or `max_wait_ms` have passed
(the latency paid to get fuller batches). Under load the queue is deeper than one batch; then up to
`backlog_batches` batches are taken at once and sorted by length, so each forward pass holds sequences of similar
length and pads less. Forward passes run in one worker thread: the event loop keeps accepting and parsing
requests meanwhile, and the model never sees two threads.

A forward pass that raises fails only the futures of its own sequences; the collector keeps going.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import torch

from rewardkit.model import RewardModel
from rewardkit.serving.metrics import ServerMetrics

logger = logging.getLogger("rewardkit.serving")


class QueueFullError(Exception):
    """More sequences are waiting than the server accepts; the client should retry later (HTTP 429)."""


class BatchFailedError(Exception):
    """The forward pass holding this sequence raised."""


@dataclass
class _Item:
    input_ids: Sequence[int]
    future: asyncio.Future
    reward_positions: Sequence[int] | None = None  # a process RM's step ends; None: one reward at the last token


class DynamicBatcher:
    def __init__(
        self,
        model: RewardModel,
        metrics: ServerMetrics,
        max_batch_size: int = 32,
        max_wait_ms: float = 5.0,
        max_queue_size: int = 4096,
        backlog_batches: int = 4,
    ):
        if max_batch_size < 1:
            raise ValueError(f"max_batch_size must be >= 1, got {max_batch_size}")
        self.model, self.metrics = model, metrics
        self.max_batch_size, self.max_wait = max_batch_size, max_wait_ms / 1000
        self.max_queue_size, self.backlog_batches = max_queue_size, backlog_batches
        self._queue: asyncio.Queue[_Item] = asyncio.Queue()
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="rewardkit-model")
        self._task: asyncio.Task | None = None

    # ------------------------------------------------------------------------------------------ lifecycle
    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="rewardkit-batcher")

    async def stop(self) -> None:
        """Cancel the collector (callers drain requests first) and release the worker thread."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        while not self._queue.empty():  # only reachable if stop() is called with requests still waiting
            item = self._queue.get_nowait()
            if not item.future.done():
                item.future.set_exception(BatchFailedError("server shut down before this sequence was scored"))
        self._worker.shutdown(wait=True)

    # ------------------------------------------------------------------------------------------ requests
    async def score(
        self, sequences: Sequence[Sequence[int]], reward_positions: Sequence[Sequence[int]] | None = None
    ) -> list[float] | list[list[float]]:
        """Rewards (normalized per the checkpoint) for `sequences`, in order: one per sequence, or with
        `reward_positions` a list per sequence, one reward per position (a process RM's steps)."""
        if self._queue.qsize() + len(sequences) > self.max_queue_size:
            raise QueueFullError(f"{self._queue.qsize()} sequences are already waiting (limit {self.max_queue_size})")
        loop = asyncio.get_running_loop()
        positions = reward_positions if reward_positions is not None else [None] * len(sequences)
        items = [_Item(ids, loop.create_future(), p) for ids, p in zip(sequences, positions, strict=True)]
        for item in items:
            self._queue.put_nowait(item)
        self.metrics.queue_depth.set(self._queue.qsize())
        return list(await asyncio.gather(*(item.future for item in items)))

    # ------------------------------------------------------------------------------------------ collector
    async def _collect(self) -> list[_Item]:
        """Wait for one sequence, then up to max_batch_size within max_wait, plus whatever backlog is queued."""
        items = [await self._queue.get()]
        deadline = time.monotonic() + self.max_wait
        while len(items) < self.max_batch_size:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            try:
                items.append(await asyncio.wait_for(self._queue.get(), remaining))
            except TimeoutError:
                break
        limit = self.max_batch_size * self.backlog_batches
        while len(items) < limit and not self._queue.empty():
            items.append(self._queue.get_nowait())
        self.metrics.queue_depth.set(self._queue.qsize())
        return items

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            items = await self._collect()
            items.sort(key=lambda item: len(item.input_ids))
            for start in range(0, len(items), self.max_batch_size):
                batch = [item for item in items[start : start + self.max_batch_size] if not item.future.done()]
                if not batch:
                    continue
                try:
                    rewards = await loop.run_in_executor(self._worker, self._forward, batch)
                except Exception as error:  # the model raised: fail this batch only, keep serving
                    logger.exception("forward pass over %d sequences failed", len(batch))
                    self.metrics.batch_failures.inc()
                    for item in batch:
                        if not item.future.done():
                            item.future.set_exception(BatchFailedError(f"{type(error).__name__}: {error}"))
                    continue
                self.metrics.batch_size.observe(len(batch))
                for item, reward in zip(batch, rewards, strict=True):
                    if not item.future.done():
                        item.future.set_result(reward)

    def _forward(self, batch: list[_Item]) -> list[float] | list[list[float]]:
        """Runs in the worker thread: one forward pass, then the checkpoint's normalization. A server's model is
        either an outcome RM (every item one reward) or a process RM (every item its step positions)."""
        sequences = [item.input_ids for item in batch]
        if batch[0].reward_positions is None:
            rewards: torch.Tensor = self.model.normalize(self.model.score_encoded(sequences, batch_size=len(batch)))
            return rewards.tolist()
        raw = self.model.score_encoded_steps(sequences, [item.reward_positions for item in batch],
                                             batch_size=len(batch))
        return [self.model.normalize(step_rewards).tolist() for step_rewards in raw]
