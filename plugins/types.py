"""The values that travel through the hooks, and the session records reports and the store read."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Literal

import numpy as np


@dataclass(frozen=True)
class Alert:
    """An event for people: a threshold crossed, an unusual stretch, ...

    Mirrors ``emotion.v1.Alert``.
    """

    kind: str
    message: str
    label: str = ""
    severity: Literal["info", "warning", "critical"] = "warning"
    value: float = 0.0
    time_s: float = 0.0
    source: str = ""
    details: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Result:
    """One classified unit: a whole ``Classify`` recording, one stream window, or one utterance of a job.

    ``index`` orders results within their session; ``channel`` is a job utterance's speaker
    channel (0 for everything else); ``speaker`` is a job utterance's speaker ("S1", "S2", ...:
    found by diarization, or ``S<channel+1>`` with separate channels; empty otherwise).

    ``no_speech`` is True when the speech detector (:mod:`emotion_service.speech_presence`) heard
    no speech in the audio: then ``label`` is empty, ``scores`` is empty, the model was not called
    and no alert may be raised for it; such a result is still passed to ``on_result`` (the store
    keeps it, the UI shows "no speech") but counts as no emotion anywhere. ``voiced_fraction`` is
    the share of its 32 ms frames the detector heard as speech (0 to 1), or None when it was not
    measured (results stored before the detector, or made by hand).

    ``audio`` is the audio the model scored (mono float32 at ``sample_rate``,
    after the ``preprocess`` hooks; for a ``no_speech`` result, the audio the speech detector
    judged, as decoded), or None (e.g. results read back from the store). Plugins must not persist it unless the operator asked: the ``store``
    plugin keeps it only with ``retain_audio`` on, and then encrypted.
    """

    session_id: str
    request_id: str
    kind: Literal["classify", "window", "utterance"]
    label: str
    scores: dict[str, float]
    start_s: float
    end_s: float
    index: int = 0
    model_name: str = ""
    metadata: dict[str, str] = field(default_factory=dict)
    channel: int = 0
    speaker: str = ""
    no_speech: bool = False
    voiced_fraction: float | None = None
    audio: np.ndarray | None = field(default=None, repr=False, compare=False)
    sample_rate: int = field(default=0, repr=False, compare=False)


@dataclass(frozen=True)
class SessionSummary:
    """What a finished stream amounted to.

    ``results`` holds every result in order, those without speech (``no_speech``) included;
    ``window_count``, ``dominant_label``, ``shares`` and ``mean_scores`` count only the results
    with speech.
    """

    session_id: str
    window_count: int
    duration_s: float
    dominant_label: str
    shares: dict[str, float]
    mean_scores: dict[str, float]
    results: tuple[Result, ...]
    alerts: tuple[Alert, ...]
    metadata: dict[str, str] = field(default_factory=dict)
    model_name: str = ""
    # How the session ended: "completed" (the client closed it), "cancelled" (the client went
    # away), or "aborted: <STATUS>" (the server ended it with an error status).
    end_reason: str = "completed"


@dataclass(frozen=True)
class JobSummary:
    """A job that ended: how, and the utterances it found (results of kind ``"utterance"``)."""

    job_id: str
    session_id: str
    # "succeeded", "failed" or "cancelled".
    state: str
    recordings: tuple[str, ...]
    audio_s: float
    utterances: tuple[Result, ...] = ()
    error: str = ""
    metadata: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class SessionRecord:
    """One session: ``kind`` is ``"stream"`` (windows), ``"classify"`` (one answer) or ``"job"`` (utterances)."""

    summary: SessionSummary
    started_at: datetime
    kind: Literal["stream", "classify", "job"]

    @classmethod
    def from_summary(cls, summary: SessionSummary, ended_at: datetime | None = None) -> SessionRecord:
        """A stream that just ended (``ended_at`` defaults to now)."""
        ended_at = ended_at or datetime.now(UTC)
        return cls(summary, ended_at - timedelta(seconds=summary.duration_s), "stream")


def summarise(
    session_id: str,
    results: Sequence[Result],
    alerts: Sequence[Alert],
    metadata: dict[str, str],
    duration_s: float | None = None,
    end_reason: str = "completed",
) -> SessionSummary:
    """Shares of winning windows, mean scores and the dominant label (most wins, then highest mean).

    The same rule as the live stream summary; ``duration_s`` defaults to the
    end of the last result. Results without speech (``no_speech``) stay in ``results`` but claim
    no emotion: they count neither in ``window_count`` nor in the shares and means.
    """
    spoken = [r for r in results if not r.no_speech]
    labels = sorted({label for r in spoken for label in r.scores})
    count = len(spoken)
    wins = {label: sum(r.label == label for r in spoken) for label in labels}
    means = {label: sum(r.scores.get(label, 0.0) for r in spoken) / count for label in labels}
    return SessionSummary(
        session_id=session_id,
        window_count=count,
        duration_s=max((r.end_s for r in results), default=0.0) if duration_s is None else duration_s,
        dominant_label=max(labels, key=lambda label: (wins[label], means[label])) if labels else "",
        shares={label: wins[label] / count for label in labels},
        mean_scores=means,
        results=tuple(results),
        alerts=tuple(alerts),
        metadata=metadata,
        model_name=results[0].model_name if results else "",
        end_reason=end_reason,
    )
