"""Which 25 ms frames of a clip hold voice: an energy detector relative to the clip's own loud frames.

One definition for training and serving. The log-mel front end (:mod:`emotion_service.architectures`)
uses it to trim silence and to normalise level over voiced frames only. Relative, not absolute,
thresholds keep it level-invariant: a clip 30 dB quieter is the same clip. Only digital silence
(below ``floor_dbfs``) is unvoiced by level alone.

Whether a recording, stream window or job utterance holds speech at all is not decided here but by
:mod:`emotion_service.speech_presence` (Silero VAD): energy cannot tell speech from noise or music.
:class:`StreamVoicing` is the energy rule the server used for stream windows before; the alert
calibration's replay of streams still uses it.
"""

from __future__ import annotations

import numpy as np
import torch

FRAME = 400  # 25 ms at 16 kHz, the filterbank's frame
HOP = 160  # 10 ms
# The frame level that stands for a clip's speech: loud enough to skip pauses, robust to a click.
REFERENCE_QUANTILE = 0.9
# The frame level that stands for a clip's noise floor: its quietest frames, pauses if it has any.
NOISE_QUANTILE = 0.1


def frame_levels_db(frames: torch.Tensor) -> torch.Tensor:
    """Mean power of each DC-free frame in dB relative to full scale (a full-scale square wave is 0 dB).

    :param frames: (..., frames, samples) with samples in [-1, 1].
    """
    centred = frames - frames.mean(dim=-1, keepdim=True)
    return 10 * torch.log10(centred.pow(2).mean(dim=-1) + 1e-20)


def voiced_frames(
    levels_db: torch.Tensor,
    valid: torch.Tensor,
    threshold_db: float,
    floor_dbfs: float,
    noise_margin_db: float | None = None,
) -> torch.Tensor:
    """Frames within ``threshold_db`` of the clip's reference level and above ``floor_dbfs``.

    :param levels_db: (clips, frames) from :func:`frame_levels_db`.
    :param valid: (clips, frames) bool, False past each clip's end.
    :param noise_margin_db: frames must also be this many dB above the clip's noise floor (its
        ``NOISE_QUANTILE`` frame level). In a noisy recording the pauses sit only 10-20 dB below
        the speech, well within ``threshold_db``, so without it noise-only frames count as voice.
    :returns: (clips, frames) bool.
    """
    voiced = torch.zeros_like(valid)
    for row in range(levels_db.shape[0]):
        # Digital silence (padding, muted input) would drag the reference down: it does not count.
        levels = levels_db[row][valid[row] & (levels_db[row] > floor_dbfs)]
        if levels.numel() == 0:
            continue
        reference = torch.quantile(levels.float(), REFERENCE_QUANTILE)
        threshold = reference - threshold_db
        if noise_margin_db is not None:
            # Capped just under the reference, so at a very low SNR the loudest frames still count
            # as voice rather than none (which would keep every frame, noise-only pauses too).
            noise = torch.quantile(levels.float(), NOISE_QUANTILE) + noise_margin_db
            threshold = torch.minimum(torch.maximum(threshold, noise), reference - 1e-3)
        voiced[row] = valid[row] & (levels_db[row] > threshold) & (levels_db[row] > floor_dbfs)
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
    """A stream's speech level and noise floor so far, and each window's voiced fraction against them.

    The level is the loudest window reference seen: a pause between sentences is silence
    relative to the speaker, whatever the recording's gain. The noise floor is the quietest
    window's ``NOISE_QUANTILE`` frame level: on a noisy line a pause is noise, loud enough to
    pass the level test, but no louder than the floor. Until a stream has had sound above
    ``floor_dbfs``, only digital silence is silent.
    """

    def __init__(self, threshold_db: float, floor_dbfs: float = -100.0, noise_margin_db: float | None = None) -> None:
        self.threshold_db = threshold_db
        self.floor_dbfs = floor_dbfs
        self.noise_margin_db = noise_margin_db
        self.level_db: float | None = None
        self.noise_db: float | None = None

    def voiced_fraction(self, waveform: np.ndarray) -> float:
        """Share of ``waveform``'s frames within ``threshold_db`` of the stream's speech level
        (and, with ``noise_margin_db``, that many dB above its noise floor).

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
        threshold = level - self.threshold_db
        sound = levels[levels > self.floor_dbfs]
        if self.noise_margin_db is not None and sound.numel():
            noise = float(torch.quantile(sound, NOISE_QUANTILE))
            self.noise_db = noise if self.noise_db is None else min(self.noise_db, noise)
            # Capped under the speech level: a stream that is all steady sound keeps its loudest frames.
            threshold = min(max(threshold, self.noise_db + self.noise_margin_db), level - 1e-3)
        voiced = (levels > threshold) & (levels > self.floor_dbfs)
        return float(voiced.float().mean())
