"""The values that travel through the hooks, and the session records reports and the store read."""

from __future__ import annotations

import re
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
    # The party whose results raised it: the result's ``speaker`` ("S1", ...; empty when results
    # carry none), so that a party's summary counts its own alerts.
    speaker: str = ""


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
    # What the session was: "stream" or "job" (empty: not said; a store names it by its results).
    # A job that found no speech has no result to tell it by.
    kind: str = ""


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


def party_of(result: Result) -> str:
    """Who a result belongs to: its speaker ("S1", diarized or one per channel), else its channel."""
    return result.speaker or f"channel {result.channel}"


def party_order(name: str) -> tuple[str | int, ...]:
    """Sort key of party names: S2 before S10, channel 2 before channel 10."""
    return tuple(int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name))


@dataclass(frozen=True)
class PartySummary:
    """One party of a session that has more than one (a speaker, else a channel).

    Counted over the party's results with speech: ``count`` of them, ``seconds`` they last and that
    time's ``time_share`` of everyone's; ``dominant_label`` (most won, then the highest mean score),
    the ``shares`` each emotion won and the ``mean_scores``; ``alert_count``: alerts raised by its
    results. The same names in the API (``Job.parties``), the reports and the pages.
    """

    party: str
    count: int
    seconds: float
    time_share: float
    dominant_label: str
    shares: dict[str, float]
    mean_scores: dict[str, float]
    alert_count: int


def summarise_parties(results: Sequence[Result], alerts: Sequence[Alert] = ()) -> list[PartySummary]:
    """Each party's summary, in name order (S2 before S10); empty when the results hold fewer than
    two parties.

    An alert is counted for the party it names (``Alert.speaker``); one without (raised before
    alerts carried it) for the party of the result with speech that ends at its time (alerts are
    stamped with the end of the result that raised them), else the one that holds it, else the
    nearest.
    """
    spoken = [r for r in results if not r.no_speech]
    names = sorted({party_of(r) for r in spoken}, key=party_order)
    if len(names) < 2:
        return []
    total = sum(max(0.0, r.end_s - r.start_s) for r in spoken) or 1.0
    raised = dict.fromkeys(names, 0)
    for alert in alerts:
        if alert.speaker in raised:
            raised[alert.speaker] += 1
            continue
        nearest = min(
            spoken,
            key=lambda r: (max(r.start_s - alert.time_s, alert.time_s - r.end_s, 0.0), abs(r.end_s - alert.time_s)),
        )
        raised[party_of(nearest)] += 1
    out = []
    for name in names:
        mine = [r for r in spoken if party_of(r) == name]
        whole = summarise(name, mine, (), {})  # the session's own rule, over this party's results
        seconds = sum(max(0.0, r.end_s - r.start_s) for r in mine)
        out.append(
            PartySummary(
                party=name,
                count=whole.window_count,
                seconds=round(seconds, 3),
                time_share=seconds / total,
                dominant_label=whole.dominant_label,
                shares=whole.shares,
                mean_scores=whole.mean_scores,
                alert_count=raised[name],
            )
        )
    return out
