"""The one audio decoder: bytes in, mono float32 at the model's rate out.

Encoded files (WAV, FLAC, OGG/Vorbis, MP3) are read by libsndfile through
soundfile; raw PCM (s16le, f32le) by numpy. Resampling uses soxr. Every
failure is an :class:`AudioError` whose message tells a person what to fix.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Literal

import numpy as np
import soundfile as sf
import soxr

PcmEncoding = Literal["s16le", "f32le"]
BYTES_PER_SAMPLE: dict[str, int] = {"s16le": 2, "f32le": 4}
MIN_SAMPLE_RATE = 1_000
MAX_SAMPLE_RATE = 768_000
MAX_CHANNELS = 32


class AudioError(ValueError):
    """The audio cannot be used; the message says why and what to do."""


@dataclass(frozen=True)
class AudioLimits:
    """Bounds on one recording."""

    max_bytes: int
    max_seconds: float
    min_seconds: float = 0.0


@dataclass(frozen=True)
class Decoded:
    """A decoded recording: mono float32 at ``sample_rate``."""

    waveform: np.ndarray
    sample_rate: int
    duration_s: float


def check_format(encoding: str, sample_rate: int, channels: int) -> None:
    """Raises :class:`AudioError` for a PCM format the decoder cannot read."""
    if encoding not in BYTES_PER_SAMPLE:
        raise AudioError(f"unsupported PCM encoding {encoding!r}: use s16le or f32le")
    if not MIN_SAMPLE_RATE <= sample_rate <= MAX_SAMPLE_RATE:
        raise AudioError(
            f"sample rate {sample_rate} Hz is out of range: give the real rate of the PCM data "
            f"({MIN_SAMPLE_RATE}..{MAX_SAMPLE_RATE} Hz, e.g. 16000)"
        )
    if not 1 <= channels <= MAX_CHANNELS:
        raise AudioError(f"channel count {channels} is out of range (1..{MAX_CHANNELS})")


def pcm_to_mono(data: bytes, encoding: str, channels: int) -> np.ndarray:
    """Interleaved PCM bytes (a whole number of frames) to mono float32."""
    dtype = np.dtype("<i2") if encoding == "s16le" else np.dtype("<f4")
    samples = np.frombuffer(data, dtype=dtype)
    if encoding == "s16le":
        samples = samples.astype(np.float32) / 32768.0
    elif not np.isfinite(samples).all():
        raise AudioError("f32le audio contains NaN or infinite samples")
    return _to_mono(samples.reshape(-1, channels))


def resample(waveform: np.ndarray, source_rate: int, target_rate: int) -> np.ndarray:
    """Resamples mono float32 audio with soxr (no-op at equal rates)."""
    if source_rate == target_rate:
        return waveform
    return soxr.resample(waveform, source_rate, target_rate, quality="HQ").astype(np.float32, copy=False)


def decode_content(content: bytes, target_rate: int, limits: AudioLimits) -> Decoded:
    """Decodes an encoded file (WAV, FLAC, OGG/Vorbis, MP3)."""
    _check_size(len(content), limits)
    try:
        info = sf.info(io.BytesIO(content))
    except (sf.LibsndfileError, RuntimeError, TypeError, ValueError) as exc:
        raise AudioError(
            f"cannot decode audio ({_reason(exc)}): send a WAV, FLAC, OGG/Vorbis or MP3 file, "
            "or raw PCM with its format"
        ) from None
    if info.samplerate <= 0 or info.channels <= 0:
        raise AudioError(f"audio header is invalid (sample rate {info.samplerate}, {info.channels} channels)")
    if info.frames > 0 and info.frames / info.samplerate > limits.max_seconds:
        raise AudioError(_too_long(info.frames / info.samplerate, limits))
    try:
        samples, rate = sf.read(io.BytesIO(content), dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, TypeError, ValueError) as exc:
        raise AudioError(f"audio is corrupt ({_reason(exc)}): the file could not be read to its end") from None
    if not np.isfinite(samples).all():
        raise AudioError("audio contains NaN or infinite samples")
    return _finish(_to_mono(samples), rate, target_rate, limits)


def decode_raw(
    data: bytes, encoding: str, sample_rate: int, channels: int, target_rate: int, limits: AudioLimits
) -> Decoded:
    """Decodes raw interleaved PCM."""
    _check_size(len(data), limits)
    check_format(encoding, sample_rate, channels)
    frame_bytes = BYTES_PER_SAMPLE[encoding] * channels
    if len(data) % frame_bytes:
        raise AudioError(
            f"raw {encoding} audio with {channels} channel(s) must be a multiple of {frame_bytes} bytes, "
            f"got {len(data)}: check the encoding and channel count"
        )
    return _finish(pcm_to_mono(data, encoding, channels), sample_rate, target_rate, limits)


class PcmStreamDecoder:
    """Decodes a raw PCM stream chunk by chunk, resampling as it goes.

    A chunk may end mid-frame; the remainder waits for the next chunk.
    """

    def __init__(self, encoding: str, sample_rate: int, channels: int, target_rate: int) -> None:
        check_format(encoding, sample_rate, channels)
        self.encoding = encoding
        self.channels = channels
        self.source_rate = sample_rate
        self._frame_bytes = BYTES_PER_SAMPLE[encoding] * channels
        self._pending = b""
        self.frames_in = 0
        self._resampler = (
            None if sample_rate == target_rate else soxr.ResampleStream(sample_rate, target_rate, 1, dtype="float32")
        )

    @property
    def seconds_in(self) -> float:
        """Seconds of audio received so far."""
        return self.frames_in / self.source_rate

    def feed(self, chunk: bytes) -> np.ndarray:
        """Adds a chunk; returns the mono samples it completes, at the target rate."""
        data = self._pending + chunk
        usable = len(data) - len(data) % self._frame_bytes
        self._pending = data[usable:]
        mono = pcm_to_mono(data[:usable], self.encoding, self.channels)
        self.frames_in += len(mono)
        return self._resample(mono, last=False)

    def finish(self) -> np.ndarray:
        """Flushes the resampler; raises if a partial frame is left over."""
        if self._pending:
            raise AudioError(
                f"stream ended with {len(self._pending)} stray byte(s): raw {self.encoding} audio with "
                f"{self.channels} channel(s) comes in frames of {self._frame_bytes} bytes"
            )
        return self._resample(np.zeros(0, np.float32), last=True)

    def _resample(self, mono: np.ndarray, last: bool) -> np.ndarray:
        if self._resampler is None:
            return mono
        return self._resampler.resample_chunk(mono, last=last)


def _to_mono(frames: np.ndarray) -> np.ndarray:
    mono = frames[:, 0] if frames.shape[1] == 1 else frames.mean(axis=1)
    return np.ascontiguousarray(mono, dtype=np.float32)


def _finish(mono: np.ndarray, rate: int, target_rate: int, limits: AudioLimits) -> Decoded:
    duration = len(mono) / rate
    if len(mono) == 0:
        raise AudioError("audio is empty: it holds no samples")
    if duration > limits.max_seconds:
        raise AudioError(_too_long(duration, limits))
    if duration < limits.min_seconds:
        raise AudioError(f"audio is {duration:.3f} s long; at least {limits.min_seconds:g} s is needed to classify it")
    return Decoded(resample(mono, rate, target_rate), target_rate, duration)


def _check_size(size: int, limits: AudioLimits) -> None:
    if size == 0:
        raise AudioError("audio is empty: the request carried no bytes")
    if size > limits.max_bytes:
        raise AudioError(
            f"audio is {size} bytes; Classify accepts at most {limits.max_bytes} (max_audio_bytes): "
            "use StreamClassify for long recordings"
        )


def _too_long(duration: float, limits: AudioLimits) -> str:
    return (
        f"audio is {duration:.1f} s long; Classify accepts at most {limits.max_seconds:g} s "
        "(max_audio_seconds): use StreamClassify for long recordings"
    )


def _reason(exc: Exception) -> str:
    return str(exc).strip().rstrip(".") or type(exc).__name__
