"""Every door is bounded: bombs built here, sent to a real `emotion serve`, measured by peak RSS.

Classify's decoder is tested in tests/test_hostile_audio.py; these are the other doors: a stream
message, a stream as a whole, and a job with all its channels.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import grpc
import numpy as np
import pytest
import soundfile as sf

from emotion_client.v1 import emotion_pb2 as pb
from emotion_client.v1 import emotion_pb2_grpc
from tests.server_process import peak_rss_mb, rss_mb, serving


def reset_peak(pid: int) -> float:
    """Resets the process's peak RSS to its current RSS (Linux clear_refs); returns that RSS in MiB."""
    Path(f"/proc/{pid}/clear_refs").write_text("5")
    return rss_mb(pid)


def stream(fmt: pb.PcmFormat, chunks: list[bytes]) -> Iterator[pb.StreamClassifyRequest]:
    yield pb.StreamClassifyRequest(config=pb.StreamConfig(format=fmt, session_id="bomb"))
    for chunk in chunks:
        yield pb.StreamClassifyRequest(audio_content=chunk)


@pytest.mark.slow
def test_stream_message_bombs_are_refused_before_decoding(tiny_model: Path) -> None:
    """4 MiB of s16le declared at 1 kHz is 35 minutes of audio, 134 MB once resampled to 16 kHz
    float32 and ~1400 windows: refused from its size and format, the server hardly grows."""
    silence = bytes(4 * 1024 * 1024)
    low_rate = pb.PcmFormat(encoding=pb.PCM_ENCODING_S16LE, sample_rate=1000, channels=1)
    with serving(tiny_model) as (port, proc, _), grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = emotion_pb2_grpc.EmotionServiceStub(channel)
        before = reset_peak(proc.pid)
        for chunks, limit in (
            ([silence], "max_stream_message_bytes"),  # too many bytes in one message
            ([silence[:40_000]] * 3, "max_stream_message_seconds"),  # 20 s of 1 kHz audio in 40 KB
        ):
            with pytest.raises(grpc.RpcError) as refused:
                list(stub.StreamClassify(stream(low_rate, chunks), timeout=30))
            assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert limit in refused.value.details()
        grown = peak_rss_mb(proc.pid) - before
        # Chunks within the limits are served as before: 4 s of 1 kHz audio in 1 s chunks.
        replies = list(stub.StreamClassify(stream(low_rate, [bytes(2000)] * 4), timeout=30))
        assert replies[-1].HasField("summary")
    print(f"\nstream message bombs: peak RSS grew {grown:.1f} MiB over {before:.0f} MiB")
    assert grown < 100, f"refusing the messages took {grown:.0f} MiB"


@pytest.mark.slow
def test_a_stream_is_bounded_as_a_whole(tiny_model: Path) -> None:
    """A stream's audio is counted before each message is decoded: the message that would pass
    max_stream_seconds is refused whole."""
    fmt = pb.PcmFormat(encoding=pb.PCM_ENCODING_S16LE, sample_rate=16000, channels=1)
    second = (np.zeros(16000, np.int16)).tobytes()
    with serving(tiny_model, env={"EMOTION_MAX_STREAM_SECONDS": "5"}) as (port, _, _), grpc.insecure_channel(
        f"127.0.0.1:{port}"
    ) as channel:
        stub = emotion_pb2_grpc.EmotionServiceStub(channel)
        with pytest.raises(grpc.RpcError) as refused:
            list(stub.StreamClassify(stream(fmt, [second] * 6), timeout=30))
        assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "max_stream_seconds" in refused.value.details()


def silent_flac(rate: int, channels: int, seconds: float) -> bytes:
    buffer = io.BytesIO()
    sf.write(buffer, np.zeros((int(rate * seconds), channels), np.int16), rate, format="FLAC", subtype="PCM_16")
    return buffer.getvalue()


@pytest.mark.slow
def test_a_job_holds_one_channel_at_a_time_and_all_channels_count_against_its_limit(tiny_model: Path) -> None:
    """An 8-channel, 10-minute FLAC of silence (a few KiB) is 80 minutes of audio with all its
    channels counted: a server that takes at most an hour refuses it. A 4-channel one is
    analysed channel by channel, each decoded into one array sized from the header: held
    together (as before) its channels were 4 x 38 MB of 16 kHz float32, and twice that while
    they were concatenated."""
    def separate(channels: int) -> pb.SubmitJobRequest:
        bomb = silent_flac(8000, channels, 600.0)
        assert len(bomb) < 512 * 1024
        return pb.SubmitJobRequest(
            recordings=[pb.Recording(name="bomb.flac", content=bomb)], channels=pb.CHANNEL_MODE_SEPARATE
        )

    request = separate(4)  # 40 minutes with its channels counted: taken by the same server
    with serving(tiny_model, env={"EMOTION_MAX_JOB_SECONDS": "3600"}) as (port, proc, _), grpc.insecure_channel(
        f"127.0.0.1:{port}"
    ) as channel:
        stub = emotion_pb2_grpc.EmotionServiceStub(channel)
        with pytest.raises(grpc.RpcError) as refused:
            stub.SubmitJob(separate(8), timeout=30)
        assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "80 min" in refused.value.details() and "max_job_seconds" in refused.value.details()
        # A first small job loads the voice-activity model (once per server, not per job).
        warm_up = pb.SubmitJobRequest(recordings=[pb.Recording(content=silent_flac(8000, 2, 2.0))])
        *_, warm = stub.WatchJob(pb.WatchJobRequest(job_id=stub.SubmitJob(warm_up, timeout=30).job_id), timeout=60)
        assert warm.state == pb.JOB_STATE_SUCCEEDED, warm.error
        before = reset_peak(proc.pid)
        job = stub.SubmitJob(request, timeout=30)
        *_, last = stub.WatchJob(pb.WatchJobRequest(job_id=job.job_id), timeout=240)
        grown = peak_rss_mb(proc.pid) - before
        assert last.state == pb.JOB_STATE_SUCCEEDED, last.error
        assert last.audio_s == pytest.approx(600.0, abs=1)
    print(f"\njob bomb: peak RSS grew {grown:.1f} MiB over {before:.0f} MiB")
    assert grown < 100, f"analysing the 4-channel job took {grown:.0f} MiB"
