"""Cuts a growing stream of samples into fixed, overlapping windows."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Window:
    """One window of a stream; positions are in samples from the stream's start."""

    index: int
    start: int
    waveform: np.ndarray

    @property
    def end(self) -> int:
        return self.start + len(self.waveform)


class Windower:
    """Emits a window each time ``window`` samples are available past the last start + ``hop``.

    Only the samples a future window can still use are kept in memory. At the
    end of the stream, :meth:`flush` emits one more window ending at the last
    sample if at least half a hop went unscored (or, for a stream shorter than
    one window, the whole stream if it holds ``min_samples``).
    """

    def __init__(self, window: int, hop: int, min_samples: int) -> None:
        if not 0 < hop <= window:
            raise ValueError(f"need 0 < hop <= window, got hop={hop}, window={window}")
        self.window = window
        self.hop = hop
        self.min_samples = min_samples
        self._buffer = np.zeros(0, np.float32)
        self._offset = 0  # stream position of _buffer[0]
        self._next = 0  # index of the next window
        self.count = 0  # windows cut so far, the tail's included

    @property
    def total(self) -> int:
        """Samples received so far."""
        return self._offset + len(self._buffer)

    def push(self, samples: np.ndarray) -> list[Window]:
        """Adds samples; returns the windows they complete."""
        self._buffer = np.concatenate([self._buffer, samples.astype(np.float32, copy=False)])
        out = []
        while self._next * self.hop + self.window <= self.total:
            out.append(self._cut(self._next, self._next * self.hop, self.window))
            self._next += 1
        # Keep what the next regular window or a tail window may still need.
        keep_from = max(0, min(self._next * self.hop, self.total - self.window))
        if keep_from > self._offset:
            self._buffer = self._buffer[keep_from - self._offset :]
            self._offset = keep_from
        return out

    def flush(self) -> list[Window]:
        """Returns the tail window, if the stream's end deserves one."""
        if self._next == 0:
            return [self._cut(0, 0, self.total)] if self.total >= self.min_samples else []
        covered = (self._next - 1) * self.hop + self.window
        if self.total - covered >= self.hop / 2:
            return [self._cut(self._next, self.total - self.window, self.window)]
        return []

    def _cut(self, index: int, start: int, length: int) -> Window:
        self.count = max(self.count, index + 1)
        lo = start - self._offset
        return Window(index, start, self._buffer[lo : lo + length].copy())
