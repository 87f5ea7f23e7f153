"""EmotionService end to end on a real grpc.aio server with a real (tiny) HuBERT."""

from __future__ import annotations

import asyncio
import io
import threading
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import grpc
import numpy as np
import pytest
import soundfile as sf
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from emotion_client.v1 import emotion_pb2 as pb
from emotion_client.v1 import emotion_pb2_grpc
from emotion_service.server.app import EmotionServer
from emotion_service.server.model import ModelBackend
from tests.conftest import LABELS, load_mono, make_settings, recordings


def encoded(path: Path, fmt: str, subtype: str | None = None, rate: int | None = None) -> bytes:
    wave, sr = sf.read(path, dtype="float32")
    if rate is not None and rate != sr:
        import soxr

        wave, sr = soxr.resample(wave, sr, rate), rate
    buffer = io.BytesIO()
    sf.write(buffer, wave, sr, format=fmt, subtype=subtype)
    return buffer.getvalue()


def raw_request(wave: np.ndarray, rate: int, encoding: int = pb.PCM_ENCODING_S16LE) -> pb.ClassifyRequest:
    data = (wave * 32767).astype("<i2").tobytes() if encoding == pb.PCM_ENCODING_S16LE else wave.astype("<f4").tobytes()
    fmt = pb.PcmFormat(encoding=encoding, sample_rate=rate, channels=1)
    return pb.ClassifyRequest(audio=pb.Audio(raw=pb.RawAudio(data=data, format=fmt)))


def scores_of(response: pb.ClassifyResponse | pb.WindowResult) -> dict[str, float]:
    return {s.label: s.score for s in response.scores}


@pytest.mark.parametrize(
    "make",
    [
        lambda p: p.read_bytes(),
        lambda p: encoded(p, "WAV", "PCM_16"),
        lambda p: encoded(p, "WAV", "FLOAT", rate=44100),
        lambda p: encoded(p, "OGG", "VORBIS"),
        lambda p: encoded(p, "MP3"),
    ],
    ids=["flac", "wav16", "wav-float-44k", "ogg", "mp3"],
)
async def test_classify_encoded_formats(stub, make) -> None:
    path = recordings()[0]
    response = await stub.Classify(pb.ClassifyRequest(audio=pb.Audio(content=make(path)), request_id="r-1"))
    assert response.label in LABELS
    assert [s.label for s in response.scores] == sorted(scores_of(response), key=lambda k: -scores_of(response)[k])
    assert set(scores_of(response)) == set(LABELS)
    assert sum(scores_of(response).values()) == pytest.approx(1.0, abs=1e-4)
    assert response.label == response.scores[0].label
    assert response.duration_s == pytest.approx(sf.info(path).duration, abs=0.1)
    assert response.model_name and len(response.model_version) == 12
    assert response.request_id == "r-1"


@pytest.mark.parametrize(
    ("request_", "message"),
    [
        (pb.ClassifyRequest(), "no audio"),
        (pb.ClassifyRequest(audio=pb.Audio(content=b"")), "audio is empty"),
        (pb.ClassifyRequest(audio=pb.Audio(content=b"not audio at all" * 100)), "cannot decode"),
        (
            pb.ClassifyRequest(
                audio=pb.Audio(raw=pb.RawAudio(data=b"\x00" * 3201, format=pb.PcmFormat(encoding=1, sample_rate=16000)))
            ),
            "multiple of 2 bytes",
        ),
        (
            pb.ClassifyRequest(
                audio=pb.Audio(raw=pb.RawAudio(data=b"\x00" * 3200, format=pb.PcmFormat(encoding=1, sample_rate=0)))
            ),
            "sample rate 0",
        ),
        (
            pb.ClassifyRequest(
                audio=pb.Audio(raw=pb.RawAudio(data=b"\x00" * 3200, format=pb.PcmFormat(sample_rate=16000)))
            ),
            "encoding is unspecified",
        ),
        (
            pb.ClassifyRequest(
                audio=pb.Audio(raw=pb.RawAudio(data=b"\x00" * 4, format=pb.PcmFormat(encoding=1, sample_rate=16000)))
            ),
            "at least",
        ),
    ],
    ids=["missing", "empty", "corrupt", "odd-length", "zero-rate", "no-encoding", "too-short"],
)
async def test_bad_input_is_invalid_argument(stub, request_: pb.ClassifyRequest, message: str) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.Classify(request_)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert message in err.value.details()


async def test_too_long_audio_names_the_limit(stub) -> None:
    wave = np.zeros(16000 * 61, np.float32)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.Classify(raw_request(wave, 16000))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "max_audio_seconds" in err.value.details()


async def test_oversized_message_is_resource_exhausted(stub, server: EmotionServer) -> None:
    payload = b"\x00" * (server.settings.max_audio_bytes + 128 * 1024)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.Classify(pb.ClassifyRequest(audio=pb.Audio(content=payload)))
    assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED


def stream_requests(wave: np.ndarray, rate: int, chunk: int = 3001, **config: object) -> list[pb.StreamClassifyRequest]:
    pcm = (wave * 32767).astype("<i2").tobytes()
    fmt = pb.PcmFormat(encoding=pb.PCM_ENCODING_S16LE, sample_rate=rate, channels=1)
    first = pb.StreamClassifyRequest(config=pb.StreamConfig(format=fmt, **config))  # type: ignore[arg-type]
    return [first] + [pb.StreamClassifyRequest(audio_content=pcm[i : i + chunk]) for i in range(0, len(pcm), chunk)]


async def aiter_of(items: Sequence[pb.StreamClassifyRequest]) -> AsyncIterator[pb.StreamClassifyRequest]:
    for item in items:
        yield item


async def test_stream_windows_in_order_then_summary(stub) -> None:
    waves = [load_mono(p) for p in recordings()[:3]]
    wave = np.concatenate(waves)[: int(10.7 * 16000)]  # 9 full windows, then 0.7 s for a tail window
    duration = len(wave) / 16000
    requests = stream_requests(wave, 16000, window_s=2.0, hop_s=1.0, session_id="interview-7")
    responses = [r async for r in stub.StreamClassify(aiter_of(requests))]
    windows = [r.window for r in responses if r.WhichOneof("event") == "window"]
    assert all(r.session_id == "interview-7" for r in responses)
    assert [w.index for w in windows] == list(range(len(windows)))
    assert [w.start_s for w in windows[:-1]] == [float(i) for i in range(len(windows) - 1)]
    assert all(w.end_s - w.start_s == pytest.approx(2.0) for w in windows)
    assert windows[-1].end_s == pytest.approx(duration, abs=1e-3)
    assert len(windows) == 10
    assert windows[-1].start_s == pytest.approx(8.7, abs=1e-3)
    summary = responses[-1].summary
    assert responses[-1].WhichOneof("event") == "summary"
    scored = [w for w in windows if not w.silent]
    assert summary.window_count == len(scored)  # the summary counts the windows that claim an emotion
    assert summary.duration_s == pytest.approx(duration, abs=1e-3)
    shares = {s.label: s.score for s in summary.shares}
    assert sum(shares.values()) == pytest.approx(1.0)
    assert summary.dominant_label == max(shares, key=shares.get)


async def test_a_pause_in_a_stream_is_answered_as_silence_without_an_emotion(stub) -> None:
    speech = load_mono(recordings()[0])
    pause = np.zeros(4 * 16000, np.float32)
    wave = np.concatenate([speech, pause, speech])
    requests = stream_requests(wave, 16000, window_s=2.0, hop_s=1.0)
    windows = [r.window async for r in stub.StreamClassify(aiter_of(requests)) if r.WhichOneof("event") == "window"]
    pause_start = len(speech) / 16000
    inside = [w for w in windows if w.start_s >= pause_start and w.end_s <= pause_start + 4.0]
    assert inside, "windows lie wholly inside the pause"
    for window in inside:
        assert window.no_speech and window.silent and not window.skipped
        assert window.voiced_fraction == 0.0 and window.label == "" and not window.scores
    voiced = [w for w in windows if not w.no_speech]
    assert voiced and all(w.label and w.voiced_fraction > 0 and not w.silent for w in voiced)


async def test_short_stream_gets_one_window(stub) -> None:
    wave = load_mono(recordings()[0])[:8000]
    responses = [r async for r in stub.StreamClassify(aiter_of(stream_requests(wave, 16000)))]
    assert [r.WhichOneof("event") for r in responses] == ["window", "summary"]
    assert responses[0].window.end_s == pytest.approx(0.5)


@pytest.mark.parametrize(
    ("requests", "message"),
    [
        ([], "must carry config"),
        ([pb.StreamClassifyRequest(audio_content=b"\x00\x00" * 100)], "must carry config"),
        (
            stream_requests(np.zeros(16000, np.float32), 16000)[:2]
            + stream_requests(np.zeros(1, np.float32), 16000)[:1],
            "config was sent twice",
        ),
        ([pb.StreamClassifyRequest(config=pb.StreamConfig())], "format is missing"),
        (stream_requests(np.zeros(16000, np.float32), 16000, window_s=1.0, hop_s=2.0)[:1], "hop_s=2"),
        (
            [stream_requests(np.zeros(1, np.float32), 16000)[0], pb.StreamClassifyRequest(audio_content=b"\x00" * 3)],
            "stray byte",
        ),
    ],
    ids=["empty", "no-config", "config-twice", "no-format", "hop-too-long", "partial-frame"],
)
async def test_bad_streams_are_invalid_argument(stub, requests, message: str) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        async for _ in stub.StreamClassify(aiter_of(requests)):
            pass
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert message in err.value.details()


class GatedBackend(ModelBackend):
    """The real model, held at a gate so tests can fill the queue deterministically."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        # Open while loading: the load itself runs forward passes (dtype=auto's check).
        self.gate = threading.Event()
        self.gate.set()

    def forward(self, inputs):  # type: ignore[no-untyped-def]
        self.gate.wait(10)
        return super().forward(inputs)


async def gated_server(model: Path, **overrides: object) -> tuple[EmotionServer, GatedBackend]:
    backend = GatedBackend.load(str(model), torch_threads=1)
    srv = EmotionServer(make_settings(model, **overrides))
    await srv.start()
    await srv.load_model(backend)
    backend.gate.clear()
    return srv, backend


async def test_full_queue_answers_resource_exhausted_at_once(tiny_model: Path) -> None:
    srv, backend = await gated_server(tiny_model, max_batch_size=1, max_queue_size=2, max_queue_delay_ms=0.0)
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{srv.port}") as channel:
            stub = emotion_pb2_grpc.EmotionServiceStub(channel)
            request = raw_request(load_mono(recordings()[0]), 16000)
            running = asyncio.ensure_future(stub.Classify(request))  # taken by the worker, held at the gate
            await asyncio.sleep(0.3)
            prepared = asyncio.ensure_future(stub.Classify(request))  # its features ready, waiting for the forward pass
            await asyncio.sleep(0.3)
            queued = [asyncio.ensure_future(stub.Classify(request)) for _ in range(2)]
            await asyncio.sleep(0.3)
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await stub.Classify(request, timeout=5)
            assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
            assert "max_queue_size=2" in err.value.details()
            backend.gate.set()
            answers = await asyncio.gather(running, prepared, *queued)
            assert all(a.label in LABELS for a in answers)
    finally:
        backend.gate.set()
        await srv.stop(grace=1)


async def test_request_whose_deadline_passed_in_the_queue_is_not_run(tiny_model: Path) -> None:
    srv, backend = await gated_server(tiny_model, max_batch_size=1, max_queue_delay_ms=0.0)
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{srv.port}") as channel:
            stub = emotion_pb2_grpc.EmotionServiceStub(channel)
            request = raw_request(load_mono(recordings()[0]), 16000)
            blocker = asyncio.ensure_future(stub.Classify(request))
            await asyncio.sleep(0.2)
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await stub.Classify(request, timeout=0.3)
            assert err.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
            runs_before = srv.servicer.state.batcher.stats.items
            backend.gate.set()
            await blocker
            await asyncio.sleep(0.1)
            # Only the blocker ran; the expired request was dropped from the queue.
            assert srv.servicer.state.batcher.stats.items == runs_before + 1
            assert srv.servicer.state.batcher.queue_depth == 0
    finally:
        backend.gate.set()
        await srv.stop(grace=1)


async def test_health_turns_serving_after_load_and_calls_wait_for_it(tiny_model: Path) -> None:
    srv = EmotionServer(make_settings(tiny_model, dtype="float32"))  # what GetModelInfo must then report
    await srv.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{srv.port}") as channel:
            health = health_pb2_grpc.HealthStub(channel)
            for service in ("", "emotion.v1.EmotionService"):
                status = await health.Check(health_pb2.HealthCheckRequest(service=service))
                assert status.status == health_pb2.HealthCheckResponse.NOT_SERVING
            stub = emotion_pb2_grpc.EmotionServiceStub(channel)
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await stub.GetModelInfo(pb.GetModelInfoRequest())
            assert err.value.code() == grpc.StatusCode.UNAVAILABLE
            assert "loading" in err.value.details()
            await srv.load_model()
            status = await health.Check(health_pb2.HealthCheckRequest(service="emotion.v1.EmotionService"))
            assert status.status == health_pb2.HealthCheckResponse.SERVING
            info = await stub.GetModelInfo(pb.GetModelInfoRequest())
            assert list(info.labels) == list(LABELS) and info.sample_rate == 16000 and info.device == "cpu"
            assert info.dtype == "float32" and info.architecture == "HubertForSequenceClassification"
            assert info.batching.max_batch_size == 8 and info.batching.pads_mixed_lengths
    finally:
        await srv.stop(grace=1)


async def test_reflection_lists_the_service(channel) -> None:
    reflection = reflection_pb2_grpc.ServerReflectionStub(channel)
    responses = reflection.ServerReflectionInfo(aiter_of([reflection_pb2.ServerReflectionRequest(list_services="")]))
    names = {s.name async for r in responses for s in r.list_services_response.service}
    assert {"emotion.v1.EmotionService", "grpc.health.v1.Health"} <= names


async def test_drain_finishes_in_flight_calls_and_refuses_new_ones(tiny_model: Path) -> None:
    srv, backend = await gated_server(tiny_model)
    async with grpc.aio.insecure_channel(f"127.0.0.1:{srv.port}") as channel:
        stub = emotion_pb2_grpc.EmotionServiceStub(channel)
        request = raw_request(load_mono(recordings()[0]), 16000)
        in_flight = asyncio.ensure_future(stub.Classify(request))
        await asyncio.sleep(0.2)
        stopping = asyncio.ensure_future(srv.stop(grace=5))
        await asyncio.sleep(0.1)
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stub.Classify(request, timeout=2)
        assert err.value.code() == grpc.StatusCode.UNAVAILABLE
        backend.gate.set()
        assert (await in_flight).label in LABELS
        await stopping
