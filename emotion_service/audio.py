"""The one audio decoder, for serving, training and evaluation: mono float32 at the model's rate.

Encoded files (WAV, FLAC, OGG/Vorbis, MP3) are read by libsndfile through soundfile;
raw PCM (s16le, f32le) by numpy. Resampling uses soxr's streaming resampler, block by
block, so that one code path serves a Classify payload, a stream's chunks and a training
file alike: training and evaluation hear exactly what the server hears.

Bounded whatever a file claims: the header is read first and a sample rate, channel
count or length beyond :class:`AudioLimits` is refused before any sample is decoded;
then the file is decoded in blocks of at most :data:`BLOCK_SECONDS`, counting what was
really decoded (a header may lie about its length), so one request's peak memory is the
output (at most ``max_seconds`` of mono float32 at the target rate) plus one block.

Every failure is an :class:`AudioError` whose message tells a person what to fix.
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np
import soundfile as sf
import soxr

BYTES_PER_SAMPLE: dict[str, int] = {"s16le": 2, "f32le": 4}
MIN_SAMPLE_RATE = 1_000
BLOCK_SECONDS = 1.0
UNKNOWN_FRAMES = 2**60
UNKNOWN_LENGTH_BLOCK = 4096
# Files read for training and evaluation are the operator's own: no size limits, but the
# same hard ceilings on rate and channels as the defaults of the service.
DEFAULT_MAX_SAMPLE_RATE = 192_000
DEFAULT_MAX_CHANNELS = 8


class AudioError(ValueError):
    """The audio cannot be used; the message says why and what to do."""


@dataclass(frozen=True)
class AudioLimits:
    """Bounds on one recording; each refusal names the setting that sets it."""

    max_bytes: int
    max_seconds: float
    min_seconds: float = 0.0
    max_sample_rate: int = DEFAULT_MAX_SAMPLE_RATE
    max_channels: int = DEFAULT_MAX_CHANNELS
    # What a refusal for length or size says: the limit's setting and what to do instead.
    seconds_setting: str = "max_audio_seconds"
    bytes_setting: str = "max_audio_bytes"
    advice: str = "Classify accepts at most {limit}: use StreamClassify or a job (emotion-client analyze) for long recordings"


UNLIMITED = AudioLimits(max_bytes=2**62, max_seconds=float("inf"))


@dataclass(frozen=True)
class Decoded:
    """A decoded recording: mono float32 at ``sample_rate``."""

    waveform: np.ndarray
    sample_rate: int
    duration_s: float


def check_format(encoding: str, sample_rate: int, channels: int, limits: AudioLimits | None = None) -> None:
    """Raises :class:`AudioError` for a PCM format the decoder cannot or may not read."""
    limits = limits or UNLIMITED
    if encoding not in BYTES_PER_SAMPLE:
        raise AudioError(f"unsupported PCM encoding {encoding!r}: use s16le or f32le")
    _check_rate_and_channels(sample_rate, channels, limits)


def pcm_to_mono(data: bytes, encoding: str, channels: int) -> np.ndarray:
    """Interleaved PCM bytes (a whole number of frames) to mono float32."""
    dtype = np.dtype("<i2") if encoding == "s16le" else np.dtype("<f4")
    samples = np.frombuffer(data, dtype=dtype)
    if encoding == "s16le":
        samples = samples.astype(np.float32) / 32768.0
    else:
        _check_float_samples(samples, "f32le audio")
    return _to_mono(samples.reshape(-1, channels))


# Float audio is full scale at 1.0. A little over it is a real recording's inter-sample peaks; far
# over it is not audio at all (1e30, a bad scale factor): refused, as NaN is, rather than let one
# absurd burst decide the level that the speech detector and the model normalise by.
MAX_FLOAT_SAMPLE = 8.0


def _check_float_samples(samples: np.ndarray, name: str) -> None:
    if not np.isfinite(samples).all():
        raise AudioError(f"{name} contains NaN or infinite samples")
    peak = float(np.abs(samples).max()) if samples.size else 0.0
    if peak > MAX_FLOAT_SAMPLE:
        raise AudioError(
            f"{name} has samples up to {peak:.3g}: float audio is full scale at 1.0 (at most "
            f"{MAX_FLOAT_SAMPLE:g} accepted); scale it to [-1, 1], or send 16-bit PCM"
        )


def decode_content(content: bytes, target_rate: int, limits: AudioLimits) -> Decoded:
    """Decodes an encoded file (WAV, FLAC, OGG/Vorbis, MP3) held in memory."""
    _check_size(len(content), limits)
    return _decode_encoded(io.BytesIO(content), target_rate, limits)


def decode_file(path: Path, target_rate: int, limits: AudioLimits = UNLIMITED) -> Decoded:
    """Decodes an encoded file on disk (training and evaluation data) exactly as a request is decoded."""
    with open(path, "rb") as handle:
        return _decode_encoded(handle, target_rate, limits, name=str(path))


def decode_channel(source: bytes | Path, target_rate: int, limits: AudioLimits, channel: int) -> Decoded:
    """Decodes one channel of an encoded file (bytes, or a path), the others skipped as it reads.

    For recordings with one party per channel: a job holds one channel at a time, so its memory
    is that of a mono file whatever the channel count; limits apply as to a mono file.
    """
    with _opened(source, limits) as (handle, name):
        return _read_encoded(handle, target_rate, limits, name, channel=channel)


def channel_power(source: bytes | Path, limits: AudioLimits, frame_s: float = 0.01) -> tuple[np.ndarray, float]:
    """Each channel's mean power per ``frame_s`` frame, read block by block: ``(power, frames per second)``.

    ``power`` is ``(channels, frames)`` float32, 400 bytes per second per channel at 10 ms: what
    comparing the channels' levels needs, without holding their audio.
    """
    with _opened(source, limits) as (handle, name):
        blocks = _Blocks(handle, limits, name)
        hop = max(1, round(blocks.rate * frame_s))
        rest = np.zeros((0, blocks.channels), np.float32)
        parts = []
        for frames in blocks:
            data = np.concatenate([rest, frames]) if len(rest) else frames
            usable = len(data) - len(data) % hop
            parts.append(np.square(data[:usable]).reshape(-1, hop, blocks.channels).mean(axis=1))
            rest = data[usable:]
        if len(rest):
            parts.append(np.square(rest).mean(axis=0, keepdims=True))
        power = np.concatenate(parts) if parts else np.zeros((0, blocks.channels), np.float32)
        return np.ascontiguousarray(power.T, dtype=np.float32), blocks.rate / hop


@contextmanager
def _opened(source: bytes | Path, limits: AudioLimits) -> Iterator[tuple[BinaryIO, str]]:
    if isinstance(source, bytes):
        _check_size(len(source), limits)
        yield io.BytesIO(source), "audio"
        return
    with open(source, "rb") as handle:
        yield handle, str(source)


@dataclass(frozen=True)
class Probe:
    """What a file's header says: its length (0 when it does not say), rate and channels."""

    duration_s: float
    sample_rate: int
    channels: int


def probe(source: bytes | Path, limits: AudioLimits) -> Probe:
    """Reads an encoded file's header only, refusing what :class:`AudioLimits` forbids (no sample decoded)."""
    if isinstance(source, bytes):
        _check_size(len(source), limits)
    try:
        info = sf.info(io.BytesIO(source) if isinstance(source, bytes) else str(source))
    except (sf.LibsndfileError, RuntimeError, TypeError, ValueError) as exc:
        raise AudioError(
            f"cannot decode {'audio' if isinstance(source, bytes) else source} ({_reason(exc)}): "
            "send a WAV, FLAC, OGG/Vorbis or MP3 file"
        ) from None
    _check_rate_and_channels(info.samplerate, info.channels, limits)
    known = 0 < info.frames < UNKNOWN_FRAMES
    duration = info.frames / info.samplerate if known else 0.0
    if duration > limits.max_seconds:
        raise AudioError(_too_long(duration, limits))
    return Probe(duration, info.samplerate, info.channels)


def load_audio(path: Path, sample_rate: int = 16000) -> np.ndarray:
    """The waveform of a file on disk: mono float32 at ``sample_rate`` (see :func:`decode_file`)."""
    return decode_file(path, sample_rate).waveform


def decode_raw(
    data: bytes, encoding: str, sample_rate: int, channels: int, target_rate: int, limits: AudioLimits
) -> Decoded:
    """Decodes raw interleaved PCM."""
    _check_size(len(data), limits)
    check_format(encoding, sample_rate, channels, limits)
    frame_bytes = BYTES_PER_SAMPLE[encoding] * channels
    if len(data) % frame_bytes:
        raise AudioError(
            f"raw {encoding} audio with {channels} channel(s) must be a multiple of {frame_bytes} bytes, "
            f"got {len(data)}: check the encoding and channel count"
        )
    collector = _Collector(sample_rate, target_rate, limits)
    collector.add(pcm_to_mono(data, encoding, channels))
    return collector.finish()


class PcmStreamDecoder:
    """Decodes a raw PCM stream chunk by chunk, resampling as it goes.

    A chunk may end mid-frame; the remainder waits for the next chunk.
    """

    def __init__(
        self, encoding: str, sample_rate: int, channels: int, target_rate: int, limits: AudioLimits | None = None
    ) -> None:
        check_format(encoding, sample_rate, channels, limits)
        self.encoding = encoding
        self.channels = channels
        self.source_rate = sample_rate
        self._frame_bytes = BYTES_PER_SAMPLE[encoding] * channels
        self._pending = b""
        self.frames_in = 0
        self._resampler = _resampler(sample_rate, target_rate)

    @property
    def seconds_in(self) -> float:
        """Seconds of audio received so far."""
        return self.frames_in / self.source_rate

    def seconds_of(self, chunk_bytes: int) -> float:
        """Seconds of audio a chunk of ``chunk_bytes`` would complete: known before it is decoded."""
        return (len(self._pending) + chunk_bytes) // self._frame_bytes / self.source_rate

    def feed(self, chunk: bytes) -> np.ndarray:
        """Adds a chunk; returns the mono samples it completes, at the target rate."""
        data = self._pending + chunk
        usable = len(data) - len(data) % self._frame_bytes
        self._pending = data[usable:]
        mono = pcm_to_mono(data[:usable], self.encoding, self.channels)
        self.frames_in += len(mono)
        return _resample_chunk(self._resampler, mono, last=False)

    def finish(self) -> np.ndarray:
        """Flushes the resampler; raises if a partial frame is left over."""
        if self._pending:
            raise AudioError(
                f"stream ended with {len(self._pending)} stray byte(s): raw {self.encoding} audio with "
                f"{self.channels} channel(s) comes in frames of {self._frame_bytes} bytes"
            )
        return _resample_chunk(self._resampler, np.zeros(0, np.float32), last=True)


class _Collector:
    """Mono blocks at the source rate in, one bounded waveform at the target rate out.

    With the length known from the header (``expected_frames``), the output is written into one
    array allocated up front, so the peak is the output plus a block, not twice the output.
    """

    def __init__(self, source_rate: int, target_rate: int, limits: AudioLimits, expected_frames: int = 0) -> None:
        self.source_rate = source_rate
        self.target_rate = target_rate
        self.limits = limits
        self.frames = 0
        self._resampler = _resampler(source_rate, target_rate)
        self._parts: list[np.ndarray] = []
        # A few samples of slack: the resampler's output count per block varies by one or two.
        capacity = int(np.ceil(expected_frames * target_rate / source_rate)) + 64 if expected_frames else 0
        self._buffer = np.empty(capacity, np.float32)
        self._filled = 0

    def add(self, mono: np.ndarray) -> None:
        self.frames += len(mono)
        if self.frames > self.limits.max_seconds * self.source_rate:
            raise AudioError(_too_long(0.0, self.limits, at_least=True))
        self._store(_resample_chunk(self._resampler, mono, last=False))

    def _store(self, samples: np.ndarray) -> None:
        end = self._filled + len(samples)
        if not self._parts and end <= len(self._buffer):
            self._buffer[self._filled : end] = samples
            self._filled = end
            return
        if not self._parts:  # the header's length was short: go on in parts
            self._parts.append(self._buffer[: self._filled])
        self._parts.append(samples)

    def finish(self) -> Decoded:
        self._store(_resample_chunk(self._resampler, np.zeros(0, np.float32), last=True))
        duration = self.frames / self.source_rate
        if self.frames == 0:
            raise AudioError("audio is empty: it holds no samples")
        if duration < self.limits.min_seconds:
            raise AudioError(
                f"audio is {duration:.3f} s long; at least {self.limits.min_seconds:g} s is needed to classify it"
            )
        if not self._parts:
            waveform = self._buffer[: self._filled]
        else:
            waveform = np.concatenate(self._parts) if len(self._parts) > 1 else self._parts[0]
        return Decoded(np.ascontiguousarray(waveform, dtype=np.float32), self.target_rate, duration)


def _decode_encoded(source: BinaryIO, target_rate: int, limits: AudioLimits, name: str = "audio") -> Decoded:
    return _read_encoded(source, target_rate, limits, name)


class _Blocks:
    """An encoded file's frames, ``(frames, channels)`` float32 blocks, checked against the limits.

    The header is checked first (rate, channels, a stated length), then the file is read block
    by block, so no more than a block is decoded at a time whatever the file claims.
    """

    def __init__(self, source: BinaryIO, limits: AudioLimits, name: str) -> None:
        try:
            self.reader = sf.SoundFile(source)
        except (sf.LibsndfileError, RuntimeError, TypeError, ValueError) as exc:
            raise AudioError(
                f"cannot decode {name} ({_reason(exc)}): send a WAV, FLAC, OGG/Vorbis or MP3 file, or raw PCM with its format"
            ) from None
        self.name = name
        self.limits = limits
        self.rate, self.channels = self.reader.samplerate, self.reader.channels
        if self.rate <= 0 or self.channels <= 0:
            raise AudioError(f"audio header is invalid (sample rate {self.rate}, {self.channels} channels)")
        _check_rate_and_channels(self.rate, self.channels, limits)
        # libsndfile reports a length it cannot know (a FLAC whose header says 0) as its largest count.
        self.known = 0 < self.reader.frames < UNKNOWN_FRAMES
        if self.known and self.reader.frames / self.rate > limits.max_seconds:
            raise AudioError(_too_long(self.reader.frames / self.rate, limits))

    def __iter__(self) -> Iterator[np.ndarray]:
        # A file of unknown length is read in small blocks: libsndfile fails the read that crosses
        # its end, so that failure, after audio was decoded, is taken as the end (losing < 4096 frames).
        block = max(1, int(self.rate * BLOCK_SECONDS)) if self.known else UNKNOWN_LENGTH_BLOCK
        read = 0
        with self.reader:
            while True:
                try:
                    frames = self.reader.read(block, dtype="float32", always_2d=True)
                except (sf.LibsndfileError, RuntimeError, TypeError, ValueError) as exc:
                    if not self.known and read > 0:
                        return
                    raise AudioError(
                        f"{self.name} is corrupt ({_reason(exc)}): the file could not be read to its end"
                    ) from None
                if len(frames) == 0:
                    return
                _check_float_samples(frames, self.name)
                read += len(frames)
                if read > self.limits.max_seconds * self.rate:  # a file lying about its length
                    raise AudioError(_too_long(0.0, self.limits, at_least=True))
                yield frames


def _read_encoded(
    source: BinaryIO, target_rate: int, limits: AudioLimits, name: str, channel: int | None = None
) -> Decoded:
    """The file mixed to mono, or only ``channel`` of it."""
    blocks = _Blocks(source, limits, name)
    if channel is not None and not 0 <= channel < blocks.channels:
        raise AudioError(f"{name} has {blocks.channels} channel(s); there is no channel {channel}")
    collector = _Collector(blocks.rate, target_rate, limits, blocks.reader.frames if blocks.known else 0)
    for frames in blocks:
        collector.add(_to_mono(frames) if channel is None else np.ascontiguousarray(frames[:, channel]))
    return collector.finish()


def _check_rate_and_channels(sample_rate: int, channels: int, limits: AudioLimits) -> None:
    if not MIN_SAMPLE_RATE <= sample_rate <= limits.max_sample_rate:
        raise AudioError(
            f"sample rate {sample_rate} Hz is out of range: this server accepts {MIN_SAMPLE_RATE}..{limits.max_sample_rate} Hz "
            "(max_sample_rate); give the real rate of the audio, e.g. 16000"
        )
    if not 1 <= channels <= limits.max_channels:
        raise AudioError(
            f"channel count {channels} is out of range: this server accepts 1..{limits.max_channels} channels (max_channels)"
        )


def _resampler(source_rate: int, target_rate: int) -> soxr.ResampleStream | None:
    if source_rate == target_rate:
        return None
    return soxr.ResampleStream(source_rate, target_rate, 1, dtype="float32", quality="HQ")


def _resample_chunk(resampler: soxr.ResampleStream | None, mono: np.ndarray, last: bool) -> np.ndarray:
    if resampler is None:
        return mono
    return resampler.resample_chunk(mono, last=last)


def _to_mono(frames: np.ndarray) -> np.ndarray:
    mono = frames[:, 0] if frames.shape[1] == 1 else frames.mean(axis=1)
    return np.ascontiguousarray(mono, dtype=np.float32)


def _check_size(size: int, limits: AudioLimits) -> None:
    if size == 0:
        raise AudioError("audio is empty: the request carried no bytes")
    if size > limits.max_bytes:
        raise AudioError(
            f"audio is {size} bytes; "
            + limits.advice.format(limit=f"{limits.max_bytes} bytes ({limits.bytes_setting})")
        )


def _too_long(duration: float, limits: AudioLimits, at_least: bool = False) -> str:
    length = f"longer than {limits.max_seconds:g} s" if at_least else f"{duration:.1f} s long"
    return (
        f"audio is {length}; " + limits.advice.format(limit=f"{limits.max_seconds:g} s ({limits.seconds_setting})")
    )


def _reason(exc: Exception) -> str:
    """The decoder's reason as a person reads it: libsndfile's own sentence ("Format not recognised"),
    never the Python object the bytes were read through (``<_io.BytesIO object at 0x...>``)."""
    text = getattr(exc, "error_string", "") or str(exc)
    text = re.sub(r"<[^<>]* at 0x[0-9a-fA-F]+>:?\s*", "", text)
    return text.strip().rstrip(".") or type(exc).__name__
