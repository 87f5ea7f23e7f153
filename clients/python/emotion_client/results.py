"""Typed results: plain dataclasses built from the service's protobuf messages.

Scores are ``dict[str, float]`` keyed by label (``"HAP"``, ...). Every result
has ``to_dict()`` for JSON.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Union

from emotion_client.v1 import emotion_pb2 as pb


def _scores(items: Iterable[pb.LabelScore]) -> dict[str, float]:
    return {item.label: float(item.score) for item in items}


class _Serialisable:
    def to_dict(self) -> dict[str, Any]:
        """The fields as JSON-ready values."""
        return dataclasses.asdict(self)  # type: ignore[call-overload]


@dataclass(frozen=True)
class Alert(_Serialisable):
    """An event raised by a server plugin: a threshold crossed, an anomaly, ..."""

    kind: str
    message: str
    label: str = ""
    severity: str = "warning"
    value: float = 0.0
    time_s: float = 0.0
    source: str = ""
    details: dict[str, str] = field(default_factory=dict)
    speaker: str = ""  # the party whose utterances raised it ("S1", ...), empty when they carry none

    @classmethod
    def from_pb(cls, msg: pb.Alert) -> Alert:
        return cls(
            kind=msg.kind,
            message=msg.message,
            label=msg.label,
            severity=msg.severity,
            value=msg.value,
            time_s=msg.time_s,
            source=msg.source,
            details=dict(msg.details),
            speaker=msg.speaker,
        )


@dataclass(frozen=True)
class Classification(_Serialisable):
    """The answer of ``classify``: the winning label and every label's probability (highest first).

    ``no_speech``: the server heard no speech in the recording (noise, a tone, music, near
    silence): ``label`` is empty and ``scores`` too, no emotion is claimed. ``voiced_fraction``:
    the share of the recording's 32 ms frames that hold speech (0 to 1).
    """

    label: str
    scores: dict[str, float]
    duration_s: float
    model_name: str
    model_version: str
    request_id: str
    alerts: tuple[Alert, ...] = ()
    session_id: str = ""  # the session the result is stored under (a new one per call)
    no_speech: bool = False
    voiced_fraction: float = 0.0

    @property
    def confidence(self) -> float:
        """The winning label's probability."""
        return self.scores.get(self.label, 0.0)

    @classmethod
    def from_pb(cls, msg: pb.ClassifyResponse) -> Classification:
        return cls(
            label=msg.label,
            scores=_scores(msg.scores),
            duration_s=msg.duration_s,
            model_name=msg.model_name,
            model_version=msg.model_version,
            request_id=msg.request_id,
            alerts=tuple(Alert.from_pb(a) for a in msg.alerts),
            session_id=msg.session_id,
            no_speech=msg.no_speech,
            voiced_fraction=msg.voiced_fraction,
        )


@dataclass(frozen=True)
class WindowResult(_Serialisable):
    """One classified window of a stream; times in seconds from the stream's start."""

    index: int
    start_s: float
    end_s: float
    label: str
    scores: dict[str, float]
    skipped: bool = False  # the server was too busy to score it: no label, no scores
    voiced_fraction: float = 1.0  # share of the window's 32 ms frames that hold speech
    silent: bool = False  # the same as no_speech, kept for code written before it
    no_speech: bool = False  # no speech heard: no label, no scores (show it as "no speech", not a gap)

    @property
    def confidence(self) -> float:
        """The winning label's probability."""
        return self.scores.get(self.label, 0.0)

    @property
    def mid_s(self) -> float:
        """The window's centre."""
        return (self.start_s + self.end_s) / 2

    @classmethod
    def from_pb(cls, msg: pb.WindowResult) -> WindowResult:
        return cls(
            msg.index,
            msg.start_s,
            msg.end_s,
            msg.label,
            _scores(msg.scores),
            msg.skipped,
            msg.voiced_fraction,
            msg.silent,
            msg.no_speech,
        )


@dataclass(frozen=True)
class StreamSummary(_Serialisable):
    """The last event of a stream: what the whole stream amounted to."""

    session_id: str
    window_count: int
    duration_s: float
    dominant_label: str
    shares: dict[str, float]
    mean_scores: dict[str, float]
    alert_count: int

    @classmethod
    def from_pb(cls, session_id: str, msg: pb.StreamSummary) -> StreamSummary:
        return cls(
            session_id=session_id,
            window_count=msg.window_count,
            duration_s=msg.duration_s,
            dominant_label=msg.dominant_label,
            shares=_scores(msg.shares),
            mean_scores=_scores(msg.mean_scores),
            alert_count=msg.alert_count,
        )


StreamEvent = Union[WindowResult, Alert, StreamSummary]
"""What ``stream`` yields: windows and alerts as they come, then one summary."""


def stream_event(msg: pb.StreamClassifyResponse) -> StreamEvent:
    """The typed event of one ``StreamClassify`` response."""
    kind = msg.WhichOneof("event")
    if kind == "window":
        return WindowResult.from_pb(msg.window)
    if kind == "alert":
        return Alert.from_pb(msg.alert)
    if kind == "summary":
        return StreamSummary.from_pb(msg.session_id, msg.summary)
    raise ValueError(f"stream response carries no known event (got {kind!r}); is the client older than the server?")


@dataclass(frozen=True)
class BatchingInfo(_Serialisable):
    """How the server merges requests onto the model."""

    max_batch_size: int
    max_queue_delay_ms: float
    max_queue_size: int
    pads_mixed_lengths: bool


@dataclass(frozen=True)
class ModelInfo(_Serialisable):
    """The served model and the server's limits and stream defaults."""

    name: str
    version: str
    labels: tuple[str, ...]
    sample_rate: int
    device: str
    dtype: str
    architecture: str
    batching: BatchingInfo
    max_audio_s: float
    default_window_s: float
    default_hop_s: float

    @classmethod
    def from_pb(cls, msg: pb.ModelInfo) -> ModelInfo:
        b = msg.batching
        return cls(
            name=msg.name,
            version=msg.version,
            labels=tuple(msg.labels),
            sample_rate=msg.sample_rate,
            device=msg.device,
            dtype=msg.dtype,
            architecture=msg.architecture,
            batching=BatchingInfo(b.max_batch_size, b.max_queue_delay_ms, b.max_queue_size, b.pads_mixed_lengths),
            max_audio_s=msg.max_audio_s,
            default_window_s=msg.default_window_s,
            default_hop_s=msg.default_hop_s,
        )


class HealthStatus(enum.Enum):
    """The standard gRPC health states (``grpc.health.v1``)."""

    UNKNOWN = 0
    SERVING = 1
    NOT_SERVING = 2
    SERVICE_UNKNOWN = 3

    @property
    def serving(self) -> bool:
        """True when the service takes calls."""
        return self is HealthStatus.SERVING


@dataclass(frozen=True)
class Utterance(_Serialisable):
    """One utterance of a job: a stretch of speech on one channel, its label and scores.

    ``start_s`` / ``end_s`` count from the start of recording ``recording`` (0-based);
    ``channel`` is the speaker channel with ``channels="separate"`` (0 when mixed);
    ``speaker`` who speaks: "S1", "S2", ... with ``diarize=True`` or ``channels="separate"``
    (S1 = channel 0), empty for a mixed recording not diarized. ``no_speech``: the server heard no
    speech in it (``label`` and ``scores`` empty, no emotion claimed); ``voiced_fraction``: the
    share of its 32 ms frames that hold speech.
    """

    recording: int
    channel: int
    start_s: float
    end_s: float
    label: str
    scores: dict[str, float]
    window_count: int = 1
    speaker: str = ""
    no_speech: bool = False
    voiced_fraction: float = 0.0

    @classmethod
    def from_pb(cls, msg: pb.Utterance) -> Utterance:
        return cls(
            recording=msg.recording,
            channel=msg.channel,
            start_s=msg.start_s,
            end_s=msg.end_s,
            label=msg.label,
            scores=_scores(msg.scores),
            window_count=msg.window_count,
            speaker=msg.speaker,
            no_speech=msg.no_speech,
            voiced_fraction=msg.voiced_fraction,
        )


@dataclass(frozen=True)
class PartySummary(_Serialisable):
    """One party of a job (a speaker, else a channel), over its utterances with speech: how many
    (``count``), how long (``seconds``, and ``time_share`` of every party's), the
    ``dominant_label``, the share of utterances each emotion won (``shares``), the ``mean_scores``
    and the alerts raised during them (``alert_count``)."""

    party: str
    count: int
    seconds: float
    time_share: float
    dominant_label: str
    shares: dict[str, float]
    mean_scores: dict[str, float]
    alert_count: int = 0

    @classmethod
    def from_pb(cls, msg: pb.PartySummary) -> PartySummary:
        return cls(
            party=msg.party,
            count=msg.count,
            seconds=msg.seconds,
            time_share=msg.time_share,
            dominant_label=msg.dominant_label,
            shares=_scores(msg.shares),
            mean_scores=_scores(msg.mean_scores),
            alert_count=msg.alert_count,
        )


JOB_STATES = {
    pb.JOB_STATE_QUEUED: "queued",
    pb.JOB_STATE_RUNNING: "running",
    pb.JOB_STATE_SUCCEEDED: "succeeded",
    pb.JOB_STATE_FAILED: "failed",
    pb.JOB_STATE_CANCELLED: "cancelled",
}


@dataclass(frozen=True)
class Job(_Serialisable):
    """A job of whole recordings: ``state`` is queued, running, succeeded, failed or cancelled.

    ``utterances`` are filled once it succeeded (by ``get_job`` and ``wait_job``), and ``parties``
    (each party's summary) when they hold more than one speaker or channel.
    """

    job_id: str
    session_id: str
    state: str
    progress: float
    audio_s: float
    eta_s: float
    error: str
    recordings: tuple[str, ...]
    channels: str
    attempts: int
    created_at: str
    updated_at: str
    utterances: tuple[Utterance, ...] = ()
    metadata: dict[str, str] = field(default_factory=dict)
    parties: tuple[PartySummary, ...] = ()

    @property
    def ended(self) -> bool:
        """Whether it succeeded, failed or was cancelled."""
        return self.state in ("succeeded", "failed", "cancelled")

    @classmethod
    def from_pb(cls, msg: pb.Job) -> Job:
        return cls(
            job_id=msg.job_id,
            session_id=msg.session_id,
            state=JOB_STATES.get(msg.state, "unknown"),
            progress=msg.progress,
            audio_s=msg.audio_s,
            eta_s=msg.eta_s,
            error=msg.error,
            recordings=tuple(msg.recordings),
            channels="separate" if msg.channels == pb.CHANNEL_MODE_SEPARATE else "mix",
            attempts=msg.attempts,
            created_at=msg.created_at.ToJsonString() if msg.HasField("created_at") else "",
            updated_at=msg.updated_at.ToJsonString() if msg.HasField("updated_at") else "",
            utterances=tuple(Utterance.from_pb(u) for u in msg.utterances),
            metadata=dict(msg.metadata),
            parties=tuple(PartySummary.from_pb(p) for p in msg.parties),
        )
