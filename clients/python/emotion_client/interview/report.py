"""The interview report: stream events grouped by question, and its JSON form.

A window belongs to the question whose span contains the window's midpoint;
an alert belongs to the question of the window it followed in the stream.
Per question (and overall) the dominant label is the one that won the most
windows, ties going to the higher mean score, as the server's own summary does.
"""

from __future__ import annotations

import bisect
import dataclasses
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from emotion_client import API_VERSION, __version__
from emotion_client.interview.segments import Segment
from emotion_client.results import Alert, ModelInfo, StreamEvent, StreamSummary, WindowResult

SCHEMA = "emotion-client/interview-report"
SCHEMA_VERSION = "1.0"
ANOMALY_KIND = "anomaly"


@dataclass(frozen=True)
class EmotionStats:
    """What a set of windows amounts to."""

    window_count: int
    dominant_label: str
    confidence: float
    shares: dict[str, float]
    mean_scores: dict[str, float]


def emotion_stats(windows: Sequence[WindowResult], labels: Sequence[str]) -> EmotionStats:
    """Shares of won windows, mean scores, the dominant label and its mean score (``confidence``)."""
    count = len(windows)
    if not count:
        return EmotionStats(0, "", 0.0, {label: 0.0 for label in labels}, {label: 0.0 for label in labels})
    wins = {label: sum(w.label == label for w in windows) for label in labels}
    means = {label: sum(w.scores.get(label, 0.0) for w in windows) / count for label in labels}
    dominant = max(labels, key=lambda label: (wins[label], means[label]))
    return EmotionStats(count, dominant, means[dominant], {k: v / count for k, v in wins.items()}, means)


@dataclass(frozen=True)
class QuestionReport:
    """One question: its span, the windows that fall in it, and the alerts raised there."""

    id: str
    text: str
    start_s: float
    end_s: float
    window_indices: tuple[int, ...]
    stats: EmotionStats
    alerts: tuple[Alert, ...]

    def to_dict(self) -> dict[str, Any]:
        """The question's object in the report JSON."""
        return {
            "id": self.id,
            "text": self.text,
            "start_s": self.start_s,
            "end_s": self.end_s,
            **_stats_dict(self.stats),
            "window_indices": list(self.window_indices),
            "alert_count": len(self.alerts),
            "anomaly_count": _anomalies(self.alerts),
            "alerts": [a.to_dict() for a in self.alerts],
        }


@dataclass(frozen=True)
class InterviewReport:
    """Everything the JSON and HTML reports show; :meth:`to_dict` is the documented schema."""

    recording: str
    session_id: str
    model: ModelInfo
    window_s: float
    hop_s: float
    segmentation: str
    duration_s: float
    questions: tuple[QuestionReport, ...]
    overall: EmotionStats
    windows: tuple[WindowResult, ...]
    window_questions: tuple[str, ...]
    alerts: tuple[Alert, ...]
    silences: tuple[WindowResult, ...] = ()  # windows answered as silent: shown as silence, never counted
    created_at: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))

    @property
    def labels(self) -> tuple[str, ...]:
        """The model's labels, in its order."""
        return self.model.labels

    def to_dict(self) -> dict[str, Any]:
        """The report as JSON-ready data (schema ``emotion-client/interview-report`` 1.0)."""
        assigned = sum(1 for q in self.window_questions if q)
        return {
            "schema": SCHEMA,
            "schema_version": SCHEMA_VERSION,
            "api_version": API_VERSION,
            "client_version": __version__,
            "created_at": self.created_at,
            "recording": self.recording,
            "session_id": self.session_id,
            "model": {"name": self.model.name, "version": self.model.version},
            "labels": list(self.labels),
            "window_s": self.window_s,
            "hop_s": self.hop_s,
            "segmentation": self.segmentation,
            "overall": {
                "duration_s": self.duration_s,
                "question_count": len(self.questions),
                **_stats_dict(self.overall),
                "unassigned_window_count": len(self.windows) - assigned,
                "alert_count": len(self.alerts),
                "anomaly_count": _anomalies(self.alerts),
            },
            "questions": [q.to_dict() for q in self.questions],
            "timeline": [
                {
                    "index": w.index,
                    "start_s": w.start_s,
                    "end_s": w.end_s,
                    "label": w.label,
                    "confidence": w.confidence,
                    "question_id": question or None,
                }
                for w, question in zip(self.windows, self.window_questions)
            ],
            "silences": [
                {"index": w.index, "start_s": w.start_s, "end_s": w.end_s, "voiced_fraction": w.voiced_fraction}
                for w in self.silences
            ],
        }

    def to_json(self, indent: int | None = 2) -> str:
        """The report as a JSON document."""
        return json.dumps(self.to_dict(), indent=indent, ensure_ascii=False)


def _stats_dict(stats: EmotionStats) -> dict[str, Any]:
    return dataclasses.asdict(stats)


def _anomalies(alerts: Sequence[Alert]) -> int:
    return sum(a.kind == ANOMALY_KIND for a in alerts)


class StreamRecord:
    """Collects a stream's events: windows, alerts with the window they followed, the summary."""

    def __init__(self) -> None:
        self.windows: list[WindowResult] = []
        self.silences: list[WindowResult] = []
        self.alerts: list[tuple[Alert, int | None]] = []
        self.summary: StreamSummary | None = None

    def add(self, event: StreamEvent) -> None:
        """Records one event, in stream order."""
        if isinstance(event, WindowResult):
            if event.no_speech or event.silent:  # no speech: no emotion to report, a pause in the interview
                self.silences.append(event)
            elif not event.skipped:  # a window the busy server did not score says nothing about the answer
                self.windows.append(event)
        elif isinstance(event, Alert):
            self.alerts.append((event, len(self.windows) - 1 if self.windows else None))
        else:
            self.summary = event


def question_of(time_s: float, segments: Sequence[Segment]) -> Segment | None:
    """The segment containing ``time_s`` (segments sorted and non-overlapping), or None."""
    i = bisect.bisect_right([s.start_s for s in segments], time_s) - 1
    return segments[i] if i >= 0 and segments[i].contains(time_s) else None


def build_report(
    record: StreamRecord,
    segments: Sequence[Segment],
    model: ModelInfo,
    *,
    recording: str,
    window_s: float,
    hop_s: float,
    segmentation: str,
) -> InterviewReport:
    """Groups a finished stream's windows and alerts by question."""
    if record.summary is None:
        raise ValueError("the stream ended without a summary: it did not finish")
    window_questions = [_segment_id(question_of(w.mid_s, segments)) for w in record.windows]
    # An alert follows its window in the stream; one raised before any window goes by its time.
    alert_questions = [
        window_questions[i] if i is not None else _segment_id(question_of(a.time_s, segments)) for a, i in record.alerts
    ]
    questions = []
    for segment in segments:
        windows = [w for w, q in zip(record.windows, window_questions) if q == segment.id]
        alerts = [a for (a, _), q in zip(record.alerts, alert_questions) if q == segment.id]
        questions.append(
            QuestionReport(
                id=segment.id,
                text=segment.text,
                start_s=segment.start_s,
                end_s=segment.end_s,
                window_indices=tuple(w.index for w in windows),
                stats=emotion_stats(windows, model.labels),
                alerts=tuple(alerts),
            )
        )
    return InterviewReport(
        recording=recording,
        session_id=record.summary.session_id,
        model=model,
        window_s=window_s,
        hop_s=hop_s,
        segmentation=segmentation,
        duration_s=record.summary.duration_s,
        questions=tuple(questions),
        overall=emotion_stats(record.windows, model.labels),
        windows=tuple(record.windows),
        window_questions=tuple(window_questions),
        alerts=tuple(a for a, _ in record.alerts),
        silences=tuple(record.silences),
    )


def _segment_id(segment: Segment | None) -> str:
    return segment.id if segment else ""
