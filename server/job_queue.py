"""The durable job queue: jobs in the results database, taken by one replica at a time.

A replica takes the oldest queued job (or a running one whose lease expired: its replica
died) in one ``UPDATE ... WHERE id = (SELECT ... FOR UPDATE SKIP LOCKED)``: on PostgreSQL
concurrent replicas skip each other's locked rows, so each job goes to exactly one of
them; SQLite (one server) takes its write lock for the statement. The taker holds the job
by a fresh ``lease_token`` and renews the lease as it works; every write of a worker is
conditional on its token, so a worker that lost its job (lease expired and taken over,
cancelled, erased) learns it at its next write and stops.
"""

from __future__ import annotations

import base64
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import uuid4

import structlog
from sqlalchemy import ColumnElement, Connection, Engine, and_, delete, func, or_, select, update
from sqlalchemy.orm import Session, aliased

from emotion_service.plugins.store import ResultStore
from emotion_service.plugins.store.schema import JobInputRow, JobRow, ResultRow, SessionOwnerRow

log = structlog.get_logger(__name__)

QUEUED, RUNNING, SUCCEEDED, FAILED, CANCELLED = "queued", "running", "succeeded", "failed", "cancelled"
ENDED = (SUCCEEDED, FAILED, CANCELLED)


class JobNotFoundError(KeyError):
    """No job has this id (or none the caller may see: another key's job is not told apart from none)."""


class SessionOwnedError(PermissionError):
    """The session id belongs to another API key."""


@dataclass(frozen=True)
class RecordingInput:
    """One recording of a submitted job: inline bytes, or a path the server may read."""

    name: str
    content: bytes | None = None
    path: str | None = None


@dataclass(frozen=True)
class Claim:
    """A job a worker holds: its id, the token of its lease, and what it needs to work."""

    job_id: str
    token: str
    session_id: str
    channels: str
    recordings: list[dict[str, Any]]
    metadata: dict[str, str]
    parts: dict[str, Any]
    attempts: int
    # Diarization of mixed recordings (SubmitJobRequest.diarize, num_speakers; 0: found out).
    diarize: bool = False
    num_speakers: int = 0


@dataclass(frozen=True)
class PendingHandOver:
    """An ended job's end that its replica wrote but died before handing on, now held by ``token``."""

    job_id: str
    token: str
    session_id: str
    payload: dict[str, Any]  # as written by the job's end (see JobRunner)


class JobQueue:
    """Jobs in the results database at ``url`` (the tables are the store's: see its schema)."""

    def __init__(self, url: str) -> None:
        self._url = url
        self._store: ResultStore | None = None
        self._lock = threading.Lock()

    @property
    def store(self) -> ResultStore:
        """The results database, opened on first use (a server starts while it is away; jobs wait for it)."""
        with self._lock:
            if self._store is None:
                # The store creates and upgrades the tables, the jobs' included; the queue shares its engine.
                self._store = ResultStore(self._url)
            return self._store

    @property
    def engine(self) -> Engine:
        return self.store.engine

    def close(self) -> None:
        """Closes pooled connections."""
        with self._lock:
            if self._store is not None:
                self._store.close()

    def submit(
        self,
        recordings: list[RecordingInput],
        channels: str,
        metadata: dict[str, str],
        session_id: str,
        owner: str = "",
        diarize: bool = False,
        num_speakers: int = 0,
    ) -> JobRow:
        """Queues a job and its inline recordings in one transaction; ``owner``: the submitting key's name;
        ``diarize``: find the speakers of mixed recordings (``num_speakers`` of them; 0: find out)."""
        now = _now()
        job = JobRow(
            id=uuid4().hex,
            session_id=session_id,
            state=QUEUED,
            channels=channels,
            request={
                "recordings": [{"name": r.name, "path": r.path} for r in recordings],
                "diarize": diarize,
                "num_speakers": num_speakers,
            },
            job_metadata=dict(metadata),
            created_at=now,
            updated_at=now,
            attempts=0,
            total_s=0.0,
            done_s=0.0,
            attempt_done_s=0.0,
            parts={},
            owner=owner,
        )
        with Session(self.engine, expire_on_commit=False) as db, db.begin():
            db.add(job)
            db.flush()
            for position, recording in enumerate(recordings):
                if recording.content is not None:
                    db.add(JobInputRow(job_id=job.id, position=position, content=recording.content))
        log.info("job_submitted", job_id=job.id, session_id=session_id, recordings=len(recordings))
        return job

    def claim(self, owner: str, lease_s: float, diarize: bool = True) -> Claim | None:
        """Takes the oldest job no worker holds, or None. ``diarize`` False: a job that diarizes is left
        for a replica that can run it (this one lacks a speaker encoder's wheel), not taken and failed;
        one whose replica died holding it is put back in the queue, so that it shows as waiting."""
        now = _now()
        token = uuid4().hex
        with self.engine.begin() as conn:
            if not diarize:
                conn.execute(
                    update(JobRow)
                    .where(_free(JobRow, now), JobRow.state == RUNNING, ~_plain(JobRow))
                    .values(state=QUEUED, lease_token=None, lease_owner=None, lease_expires_at=None, updated_at=now)
                    .execution_options(synchronize_session=False)
                )
            taken = _take_oldest(
                conn,
                _free if diarize else _free_undiarized,
                now,
                state=RUNNING,
                lease_token=token,
                lease_owner=owner,
                lease_expires_at=now + timedelta(seconds=lease_s),
                attempts=JobRow.attempts + 1,
                started_at=now,
                attempt_done_s=0.0,
                updated_at=now,
            )
        if not taken:
            return None
        with Session(self.engine) as db:
            job = db.scalars(select(JobRow).where(JobRow.lease_token == token)).one()
            claim = Claim(
                job_id=job.id,
                token=token,
                session_id=job.session_id,
                channels=job.channels,
                recordings=list(job.request["recordings"]),
                metadata=dict(job.job_metadata),
                parts=dict(job.parts or {}),
                attempts=job.attempts,
                diarize=bool(job.request.get("diarize", False)),
                num_speakers=int(job.request.get("num_speakers", 0)),
            )
        log.info("job_claimed", job_id=claim.job_id, session_id=claim.session_id, attempt=claim.attempts, owner=owner)
        return claim

    def content(self, job_id: str, position: int) -> bytes | None:
        """The inline bytes of one recording of a job, or None (given by path)."""
        with Session(self.engine) as db:
            row = db.get(JobInputRow, (job_id, position))
            return None if row is None else bytes(row.content)

    def progress(
        self,
        claim: Claim,
        lease_s: float,
        done_s: float,
        attempt_done_s: float,
        audio_s: float | None = None,
        parts: dict[str, Any] | None = None,
    ) -> bool:
        """Renews the lease and records progress; False when the worker no longer holds the job."""
        now = _now()
        values: dict[str, Any] = {
            "lease_expires_at": now + timedelta(seconds=lease_s),
            "done_s": done_s,
            "attempt_done_s": attempt_done_s,
            "updated_at": now,
        }
        if audio_s is not None:
            values["total_s"] = audio_s
        if parts is not None:
            values["parts"] = parts
        return self._update_held(claim, values)

    def finish(
        self,
        claim: Claim,
        state: str,
        utterances: list[dict[str, Any]] | None,
        error: str = "",
        parties: list[dict[str, Any]] | None = None,
        hand_over: dict[str, Any] | None = None,
        hold_s: float = 0.0,
    ) -> bool:
        """Ends a held job (succeeded or failed) and deletes its inline recordings; False when not held.
        ``parties``: each party's summary (:func:`emotion_service.plugins.types.summarise_parties`).

        ``hand_over``: the end as the plugins are to be handed it, written in the same transaction;
        the job then stays held by the claim's token for ``hold_s`` while the worker hands it on, and
        :meth:`handed_on` lets it go. Should the worker die first, :meth:`claim_hand_over` gives the
        hand-over to another replica once ``hold_s`` has run out."""
        now = _now()
        values: dict[str, Any] = {
            "state": state,
            "utterances": {"utterances": utterances, "parties": parties or []} if utterances is not None else None,
            "error": error or None,
            "lease_token": None if hand_over is None else claim.token,
            "lease_expires_at": None if hand_over is None else now + timedelta(seconds=hold_s),
            "hand_over": hand_over,
            "updated_at": now,
        }
        if state == SUCCEEDED:
            values["done_s"] = JobRow.total_s
        with self.engine.begin() as conn:
            held = conn.execute(
                update(JobRow)
                .where(JobRow.id == claim.job_id, JobRow.lease_token == claim.token, JobRow.state == RUNNING)
                .values(**values)
            ).rowcount
            if held:
                conn.execute(delete(JobInputRow).where(JobInputRow.job_id == claim.job_id))
        log.info("job_ended", job_id=claim.job_id, session_id=claim.session_id, state=state, error=error or None)
        return bool(held)

    def handed_on(self, job_id: str, token: str) -> bool:
        """Records that an ended job's end was handed to the plugins (clears its pending hand-over and
        lets its lease go); False when ``token`` no longer holds it (taken over, erased)."""
        return self._update_leased(
            job_id, token, JobRow.state.in_(ENDED), {"hand_over": None, "lease_token": None, "lease_expires_at": None}
        )

    def hold_hand_over(self, job_id: str, token: str, lease_s: float) -> bool:
        """Renews the lease of an ended job whose end ``token`` is handing on (a long report); False when
        it no longer holds it."""
        expires = _now() + timedelta(seconds=lease_s)
        return self._update_leased(job_id, token, JobRow.state.in_(ENDED), {"lease_expires_at": expires})

    def claim_hand_over(self, owner: str, lease_s: float) -> PendingHandOver | None:
        """Takes the oldest ended job whose end was written but never handed on, its lease run out (the
        replica that wrote it died first), or None; held by a fresh token for ``lease_s``."""
        now = _now()
        token = uuid4().hex
        with self.engine.begin() as conn:
            taken = _take_oldest(
                conn,
                _orphaned,
                now,
                lease_token=token,
                lease_owner=owner,
                lease_expires_at=now + timedelta(seconds=lease_s),
            )
            if not taken:
                return None
            job_id, session_id, payload = conn.execute(
                select(JobRow.id, JobRow.session_id, JobRow.hand_over).where(JobRow.lease_token == token)
            ).one()
        log.info("job_hand_over_taken", job_id=job_id, session_id=session_id, owner=owner)
        return PendingHandOver(job_id, token, session_id, payload)

    def release(self, claim: Claim) -> bool:
        """Puts a held job back in the queue at once (the server is stopping)."""
        return self._update_held(
            claim, {"state": QUEUED, "lease_token": None, "lease_expires_at": None, "updated_at": _now()}
        )

    def cancel(self, job_id: str, owner: str | None = None) -> JobRow:
        """Cancels a queued or running job (its worker stops at its next write); an ended job is unchanged.

        ``owner``: only that key's job (None: any job, as without token auth or for admin).
        """
        self.get(job_id, owner)
        with self.engine.begin() as conn:
            cancelled = conn.execute(
                update(JobRow)
                .where(JobRow.id == job_id, JobRow.state.in_((QUEUED, RUNNING)))
                .values(state=CANCELLED, lease_token=None, lease_expires_at=None, updated_at=_now())
            ).rowcount
            if cancelled:
                conn.execute(delete(JobInputRow).where(JobInputRow.job_id == job_id))
        return self.get(job_id)

    def get(self, job_id: str, owner: str | None = None) -> JobRow:
        """One job (raises :class:`JobNotFoundError`); with ``owner``, only that key's job."""
        with Session(self.engine) as db:
            job = db.get(JobRow, job_id)
            if job is None or (owner is not None and (job.owner or "") != owner):
                raise JobNotFoundError(job_id)
            db.expunge(job)
            return job

    def list(
        self, state: str | None, limit: int, after: str = "", owner: str | None = None
    ) -> tuple[list[JobRow], str]:
        """Jobs newest first, ``limit`` at most after the page token ``after``; and the next page's token.

        ``owner``: only that key's jobs (None: all, as without token auth or for admin).
        """
        query = select(JobRow).order_by(JobRow.created_at.desc(), JobRow.id.desc()).limit(limit + 1)
        if state is not None:
            query = query.where(JobRow.state == state)
        if owner is not None:
            query = query.where(JobRow.owner == owner)
        if after:
            created, job_id = _decode_token(after)
            query = query.where(
                or_(JobRow.created_at < created, and_(JobRow.created_at == created, JobRow.id < job_id))
            )
        with Session(self.engine) as db:
            jobs = list(db.scalars(query))
            for job in jobs:
                db.expunge(job)
        if len(jobs) <= limit:
            return jobs, ""
        last = jobs[limit - 1]
        return jobs[:limit], _encode_token(last.created_at, last.id)

    def claim_session(self, session_id: str, owner: str) -> None:
        """Records ``owner`` as the session's key the first time the id is named; raises
        :class:`SessionOwnedError` when another key named it first."""
        with self.engine.begin() as conn:
            conn.execute(
                self.store._insert(SessionOwnerRow)
                .values(session_id=session_id, owner=owner, claimed_at=_now())
                .on_conflict_do_nothing(index_elements=["session_id"])
            )
            holder = conn.execute(
                select(SessionOwnerRow.owner).where(SessionOwnerRow.session_id == session_id)
            ).scalar_one()
        if holder != owner:
            raise SessionOwnedError(session_id)

    def stream_extent(self, session_id: str) -> tuple[int, float]:
        """The stored windows of a session: the next window index and where its audio ended (seconds),
        so a stream that continues the session numbers its windows after them."""
        with self.engine.connect() as conn:
            last, end = conn.execute(
                select(func.max(ResultRow.position), func.max(ResultRow.end_s)).where(
                    ResultRow.session_id == session_id, ResultRow.kind == "window"
                )
            ).one()
        return (-1 if last is None else last) + 1, end or 0.0

    def _update_held(self, claim: Claim, values: dict[str, Any]) -> bool:
        return self._update_leased(claim.job_id, claim.token, JobRow.state == RUNNING, values)

    def _update_leased(self, job_id: str, token: str, state: ColumnElement[bool], values: dict[str, Any]) -> bool:
        """Writes ``values`` into the job ``token`` holds, if it is in ``state``; False when not."""
        with self.engine.begin() as conn:
            return bool(
                conn.execute(
                    update(JobRow).where(JobRow.id == job_id, JobRow.lease_token == token, state).values(**values)
                ).rowcount
            )


def eta_seconds(job: JobRow) -> float:
    """How long a running job still needs at its current attempt's pace (0: not running, or no pace yet)."""
    if job.state != RUNNING or job.attempt_done_s <= 0 or job.started_at is None:
        return 0.0
    started = job.started_at if job.started_at.tzinfo else job.started_at.replace(tzinfo=UTC)
    elapsed = (_now() - started).total_seconds()
    return max(0.0, elapsed / job.attempt_done_s * (job.total_s - job.done_s))


def _free(jobs: Any, now: datetime) -> ColumnElement[bool]:
    """Jobs no worker holds: queued, or running under a lease that expired (its replica died)."""
    return or_(jobs.state == QUEUED, and_(jobs.state == RUNNING, jobs.lease_expires_at < now))


def _plain(jobs: Any) -> ColumnElement[bool]:
    """Jobs that do not diarize (a request written before jobs could diarize has no such key)."""
    return func.coalesce(jobs.request["diarize"].as_boolean(), False).is_(False)


def _free_undiarized(jobs: Any, now: datetime) -> ColumnElement[bool]:
    """Free jobs (:func:`_free`) that do not diarize."""
    return and_(_free(jobs, now), _plain(jobs))


def _take_oldest(
    conn: Connection, which: Callable[[Any, datetime], ColumnElement[bool]], now: datetime, **values: Any
) -> bool:
    """Writes ``values`` into the oldest job that ``which(jobs, now)`` selects, in one statement that
    concurrent replicas cannot both win (PostgreSQL: SKIP LOCKED; SQLite: its write lock); True when
    there was one."""
    # An alias, so the subquery reads the table on its own rather than correlating with the UPDATE's.
    candidate = aliased(JobRow)
    oldest = (
        select(candidate.id)
        .where(which(candidate, now))
        .order_by(candidate.created_at)
        .limit(1)
        .with_for_update(skip_locked=True)
    )
    return bool(
        conn.execute(
            update(JobRow)
            .where(JobRow.id == oldest.scalar_subquery(), which(JobRow, now))
            .values(**values)
            .execution_options(synchronize_session=False)
        ).rowcount
    )


def _orphaned(jobs: Any, now: datetime) -> ColumnElement[bool]:
    """Ended jobs whose end was written and never handed on, under a lease that expired (its replica died)."""
    return and_(jobs.state.in_(ENDED), jobs.hand_over.is_not(None), jobs.lease_expires_at < now)


class PageTokenError(ValueError):
    """A page token this server did not make."""


def _encode_token(created: datetime, job_id: str) -> str:
    return base64.urlsafe_b64encode(f"{created.isoformat()}|{job_id}".encode()).decode()


def _decode_token(token: str) -> tuple[datetime, str]:
    try:
        created, job_id = base64.urlsafe_b64decode(token.encode()).decode().split("|", 1)
        return datetime.fromisoformat(created), job_id
    except (ValueError, UnicodeDecodeError):
        raise PageTokenError(f"page_token {token!r} is not one this server made: pass next_page_token") from None


def _now() -> datetime:
    return datetime.now(UTC)
