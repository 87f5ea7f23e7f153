"""Hostile containers: absurd headers, truncated frames and lying lengths in FLAC, Ogg and MP3.

The decoder reads the header first and refuses, naming the limit, before decoding a sample;
then it decodes block by block, counting what it really decoded, so memory stays bounded
whatever a file claims.
"""

from __future__ import annotations

import io
import tracemalloc
from pathlib import Path

import grpc
import numpy as np
import pytest
import soundfile as sf

from emotion_client.v1 import emotion_pb2 as pb
from emotion_client.v1 import emotion_pb2_grpc
from emotion_service import audio
from tests.server_process import peak_rss_mb, rss_mb, serving

LIMITS = audio.AudioLimits(max_bytes=16 * 1024 * 1024, max_seconds=60.0, min_seconds=0.1)


def encode(samples: np.ndarray, rate: int, fmt: str, subtype: str | None = None) -> bytes:
    buffer = io.BytesIO()
    sf.write(buffer, samples, rate, format=fmt, subtype=subtype)
    return buffer.getvalue()


def noise(seconds: float, rate: int, channels: int = 1) -> np.ndarray:
    rng = np.random.default_rng(0)
    shape = (int(seconds * rate), channels) if channels > 1 else (int(seconds * rate),)
    return (rng.standard_normal(shape) * 0.1).astype(np.float32)


def silent_flac(rate: int, channels: int, seconds: float) -> bytes:
    return encode(np.zeros((int(rate * seconds), channels), np.int16), rate, "FLAC", "PCM_16")


def flac_claiming(data: bytes, total_samples: int) -> bytes:
    """The FLAC with STREAMINFO's 36-bit total-sample count replaced (0 means "unknown" in the spec)."""
    patched = bytearray(data)
    assert patched[:4] == b"fLaC"
    field = int.from_bytes(patched[18:26], "big")
    field = (field & ~((1 << 36) - 1)) | total_samples
    patched[18:26] = field.to_bytes(8, "big")
    return bytes(patched)


def _ogg_crc(page: bytes) -> int:
    crc = 0
    for byte in page:
        crc ^= byte << 24
        for _ in range(8):
            crc = ((crc << 1) ^ 0x04C11DB7) if crc & 0x80000000 else crc << 1
            crc &= 0xFFFFFFFF
    return crc


def ogg_claiming_rate(data: bytes, rate: int) -> bytes:
    """The Ogg Vorbis file with its identification header's sample rate replaced (page CRC fixed)."""
    patched = bytearray(data)
    at = patched.index(b"\x01vorbis") + 7 + 4 + 1  # after the packet type, version and channel count
    patched[at : at + 4] = rate.to_bytes(4, "little")
    segments = patched[26]
    length = 27 + segments + sum(patched[27 : 27 + segments])
    page = bytearray(patched[:length])
    page[22:26] = b"\x00\x00\x00\x00"
    patched[22:26] = _ogg_crc(bytes(page)).to_bytes(4, "little")
    return bytes(patched)


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (lambda: silent_flac(655_350, 8, 1.0), "sample rate 655350 Hz is out of range.*max_sample_rate"),
        (
            lambda: encode(np.zeros((16_000, 16), np.int16), 16_000, "WAV"),
            "channel count 16 is out of range.*max_channels",
        ),
        (lambda: ogg_claiming_rate(encode(noise(1.0, 16_000), 16_000, "OGG", "VORBIS"), 10_000_000), "max_sample_rate"),
        (lambda: encode(noise(61.0, 8_000), 8_000, "FLAC"), r"61.0 s long.*max_audio_seconds"),
    ],
    ids=["flac-655khz-8ch", "wav-16ch", "ogg-10mhz", "flac-61s"],
)
def test_absurd_headers_are_refused_before_decoding(payload, message: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(audio.AudioError, match=message):
        audio.decode_content(payload(), 16_000, LIMITS)


def test_a_flac_of_unknown_length_is_counted_as_it_decodes() -> None:
    short = flac_claiming(encode(noise(3.0, 8_000), 8_000, "FLAC"), 0)
    # libsndfile fails the read crossing the end of such a file: up to 4096 frames are lost.
    assert audio.decode_content(short, 16_000, LIMITS).duration_s == pytest.approx(3.0, abs=4096 / 8000)
    long = flac_claiming(encode(noise(70.0, 8_000), 8_000, "FLAC"), 0)
    with pytest.raises(audio.AudioError, match=r"longer than 60 s.*max_audio_seconds"):
        audio.decode_content(long, 16_000, LIMITS)


def test_a_flac_claiming_fewer_samples_yields_no_more_than_it_claims() -> None:
    lying = flac_claiming(encode(noise(70.0, 8_000), 8_000, "FLAC"), 8_000)
    decoded = audio.decode_content(lying, 16_000, LIMITS)
    assert decoded.duration_s <= 70.0 and len(decoded.waveform) <= 60 * 16_000


def test_an_mp3_longer_than_its_header_says_is_cut_at_the_limit() -> None:
    """Two MP3 files back to back: the first one's header speaks for 5 s, the frames carry 75."""
    lying = encode(noise(5.0, 16_000), 16_000, "MP3") + encode(noise(70.0, 16_000), 16_000, "MP3")
    try:
        decoded = audio.decode_content(lying, 16_000, LIMITS)
    except audio.AudioError as exc:
        assert "max_audio_seconds" in str(exc) or "corrupt" in str(exc)
    else:
        assert decoded.duration_s <= 60.0


@pytest.mark.parametrize("fmt", ["FLAC", "OGG", "MP3"])
@pytest.mark.parametrize("keep", [0.03, 0.5, 0.97])
def test_truncated_frames_give_an_audio_error_or_the_audio_before_the_cut(fmt: str, keep: float) -> None:
    subtype = {"OGG": "VORBIS"}.get(fmt)
    data = encode(noise(4.0, 16_000), 16_000, fmt, subtype)
    cut = data[: int(len(data) * keep)]
    try:
        decoded = audio.decode_content(cut, 16_000, LIMITS)
    except audio.AudioError:
        return
    assert decoded.duration_s <= 4.0 + 0.1
    assert np.isfinite(decoded.waveform).all()


def test_decoding_a_large_allowed_file_peaks_at_a_small_multiple_of_its_output() -> None:
    """192 kHz, 8 channels, 59 s: decoded whole it is 362 MB of float32; block by block the peak
    stays within a few times the output (59 s of mono float32 at 16 kHz: 3.8 MB)."""
    data = silent_flac(192_000, 8, 59.0)
    tracemalloc.start()
    try:
        decoded = audio.decode_content(data, 16_000, LIMITS)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    output = decoded.waveform.nbytes
    assert decoded.duration_s == pytest.approx(59.0, abs=0.01)
    assert peak < 8 * output, f"peak {peak / 2**20:.1f} MiB for {output / 2**20:.1f} MiB of output"


@pytest.mark.slow
def test_the_server_refuses_the_655khz_flac_and_decodes_a_192khz_one_in_bounded_memory(tiny_model: Path) -> None:
    """59 s of 8-channel silence: 329 KiB at 655 350 Hz is refused from its header, and the server
    hardly grows; at 192 kHz (within the limits) it is decoded and scored."""
    absurd = silent_flac(655_350, 8, 59.0)
    allowed = silent_flac(192_000, 8, 59.0)
    assert len(absurd) < 400 * 1024 and len(allowed) < 16 * 1024 * 1024
    with serving(tiny_model) as (port, proc, _), grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = emotion_pb2_grpc.EmotionServiceStub(channel)
        before = rss_mb(proc.pid)
        for _ in range(2):
            with pytest.raises(grpc.RpcError) as refused:
                stub.Classify(pb.ClassifyRequest(audio=pb.Audio(content=absurd)), timeout=30)
            assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert "max_sample_rate" in refused.value.details()
        grown = peak_rss_mb(proc.pid) - before
        reply = stub.Classify(pb.ClassifyRequest(audio=pb.Audio(content=allowed)), timeout=60)
        assert reply.duration_s == pytest.approx(59.0, abs=0.01)
    print(f"\nhostile FLAC: peak RSS grew {grown:.1f} MiB over {before:.0f} MiB")
    assert grown < 100, f"refusing the file took {grown:.0f} MiB"
