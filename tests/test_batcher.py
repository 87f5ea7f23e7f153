"""The batcher's rules on its own: pairwise length ratio, dead requests, features beside the forward pass."""

from __future__ import annotations

import asyncio
import threading
import time

import numpy as np
import pytest

from emotion_service.server.batcher import MAX_LENGTH_RATIO, DynamicBatcher, QueueFullError


class Recorder:
    """A stand-in scoring function that answers each waveform with its own length, and records batches."""

    def __init__(self) -> None:
        self.batches: list[list[int]] = []

    def __call__(self, waveforms: list[np.ndarray]) -> np.ndarray:
        self.batches.append([len(w) for w in waveforms])
        return np.array([[float(len(w))] for w in waveforms])


async def run_all(lengths: list[int], max_batch_size: int = 8) -> Recorder:
    recorder = Recorder()
    batcher = DynamicBatcher(recorder, max_batch_size=max_batch_size, max_queue_delay_ms=50.0)
    futures = [batcher.submit(np.zeros(n, np.float32)) for n in lengths]  # all queued before the loop starts
    batcher.start()
    answers = await asyncio.gather(*futures)
    await batcher.close()
    assert [row[0] for row in answers] == lengths, "each caller gets the answer to its own waveform"
    return recorder


async def test_every_pair_in_a_batch_is_within_the_length_ratio() -> None:
    recorder = await run_all([10_000, 6_700, 15_000])
    for batch in recorder.batches:
        assert max(batch) <= MAX_LENGTH_RATIO * min(batch), f"batch {batch} spreads {max(batch) / min(batch):.2f}x"
    assert [10_000, 6_700] in recorder.batches or [10_000, 15_000] in recorder.batches, "two of them still share one"


async def test_random_lengths_never_break_the_ratio() -> None:
    rng = np.random.default_rng(0)
    for _ in range(20):
        lengths = [int(n) for n in rng.integers(4_000, 40_000, size=int(rng.integers(2, 30)))]
        for batch in (await run_all(lengths)).batches:
            assert max(batch) <= MAX_LENGTH_RATIO * min(batch)
            assert len(batch) <= 8


async def test_cancelled_and_expired_requests_do_not_fill_the_queue() -> None:
    batcher = DynamicBatcher(Recorder(), max_queue_size=2)
    expired = batcher.submit(np.zeros(100, np.float32), deadline=time.monotonic() - 1)
    cancelled = batcher.submit(np.zeros(100, np.float32))
    cancelled.cancel()
    live = batcher.submit(np.zeros(100, np.float32))  # the queue held two, both dead
    assert batcher.queue_depth == 1
    with pytest.raises(Exception, match="deadline passed"):
        await expired
    batcher.submit(np.zeros(100, np.float32))
    with pytest.raises(QueueFullError, match="max_queue_size=2"):
        batcher.submit(np.zeros(100, np.float32))
    batcher.start()
    assert (await live)[0] == 100.0
    await batcher.close()


async def test_the_next_batch_is_prepared_while_the_current_one_runs() -> None:
    events: list[tuple[str, int]] = []
    forward_started = threading.Event()

    def prepare(waveforms: list[np.ndarray]) -> list[int]:
        events.append(("prepare", len(waveforms[0])))
        return [len(w) for w in waveforms]

    def forward(lengths: list[int]) -> np.ndarray:
        events.append(("forward-start", lengths[0]))
        forward_started.set()
        time.sleep(0.3)
        events.append(("forward-end", lengths[0]))
        return np.array([[float(n)] for n in lengths])

    batcher = DynamicBatcher(forward, prepare=prepare, max_batch_size=1, max_queue_delay_ms=0.0)
    batcher.start()
    first = batcher.submit(np.zeros(1000, np.float32))
    await asyncio.to_thread(forward_started.wait, 5)
    second = batcher.submit(np.zeros(2000, np.float32))
    assert [(await f)[0] for f in (first, second)] == [1000.0, 2000.0]
    await batcher.close()
    assert events.index(("prepare", 2000)) < events.index(("forward-end", 1000)), events


async def test_calls_go_before_background_work_which_runs_in_small_batches() -> None:
    recorder = Recorder()
    batcher = DynamicBatcher(recorder, max_batch_size=8, max_queue_delay_ms=1.0, background_max_batch_size=2)
    # Background windows queued first (length 100), then calls (length 200): all before the loop starts.
    background = [batcher.submit(np.zeros(100, np.float32), background=True) for _ in range(6)]
    calls = [batcher.submit(np.zeros(200, np.float32)) for _ in range(3)]
    assert batcher.queue_depth == 3, "background work does not count as waiting calls"
    batcher.start()
    await asyncio.gather(*calls, *background)
    await batcher.close()
    assert recorder.batches[0] == [200, 200, 200], "the calls ran first, together"
    assert recorder.batches[1:] == [[100, 100]] * 3, "then the background work, two at a time"


async def test_background_work_never_fills_the_queue_for_calls() -> None:
    batcher = DynamicBatcher(Recorder(), max_queue_size=2)
    for _ in range(5):
        batcher.submit(np.zeros(100, np.float32), background=True)
    batcher.submit(np.zeros(100, np.float32))
    batcher.submit(np.zeros(100, np.float32))
    with pytest.raises(QueueFullError):
        batcher.submit(np.zeros(100, np.float32))
    batcher.start()
    await batcher.close()
