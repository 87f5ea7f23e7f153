"""Reads and writes sessions, results, alerts and metadata through SQLAlchemy (SQLite or PostgreSQL)."""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import json
import os
import secrets
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import structlog
from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from sqlalchemy import (
    ColumnElement,
    Connection,
    Engine,
    Float,
    case,
    cast,
    create_engine,
    delete,
    event,
    func,
    inspect,
    select,
    text,
    true,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.orm import Session
from sqlalchemy.schema import CreateIndex

from emotion_service.plugins.store.schema import (
    AlertRow,
    AudioBase,
    AudioClipRow,
    Base,
    ErasureRow,
    JobInputRow,
    JobRow,
    MetadataRow,
    ResultRow,
    SecretRow,
    SessionOwnerRow,
    SessionRow,
)
from emotion_service.plugins.types import Alert, Result, SessionRecord, SessionSummary, summarise

log = structlog.get_logger(__name__)

# One write to the results database as plain JSON data: what the spool keeps while it is away.
Entry = dict[str, Any]

_INSERTS: dict[str, Callable[..., Any]] = {"sqlite": sqlite.insert, "postgresql": postgresql.insert}
# The session kind of each result kind: a job's utterances make a "job" session.
_SESSION_KINDS = {"window": "stream", "classify": "classify", "utterance": "job"}


class StoreError(RuntimeError):
    """The results database cannot be used; the message says which and why."""


# The key of the erasure records' HMAC of a session id: this environment variable, else one
# generated once and kept in the database's ``store_secrets`` table (shared by every replica).
ERASURE_KEY_ENV = "EMOTION_ERASURE_KEY"
_ERASURE_SECRET = "erasure_key"


KEY_HELP = 'make one with: python -c "from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())"'


def audio_cipher(keys: str | bytes) -> MultiFernet:
    """The cipher of retained audio from one Fernet key, or several separated by commas.

    The first key encrypts; every key decrypts (list the new key first to rotate).
    Raises :class:`ValueError` (never quoting the key) when a key is missing or malformed.
    """
    text = keys.decode() if isinstance(keys, bytes) else keys
    parts = [part.strip() for part in text.split(",") if part.strip()]
    if not parts:
        raise ValueError("is empty")
    ciphers = []
    for number, part in enumerate(parts, 1):
        try:
            ciphers.append(Fernet(part))
        except (ValueError, TypeError):
            which = "it" if len(parts) == 1 else f"key {number} of {len(parts)}"
            raise ValueError(f"is not a Fernet key ({which} must be 32 url-safe base64-encoded bytes)") from None
    return MultiFernet(ciphers)


@dataclass(frozen=True)
class AudioClip:
    """Retained audio of one result, decrypted: mono float32 in [-1, 1] at ``sample_rate``."""

    session_id: str
    index: int
    sample_rate: int
    waveform: np.ndarray

    @property
    def pcm(self) -> bytes:
        """The clip as stored (before encryption): 16-bit little-endian PCM."""
        return pcm16(self.waveform)


def pcm16(waveform: np.ndarray) -> bytes:
    """Mono float audio as 16-bit little-endian PCM."""
    return (np.clip(np.asarray(waveform, dtype=np.float32), -1.0, 1.0) * 32767).astype("<i2").tobytes()


def _normalise_url(url: str) -> str:
    """Plain ``postgresql://`` / ``postgres://`` URLs use the psycopg (3) driver the service installs."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def _redact(url: str) -> str:
    """The URL with its password hidden, for logs and messages."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "<unparsable URL>"


class ResultStore:
    """The results store at ``url``: tables are created when missing.

    ``must_exist`` refuses a SQLite file that is not there yet (reports read an
    existing store; they should not create an empty one by a typo).

    ``audio_key`` (a Fernet key, or several separated by commas: see
    :func:`audio_cipher`) turns audio retention on: the ``audio_clips`` table is
    created and the audio of each result that carries some is stored there as
    encrypted 16-bit PCM. Without it, no audio is written and that table is not created.
    """

    def __init__(
        self, url: str, must_exist: bool = False, audio_key: str | bytes | None = None, erasure_key: str | None = None
    ) -> None:
        self._erasure_key: bytes | None = (erasure_key or os.environ.get(ERASURE_KEY_ENV) or "").encode() or None
        try:
            self._cipher = None if audio_key is None else audio_cipher(audio_key)
        except ValueError as exc:
            raise StoreError(f"audio encryption key {exc}; {KEY_HELP}") from None
        url = _normalise_url(url)
        try:
            parsed = make_url(url)
        except ArgumentError as exc:
            raise StoreError(f"invalid database URL {url!r}: {exc}") from None
        backend = parsed.get_backend_name()
        if backend not in _INSERTS:
            raise StoreError(
                f"unsupported database {backend!r} in {_redact(url)}: use sqlite:///FILE or postgresql://..."
            )
        connect_args: dict[str, Any] = {}
        if backend == "sqlite":
            connect_args["timeout"] = 30  # concurrent writers wait for the lock instead of failing
            if parsed.database and parsed.database != ":memory:":
                path = Path(parsed.database)
                if must_exist and not path.exists():
                    raise StoreError(f"no results database at {path} (is the store plugin writing elsewhere?)")
                path.parent.mkdir(parents=True, exist_ok=True)
        self.url = _redact(url)
        self.is_sqlite = backend == "sqlite"
        self.engine: Engine = create_engine(url, pool_pre_ping=True, connect_args=connect_args)
        if backend == "sqlite":
            event.listen(self.engine, "connect", _sqlite_pragmas)
        self._insert = _INSERTS[backend]
        try:
            with self.engine.begin() as conn:
                if backend == "postgresql":
                    # Replicas starting together: one makes or upgrades the tables, the others wait
                    # for its transaction and find the work done.
                    conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _SCHEMA_LOCK})
                Base.metadata.create_all(conn)
                _upgrade(conn)
            self._hash_old_erasure_records()
            if self._cipher is not None:
                AudioBase.metadata.create_all(self.engine)
        except Exception as exc:
            raise StoreError(f"cannot open the results database {self.url}: {type(exc).__name__}: {exc}") from exc

    def close(self) -> None:
        """Closes pooled connections."""
        self.engine.dispose()

    @property
    def retains_audio(self) -> bool:
        """Whether :meth:`add_result` stores (encrypted) audio."""
        return self._cipher is not None

    def result_entry(self, result: Result) -> Entry:
        """The write of one window or Classify answer (see :func:`result_entry`)."""
        return result_entry(result, self._cipher)

    @staticmethod
    def alert_entry(session_id: str, alert: Alert, event_id: str | None = None) -> Entry:
        """The write of one alert; ``event_id`` (default: :func:`alert_event_id`) makes it idempotent."""
        return {
            "op": "alert",
            "event_id": event_id or alert_event_id(session_id, alert),
            "session_id": session_id,
            "alert": dataclasses.asdict(alert),
            "created_at": _now().isoformat(),
        }

    @staticmethod
    def session_end_entry(summary: SessionSummary, reason: str = "completed", kind: str = "") -> Entry:
        """The write that closes a session: end time, audio duration and how it ended.

        ``kind`` ("stream", "classify", "job") is the session's should this write be its first
        (a job that found no speech wrote no result); empty: its results' kind, else "stream"."""
        kinds = {_SESSION_KINDS.get(r.kind, "") for r in summary.results} - {""}
        return {
            "op": "session_end",
            "session_id": summary.session_id,
            "model_name": summary.model_name,
            "metadata": dict(summary.metadata),
            "duration_s": summary.duration_s,
            "reason": reason,
            "kind": kind or (kinds.pop() if len(kinds) == 1 else ""),
            "created_at": _now().isoformat(),
        }

    def write(self, entries: Sequence[Entry]) -> None:
        """Applies entries in order, in one transaction; writing the same entry twice stores it once.

        Entries of an erased session are dropped: a stream or job still running, or a write replayed
        from the spool, cannot bring an erased session back.
        """
        with self.engine.begin() as conn:
            erased = self._erased(conn, {str(entry.get("session_id")) for entry in entries})
            if erased:
                log.warning("store_write_of_erased_session_dropped", entries=sum(
                    1 for entry in entries if entry.get("session_id") in erased
                ))
            for entry in entries:
                if entry.get("session_id") in erased:
                    continue
                apply = self._APPLY.get(entry.get("op", ""))
                if apply is None:
                    raise StoreError(f"unknown store entry {entry.get('op')!r}")
                apply(self, conn, entry)

    def add_result(self, result: Result) -> None:
        """Stores one window or Classify answer (and its session and metadata when new)."""
        self.write([self.result_entry(result)])

    def _apply_result(self, conn: Connection, entry: Entry) -> None:
        created = datetime.fromisoformat(entry["created_at"])
        kind = _SESSION_KINDS[entry["kind"]]
        self._ensure_session(conn, entry["session_id"], kind, entry["model_name"], entry["metadata"], created)
        written = conn.execute(
            self._insert(ResultRow)
            .values(
                session_id=entry["session_id"],
                request_id=entry["request_id"],
                kind=entry["kind"],
                position=entry["index"],
                start_s=entry["start_s"],
                end_s=entry["end_s"],
                label=entry["label"],
                scores=entry["scores"],
                model_name=entry["model_name"],
                created_at=created,
                channel=entry.get("channel", 0),
                speaker=entry.get("speaker", ""),
                # Entries spooled by an older version carry neither: speech, not measured.
                no_speech=entry.get("no_speech", False),
                voiced_fraction=entry.get("voiced_fraction"),
            )
            .on_conflict_do_nothing(index_elements=["session_id", "kind", "position"])
        )
        clip = entry.get("clip")
        if clip is not None and written.rowcount:
            conn.execute(
                self._insert(AudioClipRow).values(
                    result_id=written.inserted_primary_key[0],
                    session_id=entry["session_id"],
                    position=entry["index"],
                    created_at=created,
                    sample_rate=clip["sample_rate"],
                    sample_count=clip["sample_count"],
                    ciphertext=clip["ciphertext"].encode("ascii"),
                )
            )

    def audio_clip(self, session_id: str, index: int = 0, key: str | bytes | None = None) -> AudioClip | None:
        """The retained audio of one result (a stream window's index; 0 for ``Classify``), decrypted.

        ``key`` defaults to this store's ``audio_key``. None when no audio was kept
        for it (retention off, or no ``audio_clips`` table at all). Raises
        :class:`StoreError` without a key, or when the key does not decrypt the clip.
        """
        if key is not None:
            try:
                cipher = audio_cipher(key)
            except ValueError as exc:
                raise StoreError(f"audio encryption key {exc}; {KEY_HELP}") from None
        elif self._cipher is not None:
            cipher = self._cipher
        else:
            raise StoreError("reading retained audio needs its encryption key (audio_key=... or key=...)")
        if not inspect(self.engine).has_table(AudioClipRow.__tablename__):
            return None
        query = (
            select(AudioClipRow)
            .where(AudioClipRow.session_id == session_id, AudioClipRow.position == index)
            .order_by(AudioClipRow.result_id.desc())
            .limit(1)
        )
        with Session(self.engine) as db:
            row = db.scalars(query).first()
            if row is None:
                return None
            try:
                pcm = cipher.decrypt(row.ciphertext)
            except InvalidToken:
                raise StoreError(
                    f"cannot decrypt the audio of session {session_id!r} window {index}: wrong audio encryption key "
                    "(or the clip was altered)"
                ) from None
            rate = row.sample_rate
        waveform = np.frombuffer(pcm, dtype="<i2").astype(np.float32) / 32767
        return AudioClip(session_id=session_id, index=index, sample_rate=rate, waveform=waveform)

    def add_alert(self, session_id: str, alert: Alert) -> None:
        """Stores one alert of a session."""
        self.write([self.alert_entry(session_id, alert)])

    def _apply_alert(self, conn: Connection, entry: Entry) -> None:
        created = datetime.fromisoformat(entry["created_at"])
        alert = entry["alert"]
        self._ensure_session(conn, entry["session_id"], "stream", "", {}, created)
        conn.execute(
            self._insert(AlertRow)
            .values(
                event_id=entry["event_id"],
                session_id=entry["session_id"],
                kind=alert["kind"],
                label=alert["label"],
                severity=alert["severity"],
                message=alert["message"],
                value=alert["value"],
                time_s=alert["time_s"],
                source=alert["source"],
                details=dict(alert["details"]),
                created_at=created,
                # Entries spooled before alerts carried it have none; a plugin's longer name is cut to the column.
                speaker=alert.get("speaker", "")[:16],
            )
            .on_conflict_do_nothing(index_elements=["event_id"])
        )

    def end_session(self, summary: SessionSummary, reason: str = "completed") -> None:
        """Marks a session finished, with its audio duration and how it ended."""
        self.write([self.session_end_entry(summary, reason, summary.kind)])

    def _apply_session_end(self, conn: Connection, entry: Entry) -> None:
        created = datetime.fromisoformat(entry["created_at"])
        # The entry's kind (a job that found no speech wrote no result to tell it by); entries spooled
        # before they carried one were streams'.
        kind = str(entry.get("kind") or "stream")
        self._ensure_session(conn, entry["session_id"], kind, entry["model_name"], entry["metadata"], created)
        conn.execute(
            update(SessionRow)
            .where(SessionRow.id == entry["session_id"])
            .values(ended_at=created, duration_s=entry["duration_s"], end_reason=entry["reason"])
        )

    _APPLY: dict[str, Callable[[ResultStore, Connection, Entry], None]] = {
        "result": _apply_result,
        "alert": _apply_alert,
        "session_end": _apply_session_end,
    }

    def erase(self, session_id: str, requested_by: str) -> int:
        """Deletes every row of the session (jobs in any state with their inputs, retained audio
        included) and records the erasure under a keyed hash of the id (never the id).

        Returns how many rows were deleted (0: the store held nothing of it; no record then). On
        SQLite the deleted bytes are zeroed (``secure_delete``) and the WAL is checkpointed and
        truncated, so no byte of the session stays in the database's files.
        """
        tables = [MetadataRow, AlertRow, ResultRow, JobRow, SessionOwnerRow]
        if inspect(self.engine).has_table(AudioClipRow.__tablename__):
            tables.insert(0, AudioClipRow)
        deleted = 0
        with self.engine.begin() as conn:
            jobs = select(JobRow.id).where(JobRow.session_id == session_id)
            deleted += conn.execute(delete(JobInputRow).where(JobInputRow.job_id.in_(jobs))).rowcount
            for table in tables:
                deleted += conn.execute(delete(table).where(table.session_id == session_id)).rowcount
            deleted += conn.execute(delete(SessionRow).where(SessionRow.id == session_id)).rowcount
            if deleted:
                conn.execute(
                    self._insert(ErasureRow).values(
                        session_hash=self.erasure_id(session_id, conn),
                        requested_by=requested_by,
                        rows_deleted=deleted,
                        erased_at=_now(),
                    )
                )
        if deleted:
            self.compact()
        return deleted

    def _hash_old_erasure_records(self) -> None:
        """Erasure records an older version wrote with the plain session id get its keyed hash instead."""
        with self.engine.begin() as conn:
            old = conn.execute(
                select(ErasureRow.id, ErasureRow.session_hash).where(func.length(ErasureRow.session_hash) != 64)
            ).all()
            for row_id, session_id in old:
                conn.execute(
                    update(ErasureRow)
                    .where(ErasureRow.id == row_id)
                    .values(session_hash=self.erasure_id(session_id, conn))
                )
        if old:
            self.compact()

    def erasure_id(self, session_id: str, conn: Connection | None = None) -> str:
        """The keyed hash (HMAC-SHA256) an erasure record keeps of a session id."""
        return hmac.new(self._key(conn), session_id.encode(), hashlib.sha256).hexdigest()

    def is_erased(self, session_id: str) -> bool:
        """Whether the session was erased (an erasure record holds its keyed hash)."""
        with self.engine.connect() as conn:
            return bool(self._erased(conn, {session_id}))

    def _erased(self, conn: Connection, session_ids: set[str]) -> set[str]:
        by_hash = {self.erasure_id(s, conn): s for s in session_ids}
        found = conn.execute(select(ErasureRow.session_hash).where(ErasureRow.session_hash.in_(by_hash)))
        return {by_hash[h] for h in found.scalars()}

    def _key(self, conn: Connection | None = None) -> bytes:
        """The erasure key: ``EMOTION_ERASURE_KEY``, else the one this database keeps (made once)."""
        if self._erasure_key is None:
            self._erasure_key = _stored_secret(self.engine, self._insert, conn).encode()
        return self._erasure_key

    def compact(self) -> None:
        """SQLite: moves the WAL into the file and truncates it (deleted rows were zeroed by
        ``secure_delete``), so deleted bytes stay neither in the WAL nor in free pages."""
        if not self.is_sqlite:
            return
        with self.engine.connect() as conn:
            conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")

    def find_sessions(
        self,
        search: str = "",
        since: datetime | None = None,
        until: datetime | None = None,
        kind: str = "",
        with_alerts: bool = False,
        limit: int = 500,
    ) -> list[SessionRecord]:
        """Sessions newest first, at most ``limit``: ``search`` matches the id or a metadata value
        (substring), ``since``/``until`` the start time, ``kind`` the source (stream, classify, job)."""
        with Session(self.engine) as db:
            ids = self._session_ids(db, search, since, until, kind, with_alerts, limit)
        records = self._load(SessionRow.id.in_(ids))
        return sorted(records, key=lambda r: r.started_at, reverse=True)

    def _session_ids(
        self,
        db: Session,
        search: str,
        since: datetime | None,
        until: datetime | None,
        kind: str,
        with_alerts: bool,
        limit: int,
    ) -> list[str]:
        """The ids of the sessions :meth:`find_sessions` finds, newest first, at most ``limit``."""
        condition = self._session_condition(search, since, until, kind, with_alerts)
        return list(db.scalars(select(SessionRow.id).where(condition).order_by(SessionRow.started_at.desc()).limit(limit)))

    @staticmethod
    def _session_condition(
        search: str, since: datetime | None, until: datetime | None, kind: str, with_alerts: bool
    ) -> ColumnElement[bool]:
        condition: ColumnElement[bool] = SessionRow.id.is_not(None)
        if search:
            pattern = f"%{search}%"
            in_metadata = select(MetadataRow.session_id).where(MetadataRow.value.like(pattern))
            condition = condition & (SessionRow.id.like(pattern) | SessionRow.id.in_(in_metadata))
        if since is not None:
            condition = condition & (SessionRow.started_at >= since)
        if until is not None:
            condition = condition & (SessionRow.started_at < until)
        if kind:
            condition = condition & (SessionRow.kind == kind)
        if with_alerts:
            condition = condition & SessionRow.id.in_(select(AlertRow.session_id))
        return condition

    def session_summaries(
        self,
        search: str = "",
        since: datetime | None = None,
        until: datetime | None = None,
        kind: str = "",
        with_alerts: bool = False,
        limit: int = 500,
    ) -> list[SessionListing]:
        """The sessions :meth:`find_sessions` finds, summarised by the database: per session a few
        grouped rows (windows won and score sums per label, counts), never its results, so that a
        list of long sessions costs what a list of short ones does. Each summary is the one
        :func:`summarise` makes of the session's results (``results`` and ``alerts`` left empty: the
        alerts are counted in ``alert_count``; ``model_name`` is the session's)."""
        with Session(self.engine) as db:
            ids = self._session_ids(db, search, since, until, kind, with_alerts, limit)
            if not ids:
                return []
            sessions = db.scalars(select(SessionRow).where(SessionRow.id.in_(ids))).all()
            metadata: dict[str, dict[str, str]] = defaultdict(dict)
            for row in db.scalars(select(MetadataRow).where(MetadataRow.session_id.in_(ids))):
                metadata[row.session_id][row.key] = row.value
            chosen = ResultRow.session_id.in_(ids)
            # Results without speech claim no emotion: counted neither as windows nor in the means.
            spoken = ResultRow.no_speech.is_(False)
            counts: dict[str, int] = {}
            ends: dict[str, float] = {}
            each = select(
                ResultRow.session_id, func.sum(case((spoken, 1), else_=0)), func.max(ResultRow.end_s)
            ).where(chosen)
            for session_id, count, end in db.execute(each.group_by(ResultRow.session_id)):
                counts[session_id], ends[session_id] = int(count or 0), float(end or 0.0)
            wins: dict[str, Counter[str]] = defaultdict(Counter)
            won = select(ResultRow.session_id, ResultRow.label, func.count()).where(chosen & spoken)
            for session_id, label, n in db.execute(won.group_by(ResultRow.session_id, ResultRow.label)):
                wins[session_id][label] += n
            sums: dict[str, dict[str, float]] = defaultdict(dict)
            scores, value = _score_items(self.engine.dialect.name)
            summed = (
                select(ResultRow.session_id, scores.c.key, func.sum(value))
                .select_from(ResultRow)
                .join(scores, true())
                .where(chosen & spoken)
                .group_by(ResultRow.session_id, scores.c.key)
            )
            for session_id, label, total in db.execute(summed):
                sums[session_id][label] = float(total)
            alerts = dict(
                db.execute(
                    select(AlertRow.session_id, func.count()).where(AlertRow.session_id.in_(ids)).group_by(AlertRow.session_id)
                ).all()
            )
        listings = []
        for s in sessions:
            count, labels = counts.get(s.id, 0), sorted(sums[s.id])
            means = {label: sums[s.id][label] / count for label in labels} if count else {}
            won_by = wins[s.id]
            summary = SessionSummary(
                session_id=s.id,
                window_count=count,
                duration_s=ends.get(s.id, 0.0) if s.duration_s is None else s.duration_s,
                dominant_label=max(labels, key=lambda label: (won_by[label], means[label])) if labels else "",
                shares={label: won_by[label] / count for label in labels} if count else {},
                mean_scores=means,
                results=(),
                alerts=(),
                metadata=metadata[s.id],
                model_name=s.model_name,
                end_reason=s.end_reason or "completed",
            )
            record = SessionRecord(summary, s.started_at, s.kind)  # type: ignore[arg-type]
            listings.append(SessionListing(record, int(alerts.get(s.id, 0))))
        return sorted(listings, key=lambda listing: listing.record.started_at, reverse=True)

    def session_ids_before(self, before: datetime) -> list[str]:
        """Ids of the sessions started before ``before``, and of the jobs submitted before it (a
        cancelled or failed job may have made no session): what retention and ``emotion erase
        --before`` erase."""
        with Session(self.engine) as db:
            sessions = list(db.scalars(select(SessionRow.id).where(SessionRow.started_at < before)))
            jobs = db.scalars(select(JobRow.session_id).where(JobRow.created_at < before).distinct())
            return sessions + sorted(set(jobs) - set(sessions))

    def session(self, session_id: str) -> SessionRecord | None:
        """One session with its results, alerts and metadata, or None."""
        records = self._load(SessionRow.id == session_id)
        return records[0] if records else None

    def sessions_since(self, since: datetime, until: datetime | None = None) -> list[SessionRecord]:
        """Sessions started in ``[since, until)``, oldest first."""
        condition = SessionRow.started_at >= since
        if until is not None:
            condition = condition & (SessionRow.started_at < until)
        return self._load(condition)

    def _ensure_session(
        self,
        conn: Connection,
        session_id: str,
        kind: str,
        model_name: str,
        metadata: dict[str, str],
        started_at: datetime,
    ) -> None:
        inserted = conn.execute(
            self._insert(SessionRow)
            .values(id=session_id, kind=kind, model_name=model_name, started_at=started_at)
            .on_conflict_do_nothing(index_elements=["id"])
        )
        if inserted.rowcount and metadata:
            conn.execute(
                self._insert(MetadataRow)
                .values([{"session_id": session_id, "key": k, "value": v} for k, v in metadata.items()])
                .on_conflict_do_nothing()
            )

    def _load(self, condition: ColumnElement[bool]) -> list[SessionRecord]:
        chosen = select(SessionRow.id).where(condition)
        with Session(self.engine) as db:
            sessions = db.scalars(
                select(SessionRow).where(condition).order_by(SessionRow.started_at, SessionRow.id)
            ).all()
            metadata: dict[str, dict[str, str]] = defaultdict(dict)
            for row in db.scalars(select(MetadataRow).where(MetadataRow.session_id.in_(chosen))):
                metadata[row.session_id][row.key] = row.value
            results: dict[str, list[Result]] = defaultdict(list)
            query = select(ResultRow).where(ResultRow.session_id.in_(chosen)).order_by(ResultRow.position, ResultRow.id)
            for r in db.scalars(query):
                results[r.session_id].append(
                    Result(
                        session_id=r.session_id,
                        request_id=r.request_id,
                        kind=r.kind,  # type: ignore[arg-type]
                        label=r.label,
                        scores={k: float(v) for k, v in r.scores.items()},
                        start_s=r.start_s,
                        end_s=r.end_s,
                        index=r.position,
                        model_name=r.model_name,
                        metadata=metadata[r.session_id],
                        channel=r.channel,
                        speaker=r.speaker or "",
                        no_speech=bool(r.no_speech),
                        voiced_fraction=r.voiced_fraction,
                    )
                )
            alerts: dict[str, list[Alert]] = defaultdict(list)
            for a in db.scalars(
                select(AlertRow).where(AlertRow.session_id.in_(chosen)).order_by(AlertRow.time_s, AlertRow.id)
            ):
                alerts[a.session_id].append(
                    Alert(
                        kind=a.kind,
                        message=a.message,
                        label=a.label,
                        severity=a.severity,  # type: ignore[arg-type]
                        value=a.value,
                        time_s=a.time_s,
                        source=a.source,
                        details=dict(a.details),
                        speaker=a.speaker,
                    )
                )
        records = []
        for s in sessions:
            summary = summarise(
                s.id, results[s.id], alerts[s.id], metadata[s.id], s.duration_s, s.end_reason or "completed"
            )
            summary = replace(summary, model_name=summary.model_name or s.model_name)
            records.append(SessionRecord(summary, s.started_at, s.kind))  # type: ignore[arg-type]
        return records


@dataclass(frozen=True)
class SessionListing:
    """A session as a list shows it (:meth:`ResultStore.session_summaries`): its record, whose
    summary holds no results nor alerts, and how many alerts it has."""

    record: SessionRecord
    alert_count: int


def _score_items(dialect: str) -> tuple[Any, ColumnElement[Any]]:
    """The table-valued function that spreads a result's ``scores`` (JSON) into (key, value) rows,
    and its value as a number."""
    if dialect == "postgresql":
        items = func.json_each_text(ResultRow.scores).table_valued("key", "value")
        return items, cast(items.c.value, Float)
    items = func.json_each(ResultRow.scores).table_valued("key", "value")
    return items, items.c.value


def alert_event_id(session_id: str, alert: Alert) -> str:
    """The key of an alert's idempotent write, derived from what it is: its session and every field.

    The same alert handed to the store again (replayed from the spool, or raised again when a job
    is retried after its worker lost its lease) has the same id, so it is stored once.
    """
    fields = dataclasses.asdict(alert)
    if not fields["speaker"]:  # an alert without a party keeps the id it had before alerts carried one
        del fields["speaker"]
    content = json.dumps([session_id, fields], sort_keys=True, default=str)
    return hashlib.sha256(content.encode()).hexdigest()[:32]


def result_entry(result: Result, cipher: MultiFernet | None) -> Entry:
    """The write of one window or Classify answer, as a JSON-able entry (see :meth:`ResultStore.write`).

    Its audio goes in only with a ``cipher`` (audio retention on), and then already encrypted.
    """
    entry: Entry = {
        "op": "result",
        "session_id": result.session_id,
        "request_id": result.request_id,
        "kind": result.kind,
        "index": result.index,
        "start_s": result.start_s,
        "end_s": result.end_s,
        "label": result.label,
        "scores": dict(result.scores),
        "model_name": result.model_name,
        "metadata": dict(result.metadata),
        "channel": result.channel,
        "speaker": result.speaker,
        "no_speech": result.no_speech,
        "voiced_fraction": result.voiced_fraction,
        "created_at": _now().isoformat(),
    }
    if cipher is not None and result.audio is not None and result.sample_rate > 0:
        pcm = pcm16(result.audio)
        entry["clip"] = {
            "sample_rate": result.sample_rate,
            "sample_count": len(pcm) // 2,
            "ciphertext": cipher.encrypt(pcm).decode("ascii"),
        }
    return entry


def _upgrade(conn: Connection) -> None:
    """Brings a store made by an older version up to this schema: the columns and unique indexes
    that make writes idempotent, record how a session ended and whether a result held speech, and
    keep a job's end until it was handed on (added when missing; rows stored before read as speech,
    their voiced fraction unknown; jobs ended before as handed on)."""
    columns = {
        "sessions": {"end_reason": "VARCHAR(64)"},
        "results": {
            "channel": "INTEGER NOT NULL DEFAULT 0",
            "speaker": "VARCHAR(16) NOT NULL DEFAULT ''",
            "no_speech": "BOOLEAN NOT NULL DEFAULT FALSE",
            "voiced_fraction": "FLOAT",
        },
        "alerts": {"event_id": "VARCHAR(64)", "speaker": "VARCHAR(16) NOT NULL DEFAULT ''"},
        "jobs": {"owner": "VARCHAR", "hand_over": "JSON"},
    }
    found = inspect(conn)
    for table, wanted in columns.items():
        present = {column["name"] for column in found.get_columns(table)}
        for name, sql_type in wanted.items():
            if name not in present:
                conn.execute(text(f"ALTER TABLE {table} ADD COLUMN {name} {sql_type}"))
                log.info("results_store_upgraded", table=table, column=name)
    for table in (ResultRow.__table__, AlertRow.__table__, JobRow.__table__):
        for index in table.indexes:
            conn.execute(CreateIndex(index, if_not_exists=True))


# The PostgreSQL advisory lock under which a store makes or upgrades its tables (any fixed number).
_SCHEMA_LOCK = 0x656D6F74


def _now() -> datetime:
    return datetime.now(UTC)


def _stored_secret(engine: Engine, insert: Callable[..., Any], conn: Connection | None = None) -> str:
    """The erasure key kept in the database: made once (the first replica to ask inserts it)."""
    values = {"name": _ERASURE_SECRET, "value": secrets.token_hex(32)}
    if conn is not None:  # inside the caller's transaction
        conn.execute(insert(SecretRow).values(**values).on_conflict_do_nothing(index_elements=["name"]))
        return str(conn.execute(select(SecretRow.value).where(SecretRow.name == _ERASURE_SECRET)).scalar_one())
    with engine.begin() as own:
        return _stored_secret(engine, insert, own)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA secure_delete=ON")  # deleted rows are zeroed, not left in free space
    cursor.close()
