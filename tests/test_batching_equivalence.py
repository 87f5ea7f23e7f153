"""Batching never changes an answer, and every caller gets its own.

On the bundled model, whose answers differ clearly between recordings (the closest two of the
clips below differ by more than 0.1 in log-probability), log-probabilities are compared at a
tolerance a thousand times smaller: a batcher that swapped rows, or padded without a mask,
fails here (both were tried, see the README's batching section).
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import numpy as np
import pytest
import soundfile as sf

from emotion_client.v1 import emotion_pb2 as pb
from emotion_client.v1 import emotion_pb2_grpc
from emotion_service.paths import LOGMEL_CNN_MODEL
from emotion_service.plugins.manager import build_host
from emotion_service.server.app import EmotionServer
from tests.conftest import load_mono, make_settings, recordings, start_server

TOLERANCE = 1e-4  # in log-probability, absolute
SEPARATION = 100 * TOLERANCE  # distinct clips must differ by more than this for the checks to mean anything


# In float32 whatever dtype=auto picks on this machine: batched rows equal single rows to 1e-4.
# In bfloat16 the kernels chosen for a batch's shape round differently (see the bf16 test below).
@pytest.fixture(scope="module")
async def bundled() -> AsyncIterator[emotion_pb2_grpc.EmotionServiceStub]:
    settings = make_settings(LOGMEL_CNN_MODEL, max_batch_size=8, dtype="float32")
    server = EmotionServer(settings, plugins=build_host({}))
    await server.start()
    await server.load_model()
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        stub = emotion_pb2_grpc.EmotionServiceStub(channel)
        stub.server = server  # type: ignore[attr-defined]
        yield stub
    await server.stop(grace=1)


def log_probs(reply: pb.ClassifyResponse | pb.WindowResult) -> np.ndarray:
    scores = {s.label: s.score for s in reply.scores}
    return np.log(np.array([scores[label] for label in sorted(scores)], dtype=np.float64))


def raw(samples: np.ndarray, encoding: int = pb.PCM_ENCODING_S16LE, rate: int = 16000) -> pb.ClassifyRequest:
    fmt = pb.PcmFormat(encoding=encoding, sample_rate=rate, channels=1)
    return pb.ClassifyRequest(audio=pb.Audio(raw=pb.RawAudio(data=samples.tobytes(), format=fmt)))


def thirty_two_clips() -> list[np.ndarray]:
    """32 different recordings of mixed lengths: 12 clips whole, then their first 60 % and their last 60 %.

    Cuts into the speech, not only into the silence around it: the bundled model's front end trims
    silence, so clips that differ only in their pauses get one answer.
    """
    clips = []
    for i in range(32):
        wave = (load_mono(recordings()[i % 12]) * 32768).astype("<i2")
        start, end = ((0, len(wave)), (0, int(len(wave) * 0.6)), (int(len(wave) * 0.4), len(wave)))[i // 12]
        clips.append(wave[start : end - 1200 * (i % 5)])
    return clips


def assert_separated(answers: list[np.ndarray]) -> None:
    closest = min(np.abs(a - b).max() for a, b in itertools.combinations(answers, 2))
    assert closest > SEPARATION, (
        f"the model cannot tell these clips apart ({closest:.2g}): the test would prove nothing"
    )


async def test_32_concurrent_callers_each_get_their_own_single_answer(bundled) -> None:
    clips = thirty_two_clips()
    singles = [log_probs(await bundled.Classify(raw(c))) for c in clips]
    assert_separated(singles)
    stats = bundled.server.servicer.state.batcher.stats
    before = dict(stats.batch_sizes)
    together = await asyncio.gather(*(bundled.Classify(raw(c)) for c in clips))
    assert any(size > 1 and stats.batch_sizes.get(size, 0) > before.get(size, 0) for size in stats.batch_sizes)
    for i, (single, reply) in enumerate(zip(singles, together, strict=True)):
        np.testing.assert_allclose(log_probs(reply), single, atol=TOLERANCE, rtol=0, err_msg=f"caller {i}")


async def test_encoded_and_raw_formats_give_one_answer(bundled) -> None:
    path = recordings()[0]
    as_int16, _ = sf.read(path, dtype="int16")
    as_float, _ = sf.read(path, dtype="float32")  # exactly int16 / 32768
    flac = log_probs(await bundled.Classify(pb.ClassifyRequest(audio=pb.Audio(content=path.read_bytes()))))
    assert_separated(
        [
            flac,
            log_probs(await bundled.Classify(pb.ClassifyRequest(audio=pb.Audio(content=recordings()[3].read_bytes())))),
        ]
    )
    for request in (raw(as_int16.astype("<i2")), raw(as_float.astype("<f4"), pb.PCM_ENCODING_F32LE)):
        np.testing.assert_allclose(log_probs(await bundled.Classify(request)), flac, atol=TOLERANCE, rtol=0)


async def test_stream_windows_equal_classify_of_the_same_audio(bundled) -> None:
    waves = [(load_mono(p) * 32768).astype("<i2")[: 2 * 16000] for p in recordings()[:3]]
    stream = np.concatenate(waves)
    fmt = pb.PcmFormat(encoding=pb.PCM_ENCODING_S16LE, sample_rate=16000, channels=1)
    config = pb.StreamConfig(format=fmt, window_s=2.0, hop_s=2.0)
    pcm = stream.tobytes()

    async def requests() -> AsyncIterator[pb.StreamClassifyRequest]:
        yield pb.StreamClassifyRequest(config=config)
        for i in range(0, len(pcm), 6000):
            yield pb.StreamClassifyRequest(audio_content=pcm[i : i + 6000])

    windows = [r.window for r in [r async for r in bundled.StreamClassify(requests())] if r.HasField("window")]
    singles = [log_probs(await bundled.Classify(raw(w))) for w in waves]
    assert_separated(singles)
    assert len(windows) == 3
    for window, single in zip(windows, singles, strict=True):
        np.testing.assert_allclose(log_probs(window), single, atol=TOLERANCE, rtol=0)


async def test_groupnorm_checkpoint_batches_only_equal_lengths(tiny_model_groupnorm: Path) -> None:
    """hubert-base-like: group norm, no attention mask, so padding would change answers.

    In float32: in bfloat16 a transformer's batched matmuls round differently from single rows
    (docs/guarantees.md), which would hide what this test is about.
    """
    srv = await start_server(make_settings(tiny_model_groupnorm, dtype="float32"))
    try:
        assert srv.servicer.state.batcher.pad_mixed_lengths is False
        async with grpc.aio.insecure_channel(f"127.0.0.1:{srv.port}") as channel:
            stub = emotion_pb2_grpc.EmotionServiceStub(channel)
            clips = []
            for i in range(12):
                wave = (load_mono(recordings()[i % 4]) * 32768).astype("<i2")
                clips.append(wave[: len(wave) - 4000 * (i % 3)])
            singles = [log_probs(await stub.Classify(raw(c))) for c in clips]
            assert_separated(singles)
            together = await asyncio.gather(*(stub.Classify(raw(c)) for c in clips))
            for i, (single, reply) in enumerate(zip(singles, together, strict=True)):
                np.testing.assert_allclose(log_probs(reply), single, atol=TOLERANCE, rtol=0, err_msg=f"caller {i}")
            info = await stub.GetModelInfo(pb.GetModelInfoRequest())
            assert info.batching.pads_mixed_lengths is False
    finally:
        await srv.stop(grace=1)


async def test_in_bfloat16_batched_answers_stay_within_the_dtype_tolerance() -> None:
    """bfloat16 keeps about 3 significant digits, and a batch's shape picks other kernels than a
    single clip's: each caller's batched probabilities stay within DTYPE_TOLERANCE of its single ones."""
    from emotion_service.server.model import DTYPE_TOLERANCE

    server = EmotionServer(make_settings(LOGMEL_CNN_MODEL, max_batch_size=8, dtype="bfloat16"), plugins=build_host({}))
    await server.start()
    await server.load_model()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            stub = emotion_pb2_grpc.EmotionServiceStub(channel)
            clips = thirty_two_clips()[:16]
            singles = [np.exp(log_probs(await stub.Classify(raw(c)))) for c in clips]
            together = await asyncio.gather(*(stub.Classify(raw(c)) for c in clips))
            gaps = [float(np.abs(np.exp(log_probs(r)) - single).max()) for r, single in zip(together, singles, strict=True)]
            assert max(gaps) <= DTYPE_TOLERANCE, gaps
    finally:
        await server.stop(grace=1)
