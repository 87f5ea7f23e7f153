"""EmotionClient and AsyncEmotionClient against a real server: every call, streams, errors, retries, TLS.

The session server runs on the test event loop, so blocking client calls run
in a worker thread (``asyncio.to_thread``).
"""

from __future__ import annotations

import asyncio
import hashlib
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import grpc
import numpy as np
import pytest

from emotion_client import (
    API_VERSION,
    Alert,
    AsyncEmotionClient,
    AudioInputError,
    Classification,
    DeadlineExceededError,
    EmotionClient,
    EmotionError,
    HealthStatus,
    InvalidArgumentError,
    PcmFormat,
    RawAudio,
    RetryPolicy,
    StreamSummary,
    UnauthenticatedError,
    UnavailableError,
    WindowResult,
)
from emotion_client.audio import AudioFile
from emotion_service.server.app import EmotionServer
from tests.client_support import RATE, make_pki, write_wav
from tests.conftest import LABELS, load_mono, make_settings, recordings, start_server
from tests.server_process import free_port

FAST_RETRY = RetryPolicy(max_attempts=4, initial_backoff_s=0.05, max_backoff_s=0.2)


@pytest.fixture(scope="module")
def target(server: EmotionServer) -> str:
    return f"127.0.0.1:{server.port}"


@pytest.fixture(scope="module")
def flac() -> Path:
    return recordings()[0]


@pytest.fixture(scope="module")
def wav(tmp_path_factory: pytest.TempPathFactory, flac: Path) -> Path:
    return write_wav(tmp_path_factory.mktemp("wav") / "speech.wav", load_mono(flac))


def check_classification(result: Classification) -> None:
    assert isinstance(result, Classification)
    assert set(result.scores) == set(LABELS)
    assert result.label == max(result.scores, key=result.scores.__getitem__)
    assert list(result.scores.values()) == sorted(result.scores.values(), reverse=True)
    assert sum(result.scores.values()) == pytest.approx(1.0, abs=1e-4)
    assert result.confidence == result.scores[result.label]


def check_stream(events: list, duration_s: float) -> tuple[list[WindowResult], StreamSummary]:
    """Windows in order, then exactly one summary that agrees with them."""
    windows = [e for e in events if isinstance(e, WindowResult)]
    assert isinstance(events[-1], StreamSummary) and sum(isinstance(e, StreamSummary) for e in events) == 1
    summary = events[-1]
    assert [w.index for w in windows] == list(range(len(windows))) and windows
    assert summary.window_count == sum(not w.silent for w in windows)  # silence claims no emotion
    assert all(w.label or w.silent for w in windows) and all(w.silent == w.no_speech for w in windows)
    assert summary.duration_s == pytest.approx(duration_s, abs=0.01)
    assert summary.dominant_label in LABELS
    assert sum(summary.shares.values()) == pytest.approx(1.0)
    for w in windows:
        assert set(w.scores) == (set() if w.silent else set(LABELS)) and 0 <= w.start_s < w.end_s <= duration_s + 1e-6
    return windows, summary


async def test_sync_unary_calls(target: str, flac: Path, wav: Path) -> None:
    wave = load_mono(flac)

    def calls() -> None:
        with EmotionClient(target) as client:
            assert client.health() is HealthStatus.SERVING
            assert client.health("emotion.v1.EmotionService").serving
            info = client.model_info()
            assert info.labels == LABELS and info.sample_rate == RATE
            assert info.batching.max_batch_size >= 1 and info.default_window_s > 0
            by_path = client.classify(flac, request_id="req-1", metadata={"candidate": "c-7"})
            check_classification(by_path)
            assert by_path.request_id == "req-1"
            assert by_path.duration_s == pytest.approx(len(wave) / RATE, abs=1e-3)
            # The same audio as WAV bytes, float and int16 arrays, and raw PCM answers the same.
            for other in (
                client.classify(wav.read_bytes()),
                client.classify(wave, sample_rate=RATE),
                client.classify((wave * 32767).astype(np.int16), sample_rate=RATE),
                client.classify(RawAudio(wave.astype("<f4").tobytes(), PcmFormat(RATE, "f32le"))),
            ):
                check_classification(other)
                assert other.label == by_path.label
                assert other.scores[by_path.label] == pytest.approx(by_path.confidence, abs=2e-3)

    await asyncio.to_thread(calls)


async def test_async_unary_calls(target: str, flac: Path) -> None:
    wave = load_mono(flac)
    async with AsyncEmotionClient(target) as client:
        assert await client.health() is HealthStatus.SERVING
        info = await client.model_info()
        assert info.labels == LABELS
        result = await client.classify(flac, request_id="req-2")
        check_classification(result)
        assert result.request_id == "req-2"
        stereo = np.stack([wave, wave], axis=1)
        both = await asyncio.gather(client.classify(flac.read_bytes()), client.classify(stereo, sample_rate=RATE))
        for other in both:
            assert other.label == result.label


async def test_sync_stream_from_files_bytes_and_chunks(target: str, flac: Path, wav: Path) -> None:
    wave = load_mono(flac)
    duration = len(wave) / RATE
    pcm = np.round(wave * 32768).clip(-32768, 32767).astype("<i2").tobytes()  # the file's own samples, bit for bit

    def chunks() -> Iterator[bytes]:
        for i in range(0, len(pcm), 3333):  # odd sizes: chunks end mid-frame
            yield pcm[i : i + 3333]

    def calls() -> list[list]:
        with EmotionClient(target) as client:
            return [
                list(client.stream(source, window_s=1.0, hop_s=0.5, **kwargs))
                for source, kwargs in (
                    (wav, {}),
                    (flac, {}),
                    (wav.read_bytes(), {}),
                    (pcm, {"format": PcmFormat(RATE)}),
                    (chunks(), {"format": PcmFormat(RATE, "s16le", 1)}),
                    (wave, {"sample_rate": RATE, "session_id": "s-1", "metadata": {"interview": "i-1"}}),
                )
            ]

    runs = await asyncio.to_thread(calls)
    reference, _ = check_stream(runs[0], duration)
    for events in runs[1:]:
        windows, summary = check_stream(events, duration)
        assert [(w.start_s, w.end_s) for w in windows] == [(w.start_s, w.end_s) for w in reference]
        assert [w.label for w in windows] == [w.label for w in reference]
    assert runs[-1][-1].session_id == "s-1"


async def test_async_stream_from_an_async_iterable(target: str, flac: Path) -> None:
    wave = load_mono(flac)
    pcm = wave.astype("<f4").tobytes()

    async def live() -> AsyncIterator[bytes]:
        for i in range(0, len(pcm), 6400):
            await asyncio.sleep(0)
            yield pcm[i : i + 6400]

    async with AsyncEmotionClient(target) as client:
        events = [e async for e in client.stream(live(), format=PcmFormat(RATE, "f32le"), window_s=1.0, hop_s=0.5)]
        from_file = [e async for e in client.stream(flac, window_s=1.0, hop_s=0.5)]
    windows, _ = check_stream(events, len(wave) / RATE)
    assert [w.label for w in windows] == [e.label for e in from_file if isinstance(e, WindowResult)]


async def test_realtime_pacing_and_early_exit(target: str, flac: Path) -> None:
    second = load_mono(flac)[RATE : 2 * RATE + RATE // 5]  # 1.2 s of speech (the clip's first second is a pause)

    def paced() -> float:
        with EmotionClient(target) as client:
            started = time.monotonic()
            events = list(client.stream(second, sample_rate=RATE, window_s=0.5, hop_s=0.5, realtime=True))
            check_stream(events, 1.2)
            return time.monotonic() - started

    assert await asyncio.to_thread(paced) >= 1.0
    async with AsyncEmotionClient(target) as client:
        started = time.monotonic()
        async for event in client.stream(second, sample_rate=RATE, window_s=0.5, hop_s=0.5, realtime=True):
            assert isinstance(event, WindowResult) and event.index == 0
            break  # leaving early cancels the call
        assert time.monotonic() - started < 1.0
        assert (await client.health()).serving  # the channel is still good


async def test_server_errors_carry_code_and_message(target: str, flac: Path) -> None:
    async with AsyncEmotionClient(target, retry=FAST_RETRY) as client:
        with pytest.raises(InvalidArgumentError) as bad_audio:
            await client.classify(b"this is not audio")
        assert bad_audio.value.code is grpc.StatusCode.INVALID_ARGUMENT and bad_audio.value.message
        with pytest.raises(InvalidArgumentError, match="hop_s"):
            async for _ in client.stream(flac, window_s=1.0, hop_s=2.0):
                pass
        with pytest.raises(DeadlineExceededError) as late:
            await client.classify(flac, timeout=0.0001)
        assert isinstance(late.value, EmotionError)

    def sync_errors() -> None:
        with EmotionClient(target) as client:
            with pytest.raises(InvalidArgumentError, match="window_s"):
                list(client.stream(flac, window_s=1000.0))

    await asyncio.to_thread(sync_errors)


async def test_client_side_input_errors(target: str, flac: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    client = EmotionClient(target)
    with pytest.raises(AudioInputError, match="no such file"):
        client.classify("missing.wav")
    with pytest.raises(AudioInputError, match="sample_rate"):
        client.classify(np.zeros(RATE, np.float32))
    with pytest.raises(AudioInputError, match="format"):
        client.stream(iter([b"\0\0"]))  # raises at the call, before any RPC
    with pytest.raises(TypeError, match="cannot classify"):
        client.classify(42)  # type: ignore[arg-type]
    monkeypatch.setitem(sys.modules, "soundfile", None)  # as on a machine without the audio extra
    with pytest.raises(AudioInputError, match=r"emotion-client\[audio\]"):
        client.stream(flac)
    client.close()


async def test_a_failing_chunk_source_raises_its_own_error(target: str) -> None:
    class SourceBroke(RuntimeError):
        pass

    def chunks() -> Iterator[bytes]:
        yield bytes(RATE * 2)
        raise SourceBroke("microphone unplugged")

    async def async_chunks() -> AsyncIterator[bytes]:
        for chunk in chunks():
            yield chunk

    def sync_stream() -> None:
        with EmotionClient(target) as client:
            with pytest.raises(SourceBroke, match="unplugged"):
                list(client.stream(chunks(), format=PcmFormat(RATE)))

    await asyncio.to_thread(sync_stream)
    async with AsyncEmotionClient(target) as client:
        with pytest.raises(SourceBroke, match="unplugged"):
            async for _ in client.stream(async_chunks(), format=PcmFormat(RATE)):
                pass


def test_wav_sample_widths_read_without_soundfile(tmp_path: Path, flac: Path) -> None:
    wave = load_mono(flac)[:RATE]
    expected = np.frombuffer(AudioFile(write_wav(tmp_path / "16.wav", wave)).chunks(10).__next__(), "<i2")
    for subtype, tolerance in (("PCM_U8", 300), ("PCM_24", 1), ("PCM_32", 1)):
        audio = AudioFile(write_wav(tmp_path / f"{subtype}.wav", wave, subtype))
        assert audio.format == PcmFormat(RATE, "s16le", 1)
        got = np.frombuffer(b"".join(audio.chunks(0.1)), "<i2")
        assert len(got) == len(expected)
        assert np.abs(got.astype(int) - expected).max() <= tolerance, subtype


class _FlakyMethod:
    """A stub method failing with ``code`` ``failures`` times, then answering."""

    def __init__(self, code: grpc.StatusCode, failures: int, answer: object) -> None:
        self.code, self.failures, self.answer, self.calls = code, failures, answer, 0

    def __call__(self, request: object, timeout: float | None = None, metadata: object = None) -> object:
        self.calls += 1
        if self.calls <= self.failures:
            error = grpc.RpcError()
            error.code = lambda: self.code  # type: ignore[attr-defined]
            error.details = lambda: "injected"  # type: ignore[attr-defined]
            raise error
        return self.answer


def test_only_unavailable_is_retried() -> None:
    from emotion_client.v1 import emotion_pb2 as pb

    client = EmotionClient("127.0.0.1:9", retry=FAST_RETRY)
    flaky = _FlakyMethod(grpc.StatusCode.UNAVAILABLE, 2, pb.ModelInfo(name="m", labels=["A"]))
    client._stub.GetModelInfo = flaky  # type: ignore[method-assign]
    assert client.model_info().name == "m" and flaky.calls == 3
    refused = _FlakyMethod(grpc.StatusCode.RESOURCE_EXHAUSTED, 5, None)
    client._stub.GetModelInfo = refused  # type: ignore[method-assign]
    with pytest.raises(EmotionError) as exc:
        client.model_info()
    assert exc.value.code is grpc.StatusCode.RESOURCE_EXHAUSTED and refused.calls == 1
    client.close()


async def test_unreachable_server_fails_after_backoff() -> None:
    port = free_port()
    async with AsyncEmotionClient(f"127.0.0.1:{port}", retry=FAST_RETRY, timeout=5) as client:
        started = time.monotonic()
        with pytest.raises(UnavailableError) as exc:
            await client.model_info()
        # Three backoffs of at least 0.04 + 0.08 + 0.16 s (jitter takes off at most a fifth).
        assert time.monotonic() - started >= 0.28
        assert exc.value.code is grpc.StatusCode.UNAVAILABLE


async def test_retry_after_server_restart(tiny_model: Path, server: EmotionServer, flac: Path) -> None:
    port = free_port()
    first = await start_server(make_settings(tiny_model, port=port))
    patient = RetryPolicy(max_attempts=8, initial_backoff_s=0.1, max_backoff_s=1.0)
    sync_client = EmotionClient(f"127.0.0.1:{port}", retry=patient)
    async with AsyncEmotionClient(f"127.0.0.1:{port}", retry=patient) as client:
        assert (await client.model_info()).labels == LABELS
        assert (await asyncio.to_thread(sync_client.health)).serving
        await first.stop(grace=0)

        async def restart() -> EmotionServer:
            await asyncio.sleep(0.5)
            second = EmotionServer(make_settings(tiny_model, port=port))
            await second.start()
            await second.load_model(backend=server.servicer.state.backend)  # the loaded model, no reload
            return second

        async def stream() -> list:
            return [e async for e in client.stream(flac, window_s=1.0, hop_s=0.5)]

        restarting = asyncio.create_task(restart())
        # Every call starts while the port is closed; retries reach the new server.
        unary, threaded, events = await asyncio.gather(
            client.classify(flac), asyncio.to_thread(sync_client.classify, flac), stream()
        )
        second = await restarting
        try:
            check_classification(unary)
            check_classification(threaded)
            assert isinstance(events[-1], StreamSummary)
        finally:
            sync_client.close()
            await second.stop(grace=0)


@pytest.fixture(scope="module")
async def secure_server(
    tiny_model: Path, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[tuple[EmotionServer, object]]:
    """A server with mutual TLS and token auth (issue 6's settings)."""
    pytest.importorskip("cryptography")
    folder = tmp_path_factory.mktemp("pki")
    pki = make_pki(folder)
    tokens = folder / "tokens.toml"
    tokens.write_text(
        f'[[keys]]\nname = "tests"\nsha256 = "{hashlib.sha256(b"s3cret").hexdigest()}"\nscopes = ["classify"]\n'
    )
    settings = make_settings(
        tiny_model,
        tls_cert_file=str(pki.server_cert),
        tls_key_file=str(pki.server_key),
        tls_client_ca_file=str(pki.ca),
        auth_tokens_file=str(tokens),
    )
    srv = await start_server(settings)
    yield srv, pki
    await srv.stop(grace=0)


async def test_mutual_tls_and_bearer_token(secure_server: tuple[EmotionServer, object], flac: Path) -> None:
    srv, pki = secure_server
    target = f"127.0.0.1:{srv.port}"
    mtls = dict(ca_cert=pki.ca, client_cert=pki.client_cert, client_key=pki.client_key)  # type: ignore[attr-defined]
    async with AsyncEmotionClient(target, token="s3cret", **mtls) as client:
        assert client.connection.secure
        check_classification(await client.classify(flac))
        assert (await client.model_info()).labels == LABELS
        events = [e async for e in client.stream(flac, window_s=1.0, hop_s=0.5)]
        assert isinstance(events[-1], StreamSummary)

    def sync_calls() -> None:
        with EmotionClient(target, token="s3cret", server_name="localhost", **mtls) as client:
            assert client.health().serving
            check_classification(client.classify(flac))
        with EmotionClient(target, token="wrong", **mtls) as client:
            with pytest.raises(UnauthenticatedError, match="bearer token"):
                client.classify(flac)
            assert client.health().serving  # health needs no token

    await asyncio.to_thread(sync_calls)
    async with AsyncEmotionClient(target, **mtls) as client:
        with pytest.raises(UnauthenticatedError) as missing:
            await client.model_info()
        assert missing.value.code is grpc.StatusCode.UNAUTHENTICATED
    # Without a client certificate, or trusting the wrong CA, the handshake fails: UNAVAILABLE.
    no_retry = RetryPolicy(max_attempts=1)
    for options in ({"ca_cert": pki.ca}, {"tls": True}):  # type: ignore[attr-defined]
        async with AsyncEmotionClient(target, token="s3cret", retry=no_retry, timeout=5, **options) as client:
            with pytest.raises(UnavailableError):
                await client.model_info()


def test_client_states_its_api_version() -> None:
    import emotion_client

    assert API_VERSION == "emotion.v1" and emotion_client.SERVICE_NAME == "emotion.v1.EmotionService"
    assert emotion_client.__version__ != "0+unknown"
    assert Alert(kind="threshold", message="m").to_dict()["kind"] == "threshold"
