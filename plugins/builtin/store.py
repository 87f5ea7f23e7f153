"""Built-in plugin ``store``: every result, alert, session and its metadata in a SQL database.

SQLite file ``emotion-results.db`` (in the working directory) by default; set
``EMOTION_DATABASE_URL`` (or ``[plugins.store] database_url``) to a
``postgresql://user:password@host:5432/db`` URL in production. The tables are
created when missing. Only scores, labels, times, alerts and request metadata
are written; raw audio is not, unless an operator sets ``retain_audio`` (with an
``audio_encryption_key``): then the audio each result was computed from is
stored Fernet-encrypted in ``audio_clips``, never in plaintext.
``emotion report`` reads the same database.

No request waits on the database: the hooks hand each write to the store's own writer
thread (:class:`~emotion_service.plugins.workers.SinkWorker`), which writes them in batches,
one transaction each. While the database is unreachable (or the writer's queue is full),
writes go to a durable local spool (``spool_dir``, a SQLite file in WAL mode) and are replayed in
order when it is back. Writes are idempotent (results keyed by session, kind and window,
alerts by an event id), so a replay stores nothing twice: every answered result ends up in
the database exactly once.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from pathlib import Path

import structlog
from sqlalchemy.exc import DisconnectionError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError

from emotion_service.plugins.hookspecs import hookimpl
from emotion_service.plugins.store import ResultStore, StoreError
from emotion_service.plugins.store.repository import KEY_HELP, Entry, audio_cipher, result_entry
from emotion_service.plugins.store.spool import Spool
from emotion_service.plugins.types import Alert, Result, SessionSummary
from emotion_service.plugins.workers import SinkWorker
from emotion_service.settings import ConfigError, check, load_plugin_config, setting

NAME = "store"
DEFAULT_DATABASE_URL = "sqlite:///emotion-results.db"

log = structlog.get_logger(__name__)

# Errors that mean "the database is away or overloaded": the write waits in the spool. Any other
# error (a write the database refuses) sets the write aside in the spool's rejected file.
_TRANSIENT = (OperationalError, DisconnectionError, PoolTimeoutError, StoreError)


@dataclass(frozen=True)
class StoreConfig:
    """Settings of ``[plugins.store]`` / ``EMOTION_DATABASE_URL``."""

    database_url: str = setting(
        DEFAULT_DATABASE_URL,
        "SQLAlchemy URL of the results database: sqlite:///FILE or postgresql://USER:PASSWORD@HOST:PORT/DB.",
        env="EMOTION_DATABASE_URL",
    )
    retain_audio: bool = setting(
        False,
        "Also store the audio each result was scored on, Fernet-encrypted with audio_encryption_key (off: results only).",
        env="EMOTION_RETAIN_AUDIO",
    )
    audio_encryption_key: str = setting(
        "",
        "Fernet key encrypting retained audio; several comma-separated to rotate (the first encrypts, all decrypt).",
        env="EMOTION_AUDIO_ENCRYPTION_KEY",
    )
    spool_dir: str = setting(
        "emotion-spool",
        "Folder of the durable spool holding writes while the database is away (created when missing).",
    )
    queue_size: int = setting(10_000, "Writes waiting for the writer thread at most; beyond it they go to the spool.")
    batch_size: int = setting(256, "Most writes in one database transaction.")
    retry_s: float = setting(1.0, "While the database is away, how often the spool is retried, in seconds.")

    def __post_init__(self) -> None:
        check(
            f"plugin {NAME!r}",
            self,
            {
                "queue_size": (self.queue_size >= 1, "must be at least 1"),
                "batch_size": (self.batch_size >= 1, "must be at least 1"),
                "retry_s": (self.retry_s > 0, "must be positive"),
            },
        )

    def __repr__(self) -> str:  # the key stays out of logs and tracebacks
        hidden = "'***'" if self.audio_encryption_key else "''"
        return (
            f"StoreConfig(database_url={self.database_url!r}, retain_audio={self.retain_audio!r}, "
            f"audio_encryption_key={hidden}, spool_dir={self.spool_dir!r})"
        )


class ResultsStore:
    """The ``store`` plugin (``on_result``, ``on_alert``, ``on_session_end``, ``on_erase``, ``on_shutdown``).

    The database is opened on first use, so listing plugins creates nothing.
    """

    def __init__(self, config: StoreConfig | None = None) -> None:
        self.config = config or load_plugin_config(NAME, StoreConfig)
        if self.config.retain_audio:
            try:
                audio_cipher(self.config.audio_encryption_key)
            except ValueError as exc:
                raise ConfigError(
                    f"plugin {NAME!r}: retain_audio is on but audio_encryption_key {exc}: set [plugins.store] "
                    f"audio_encryption_key or EMOTION_AUDIO_ENCRYPTION_KEY to a Fernet key; {KEY_HELP}"
                ) from None
        # Retained audio is encrypted before it is queued: it is never in plaintext in the spool either.
        self._cipher = audio_cipher(self.config.audio_encryption_key) if self.config.retain_audio else None
        self._store: ResultStore | None = None
        self._lock = threading.Lock()
        self._spool: Spool | None = None
        self._next_retry = 0.0
        self.writer: SinkWorker[Entry] = SinkWorker(
            NAME,
            self._write,
            max_queue=self.config.queue_size,
            max_batch=self.config.batch_size,
            on_overflow=lambda entry: self.spool.append([entry]),
            on_idle=self._retry_spool,
            idle_s=self.config.retry_s,
        )

    @property
    def store(self) -> ResultStore:
        """The open repository (raises :class:`StoreError` while the database cannot be opened)."""
        with self._lock:
            if self._store is None:
                key = self.config.audio_encryption_key if self.config.retain_audio else None
                self._store = ResultStore(self.config.database_url, audio_key=key)
                log.info("results_store_opened", url=self._store.url, retain_audio=self._store.retains_audio)
            return self._store

    @property
    def spool(self) -> Spool:
        """The durable spool (created on first use)."""
        with self._lock:
            if self._spool is None:
                self._spool = Spool(Path(self.config.spool_dir))
            return self._spool

    @hookimpl
    def on_result(self, result: Result) -> None:
        """Queues the result's write (and its session's, on first sight)."""
        self.writer.put(result_entry(result, self._cipher))

    @hookimpl
    def on_alert(self, alert: Alert, session_id: str) -> None:
        """Queues the alert's write."""
        self.writer.put(ResultStore.alert_entry(session_id, alert))

    @hookimpl
    def on_session_end(self, summary: SessionSummary) -> None:
        """Queues the write that closes the session (end time, duration, how it ended)."""
        self.writer.put(ResultStore.session_end_entry(summary, summary.end_reason, summary.kind))

    @hookimpl
    def on_erase(self, session_id: str, requested_by: str) -> list[str] | None:
        """Deletes the session's rows (after writing what is queued) and records the erasure.

        Writes still in the spool (the database being away) are replayed first, so none can
        bring the session back afterwards; while the database is away the erasure fails.
        """
        self.flush()
        if not self._retry_spool(force=True):
            raise StoreError(
                "the results database is unreachable and writes wait in the spool: retry the erasure later"
            )
        deleted = self.store.erase(session_id, requested_by)
        # Writes the database refused (kept for a person to look at) name the session too.
        rejected = self.spool.erase(session_id)
        erased = [f"store: {deleted} rows"] if deleted else []
        erased += [f"spool: {rejected} rejected writes"] if rejected else []
        return erased or None

    @hookimpl
    def on_shutdown(self) -> None:
        """Writes what is queued (to the database, or to the spool while it is away) and closes."""
        self.writer.close(timeout=30.0)
        with self._lock:
            if self._store is not None:
                self._store.close()

    def flush(self, timeout: float = 30.0) -> bool:
        """Waits until every queued write is in the database or the spool; True when done in time."""
        return self.writer.wait_idle(timeout)

    def _write(self, entries: list[Entry]) -> None:
        if self.spool.has_pending() and not self._retry_spool():
            self.spool.append(entries)  # keep the order: older writes wait in the spool
            return
        try:
            self.store.write(entries)
        except _TRANSIENT as exc:
            self.spool.append(entries)
            log.warning("results_database_unavailable", spooled=len(entries), reason=_reason(exc))
        except Exception as exc:
            self.spool.reject(entries, _reason(exc))

    def _retry_spool(self, force: bool = False) -> bool:
        """Replays the spool into the database, at most every ``retry_s``; True when it is empty afterwards."""
        if not self.spool.has_pending():
            return True
        if not force and time.monotonic() < self._next_retry:
            return False
        try:
            self.spool.replay(self._write_or_reject, self.config.batch_size)
        except _TRANSIENT as exc:
            self._next_retry = time.monotonic() + self.config.retry_s
            log.debug("spool_replay_deferred", reason=_reason(exc))
            return False
        return True

    def _write_or_reject(self, entries: list[Entry]) -> None:
        try:
            self.store.write(entries)
        except _TRANSIENT:
            raise
        except Exception as exc:
            self.spool.reject(entries, _reason(exc))


def _reason(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
