"""Tables of the results store (SQLAlchemy 2 declarative).

The results tables (:class:`Base`) have no column for raw audio. The one table
that can hold audio, ``audio_clips`` (:class:`AudioBase`), has its own metadata:
it is created only when an operator turns audio retention on, and holds only
ciphertext (Fernet tokens of 16-bit PCM), never plaintext audio.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    TypeDecorator,
    false,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class UtcDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes, stored naive (SQLite keeps no zone) and read back as UTC."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: pass a timezone-aware one")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        return None if value is None else value.replace(tzinfo=UTC)


class Base(DeclarativeBase):
    """Metadata of the store's tables."""

    type_annotation_map: dict[Any, Any] = {datetime: UtcDateTime, dict[str, Any]: JSON}


class SessionRow(Base):
    """A stream, or a single Classify call (a session of its own, with a server-made id).

    ``end_reason`` says how it ended: ``completed``, ``cancelled`` (the client went away),
    or ``aborted: <status>`` (the server ended it with an error status).
    """

    __tablename__ = "sessions"

    id: Mapped[str] = mapped_column(String, primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    model_name: Mapped[str] = mapped_column(String)
    started_at: Mapped[datetime] = mapped_column(index=True)
    ended_at: Mapped[datetime | None]
    duration_s: Mapped[float | None] = mapped_column(Float)
    end_reason: Mapped[str | None] = mapped_column(String(64))


class MetadataRow(Base):
    """One key of a session's request metadata (e.g. a candidate or interview id)."""

    __tablename__ = "session_metadata"

    session_id: Mapped[str] = mapped_column(ForeignKey("sessions.id", ondelete="CASCADE"), primary_key=True)
    key: Mapped[str] = mapped_column(String, primary_key=True)
    value: Mapped[str] = mapped_column(String)


class ResultRow(Base):
    """One stream window, Classify answer or job utterance: its span, label and every score.

    ``channel`` is the speaker channel of a job utterance analysed per channel (0 otherwise);
    ``speaker`` its speaker ("S1", ...) when diarized or per channel (empty otherwise).
    ``no_speech`` marks a result the speech detector heard no speech in (empty label and scores:
    no emotion claimed); ``voiced_fraction`` is the share of its frames heard as speech (NULL in
    rows stored before the detector).
    """

    __tablename__ = "results"
    # The unique key makes writes idempotent: a spool replayed twice stores each result once.
    __table_args__ = (
        Index("ix_results_session_position", "session_id", "position"),
        Index("uq_results_session_kind_position", "session_id", "kind", "position", unique=True),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    session_id: Mapped[str] = mapped_column(ForeignKey("sessions.id", ondelete="CASCADE"))
    request_id: Mapped[str] = mapped_column(String)
    kind: Mapped[str] = mapped_column(String(16))
    position: Mapped[int] = mapped_column(Integer)
    start_s: Mapped[float] = mapped_column(Float)
    end_s: Mapped[float] = mapped_column(Float)
    label: Mapped[str] = mapped_column(String)
    scores: Mapped[dict[str, Any]]
    model_name: Mapped[str] = mapped_column(String)
    created_at: Mapped[datetime]
    channel: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    speaker: Mapped[str] = mapped_column(String(16), default="", server_default="")
    no_speech: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    voiced_fraction: Mapped[float | None] = mapped_column(Float)


class AlertRow(Base):
    """One alert raised in a session."""

    __tablename__ = "alerts"
    __table_args__ = (Index("uq_alerts_event_id", "event_id", unique=True),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    # Derived from the alert's session and content (repository.alert_event_id): the key of its idempotent write.
    event_id: Mapped[str | None] = mapped_column(String(64))
    session_id: Mapped[str] = mapped_column(ForeignKey("sessions.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String)
    label: Mapped[str] = mapped_column(String)
    severity: Mapped[str] = mapped_column(String(16))
    message: Mapped[str] = mapped_column(String)
    value: Mapped[float] = mapped_column(Float)
    time_s: Mapped[float] = mapped_column(Float)
    source: Mapped[str] = mapped_column(String)
    details: Mapped[dict[str, Any]]
    created_at: Mapped[datetime]
    # The party whose results raised it ("S1", ...), empty when they carry none.
    speaker: Mapped[str] = mapped_column(String(16), default="", server_default="")


class ErasureRow(Base):
    """A record that a session was erased: when, who asked, and a keyed hash of the session id
    (HMAC-SHA256 under the erasure key: see ``repository.ResultStore.erasure_id``), never the id
    nor any content. It is also the tombstone every write checks: an erased session is not written again.
    """

    __tablename__ = "erasures"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    # The column keeps its first name (session_id) so that older databases need no migration of it.
    session_hash: Mapped[str] = mapped_column("session_id", String, index=True)
    requested_by: Mapped[str] = mapped_column(String)
    rows_deleted: Mapped[int] = mapped_column(Integer)
    erased_at: Mapped[datetime]


class SecretRow(Base):
    """A secret the store made once (the erasure key when ``EMOTION_ERASURE_KEY`` is unset)."""

    __tablename__ = "store_secrets"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(String)


class JobRow(Base):
    """A job: whole recordings to segment and score, queued in the results database.

    ``state`` is queued, running, succeeded, failed or cancelled. A worker holds a running
    job by its ``lease_token`` until ``lease_expires_at`` and renews it as it works; a job whose
    lease expired (its replica died) is taken again by any replica. ``parts`` keeps the
    utterances of every finished (recording, channel) part, so a resumed job skips them.
    """

    __tablename__ = "jobs"
    # Leases are looked up by their expiry on every idle poll (jobs taken over, ends left unhanded):
    # only running jobs and ends being handed on have one, so the index stays small.
    __table_args__ = (
        Index("ix_jobs_state_created", "state", "created_at"),
        Index("ix_jobs_lease_expires", "lease_expires_at"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    session_id: Mapped[str] = mapped_column(String, index=True)
    state: Mapped[str] = mapped_column(String(16))
    channels: Mapped[str] = mapped_column(String(16))
    # Recording names and, for those given by path, the path, and whether to diarize:
    # {"recordings": [{"name", "path"}], "diarize": bool, "num_speakers": int}.
    request: Mapped[dict[str, Any]]
    job_metadata: Mapped[dict[str, Any]]
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    started_at: Mapped[datetime | None]
    lease_token: Mapped[str | None] = mapped_column(String(32))
    lease_owner: Mapped[str | None] = mapped_column(String)
    lease_expires_at: Mapped[datetime | None]
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    total_s: Mapped[float] = mapped_column(Float, default=0.0)  # seconds of audio in the job
    done_s: Mapped[float] = mapped_column(Float, default=0.0)
    # Seconds analysed by the current attempt, and when it started: the pace behind the estimate.
    attempt_done_s: Mapped[float] = mapped_column(Float, default=0.0)
    parts: Mapped[dict[str, Any]]
    utterances: Mapped[dict[str, Any] | None]
    error: Mapped[str | None] = mapped_column(String)
    # The API key's name that submitted it, with token auth (empty without): only it (or admin) sees it.
    owner: Mapped[str | None] = mapped_column(String)
    # An ended job's end as the plugins are to be handed it (its summary and alerts), until they
    # were: a replica that dies between writing the end and handing it on leaves it here, held by
    # the lease it ended under, and another replica hands it on once that lease has run out.
    hand_over: Mapped[dict[str, Any] | None] = mapped_column(JSON(none_as_null=True))


class SessionOwnerRow(Base):
    """Which API key a session id belongs to, with token auth: written when a stream or a job first
    names the id, so another key can neither stream into it nor submit a job under it."""

    __tablename__ = "session_owners"

    session_id: Mapped[str] = mapped_column(String, primary_key=True)
    owner: Mapped[str] = mapped_column(String)
    claimed_at: Mapped[datetime]


class JobInputRow(Base):
    """The bytes of a recording submitted inline, until its job ends (then deleted: no audio is kept)."""

    __tablename__ = "job_inputs"

    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True)
    position: Mapped[int] = mapped_column(Integer, primary_key=True)
    content: Mapped[bytes] = mapped_column(LargeBinary)


class AudioBase(DeclarativeBase):
    """Metadata of the opt-in audio table, apart from :class:`Base` so that a default store never creates it."""

    type_annotation_map: dict[Any, Any] = {datetime: UtcDateTime}


class AudioClipRow(AudioBase):
    """The audio one result was computed from, encrypted: written only with ``retain_audio`` on.

    ``ciphertext`` is a Fernet token of the clip as mono 16-bit little-endian PCM
    at ``sample_rate``; deleting the result (or its session) deletes the clip.
    """

    __tablename__ = "audio_clips"
    __table_args__ = (Index("ix_audio_clips_session_position", "session_id", "position"),)

    result_id: Mapped[int] = mapped_column(
        ForeignKey(ResultRow.__table__.c.id, ondelete="CASCADE"), primary_key=True, autoincrement=False
    )
    session_id: Mapped[str] = mapped_column(String)
    position: Mapped[int] = mapped_column(Integer)
    sample_rate: Mapped[int] = mapped_column(Integer)
    sample_count: Mapped[int] = mapped_column(Integer)
    ciphertext: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime]
