"""Reads and writes sessions, results, alerts and metadata through SQLAlchemy (SQLite or PostgreSQL)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import structlog
from sqlalchemy import ColumnElement, Connection, Engine, create_engine, event, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.orm import Session

from plugins.records import SessionRecord, summarise
from plugins.store.schema import AlertRow, Base, MetadataRow, ResultRow, SessionRow
from plugins.types import Alert, Result, SessionSummary

log = structlog.get_logger(__name__)

_INSERTS: dict[str, Callable[..., Any]] = {"sqlite": sqlite.insert, "postgresql": postgresql.insert}


class StoreError(RuntimeError):
    """The results database cannot be used; the message says which and why."""


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
    """

    def __init__(self, url: str, must_exist: bool = False) -> None:
        url = _normalise_url(url)
        try:
            parsed = make_url(url)
        except ArgumentError as exc:
            raise StoreError(f"invalid database URL {url!r}: {exc}") from None
        backend = parsed.get_backend_name()
        if backend not in _INSERTS:
            raise StoreError(f"unsupported database {backend!r} in {_redact(url)}: use sqlite:///FILE or postgresql://...")
        connect_args: dict[str, Any] = {}
        if backend == "sqlite":
            connect_args["timeout"] = 30  # concurrent writers wait for the lock instead of failing
            if parsed.database and parsed.database != ":memory:":
                path = Path(parsed.database)
                if must_exist and not path.exists():
                    raise StoreError(f"no results database at {path} (is the store plugin writing elsewhere?)")
                path.parent.mkdir(parents=True, exist_ok=True)
        self.url = _redact(url)
        self.engine: Engine = create_engine(url, pool_pre_ping=True, connect_args=connect_args)
        if backend == "sqlite":
            event.listen(self.engine, "connect", _sqlite_pragmas)
        self._insert = _INSERTS[backend]
        try:
            Base.metadata.create_all(self.engine)
        except Exception as exc:
            raise StoreError(f"cannot open the results database {self.url}: {type(exc).__name__}: {exc}") from exc

    def close(self) -> None:
        """Closes pooled connections."""
        self.engine.dispose()

    def add_result(self, result: Result) -> None:
        """Stores one window or Classify answer (and its session and metadata when new)."""
        kind = "stream" if result.kind == "window" else "classify"
        with self.engine.begin() as conn:
            self._ensure_session(conn, result.session_id, kind, result.model_name, result.metadata)
            conn.execute(
                self._insert(ResultRow).values(
                    session_id=result.session_id,
                    request_id=result.request_id,
                    kind=result.kind,
                    position=result.index,
                    start_s=result.start_s,
                    end_s=result.end_s,
                    label=result.label,
                    scores=dict(result.scores),
                    model_name=result.model_name,
                    created_at=_now(),
                )
            )

    def add_alert(self, session_id: str, alert: Alert) -> None:
        """Stores one alert of a session."""
        with self.engine.begin() as conn:
            self._ensure_session(conn, session_id, "stream", "", {})
            conn.execute(
                self._insert(AlertRow).values(
                    session_id=session_id,
                    kind=alert.kind,
                    label=alert.label,
                    severity=alert.severity,
                    message=alert.message,
                    value=alert.value,
                    time_s=alert.time_s,
                    source=alert.source,
                    details=dict(alert.details),
                    created_at=_now(),
                )
            )

    def end_session(self, summary: SessionSummary) -> None:
        """Marks a stream finished, with its audio duration."""
        with self.engine.begin() as conn:
            self._ensure_session(conn, summary.session_id, "stream", summary.model_name, summary.metadata)
            conn.execute(
                update(SessionRow)
                .where(SessionRow.id == summary.session_id)
                .values(ended_at=_now(), duration_s=summary.duration_s)
            )

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

    def _ensure_session(self, conn: Connection, session_id: str, kind: str, model_name: str, metadata: dict[str, str]) -> None:
        inserted = conn.execute(
            self._insert(SessionRow)
            .values(id=session_id, kind=kind, model_name=model_name, started_at=_now())
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
            sessions = db.scalars(select(SessionRow).where(condition).order_by(SessionRow.started_at, SessionRow.id)).all()
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
                    )
                )
            alerts: dict[str, list[Alert]] = defaultdict(list)
            for a in db.scalars(select(AlertRow).where(AlertRow.session_id.in_(chosen)).order_by(AlertRow.time_s, AlertRow.id)):
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
                    )
                )
        records = []
        for s in sessions:
            summary = summarise(s.id, results[s.id], alerts[s.id], metadata[s.id], s.duration_s)
            summary = replace(summary, model_name=summary.model_name or s.model_name)
            records.append(SessionRecord(summary, s.started_at, s.kind))  # type: ignore[arg-type]
        return records


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.close()
