"""Built-in plugin ``store``: every result, alert, session and its metadata in a SQL database.

SQLite file ``emotion-results.db`` (in the working directory) by default; set
``EMOTION_DATABASE_URL`` (or ``[plugins.store] database_url``) to a
``postgresql://user:password@host:5432/db`` URL in production. The tables are
created when missing. Only scores, labels, times, alerts and request metadata
are written: raw audio never is. ``emotion report`` reads the same database.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import structlog

from plugins.config import load_plugin_config, setting
from plugins.hookspecs import hookimpl
from plugins.store import ResultStore
from plugins.types import Alert, Result, SessionSummary

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


class ResultsStore:
    """The ``store`` plugin (``on_result``, ``on_alert``, ``on_session_end``).

    The database is opened on first use, so listing plugins creates nothing.
    """

    def __init__(self, config: StoreConfig | None = None) -> None:
        self.config = config or load_plugin_config(NAME, StoreConfig)
        self._store: ResultStore | None = None
        self._lock = threading.Lock()

    @property
    def store(self) -> ResultStore:
        """The open repository."""
        with self._lock:
            if self._store is None:
                self._store = ResultStore(self.config.database_url)
                log.info("results_store_opened", url=self._store.url)
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
