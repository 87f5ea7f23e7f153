"""Voice-activity segmentation of whole recordings into utterances, per speaker channel.

The detector is Silero VAD (the ``silero-vad`` wheel ships its ONNX model: MIT licence, no
download), run by ONNX Runtime on one thread so that it never competes with the model's
torch threads. An utterance is a stretch of speech between pauses of at least
``min_silence_s``; speech running longer than ``max_utterance_s`` without such a pause is
cut there.

With one party per channel (``--channels separate``), each channel is segmented on its own.
Two cases need care:

- **Cross-talk** (both parties speak at once): each channel keeps its own utterance; both
  are scored, each on its own channel's audio.
- **Bleed** (one party's voice leaking into the other's microphone, quieter): the VAD hears
  speech on both channels. An utterance whose channel is more than ``bleed_margin_db``
  quieter over its span than the loudest channel is taken as bleed and dropped: the louder
  channel holds that speech. The levels come from each channel's power per 10 ms
  (:func:`emotion_service.audio.channel_power`), so the channels' audio is never held together.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import soxr
import torch

from emotion_service.speech_presence import level_gain

# Silero VAD runs at 16 kHz (or 8 kHz); other rates are resampled for it only.
VAD_RATE = 16_000


@dataclass(frozen=True)
class Segment:
    """An utterance: ``[start, end)`` in samples of the recording at its sample rate, on ``channel``;
    ``speaker`` once diarized ("S1", ...; see :mod:`emotion_service.diarization`), else empty."""

    channel: int
    start: int
    end: int
    speaker: str = ""


@dataclass(frozen=True)
class SegmenterSettings:
    """How recordings are cut into utterances."""

    min_silence_s: float = 0.4
    max_utterance_s: float = 30.0
    min_speech_s: float = 0.25
    # Silero's speech probability above which a 32 ms frame is speech.
    threshold: float = 0.5
    # Scale each track so its loud frames sit at -20 dBFS before the detector hears it, as the speech
    # detector of Classify and stream windows does (emotion_service.speech_presence): quiet but real
    # speech (a far or soft-spoken party, a low recording level) is found as loud speech is.
    normalise_level: bool = True
    # Speech kept on each side of a detected utterance.
    pad_s: float = 0.05
    bleed_margin_db: float = 10.0


class Segmenter:
    """Finds utterances in mono tracks with Silero VAD; one instance is safe to share between threads."""

    def __init__(self, settings: SegmenterSettings | None = None) -> None:
        self.settings = settings or SegmenterSettings()
        # silero_vad sets torch's global thread count to 1 when it is imported: keep the server's.
        threads = torch.get_num_threads()
        import silero_vad

        torch.set_num_threads(threads)
        self._get_speech_timestamps = silero_vad.get_speech_timestamps
        self._model = silero_vad.load_silero_vad(onnx=True)
        # The model keeps recurrent state between calls: one recording at a time.
        self._lock = threading.Lock()

    def segments(
        self,
        waveform: np.ndarray,
        sample_rate: int,
        channel: int = 0,
        min_silence_s: float | None = None,
        threshold: float | None = None,
        progress: Callable[[float], None] | None = None,
    ) -> list[Segment]:
        """The utterances of one mono track, in order; ``min_silence_s`` and ``threshold`` override the
        settings (diarization cuts at shorter pauses, where one party may hand over to the other, and
        listens more keenly: speech missed there is missed for both parties). ``progress`` is called
        with the share of the track listened to so far (0 to 1), as the detector goes."""
        s = self.settings
        audio = waveform if sample_rate == VAD_RATE else soxr.resample(waveform, sample_rate, VAD_RATE)
        # Each 32 ms frame is levelled as Silero takes it: a levelled copy of an hour-long track would
        # be 220 MB more held while it is segmented.
        gain = level_gain(np.asarray(audio, dtype=np.float32)) if s.normalise_level else 1.0
        with self._lock:
            stamps = self._get_speech_timestamps(
                torch.from_numpy(np.ascontiguousarray(audio, dtype=np.float32)),
                self._model if gain == 1.0 else _Levelled(self._model, gain),
                threshold=s.threshold if threshold is None else threshold,
                sampling_rate=VAD_RATE,
                min_speech_duration_ms=int(s.min_speech_s * 1000),
                min_silence_duration_ms=int((s.min_silence_s if min_silence_s is None else min_silence_s) * 1000),
                max_speech_duration_s=s.max_utterance_s,
                speech_pad_ms=int(s.pad_s * 1000),
                progress_tracking_callback=None if progress is None else lambda percent: progress(percent / 100),
            )
        scale = sample_rate / VAD_RATE
        return [
            Segment(channel, round(stamp["start"] * scale), min(len(waveform), round(stamp["end"] * scale)))
            for stamp in stamps
        ]

    def is_bleed(self, segment: Segment, power: np.ndarray, frame_rate: float, sample_rate: int) -> bool:
        """Whether ``segment`` is another party's voice leaking into its channel: over its span its
        channel is more than ``bleed_margin_db`` quieter than the loudest channel.

        ``power``: each channel's mean power per frame (:func:`emotion_service.audio.channel_power`),
        ``frame_rate`` frames per second; the recording's own audio is not needed.
        """
        first = int(segment.start * frame_rate / sample_rate)
        last = max(first + 1, int(np.ceil(segment.end * frame_rate / sample_rate)))
        levels = [_power_db(float(span.mean(dtype=np.float64)) if len(span) else 0.0) for span in power[:, first:last]]
        return levels[segment.channel] < max(levels) - self.settings.bleed_margin_db


class _Levelled:
    """Silero's model hearing every frame it is given multiplied by ``gain``."""

    def __init__(self, model: Any, gain: float) -> None:
        self.model, self.gain = model, gain

    def __call__(self, chunk: torch.Tensor, sample_rate: int) -> torch.Tensor:
        return self.model(chunk * self.gain, sample_rate)

    def reset_states(self) -> None:
        self.model.reset_states()

    def __getattr__(self, name: str) -> Any:  # anything else Silero asks of its model
        return getattr(self.model, name)


def _power_db(mean_square: float) -> float:
    """RMS level in dBFS of a mean power (-120 for silence)."""
    return 10 * np.log10(max(mean_square, 1e-12))
