"""Built-in plugin ``store``: every result, alert, session and its metadata in a SQL database.

SQLite file ``emotion-results.db`` (in the working directory) by default; set
``EMOTION_DATABASE_URL`` (or ``[plugins.store] database_url``) to a
``postgresql://user:password@host:5432/db`` URL in production. The tables are
created when missing. Only scores, labels, times, alerts and request metadata
are written; raw audio is not, unless an operator sets ``retain_audio`` (with an
``audio_encryption_key``): then the audio each result was computed from is
stored Fernet-encrypted in ``audio_clips``, never in plaintext.
``emotion report`` reads the same database.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import structlog

from emotion_service.plugins.hookspecs import hookimpl
from emotion_service.plugins.store import ResultStore
from emotion_service.plugins.store.repository import KEY_HELP, audio_cipher
from emotion_service.plugins.types import Alert, Result, SessionSummary
from emotion_service.settings import ConfigError, load_plugin_config, setting

NAME = "store"
DEFAULT_DATABASE_URL = "sqlite:///emotion-results.db"

log = structlog.get_logger(__name__)


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

    def __repr__(self) -> str:  # the key stays out of logs and tracebacks
        hidden = "'***'" if self.audio_encryption_key else "''"
        return (
            f"StoreConfig(database_url={self.database_url!r}, retain_audio={self.retain_audio!r}, "
            f"audio_encryption_key={hidden})"
        )


class ResultsStore:
    """The ``store`` plugin (``on_result``, ``on_alert``, ``on_session_end``).

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
        self._store: ResultStore | None = None
        self._lock = threading.Lock()

    @property
    def store(self) -> ResultStore:
        """The open repository."""
        with self._lock:
            if self._store is None:
                key = self.config.audio_encryption_key if self.config.retain_audio else None
                self._store = ResultStore(self.config.database_url, audio_key=key)
                log.info("results_store_opened", url=self._store.url, retain_audio=self._store.retains_audio)
            return self._store

    @hookimpl
    def on_result(self, result: Result) -> None:
        """Writes the result (and its session on first sight)."""
        self.store.add_result(result)

    @hookimpl
    def on_alert(self, alert: Alert, session_id: str) -> None:
        """Writes the alert."""
        self.store.add_alert(session_id, alert)

    @hookimpl
    def on_session_end(self, summary: SessionSummary) -> None:
        """Marks the stream finished."""
        self.store.end_session(summary)
