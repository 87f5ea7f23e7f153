"""The dynamic batcher: merges concurrent requests into forward passes.

Requests wait at most ``max_queue_delay_ms`` for company. A batch is built
around the oldest waiting request (so nobody starves) from requests of similar
length: the longest clip of a batch is at most :data:`MAX_LENGTH_RATIO` times
the shortest (so padding stays small); when the model cannot pad without
changing answers, only equal lengths are merged. Two stages, each on its own
thread, off the event loop: while the current batch's forward pass (``run``)
runs, the next batch is collected until it is full, and then its features
(``prepare``) are computed.

Cancelled and expired requests are dropped from the queue before it is judged
full, so only live requests count toward ``max_queue_size``.

Two priorities: calls (Classify, stream windows) and background work (job windows,
``submit(..., background=True)``). A batch is made of one kind only: background work
runs only while no call waits, at most ``background_max_batch_size`` at a time, so a
call arriving meanwhile waits for at most one small background pass. Background
requests do not count toward ``max_queue_size`` or :attr:`queue_depth` (their
submitter bounds them).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

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
    background: bool = False


class DynamicBatcher:
    """Batches waveforms onto ``run_batch``, a function scoring a list of waveforms at once."""

    def __init__(
        self,
        run_batch: Callable[[Any], np.ndarray],
        max_batch_size: int = 8,
        max_queue_delay_ms: float = 5.0,
        max_queue_size: int = 256,
        pad_mixed_lengths: bool = True,
        prepare: Callable[[Sequence[np.ndarray]], Any] | None = None,
        background_max_batch_size: int = 2,
    ) -> None:
        """``prepare`` turns a list of waveforms into ``run_batch``'s input (default: the list itself)."""
        self.run_batch = run_batch
        self.prepare: Callable[[Sequence[np.ndarray]], Any] = prepare or list
        self.max_batch_size = max_batch_size
        self.max_queue_delay = max_queue_delay_ms / 1000
        self.max_queue_size = max_queue_size
        self.pad_mixed_lengths = pad_mixed_lengths
        self.background_max_batch_size = background_max_batch_size
        self.stats = BatchStats()
        self._pending: list[_Request] = []
        self._arrived = asyncio.Event()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="inference")
        self._features = ThreadPoolExecutor(max_workers=1, thread_name_prefix="features")
        # Running averages (seconds) of a forward pass and of a batch's features: when to prepare the next batch.
        self._forward_s = 0.0
        self._features_s = 0.0
        self._task: asyncio.Task[None] | None = None
        self._closing = False

    @property
    def queue_depth(self) -> int:
        """Calls waiting for a batch (not counting the one running, nor background work)."""
        return sum(not r.background for r in self._pending)

    def start(self) -> None:
        """Starts the batching loop on the running event loop."""
        self._task = asyncio.get_running_loop().create_task(self._loop(), name="batcher")

    def submit(
        self, waveform: np.ndarray, deadline: float | None = None, background: bool = False
    ) -> asyncio.Future[np.ndarray]:
        """Queues one waveform; the future resolves to its score row.

        ``deadline`` is a ``time.monotonic()`` instant after which the request is
        dropped unrun (:class:`DeadlineExpiredError`). Raises :class:`QueueFullError`
        at once when the queue is full. ``background`` work runs only while no call waits.
        """
        if self._closing:
            raise ShuttingDownError("server is shutting down and takes no new work: retry on another replica")
        if not background and self.queue_depth >= self.max_queue_size:
            self._drop_dead(time.monotonic())
            if self.queue_depth >= self.max_queue_size:
                raise QueueFullError(
                    f"server busy: the inference queue is full (max_queue_size={self.max_queue_size}); "
                    "retry with backoff"
                )
        future: asyncio.Future[np.ndarray] = asyncio.get_running_loop().create_future()
        self._pending.append(_Request(waveform, future, deadline, time.monotonic(), background))
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
        self._features.shutdown(wait=True)

    async def _loop(self) -> None:
        running: asyncio.Task[None] | None = None  # the forward pass in flight, at most one
        running_since = 0.0
        while True:
            if not self._pending:
                if self._closing:
                    if running is not None:
                        await running
                    return
                self._arrived.clear()
                await self._arrived.wait()
                continue
            if running is not None and not running.done():
                await self._fill_while_busy(running, running_since)
            await self._gather()
            batch = self._take_batch()
            if not batch:
                continue
            prepared = await self._prepare(batch)  # overlaps the forward pass in flight
            if running is not None:
                await running
            if prepared is not None and self._still_wanted(batch):
                running = asyncio.create_task(self._run(batch, prepared))
                running_since = time.monotonic()

    async def _fill_while_busy(self, running: asyncio.Task[None], since: float) -> None:
        """While a forward pass runs, the next batch keeps collecting requests until it is full,
        or until just enough time is left for its features to be ready when the pass ends.

        It has to wait for the model anyway: taken too early it would run half empty while
        requests arriving meanwhile wait a whole pass more (``max_queue_delay_ms`` counts only
        when the model is free); taken too late, its features would not overlap the pass. The
        moment comes from running averages of the pass's and the features' durations.
        """
        prepare_at = since + self._forward_s - self._features_s
        while len(self._pending) < self.max_batch_size and not running.done() and not self._closing:
            remaining = prepare_at - time.monotonic()
            if remaining <= 0:
                return
            self._arrived.clear()
            arrival = asyncio.ensure_future(self._arrived.wait())
            await asyncio.wait({arrival, running}, timeout=remaining, return_when=asyncio.FIRST_COMPLETED)
            arrival.cancel()

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

    def _drop_dead(self, now: float) -> None:
        """Removes cancelled requests and fails expired ones, unrun."""
        live: list[_Request] = []
        for request in self._pending:
            if request.future.done():  # cancelled by its caller
                continue
            if request.deadline is not None and request.deadline <= now:
                request.future.set_exception(
                    DeadlineExpiredError("deadline passed while queued; the request was not run")
                )
                continue
            live.append(request)
        self._pending = live
        metrics.QUEUE_DEPTH.set(len(live))

    def _take_batch(self) -> list[_Request]:
        now = time.monotonic()
        self._drop_dead(now)
        if not self._pending:
            return []
        batch = self._choose(self._pending)
        chosen = {id(r) for r in batch}
        self._pending = [r for r in self._pending if id(r) not in chosen]
        metrics.QUEUE_DEPTH.set(len(self._pending))
        for request in batch:
            metrics.QUEUE_WAIT.observe(now - request.enqueued)
        return batch

    def _choose(self, pending: list[_Request]) -> list[_Request]:
        """The oldest call (or, when no call waits, the oldest background request) and the others of
        its kind that fit with it, every pair within the length ratio.

        Among the requests within the ratio of the oldest, the lengths are scanned as sorted
        windows [shortest, shortest * ratio] that contain the oldest's length; the window holding
        the most requests wins (the earliest-queued first when more fit than a batch holds).
        """
        live = [r for r in pending if not r.background]
        room = self.max_batch_size
        if not live:
            live, room = pending, self.background_max_batch_size
        anchor = live[0]
        size = len(anchor.waveform)
        if not self.pad_mixed_lengths:
            same = [r for r in live[1:] if len(r.waveform) == size]
            return [anchor, *same[: room - 1]]
        near = sorted(
            (r for r in live if max(len(r.waveform), size) <= MAX_LENGTH_RATIO * min(len(r.waveform), size)),
            key=lambda r: len(r.waveform),
        )
        best: list[_Request] = [anchor]
        for start, shortest in enumerate(near):
            if len(shortest.waveform) > size:
                break
            limit = MAX_LENGTH_RATIO * len(shortest.waveform)
            group = [r for r in near[start:] if len(r.waveform) <= limit]
            if len(group) > len(best):
                best = group
        others = sorted((r for r in best if r is not anchor), key=lambda r: r.enqueued)
        return [anchor, *others[: room - 1]]

    def _still_wanted(self, batch: list[_Request]) -> bool:
        """Whether anyone still waits for a prepared batch: those whose deadline passed while it
        waited for the forward pass before it are failed unrun, and an all-dead batch is skipped."""
        now = time.monotonic()
        for request in batch:
            if not request.future.done() and request.deadline is not None and request.deadline <= now:
                request.future.set_exception(
                    DeadlineExpiredError("deadline passed while queued; the request was not run")
                )
        return any(not request.future.done() for request in batch)

    async def _prepare(self, batch: list[_Request]) -> Any | None:
        """The batch's model input, computed on the features thread; None (callers told) when it fails."""
        loop = asyncio.get_running_loop()
        try:
            started = time.perf_counter()
            prepared = await loop.run_in_executor(self._features, self.prepare, [r.waveform for r in batch])
            self._features_s = _average(self._features_s, time.perf_counter() - started)
            return prepared
        except Exception as exc:
            log.exception("batch_features_failed", batch_size=len(batch))
            for request in batch:
                if not request.future.done():
                    request.future.set_exception(exc)
            return None

    async def _run(self, batch: list[_Request], prepared: Any) -> None:
        loop = asyncio.get_running_loop()
        started = time.perf_counter()
        try:
            scores = await loop.run_in_executor(self._executor, self.run_batch, prepared)
        except Exception as exc:  # the model failed: every caller in the batch hears about it
            log.exception("batch_failed", batch_size=len(batch))
            for request in batch:
                if not request.future.done():
                    request.future.set_exception(exc)
            return
        metrics.INFERENCE.observe(time.perf_counter() - started)
        self._forward_s = _average(self._forward_s, time.perf_counter() - started)
        metrics.BATCH_SIZE.observe(len(batch))
        self.stats.batches += 1
        self.stats.items += len(batch)
        self.stats.batch_sizes[len(batch)] = self.stats.batch_sizes.get(len(batch), 0) + 1
        for request, row in zip(batch, scores):
            if not request.future.done():
                request.future.set_result(row)


def _average(previous: float, latest: float) -> float:
    """An exponential running average that starts at its first value."""
    return latest if previous == 0.0 else 0.8 * previous + 0.2 * latest
