"""Which 25 ms frames of a clip hold voice: an energy detector relative to the clip's own loud frames.

One definition for training and serving. The log-mel front end (:mod:`emotion_service.architectures`)
uses it to trim silence and to normalise level over voiced frames only, and the service uses it to
say how much of a stream window is voiced. Relative, not absolute, thresholds keep it
level-invariant: a clip 30 dB quieter is the same clip. Only digital silence (below
``floor_dbfs``) is unvoiced by level alone.
"""

from __future__ import annotations

import numpy as np
import torch

FRAME = 400  # 25 ms at 16 kHz, the filterbank's frame
HOP = 160  # 10 ms
# The frame level that stands for a clip's speech: loud enough to skip pauses, robust to a click.
REFERENCE_QUANTILE = 0.9


def frame_levels_db(frames: torch.Tensor) -> torch.Tensor:
    """Mean power of each DC-free frame in dB relative to full scale (a full-scale square wave is 0 dB).

    :param frames: (..., frames, samples) with samples in [-1, 1].
    """
    centred = frames - frames.mean(dim=-1, keepdim=True)
    return 10 * torch.log10(centred.pow(2).mean(dim=-1) + 1e-20)


def voiced_frames(levels_db: torch.Tensor, valid: torch.Tensor, threshold_db: float, floor_dbfs: float) -> torch.Tensor:
    """Frames within ``threshold_db`` of the clip's reference level and above ``floor_dbfs``.

    :param levels_db: (clips, frames) from :func:`frame_levels_db`.
    :param valid: (clips, frames) bool, False past each clip's end.
    :returns: (clips, frames) bool.
    """
    voiced = torch.zeros_like(valid)
    for row in range(levels_db.shape[0]):
        # Digital silence (padding, muted input) would drag the reference down: it does not count.
        levels = levels_db[row][valid[row] & (levels_db[row] > floor_dbfs)]
        if levels.numel() == 0:
            continue
        reference = torch.quantile(levels.float(), REFERENCE_QUANTILE)
        voiced[row] = valid[row] & (levels_db[row] > reference - threshold_db) & (levels_db[row] > floor_dbfs)
    return voiced


def dilate(mask: torch.Tensor, frames: int) -> torch.Tensor:
    """``mask`` widened by ``frames`` on each side: the margins kept around voiced runs."""
    if frames <= 0:
        return mask
    widened = torch.nn.functional.max_pool1d(mask[:, None].float(), 2 * frames + 1, stride=1, padding=frames)
    return widened[:, 0] > 0


def _window_levels_db(waveform: np.ndarray) -> torch.Tensor | None:
    """Each frame's level (:func:`frame_levels_db`) of a mono window; None when shorter than a frame."""
    if len(waveform) < FRAME:
        return None
    frames = torch.as_tensor(np.ascontiguousarray(waveform, dtype=np.float32)).unfold(-1, FRAME, HOP)
    return frame_levels_db(frames)


class StreamVoicing:
    """A stream's speech level so far, and each window's voiced fraction against it.

    The level is the loudest window reference seen: a pause between sentences is silence
    relative to the speaker, whatever the recording's gain. Until a stream has had sound above
    ``floor_dbfs``, only digital silence is silent.
    """

    def __init__(self, threshold_db: float, floor_dbfs: float = -100.0) -> None:
        self.threshold_db = threshold_db
        self.floor_dbfs = floor_dbfs
        self.level_db: float | None = None

    def voiced_fraction(self, waveform: np.ndarray) -> float:
        """Share of ``waveform``'s frames within ``threshold_db`` of the stream's speech level.

        A window of pure pause has no loud frames of its own, so its frames are compared with the
        level of the stream's speech so far, not with the window's own loudest frames.
        """
        levels = _window_levels_db(waveform)
        if levels is None:
            return 0.0
        reference = float(torch.quantile(levels, REFERENCE_QUANTILE))
        if reference > self.floor_dbfs:
            self.level_db = reference if self.level_db is None else max(self.level_db, reference)
        level = self.level_db if self.level_db is not None else reference
        voiced = (levels > level - self.threshold_db) & (levels > self.floor_dbfs)
        return float(voiced.float().mean())
