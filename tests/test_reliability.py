"""Fuzz, load and fault tests, bounded in count and time, on loopback servers.

Run with ``-s`` to see the figures each test prints.
"""

from __future__ import annotations

import asyncio
import signal
import struct
import threading
import time
import uuid
from collections import Counter
from pathlib import Path

import grpc
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from emotion_client.v1 import emotion_pb2 as pb
from emotion_client.v1 import emotion_pb2_grpc
from emotion_service import audio
from emotion_service.server.app import EmotionServer
from tests.conftest import load_mono, make_settings, recordings, start_server
from tests.server_process import peak_rss_mb, rss_mb, serving
from tests.test_service import aiter_of, raw_request, stream_requests

FUZZ_EXAMPLES = 5_000
LIMITS = audio.AudioLimits(max_bytes=16 * 1024 * 1024, max_seconds=60.0, min_seconds=0.1)
SEEDS = [p.read_bytes() for p in recordings()[:3]]


def _wav_header(rate: int, channels: int, bits: int, fmt_tag: int, data_len: int, payload: bytes) -> bytes:
    block = max(channels * bits // 8, 0) & 0xFFFF
    fmt = struct.pack("<HHIIHH", fmt_tag & 0xFFFF, channels & 0xFFFF, rate & 0xFFFFFFFF,
                      (rate * block) & 0xFFFFFFFF, block, bits & 0xFFFF)
    body = b"WAVEfmt " + struct.pack("<I", len(fmt)) + fmt + b"data" + struct.pack("<I", data_len & 0xFFFFFFFF) + payload
    return b"RIFF" + struct.pack("<I", len(body)) + body


random_bytes = st.binary(min_size=0, max_size=2048)
truncated = st.builds(lambda seed, cut: seed[:cut], st.sampled_from(SEEDS), st.integers(0, 60_000))
def _flip(seed: bytes, flips: list[tuple[int, int]]) -> bytes:
    data = bytearray(seed)
    for position, bit in flips:
        data[position % len(data)] ^= 1 << bit
    return bytes(data)


bit_flipped = st.builds(
    _flip,
    st.sampled_from(SEEDS),
    st.lists(st.tuples(st.integers(0, 70_000), st.integers(0, 7)), min_size=1, max_size=8),
)
absurd_wav = st.builds(
    _wav_header,
    st.sampled_from([0, 1, 7, 8000, 16000, 44100, 2**31 - 1, 2**32 - 1]) | st.integers(0, 2**32 - 1),
    st.integers(0, 70_000),
    st.sampled_from([0, 1, 8, 16, 24, 32, 64, 65535]),
    st.sampled_from([1, 3, 0, 0xFFFE, 2, 85]),
    st.integers(0, 2**32 - 1),
    st.binary(max_size=4096),
)
encoded_payloads = random_bytes | truncated | bit_flipped | absurd_wav


@st.composite
def raw_payloads(draw: st.DrawFn) -> tuple[bytes, str, int, int]:
    encoding = draw(st.sampled_from(["s16le", "f32le", "u8"]))
    rate = draw(st.sampled_from([0, 1, 999, 8000, 16000, 48000, 768_001]) | st.integers(0, 10**7))
    channels = draw(st.integers(0, 40))
    data = draw(st.binary(max_size=8192))
    return data, encoding, rate, channels


def _fuzz_request(payload: bytes | tuple[bytes, str, int, int]) -> pb.ClassifyRequest:
    if isinstance(payload, bytes):
        return pb.ClassifyRequest(audio=pb.Audio(content=payload))
    data, encoding, rate, channels = payload
    enc = {"s16le": pb.PCM_ENCODING_S16LE, "f32le": pb.PCM_ENCODING_F32LE}.get(encoding, pb.PCM_ENCODING_UNSPECIFIED)
    fmt = pb.PcmFormat(encoding=enc, sample_rate=rate, channels=channels)
    return pb.ClassifyRequest(audio=pb.Audio(raw=pb.RawAudio(data=data, format=fmt)))


def _decodes(payload: bytes | tuple[bytes, str, int, int]) -> bool:
    try:
        if isinstance(payload, bytes):
            audio.decode_content(payload, 16000, LIMITS)
        else:
            data, encoding, rate, channels = payload
            audio.decode_raw(data, encoding, rate, channels or 1, 16000, LIMITS)
    except audio.AudioError:
        return False
    return True


@pytest.mark.slow
def test_fuzz_decoder_and_live_server(tiny_model: Path) -> None:
    """5 000 hostile payloads: the decoder raises only AudioError; the server answers OK or INVALID_ARGUMENT."""
    codes: Counter[str] = Counter()
    with serving(tiny_model) as (port, proc, _), grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = emotion_pb2_grpc.EmotionServiceStub(channel)
        stub.Classify(_fuzz_request(SEEDS[0]), timeout=30)
        baseline = rss_mb(proc.pid)

        @settings(max_examples=FUZZ_EXAMPLES, deadline=None, derandomize=True, database=None,
                  suppress_health_check=list(HealthCheck))
        @given(encoded_payloads | raw_payloads())
        def check(payload: bytes | tuple[bytes, str, int, int]) -> None:
            decodes = _decodes(payload)  # raises anything but AudioError -> test fails
            try:
                stub.Classify(_fuzz_request(payload), timeout=30)
                codes["OK"] += 1
                assert decodes, "the server accepted audio the decoder rejects"
            except grpc.RpcError as err:
                codes[err.code().name] += 1
                assert err.code() == grpc.StatusCode.INVALID_ARGUMENT, err.details()
                assert not decodes or "at least" in err.details()

        check()
        assert proc.poll() is None, "the server died"
        stub.Classify(_fuzz_request(SEEDS[0]), timeout=30)
        grown = rss_mb(proc.pid) - baseline
        peak = peak_rss_mb(proc.pid)
    print(f"\nfuzz: {sum(codes.values())} payloads {dict(codes)}; server RSS grew {grown:.1f} MiB, peak {peak:.0f} MiB")
    assert sum(codes.values()) >= FUZZ_EXAMPLES
    assert grown < 200, f"server memory grew by {grown:.0f} MiB"


async def test_load_every_accepted_request_answered_once(tiny_model: Path) -> None:
    """16 streams and 8 unary callers for a bounded time: nothing lost, nothing duplicated."""
    srv = await start_server(make_settings(tiny_model, max_queue_size=64, max_batch_size=8))
    clips = [load_mono(p) for p in recordings()]
    stream_audio = np.concatenate(clips[:3])[: 16000 * 8]
    expected_windows = 6  # 8 s, 3 s windows every 1 s
    stop_at = time.monotonic() + 6.0
    # Each caller keeps going past stop_at until it has one answer, so a slow machine (more
    # RESOURCE_EXHAUSTED under the same load) still shows every caller served; a starved one
    # gives up at give_up_at and fails the count below.
    give_up_at = stop_at + 30.0
    outcomes: Counter[str] = Counter()
    problems: list[str] = []
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{srv.port}") as channel:
            stub = emotion_pb2_grpc.EmotionServiceStub(channel)

            def going(answered: int) -> bool:
                now = time.monotonic()
                return now < stop_at or (answered == 0 and now < give_up_at)

            async def streamer(n: int) -> None:
                answered = 0
                while going(answered):
                    session = f"s{n}-{uuid.uuid4().hex[:6]}"
                    requests = stream_requests(stream_audio, 16000, chunk=6400, window_s=3.0, hop_s=1.0, session_id=session)
                    try:
                        responses = [r async for r in stub.StreamClassify(aiter_of(requests))]
                    except grpc.aio.AioRpcError as err:
                        outcomes[f"stream:{err.code().name}"] += 1
                        if err.code() != grpc.StatusCode.RESOURCE_EXHAUSTED:
                            problems.append(f"{session}: {err.code().name} {err.details()}")
                        continue
                    indices = [r.window.index for r in responses if r.WhichOneof("event") == "window"]
                    if indices != list(range(expected_windows)) or responses[-1].summary.window_count != expected_windows:
                        problems.append(f"{session}: windows {indices}")
                    if any(r.session_id != session for r in responses):
                        problems.append(f"{session}: foreign session id")
                    outcomes["stream:OK"] += 1
                    answered += 1

            async def caller(n: int) -> None:
                i = answered = 0
                while going(answered):
                    request = raw_request(clips[(n + i) % len(clips)], 16000)
                    request.request_id = f"u{n}-{i}"
                    i += 1
                    try:
                        reply = await stub.Classify(request)
                    except grpc.aio.AioRpcError as err:
                        outcomes[f"unary:{err.code().name}"] += 1
                        if err.code() != grpc.StatusCode.RESOURCE_EXHAUSTED:
                            problems.append(f"{request.request_id}: {err.code().name}")
                        continue
                    if reply.request_id != request.request_id:
                        problems.append(f"{request.request_id}: answered as {reply.request_id}")
                    outcomes["unary:OK"] += 1
                    answered += 1

            await asyncio.gather(*(streamer(n) for n in range(16)), *(caller(n) for n in range(8)))
        stats = srv.servicer.state.batcher.stats
    finally:
        await srv.stop(grace=5)
    print(f"\nload: {dict(outcomes)}; {stats.batches} batches, sizes {dict(sorted(stats.batch_sizes.items()))}")
    assert not problems, problems[:5]
    assert outcomes["stream:OK"] >= 16 and outcomes["unary:OK"] >= 8


async def test_client_cancelling_mid_stream_leaves_the_server_healthy(server: EmotionServer, stub) -> None:
    requests = stream_requests(np.zeros(16000 * 20, np.float32), 16000, chunk=16000, window_s=1.0, hop_s=1.0)

    async def slow():
        for r in requests:
            yield r
            await asyncio.sleep(0.05)

    call = stub.StreamClassify(slow())
    first = await call.read()
    assert first.WhichOneof("event") == "window"
    call.cancel()
    for _ in range(50):
        if server.servicer.open_streams == 0:
            break
        await asyncio.sleep(0.05)
    assert server.servicer.open_streams == 0
    # The server still answers: speech gets a label (silence would get no_speech, no label).
    assert (await stub.Classify(raw_request(load_mono(recordings()[0]), 16000))).label


async def test_draining_server_refuses_new_calls_and_finishes_open_streams(tiny_model: Path) -> None:
    """While a stream is open, a stop refuses new calls with UNAVAILABLE and lets the stream end."""
    srv = await start_server(make_settings(tiny_model))
    stopping = None
    requests = stream_requests(load_mono(recordings()[1]), 16000, chunk=3200, window_s=1.0, hop_s=0.5)
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{srv.port}") as channel:
            stub = emotion_pb2_grpc.EmotionServiceStub(channel)

            async def paced():
                for r in requests:
                    yield r
                    await asyncio.sleep(0.05)

            call = stub.StreamClassify(paced())
            responses = [await call.read()]
            stopping = asyncio.create_task(srv.stop(grace=30))
            await asyncio.sleep(0.1)
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await stub.Classify(raw_request(np.zeros(16000, np.float32), 16000))
            assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
            assert "shutting down" in refused.value.details()
            assert not stopping.done()
            while (response := await call.read()) is not grpc.aio.EOF:
                responses.append(response)
            assert await call.code() == grpc.StatusCode.OK
            assert responses[0].WhichOneof("event") == "window"
            assert responses[-1].WhichOneof("event") == "summary"
            await asyncio.wait_for(stopping, timeout=10)
    finally:
        await (stopping or srv.stop(grace=0))


def test_sigterm_under_load_loses_no_accepted_request(tiny_model: Path) -> None:
    """Calls in flight when SIGTERM lands finish; later ones are refused with UNAVAILABLE; exit 0."""
    results: Counter[str] = Counter()
    lock = threading.Lock()
    clip = raw_request(load_mono(recordings()[0]), 16000)
    with serving(tiny_model, "--grace-period-s", "20") as (port, proc, _):
        stop = threading.Event()

        def unary_worker() -> None:
            with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
                stub = emotion_pb2_grpc.EmotionServiceStub(channel)
                while not stop.is_set():
                    try:
                        stub.Classify(clip, timeout=30)
                        code = "OK"
                    except grpc.RpcError as err:
                        code = err.code().name
                    with lock:
                        results[f"unary:{code}"] += 1
                    if code != "OK":
                        return

        def stream_worker() -> None:
            requests = stream_requests(load_mono(recordings()[1]), 16000, chunk=3200, window_s=1.0, hop_s=0.5)

            def paced():
                for r in requests:
                    yield r
                    time.sleep(0.01)

            with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
                stub = emotion_pb2_grpc.EmotionServiceStub(channel)
                while not stop.is_set():
                    try:
                        responses = list(stub.StreamClassify(paced(), timeout=30))
                        code = "OK" if responses[-1].WhichOneof("event") == "summary" else "TRUNCATED"
                    except grpc.RpcError as err:
                        code = err.code().name
                    with lock:
                        results[f"stream:{code}"] += 1
                    if code != "OK":
                        return

        threads = [threading.Thread(target=unary_worker) for _ in range(4)]
        threads += [threading.Thread(target=stream_worker) for _ in range(4)]
        for t in threads:
            t.start()
        time.sleep(2.0)
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=60)
        stop.set()
        for t in threads:
            t.join(timeout=60)
    print(f"\nsigterm under load: {dict(results)}, exit code {code}")
    assert code == 0
    assert set(results) <= {"unary:OK", "unary:UNAVAILABLE", "stream:OK", "stream:UNAVAILABLE"}, results
    assert results["unary:OK"] > 0 and results["stream:OK"] > 0
