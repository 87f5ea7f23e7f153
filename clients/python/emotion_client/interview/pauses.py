"""Finds question segments from long pauses: frame energies, a speech threshold, silent runs.

Pure Python; NumPy is used when importable, for speed on long recordings.
"""

from __future__ import annotations

import math
import sys
from array import array
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from emotion_client.audio import AudioFile, PcmFormat
from emotion_client.interview.segments import Segment

FLOOR_DB = -120.0


@dataclass(frozen=True)
class PauseSettings:
    """How pauses are found.

    A frame (``frame_s``) is speech when its level is above ``threshold_db``
    (dBFS); by default the threshold adapts to the recording: at least
    ``margin_db`` above the noise floor (the quietest tenth of frames) and at
    least as high as ``range_db`` below the loud frames (the 95th percentile). A silent run of at least
    ``min_pause_s`` ends a question; speech runs shorter than
    ``min_segment_s`` (a cough, a click) are dropped; each segment is
    widened by ``padding_s`` into its pauses.
    """

    min_pause_s: float = 1.5
    min_segment_s: float = 0.5
    frame_s: float = 0.03
    threshold_db: float | None = None
    margin_db: float = 20.0
    range_db: float = 35.0
    padding_s: float = 0.2


def frame_levels_db(chunks: Iterable[bytes], fmt: PcmFormat, frame_s: float) -> list[float]:
    """The RMS level (dBFS, at least ``FLOOR_DB``) of each ``frame_s`` frame of PCM chunks."""
    frame_bytes = max(1, round(fmt.sample_rate * frame_s)) * fmt.frame_bytes
    levels: list[float] = []
    for block in _rebuffer(chunks, frame_bytes):
        levels.extend(_levels(block, fmt, frame_bytes))
    return levels


def _rebuffer(chunks: Iterable[bytes], size: int) -> Iterator[bytes]:
    """Blocks of a whole number of ``size`` bytes (the last one may hold a partial frame)."""
    pending = bytearray()
    for chunk in chunks:
        pending += chunk
        whole = len(pending) - len(pending) % size
        if whole:
            yield bytes(pending[:whole])
            del pending[:whole]
    if pending:
        yield bytes(pending)


def _levels(block: bytes, fmt: PcmFormat, frame_bytes: int) -> list[float]:
    scale = 32768.0 if fmt.encoding == "s16le" else 1.0
    width = 2 if fmt.encoding == "s16le" else 4
    block = block[: len(block) - len(block) % width]
    try:
        import numpy as np
    except ImportError:
        return _levels_pure(block, fmt, frame_bytes, scale)
    samples = np.frombuffer(block, "<i2" if width == 2 else "<f4").astype(np.float64) / scale
    per_frame = frame_bytes // width
    whole = len(samples) // per_frame * per_frame
    mean_squares = (samples[:whole].reshape(-1, per_frame) ** 2).mean(axis=1).tolist()
    if whole < len(samples):
        mean_squares.append(float(np.mean(samples[whole:] ** 2)))
    return [_db(ms) for ms in mean_squares]


def _levels_pure(block: bytes, fmt: PcmFormat, frame_bytes: int, scale: float) -> list[float]:
    samples = array("h" if fmt.encoding == "s16le" else "f", block)
    if sys.byteorder == "big":
        samples.byteswap()
    per_frame = frame_bytes // samples.itemsize
    levels = []
    for i in range(0, len(samples), per_frame):
        frame = samples[i : i + per_frame]
        levels.append(_db(math.fsum(x * x for x in frame) / len(frame) / scale**2))
    return levels


def _db(mean_square: float) -> float:
    return max(FLOOR_DB, 10 * math.log10(mean_square)) if mean_square > 0 else FLOOR_DB


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def speech_threshold_db(levels: list[float], settings: PauseSettings) -> float:
    """The level above which a frame counts as speech."""
    if settings.threshold_db is not None:
        return settings.threshold_db
    floor, loud = _percentile(levels, 0.10), _percentile(levels, 0.95)
    if loud - floor <= settings.margin_db:
        return floor - 1  # no contrast: one long stretch of sound, no pauses
    return max(floor + settings.margin_db, loud - settings.range_db)


def segments_from_levels(levels: list[float], settings: PauseSettings) -> list[Segment]:
    """Question segments (``q1``, ``q2``, ...) between pauses, from frame levels."""
    if not levels:
        return []
    threshold = speech_threshold_db(levels, settings)
    frame_s = settings.frame_s
    runs: list[list[int]] = []  # [first speech frame, last speech frame]
    for i, level in enumerate(levels):
        if level <= threshold:
            continue
        if runs and (i - runs[-1][1] - 1) * frame_s < settings.min_pause_s:
            runs[-1][1] = i
        else:
            runs.append([i, i])
    total_s = len(levels) * frame_s
    spans = [(a * frame_s, (b + 1) * frame_s) for a, b in runs if (b + 1 - a) * frame_s >= settings.min_segment_s]
    segments = []
    for n, (start, end) in enumerate(spans):
        lo = max(0.0, start - settings.padding_s)
        hi = min(total_s, end + settings.padding_s)
        segments.append(Segment(f"q{n + 1}", round(lo, 3), round(hi, 3)))
    return segments


def find_segments(recording: AudioFile, settings: PauseSettings = PauseSettings()) -> list[Segment]:
    """Question segments of a recording, split at pauses of at least ``settings.min_pause_s``."""
    chunks = recording.chunks(chunk_s=10.0)
    return segments_from_levels(frame_levels_db(chunks, recording.format, settings.frame_s), settings)
