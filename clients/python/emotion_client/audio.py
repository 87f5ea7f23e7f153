"""Audio the client sends: raw PCM formats, files read into PCM, arrays, chunking and pacing.

``StreamClassify`` takes raw PCM only, so files are decoded here: WAV with the
standard library's :mod:`wave`, everything else (FLAC, OGG/Vorbis, MP3, float
WAV) with ``soundfile`` when it is installed (``pip install
'emotion-client[audio]'``). ``Classify`` sends files as they are and needs none
of this. NumPy is never imported here: arrays are handled through their own
methods, so it stays optional.
"""

from __future__ import annotations

import io
import os
import time
import wave
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from emotion_client.errors import AudioInputError
from emotion_client.v1 import emotion_pb2 as pb

Encoding = Literal["s16le", "f32le"]
_WIDTHS: dict[str, int] = {"s16le": 2, "f32le": 4}
_PB_ENCODINGS = {"s16le": pb.PCM_ENCODING_S16LE, "f32le": pb.PCM_ENCODING_F32LE}
AUDIO_EXTRA_HINT = "install the audio extra for FLAC, OGG, MP3 and float WAV: pip install 'emotion-client[audio]'"


@dataclass(frozen=True)
class PcmFormat:
    """The layout of raw PCM bytes: encoding, samples per second and interleaved channels."""

    sample_rate: int
    encoding: Encoding = "s16le"
    channels: int = 1

    def __post_init__(self) -> None:
        if self.encoding not in _WIDTHS:
            raise AudioInputError(f"unknown PCM encoding {self.encoding!r}: use 's16le' or 'f32le'")
        if self.sample_rate <= 0 or self.channels <= 0:
            raise AudioInputError(
                f"sample_rate and channels must be positive, got {self.sample_rate} and {self.channels}"
            )

    @property
    def bytes_per_second(self) -> int:
        """Bytes of one second of audio."""
        return self.sample_rate * self.channels * _WIDTHS[self.encoding]

    @property
    def frame_bytes(self) -> int:
        """Bytes of one frame (one sample of every channel)."""
        return self.channels * _WIDTHS[self.encoding]

    def to_pb(self) -> pb.PcmFormat:
        """The ``emotion.v1.PcmFormat`` message."""
        return pb.PcmFormat(encoding=_PB_ENCODINGS[self.encoding], sample_rate=self.sample_rate, channels=self.channels)


@dataclass(frozen=True)
class RawAudio:
    """Raw PCM bytes with their format."""

    data: bytes
    format: PcmFormat

    @property
    def duration_s(self) -> float:
        """Length in seconds."""
        return len(self.data) / self.format.bytes_per_second


def is_array(value: object) -> bool:
    """True for a NumPy-like array (without importing NumPy)."""
    return hasattr(value, "dtype") and hasattr(value, "astype") and hasattr(value, "ndim")


def array_to_raw(array: Any, sample_rate: int | None) -> RawAudio:
    """Raw PCM of a NumPy array: shape ``(frames,)`` or ``(frames, channels)``, float or int16 samples.

    Floats (expected in [-1, 1]) are sent as f32le, int16 as s16le.
    """
    if sample_rate is None:
        raise AudioInputError("an array carries no sample rate: pass sample_rate=..., e.g. 16000")
    if array.ndim not in (1, 2):
        raise AudioInputError(f"audio arrays must be (frames,) or (frames, channels), got shape {tuple(array.shape)}")
    channels = 1 if array.ndim == 1 else int(array.shape[1])
    kind, size = array.dtype.kind, array.dtype.itemsize
    if kind == "f":
        data = array.astype("<f4", order="C").tobytes()
        encoding: Encoding = "f32le"
    elif kind == "i" and size == 2:
        data = array.astype("<i2", order="C").tobytes()
        encoding = "s16le"
    else:
        raise AudioInputError(f"unsupported sample type {array.dtype}: pass float samples in [-1, 1] or int16")
    return RawAudio(data, PcmFormat(sample_rate, encoding, channels))


def split(data: bytes, chunk_bytes: int) -> Iterator[bytes]:
    """``data`` in pieces of ``chunk_bytes`` (the last may be shorter)."""
    view = memoryview(data)
    for start in range(0, len(data), chunk_bytes):
        yield bytes(view[start : start + chunk_bytes])


def chunk_bytes(fmt: PcmFormat, chunk_s: float) -> int:
    """Bytes in ``chunk_s`` seconds, a whole number of frames (at least one)."""
    return max(1, round(fmt.sample_rate * chunk_s)) * fmt.frame_bytes


class AudioFile:
    """An audio file (a path, or an encoded file's bytes) read as PCM chunks.

    The format is probed at construction, so bad or unsupported files fail
    before any call starts; :meth:`chunks` can be called again to re-read.
    """

    def __init__(self, source: str | os.PathLike[str] | bytes) -> None:
        self.source = source
        self.name = "<bytes>" if isinstance(source, bytes) else str(source)
        if not isinstance(source, bytes) and not Path(source).is_file():
            raise AudioInputError(f"{self.name}: no such file")
        self.format, self._reader = self._probe()

    def _open(self) -> Any:
        return io.BytesIO(self.source) if isinstance(self.source, bytes) else os.fspath(self.source)

    def _probe(self) -> tuple[PcmFormat, str]:
        try:
            with wave.open(self._open(), "rb") as wav:
                if wav.getsampwidth() not in _WAV_TO_S16:
                    raise AudioInputError(f"{self.name}: unsupported WAV sample width {wav.getsampwidth()} bytes")
                return PcmFormat(wav.getframerate(), "s16le", wav.getnchannels()), "wave"
        except (wave.Error, EOFError):
            pass  # not a PCM WAV: soundfile may read it
        sf = _soundfile(self.name)
        try:
            info = sf.info(self._open())
        except Exception as exc:  # soundfile raises several types for undecodable input
            raise AudioInputError(f"{self.name}: cannot decode audio: {exc}") from exc
        return PcmFormat(int(info.samplerate), "f32le", int(info.channels)), "soundfile"

    def chunks(self, chunk_s: float = 0.1) -> Iterator[bytes]:
        """The PCM bytes in pieces of ``chunk_s`` seconds, in :attr:`format`."""
        frames = max(1, round(self.format.sample_rate * chunk_s))
        if self._reader == "wave":
            with wave.open(self._open(), "rb") as wav:
                convert = _WAV_TO_S16[wav.getsampwidth()]
                while data := wav.readframes(frames):
                    yield convert(data)
        else:
            sf = _soundfile(self.name)
            for block in sf.blocks(self._open(), blocksize=frames, dtype="float32", always_2d=True):
                yield block.astype("<f4", order="C").tobytes()


def _soundfile(name: str) -> Any:
    try:
        import soundfile
    except ImportError:
        raise AudioInputError(f"{name}: not a PCM WAV file; {AUDIO_EXTRA_HINT}") from None
    return soundfile


def _u8_to_s16(data: bytes) -> bytes:
    # Unsigned 8-bit: flip the sign bit and use it as the high byte.
    out = bytearray(len(data) * 2)
    out[1::2] = data.translate(_FLIP_SIGN)
    return bytes(out)


def _high_bytes_to_s16(width: int) -> Callable[[bytes], bytes]:
    # 24/32-bit little-endian: the two most significant bytes are the 16-bit sample.
    def convert(data: bytes) -> bytes:
        out = bytearray(len(data) // width * 2)
        out[0::2] = data[width - 2 :: width]
        out[1::2] = data[width - 1 :: width]
        return bytes(out)

    return convert


_FLIP_SIGN = bytes((b ^ 0x80) for b in range(256))
_WAV_TO_S16: dict[int, Callable[[bytes], bytes]] = {1: _u8_to_s16, 2: bytes, 3: _high_bytes_to_s16(3), 4: _high_bytes_to_s16(4)}


class Pacer:
    """Spaces chunks so that audio is sent no faster than it plays (``--realtime``)."""

    def __init__(self, fmt: PcmFormat) -> None:
        self.format = fmt
        self.started: float | None = None
        self.sent_s = 0.0

    def wait_s(self, nbytes: int) -> float:
        """Seconds to wait before sending the next ``nbytes``; records them as sent."""
        now = time.monotonic()
        if self.started is None:
            self.started = now
        wait = max(0.0, self.started + self.sent_s - now)
        self.sent_s += nbytes / self.format.bytes_per_second
        return wait
