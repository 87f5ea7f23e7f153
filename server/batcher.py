"""The dynamic batcher: merges concurrent requests into forward passes.

Requests wait at most ``max_queue_delay_ms`` for company. A batch is built
around the oldest waiting request (so nobody starves) from the requests
closest to it in length (so padding stays small); when the model cannot pad
without changing answers, only equal lengths are merged. The forward pass runs
on one worker thread, off the event loop, while the next batch gathers.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np
import structlog

from emotion_service.server import metrics

log = structlog.get_logger(__name__)

# Clips merged into one batch differ in length by at most this factor.
MAX_LENGTH_RATIO = 1.5


class QueueFullError(RuntimeError):
    """The queue holds ``max_queue_size`` requests already."""


class DeadlineExpiredError(RuntimeError):
    """The request's deadline passed while it waited; it was not run."""


class ShuttingDownError(RuntimeError):
    """The batcher is draining and takes no new requests."""


@dataclass
class BatchStats:
    """Running counters, read by metrics and benchmarks."""

    batches: int = 0
    items: int = 0
    batch_sizes: dict[int, int] = field(default_factory=dict)  # batch size -> count


@dataclass
class _Request:
    waveform: np.ndarray
    future: asyncio.Future[np.ndarray]
    deadline: float | None
    enqueued: float


class DynamicBatcher:
    """Batches waveforms onto ``run_batch``, a function scoring a list of waveforms at once."""

    def __init__(
        self,
        run_batch: Callable[[Sequence[np.ndarray]], np.ndarray],
        max_batch_size: int = 8,
        max_queue_delay_ms: float = 5.0,
        max_queue_size: int = 256,
        pad_mixed_lengths: bool = True,
    ) -> None:
        self.run_batch = run_batch
        self.max_batch_size = max_batch_size
        self.max_queue_delay = max_queue_delay_ms / 1000
        self.max_queue_size = max_queue_size
        self.pad_mixed_lengths = pad_mixed_lengths
        self.stats = BatchStats()
        self._pending: list[_Request] = []
        self._arrived = asyncio.Event()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="inference")
        self._task: asyncio.Task[None] | None = None
        self._closing = False

    @property
    def queue_depth(self) -> int:
        """Requests waiting for a batch (not counting the one running)."""
        return len(self._pending)

    def start(self) -> None:
        """Starts the batching loop on the running event loop."""
        self._task = asyncio.get_running_loop().create_task(self._loop(), name="batcher")

    def submit(self, waveform: np.ndarray, deadline: float | None = None) -> asyncio.Future[np.ndarray]:
        """Queues one waveform; the future resolves to its score row.

        ``deadline`` is a ``time.monotonic()`` instant after which the request is
        dropped unrun (:class:`DeadlineExpiredError`). Raises :class:`QueueFullError`
        at once when the queue is full.
        """
        if self._closing:
            raise ShuttingDownError("server is shutting down and takes no new work: retry on another replica")
        if len(self._pending) >= self.max_queue_size:
            raise QueueFullError(
                f"server busy: the inference queue is full (max_queue_size={self.max_queue_size}); retry with backoff"
            )
        future: asyncio.Future[np.ndarray] = asyncio.get_running_loop().create_future()
        self._pending.append(_Request(waveform, future, deadline, time.monotonic()))
        metrics.QUEUE_DEPTH.set(len(self._pending))
        self._arrived.set()
        return future

    async def close(self) -> None:
        """Stops taking requests, finishes the queued ones, then stops the loop."""
        self._closing = True
        self._arrived.set()
        if self._task is not None:
            await self._task
        self._executor.shutdown(wait=True)

    async def _loop(self) -> None:
        while True:
            if not self._pending:
                if self._closing:
                    return
                self._arrived.clear()
                await self._arrived.wait()
                continue
            await self._gather()
            batch = self._take_batch()
            if batch:
                await self._run(batch)

    async def _gather(self) -> None:
        """Waits until a batch is full or the oldest request has waited long enough."""
        close_at = self._pending[0].enqueued + self.max_queue_delay
        while len(self._pending) < self.max_batch_size and not self._closing:
            remaining = close_at - time.monotonic()
            if remaining <= 0:
                return
            self._arrived.clear()
            try:
                await asyncio.wait_for(self._arrived.wait(), remaining)
            except TimeoutError:
                return

    def _take_batch(self) -> list[_Request]:
        now = time.monotonic()
        live: list[_Request] = []
        for request in self._pending:
            if request.future.done():  # cancelled by its caller
                continue
            if request.deadline is not None and request.deadline <= now:
                request.future.set_exception(DeadlineExpiredError("deadline passed while queued; the request was not run"))
                continue
            live.append(request)
        if not live:
            self._pending = []
            return []
        anchor = live[0]
        size = len(anchor.waveform)

        def fits(request: _Request) -> bool:
            n = len(request.waveform)
            if not self.pad_mixed_lengths:
                return n == size
            return max(n, size) <= MAX_LENGTH_RATIO * min(n, size)

        others = sorted((r for r in live[1:] if fits(r)), key=lambda r: (abs(len(r.waveform) - size), r.enqueued))
        batch = [anchor, *others[: self.max_batch_size - 1]]
        chosen = {id(r) for r in batch}
        self._pending = [r for r in live if id(r) not in chosen]
        metrics.QUEUE_DEPTH.set(len(self._pending))
        for request in batch:
            metrics.QUEUE_WAIT.observe(now - request.enqueued)
        return batch

    async def _run(self, batch: list[_Request]) -> None:
        loop = asyncio.get_running_loop()
        waveforms = [r.waveform for r in batch]
        started = time.perf_counter()
        try:
            scores = await loop.run_in_executor(self._executor, self.run_batch, waveforms)
        except Exception as exc:  # the model failed: every caller in the batch hears about it
            log.exception("batch_failed", batch_size=len(batch))
            for request in batch:
                if not request.future.done():
                    request.future.set_exception(exc)
            return
        metrics.INFERENCE.observe(time.perf_counter() - started)
        metrics.BATCH_SIZE.observe(len(batch))
        self.stats.batches += 1
        self.stats.items += len(batch)
        self.stats.batch_sizes[len(batch)] = self.stats.batch_sizes.get(len(batch), 0) + 1
        for request, row in zip(batch, scores):
            if not request.future.done():
                request.future.set_result(row)
