"""The interview report: stream events (or a diarized job's utterances) grouped by question, and its JSON form.

A window belongs to the question whose span contains the window's midpoint;
an alert belongs to the question of the window it followed in the stream.
Per question (and overall) the dominant label is the one that won the most
windows, ties going to the higher mean score, as the server's own summary does.
A diarized interview (one channel, interviewer and candidate) is analysed as a
job: its utterances stand for the windows, each with its ``speaker``, and every
question and the whole interview get a summary per party.
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
from emotion_client.results import Alert, Job, ModelInfo, StreamEvent, StreamSummary, WindowResult

SCHEMA = "emotion-client/interview-report"
SCHEMA_VERSION = "1.1"  # 1.1: ``parties`` (overall and per question) and each timeline entry's ``speaker``
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
class PartyStats:
    """One party (a speaker of a diarized interview) over a set of windows: how long they spoke
    (``seconds``, and ``time_share`` of all parties' time there) and their :class:`EmotionStats`."""

    party: str
    seconds: float
    time_share: float
    stats: EmotionStats
    alert_count: int | None = None  # the server's count over the whole job; None within a question

    def to_dict(self) -> dict[str, Any]:
        """The party's object in the report JSON."""
        return {"party": self.party, "seconds": self.seconds, "time_share": self.time_share,
                **_stats_dict(self.stats), "alert_count": self.alert_count}  # fmt: skip


def party_stats(
    windows: Sequence[WindowResult],
    speakers: Sequence[str],
    labels: Sequence[str],
    alert_counts: dict[str, int] | None = None,
    span: tuple[float, float] = (float("-inf"), float("inf")),
) -> tuple[PartyStats, ...]:
    """Each speaker's :class:`PartyStats` over ``windows`` (``speakers`` runs beside them), in name
    order; ``seconds`` counts only the speech inside ``span`` (a question's), since an utterance
    belongs to the question holding its midpoint but may run past it."""
    seconds = {s: 0.0 for s in sorted(set(speakers), key=_party_key) if s}
    for window, speaker in zip(windows, speakers):
        if speaker:
            seconds[speaker] += max(0.0, min(window.end_s, span[1]) - max(window.start_s, span[0]))
    total = sum(seconds.values()) or 1.0
    return tuple(
        PartyStats(party, spoken, spoken / total, emotion_stats([w for w, s in zip(windows, speakers) if s == party], labels),
                   None if alert_counts is None else alert_counts.get(party, 0))  # fmt: skip
        for party, spoken in seconds.items()
    )


def _party_key(party: str) -> tuple[int, str]:
    """S2 before S10: the server's names in their natural order."""
    digits = party[1:]
    return (int(digits), party) if party[:1] == "S" and digits.isascii() and digits.isdigit() else (1 << 30, party)


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
    parties: tuple[PartyStats, ...] = ()  # diarized: each speaker's summary within the question

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
            "parties": [p.to_dict() for p in self.parties],
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
    window_speakers: tuple[str, ...] = ()  # diarized: the speaker of each window (an utterance), else empty
    parties: tuple[PartyStats, ...] = ()  # diarized: each speaker's summary over the whole interview
    diarized: bool = False  # the windows are a diarized job's utterances, each with its speaker
    created_at: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))

    @property
    def labels(self) -> tuple[str, ...]:
        """The model's labels, in its order."""
        return self.model.labels

    @property
    def speakers(self) -> tuple[str, ...]:
        """The speaker of each window (``""`` for every window of a stream, which is not diarized)."""
        return self.window_speakers or ("",) * len(self.windows)

    @property
    def alert_count(self) -> int | None:
        """The alerts raised: the stream's, or a diarized job's as the server counted them per party
        (None when it did not: a job of one speaker has no per-party summary)."""
        if not self.diarized:
            return len(self.alerts)
        counts = [p.alert_count for p in self.parties]
        return None if not counts or None in counts else sum(c or 0 for c in counts)

    def to_dict(self) -> dict[str, Any]:
        """The report as JSON-ready data (schema ``emotion-client/interview-report`` 1.1)."""
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
                "alert_count": self.alert_count,
                "anomaly_count": _anomalies(self.alerts),
            },
            "parties": [p.to_dict() for p in self.parties],
            "questions": [q.to_dict() for q in self.questions],
            "timeline": [
                {
                    "index": w.index,
                    "start_s": w.start_s,
                    "end_s": w.end_s,
                    "label": w.label,
                    "confidence": w.confidence,
                    "question_id": question or None,
                    "speaker": speaker,
                }
                for w, question, speaker in zip(self.windows, self.window_questions, self.speakers)
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
        self.speakers: list[str] = []  # beside ``windows`` when they are a diarized job's utterances
        self.party_alerts: dict[str, int] | None = None  # a job's alerts per party, as the server counted them
        self.diarized = False  # the windows are a diarized job's utterances

    @classmethod
    def from_job(cls, job: Job) -> StreamRecord:
        """A succeeded diarized job's utterances as the record's windows, each with its speaker.

        The job's alerts are counted per party by the server (``Job.parties``) but not listed in
        the job: the record keeps those counts, and no alert of its own.
        """
        if job.state != "succeeded":
            raise ValueError(f"job {job.job_id} {job.state}: {job.error or 'no utterances to report'}")
        record = cls()
        record.diarized = True
        for i, u in enumerate(job.utterances):
            window = WindowResult(i, u.start_s, u.end_s, u.label, u.scores, voiced_fraction=u.voiced_fraction,
                                  silent=u.no_speech, no_speech=u.no_speech)  # fmt: skip
            if u.no_speech:
                record.silences.append(window)
            else:
                record.windows.append(window)
                record.speakers.append(u.speaker)
        # The server sums up parties only when there are two or more: with one, its count is unknown here.
        record.party_alerts = {p.party: p.alert_count for p in job.parties} if job.parties else None
        end = max((u.end_s for u in job.utterances), default=0.0)
        record.summary = StreamSummary(job.session_id, len(record.windows), max(job.audio_s, end), "", {}, {}, 0)
        return record

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
        mine = [i for i, q in enumerate(window_questions) if q == segment.id]
        windows = [record.windows[i] for i in mine]
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
                parties=party_stats(windows, [record.speakers[i] for i in mine], model.labels,
                                    span=(segment.start_s, segment.end_s)) if record.diarized else (),  # fmt: skip
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
        window_speakers=tuple(record.speakers),
        parties=party_stats(record.windows, record.speakers, model.labels, record.party_alerts) if record.diarized else (),
        diarized=record.diarized,
    )


def _segment_id(segment: Segment | None) -> str:
    return segment.id if segment else ""
