"""The decoder: every input format, and every bad input with an actionable message."""

from __future__ import annotations

import io

import numpy as np
import pytest
import soundfile as sf

from emotion_service import audio
from tests.conftest import recordings

LIMITS = audio.AudioLimits(max_bytes=8 * 1024 * 1024, max_seconds=30.0, min_seconds=0.1)


def encode(wave: np.ndarray, rate: int, fmt: str, subtype: str | None = None) -> bytes:
    buffer = io.BytesIO()
    sf.write(buffer, wave, rate, format=fmt, subtype=subtype)
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("fmt", "subtype", "tolerance"),
    [("WAV", "PCM_16", 1e-3), ("WAV", "FLOAT", 1e-6), ("FLAC", None, 1e-3), ("OGG", "VORBIS", 0.2), ("MP3", None, 0.2)],
)
def test_encoded_formats_decode_to_the_same_audio(speech, fmt: str, subtype: str | None, tolerance: float) -> None:
    wave, rate = speech
    decoded = audio.decode_content(encode(wave, rate, fmt, subtype), 16000, LIMITS)
    assert decoded.sample_rate == 16000
    assert decoded.waveform.dtype == np.float32
    # Lossy codecs add encoder delay and padding; lengths agree to within 100 ms.
    assert abs(len(decoded.waveform) - len(wave)) < 1600
    n = min(len(wave), len(decoded.waveform))
    if tolerance < 0.1:
        assert np.abs(decoded.waveform[:n] - wave[:n]).max() < tolerance
    else:
        assert abs(float(np.sqrt(np.mean(decoded.waveform**2))) - float(np.sqrt(np.mean(wave**2)))) < tolerance


def test_resamples_and_mixes_down(speech) -> None:
    wave, rate = speech
    stereo = np.stack([wave, wave], axis=1)
    import soxr

    upsampled = soxr.resample(stereo, rate, 44100)
    decoded = audio.decode_content(encode(upsampled, 44100, "WAV", "FLOAT"), 16000, LIMITS)
    assert abs(len(decoded.waveform) - len(wave)) <= 2
    assert abs(decoded.duration_s - len(wave) / rate) < 1e-3
    corr = np.corrcoef(decoded.waveform[: len(wave) - 2], wave[: len(wave) - 2])[0, 1]
    assert corr > 0.99


def test_stereo_recording_from_the_corpus_is_mixed_to_mono() -> None:
    stereo = next(p for p in recordings() if sf.info(p).channels == 2)
    decoded = audio.decode_content(stereo.read_bytes(), 16000, LIMITS)
    assert decoded.waveform.ndim == 1 and len(decoded.waveform) == sf.info(stereo).frames


@pytest.mark.parametrize(("encoding", "dtype", "scale"), [("s16le", "<i2", 32767), ("f32le", "<f4", 1.0)])
def test_raw_pcm(speech, encoding: str, dtype: str, scale: float) -> None:
    wave, rate = speech
    stereo = np.repeat((wave * scale).astype(dtype)[:, None], 2, axis=1)
    decoded = audio.decode_raw(stereo.tobytes(), encoding, rate, 2, 16000, LIMITS)
    assert np.abs(decoded.waveform - wave).max() < 1e-3


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (b"", "empty"),
        (b"RIFF\x00\x00\x00\x00WAVEfmt garbage", "cannot decode"),
        (bytes(range(256)) * 40, "cannot decode"),
    ],
)
def test_bad_encoded_audio(payload: bytes, message: str) -> None:
    with pytest.raises(audio.AudioError, match=message):
        audio.decode_content(payload, 16000, LIMITS)


@pytest.mark.parametrize(
    ("payload", "reason"),
    [(b"just some text, not audio\n" * 40, "Format not recognised"),
     (b"RIFF\x00\x00\x00\x00WAVEfmt garbage", "Error in WAV/W64/RF64 file")],  # fmt: skip
)
def test_a_file_that_cannot_be_decoded_is_refused_in_words(payload: bytes, reason: str) -> None:
    """The decoder's own reason, for a person: no Python object repr, the same at every door (they
    share the decoder)."""
    with pytest.raises(audio.AudioError) as refused:
        audio.decode_content(payload, 16000, LIMITS)
    message = str(refused.value)
    assert message.startswith(f"cannot decode audio ({reason}") and "send a WAV, FLAC" in message
    assert "object at 0x" not in message and "<_io" not in message
    # A decoder error without libsndfile's own sentence: the object's repr is taken out all the same.
    other = audio._reason(RuntimeError("Error opening <_io.BytesIO object at 0x7f2c1a0>: Format not recognised."))
    assert "object at" not in other and other.endswith("Format not recognised")


def test_truncated_file_is_rejected_or_shorter(speech) -> None:
    wave, rate = speech
    data = encode(wave, rate, "FLAC")
    with pytest.raises(audio.AudioError):
        audio.decode_content(data[:40], 16000, LIMITS)


def test_too_long_and_too_big_and_too_short(speech) -> None:
    wave, rate = speech
    long = np.tile(wave, 12)  # ~45 s > 30 s
    with pytest.raises(audio.AudioError, match="max_audio_seconds"):
        audio.decode_content(encode(long, rate, "FLAC"), 16000, LIMITS)
    with pytest.raises(audio.AudioError, match="max_audio_bytes"):
        audio.decode_content(b"\x00" * (LIMITS.max_bytes + 1), 16000, LIMITS)
    with pytest.raises(audio.AudioError, match="at least 0.1 s"):
        audio.decode_raw(np.zeros(160, "<i2").tobytes(), "s16le", 16000, 1, 16000, LIMITS)


@pytest.mark.parametrize(
    ("data", "encoding", "rate", "channels", "message"),
    [
        (b"\x00" * 3201, "s16le", 16000, 1, "multiple of 2 bytes"),
        (b"\x00" * 6400, "s16le", 16000, 3, "multiple of 6 bytes"),
        (b"\x00" * 6400, "s16le", 0, 1, "sample rate 0 Hz"),
        (b"\x00" * 6400, "s16le", 10_000_000, 1, "out of range"),
        (b"\x00" * 6400, "u8", 16000, 1, "unsupported PCM encoding"),
        (np.full(1600, np.nan, "<f4").tobytes(), "f32le", 16000, 1, "NaN"),
        (np.concatenate([np.zeros(1600), [1e30]]).astype("<f4").tobytes(), "f32le", 16000, 1, "full scale at 1.0"),
    ],
)
def test_bad_raw_audio(data: bytes, encoding: str, rate: int, channels: int, message: str) -> None:
    with pytest.raises(audio.AudioError, match=message):
        audio.decode_raw(data, encoding, rate, channels, 16000, LIMITS)


def test_float_files_far_over_full_scale_are_refused_and_ordinary_overs_kept(tmp_path) -> None:
    import soundfile as sf

    wave = np.sin(np.linspace(0, 2000, 16000)).astype(np.float32)
    for scale, refused in ((1e30, True), (1e6, True), (1.5, False)):
        path = tmp_path / f"{scale:g}.wav"
        sf.write(path, wave * scale, 16000, subtype="FLOAT")
        if refused:
            with pytest.raises(audio.AudioError, match="full scale at 1.0"):
                audio.decode_content(path.read_bytes(), 16000, LIMITS)
        else:
            assert len(audio.decode_content(path.read_bytes(), 16000, LIMITS).waveform) == 16000


def test_stream_decoder_carries_partial_frames_and_resamples(speech) -> None:
    wave, rate = speech
    pcm = (wave * 32767).astype("<i2").tobytes()
    decoder = audio.PcmStreamDecoder("s16le", rate, 1, 8000)
    pieces = [decoder.feed(pcm[i : i + 1001]) for i in range(0, len(pcm), 1001)]
    pieces.append(decoder.finish())
    out = np.concatenate(pieces)
    assert abs(len(out) - len(wave) // 2) <= 2
    assert decoder.seconds_in == pytest.approx(len(wave) / rate)


def test_stream_decoder_rejects_a_stray_byte() -> None:
    decoder = audio.PcmStreamDecoder("s16le", 16000, 1, 16000)
    decoder.feed(b"\x00" * 33)
    with pytest.raises(audio.AudioError, match="stray byte"):
        decoder.finish()
