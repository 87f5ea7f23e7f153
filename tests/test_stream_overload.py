"""Streams under overload: refused at the door, never killed once admitted, never left hanging."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest

from emotion_client import AsyncEmotionClient, EmotionClient, EmotionError, PcmFormat, RetryPolicy, messages
from emotion_client.audio import Pacer
from emotion_client.client import _Feed
from emotion_client.v1 import emotion_pb2 as pb
from emotion_service.plugins.manager import build_host
from emotion_service.server import rpc
from emotion_service.server.rpc import DRAIN_SECONDS
from tests.conftest import recordings
from tests.plugin_helpers import ravdess_interview, serving, stream_requests


async def all_at_once(stub, requests) -> list[pb.StreamClassifyResponse]:  # type: ignore[no-untyped-def]
    async def messages() -> AsyncIterator[pb.StreamClassifyRequest]:
        for request in requests:
            yield request

    return [r async for r in stub.StreamClassify(messages(), timeout=120)]


async def test_a_sender_faster_than_the_model_gets_skipped_windows_not_a_dead_stream(
    tiny_model: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = {"stream_max_pending_windows": 1, "stream_backpressure_s": 0.05, "window_s": 1.0, "hop_s": 0.5}
    async with serving(tiny_model, build_host({}), **settings) as (server, stub):
        batcher = server.servicer.state.batcher
        predict = batcher.run_batch

        def slow_predict(waveforms):  # type: ignore[no-untyped-def]
            time.sleep(0.3)  # the real model, on a machine 0.3 s a batch slower than this sender
            return predict(waveforms)

        monkeypatch.setattr(batcher, "run_batch", slow_predict)
        responses = await all_at_once(stub, stream_requests(ravdess_interview()[: 16000 * 10], "flood"))
    windows = [r.window for r in responses if r.HasField("window")]
    assert [w.index for w in windows] == list(range(len(windows))), "every window answered once, in order"
    skipped = [w for w in windows if w.skipped]
    scored = [w for w in windows if not w.skipped and not w.silent]  # pauses between answers are silent
    assert skipped and scored
    assert all(not w.label and not w.scores for w in skipped)
    assert all(w.label and len(w.scores) == 6 for w in scored)
    assert responses[-1].HasField("summary") and responses[-1].summary.window_count == len(scored)


async def test_a_full_inference_queue_skips_a_streams_window_and_the_stream_goes_on(
    tiny_model: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Slots are plenty and wait long: only the batcher's own queue (one waiting request) can turn
    # a window away, so every skip here is a full queue, and the admitted stream must survive it.
    settings = {
        "max_queue_size": 1,
        "max_batch_size": 1,
        "stream_max_pending_windows": 64,
        "stream_backpressure_s": 60.0,
        "window_s": 1.0,
        "hop_s": 0.5,
    }
    async with serving(tiny_model, build_host({}), **settings) as (server, stub):
        batcher = server.servicer.state.batcher
        predict = batcher.run_batch

        def slow_predict(waveforms):  # type: ignore[no-untyped-def]
            time.sleep(0.3)
            return predict(waveforms)

        monkeypatch.setattr(batcher, "run_batch", slow_predict)
        responses = await all_at_once(stub, stream_requests(ravdess_interview()[: 16000 * 8], "queue-full"))
    windows = [r.window for r in responses if r.HasField("window")]
    assert [w.index for w in windows] == list(range(len(windows))), "every window answered once, in order"
    skipped = [w for w in windows if w.skipped]
    scored = [w for w in windows if not w.skipped and not w.silent]
    assert skipped, "the queue never filled: the test no longer overloads it"
    assert scored and all(w.label and len(w.scores) == 6 for w in scored)
    assert all(not w.label and not w.scores for w in skipped)
    assert len(windows) >= 14, "the stream went on to its end"
    assert responses[-1].HasField("summary") and responses[-1].summary.window_count == len(scored)


async def test_new_streams_are_refused_with_a_retry_hint_while_windows_run_late(tiny_model: Path) -> None:
    async with serving(tiny_model, build_host({})) as (server, stub):
        for _ in range(30):
            server.servicer._record_lag(5.0)
        call = stub.StreamClassify(iter(stream_requests(ravdess_interview()[: 16000 * 2], "refused")), timeout=30)
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            [r async for r in call]
        assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "stream_admission_lag_s" in (refused.value.details() or "")
        assert ("grpc-retry-pushback-ms", "2000") in tuple(refused.value.trailing_metadata() or ())
        # Unary calls are not streams: they still get answers.
        reply = await stub.Classify(pb.ClassifyRequest(audio=pb.Audio(content=recordings()[0].read_bytes())))
        assert reply.label
        server.servicer._lags.clear()
        accepted = await all_at_once(stub, stream_requests(ravdess_interview()[: 16000 * 2], "accepted"))
        assert accepted[-1].HasField("summary")


async def test_any_reader_failure_ends_the_stream_with_a_status(
    tiny_model: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with serving(tiny_model, build_host({})) as (server, stub):

        async def broken(*args: object, **kwargs: object) -> bool:
            raise KeyError("something unforeseen")

        monkeypatch.setattr(server.servicer, "_submit_windows", broken)
        with pytest.raises(grpc.aio.AioRpcError) as failed:
            await all_at_once(stub, stream_requests(ravdess_interview()[: 16000 * 4], "broken-reader"))
        assert failed.value.code() == grpc.StatusCode.INTERNAL
        assert "stream reader failed: KeyError" in (failed.value.details() or "")


async def test_a_fast_ramp_is_refused_by_what_the_open_streams_ask_before_any_window_is_late(tiny_model: Path) -> None:
    """Eight streams open at once, none has sent audio yet: the ones whose windows the model could
    not score (with its measured capacity) are refused at once, naming the setting; the admitted
    ones go on, and a closed stream's share is free again."""
    async with serving(tiny_model, build_host({})) as (server, stub):
        capacity = server.servicer.state.capacity
        window_s = 1.0
        share = server.servicer.settings.stream_admission_utilisation
        hop_s = window_s * 5.5 / (share * capacity)  # each stream asks capacity * share / 5.5: five fit
        assert 0 < hop_s <= window_s
        fmt = pb.PcmFormat(encoding=pb.PCM_ENCODING_S16LE, sample_rate=16000, channels=1)
        release = asyncio.Event()

        async def quiet() -> AsyncIterator[pb.StreamClassifyRequest]:
            yield pb.StreamClassifyRequest(config=pb.StreamConfig(format=fmt, window_s=window_s, hop_s=hop_s))
            await release.wait()

        async def outcome() -> str:
            try:
                async for _ in stub.StreamClassify(quiet(), timeout=30):
                    pass
            except grpc.aio.AioRpcError as err:
                assert "stream_admission_utilisation" in err.details(), err.details()
                return err.code().name
            return "completed"

        calls = [asyncio.ensure_future(outcome()) for _ in range(8)]
        await asyncio.sleep(DRAIN_SECONDS + 0.8)  # a refusal first reads what its client sent, for DRAIN_SECONDS
        refused = [call.result() for call in calls if call.done()]
        assert refused == ["RESOURCE_EXHAUSTED"] * 3
        release.set()
        assert sorted(await asyncio.gather(*calls)) == ["RESOURCE_EXHAUSTED"] * 3 + ["completed"] * 5
        assert server.servicer.demand == pytest.approx(0.0, abs=1e-9)


async def test_a_live_stream_refused_while_it_sends_gets_the_refusal_not_internal(tiny_model: Path) -> None:
    """A live source never half-closes: the refusal reaches AsyncEmotionClient as RESOURCE_EXHAUSTED
    with its sentence, every time, not grpc-aio's INTERNAL "Internal error from Core" (grpc/grpc#36066:
    a write that fails as the call ends overwrites the server's status). The server says it is ending
    the stream in its headers first; the client stops sending and half-closes, then the status comes."""
    async with serving(tiny_model, build_host({})) as (server, _stub):
        for _ in range(30):
            server.servicer._record_lag(5.0)  # windows answered late: new streams are refused
        pcm = ravdess_interview()[: 16000 * 2].astype("<f4").tobytes()

        async def live() -> AsyncIterator[bytes]:
            while True:  # a microphone: chunks until the call ends
                for at in range(0, len(pcm), 640):
                    await asyncio.sleep(0.001)
                    yield pcm[at : at + 640]

        async def outcome(client: AsyncEmotionClient) -> str:
            try:
                async for _ in client.stream(live(), format=PcmFormat(16000, "f32le"), timeout=30):
                    pass
            except EmotionError as exc:
                assert exc.code != grpc.StatusCode.RESOURCE_EXHAUSTED or "stream_admission_lag_s" in exc.message
                return exc.code.name
            return "completed"

        async with AsyncEmotionClient(f"127.0.0.1:{server.port}", retry=RetryPolicy(max_attempts=1)) as client:
            started = time.monotonic()
            outcomes = await asyncio.gather(*(outcome(client) for _ in range(12)))
        assert outcomes == ["RESOURCE_EXHAUSTED"] * 12

        async def sparse() -> AsyncIterator[bytes]:  # a source that waits between chunks (a push-to-talk)
            while True:
                yield pcm[:3200]
                await asyncio.sleep(5)

        async with AsyncEmotionClient(f"127.0.0.1:{server.port}", retry=RetryPolicy(max_attempts=1)) as client:
            started = time.monotonic()
            with pytest.raises(EmotionError) as refused:
                async for _ in client.stream(sparse(), format=PcmFormat(16000, "f32le"), timeout=30):
                    pass
        assert refused.value.code == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert time.monotonic() - started < 1.0, "the client half-closed without waiting for its next chunk"
        assert messages.STREAM_ENDING_METADATA == rpc.STREAM_ENDING_METADATA, (
            "the client heeds the header the server sends"
        )
        assert time.monotonic() - started < DRAIN_SECONDS, "the client stopped sending when told, not after the drain"


async def test_the_sync_client_stops_sending_when_a_refusal_is_announced(tiny_model: Path) -> None:
    """The same refusal on the sync EmotionClient: it reads the headers while its feed sends, stops a
    live source at its next chunk and a paced one in the middle of its pacing sleep, so the status
    comes at once rather than after the server's drain (DRAIN_SECONDS)."""
    async with serving(tiny_model, build_host({})) as (server, _stub):
        for _ in range(30):
            server.servicer._record_lag(5.0)  # windows answered late: new streams are refused
        pcm = ravdess_interview()[: 16000 * 2].astype("<f4").tobytes()

        def live() -> Iterator[bytes]:  # a microphone: chunks until the call ends
            while True:
                for at in range(0, len(pcm), 640):
                    time.sleep(0.001)
                    yield pcm[at : at + 640]

        def refused_after(**source: Any) -> tuple[grpc.StatusCode, float]:
            with EmotionClient(f"127.0.0.1:{server.port}", retry=RetryPolicy(max_attempts=1)) as client:
                started = time.monotonic()
                with pytest.raises(EmotionError) as refused:
                    for _ in client.stream(**source, timeout=30):
                        pass
                return refused.value.code, time.monotonic() - started

        long_file = pcm * 30  # a minute of audio sent as it plays: a pacing sleep between chunks
        for source in ({"source": live()}, {"source": long_file, "realtime": True, "chunk_s": 2.0}):
            code, took = await asyncio.to_thread(refused_after, format=PcmFormat(16000, "f32le"), **source)
            assert code == grpc.StatusCode.RESOURCE_EXHAUSTED
            assert took < 1.0, f"the sync client sent for {took:.1f} s after the refusal was announced"
    # Whether the header above came before or after the first chunk was sent is a race; here the
    # feed is surely in its pacing sleep (2 s before its second chunk) when it is told to stop.
    feed = _Feed(pb.StreamClassifyRequest(), iter([pcm] * 3), Pacer(PcmFormat(16000, "f32le")))  # 2 s each
    sent = iter(feed)
    next(sent), next(sent)  # the config, then the first chunk at once
    threading.Timer(0.2, feed.stop).start()
    started = time.monotonic()
    assert next(sent, None) is None, "the feed sent another chunk after it was told to stop"
    assert time.monotonic() - started < 1.0, "the feed slept through the stop"
