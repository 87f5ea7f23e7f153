"""Sink workers: a sink's slow work (database writes, webhook retries, report rendering) on a
thread of its own, behind a bounded queue, so that no request waits on it and no retry sleeps
in a thread pool that requests use.

A plugin makes one :class:`SinkWorker` per kind of work, hands it items from its hooks with
:meth:`SinkWorker.put` (which never blocks), and closes it from ``on_shutdown``. What happens
when the queue is full is the plugin's choice (``on_overflow``): the store spools the item to
disk, the webhook drops it with a log line.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Sequence
from typing import Generic, TypeVar

import structlog

log = structlog.get_logger(__name__)

T = TypeVar("T")
_STOP = object()


class SinkWorker(Generic[T]):
    """One daemon thread draining a bounded queue into ``handle``, ``max_batch`` items at a time.

    :param name: names the thread and the log events.
    :param handle: called with a list of items, in arrival order; an exception is logged
        (``sink_failed``) and the worker goes on.
    :param max_queue: items waiting at most; :meth:`put` beyond it calls ``on_overflow``.
    :param max_batch: most items handed to ``handle`` at once (a database writes them in one transaction).
    :param on_overflow: what to do with an item that finds the queue full (default: log and drop).
    :param on_idle: called every ``idle_s`` while no item arrives (e.g. to retry a spool).
    """

    def __init__(
        self,
        name: str,
        handle: Callable[[list[T]], None],
        max_queue: int = 1000,
        max_batch: int = 1,
        on_overflow: Callable[[T], None] | None = None,
        on_idle: Callable[[], None] | None = None,
        idle_s: float = 1.0,
    ) -> None:
        self.name = name
        self._handle = handle
        self._queue: queue.Queue[object] = queue.Queue(maxsize=max_queue)
        self._max_batch = max_batch
        self._on_overflow = on_overflow
        self._on_idle = on_idle
        self._idle_s = idle_s
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()
        self._closed = False

    def put(self, item: T) -> bool:
        """Queues ``item`` without blocking; False when it went to ``on_overflow`` instead."""
        if self._closed:
            self._overflow(item, "closed")
            return False
        self._ensure_started()
        try:
            self._queue.put_nowait(item)
            return True
        except queue.Full:
            self._overflow(item, "queue full")
            return False

    def wait_idle(self, timeout: float = 30.0) -> bool:
        """Blocks until every queued item has been handled; False on timeout."""
        deadline = time.monotonic() + timeout
        while self._queue.unfinished_tasks:
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.01)
        return True

    def close(self, timeout: float = 10.0) -> None:
        """Handles what is queued (within ``timeout``), then stops the thread; later items overflow."""
        self._closed = True
        if self._thread is None:
            return
        try:
            self._queue.put(_STOP, timeout=timeout)
        except queue.Full:
            log.warning("sink_close_timed_out", sink=self.name, queued=self._queue.qsize())
            return
        self._thread.join(timeout)

    def _ensure_started(self) -> None:
        if self._thread is not None:
            return
        with self._start_lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name=f"sink-{self.name}", daemon=True)
                self._thread.start()

    def _overflow(self, item: T, why: str) -> None:
        if self._on_overflow is not None:
            self._on_overflow(item)
        else:
            log.warning("sink_item_dropped", sink=self.name, reason=why)

    def _run(self) -> None:
        while True:
            try:
                first = self._queue.get(timeout=self._idle_s)
            except queue.Empty:
                self._call(self._on_idle, ())
                continue
            batch: list[object] = [first]
            while len(batch) < self._max_batch and batch[-1] is not _STOP:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            stop = batch[-1] is _STOP
            items = [item for item in batch if item is not _STOP]
            if items:
                self._call(self._handle, (items,))
            for _ in batch:
                self._queue.task_done()
            if stop:
                return

    def _call(self, fn: Callable[..., None] | None, args: Sequence[object]) -> None:
        if fn is None:
            return
        try:
            fn(*args)
        except Exception:
            log.exception("sink_failed", sink=self.name)
