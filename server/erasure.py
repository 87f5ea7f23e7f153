"""Erasure, as DeleteSession, retention and ``emotion erase`` run it: every plugin's ``on_erase``,
then the job queue's database (when it is not the store's), and a mark that stops this process's
streams and jobs of the session from writing it again.

The mark is kept as a hash of the id, in memory only; the durable tombstone is the store's
erasure record (a keyed hash), which every store write checks.
"""

from __future__ import annotations

import hashlib
import threading

import structlog

from emotion_service.plugins.manager import PluginHost
from emotion_service.server.job_queue import JobQueue

log = structlog.get_logger(__name__)

ERASED_MESSAGE = "session was erased"


class Erasures:
    """Sessions erased while this process runs, and the one erasure path."""

    def __init__(self, plugins: PluginHost, jobs: JobQueue | None = None) -> None:
        self.plugins = plugins
        self.jobs = jobs
        self._lock = threading.Lock()
        self._erased: set[bytes] = set()

    def mark(self, session_id: str) -> None:
        """From now on this process's streams and jobs of the session stop before writing it."""
        with self._lock:
            self._erased.add(_digest(session_id))

    def unmark(self, session_id: str) -> None:
        with self._lock:
            self._erased.discard(_digest(session_id))

    def __contains__(self, session_id: object) -> bool:
        if not isinstance(session_id, str):
            return False
        with self._lock:
            return _digest(session_id) in self._erased

    def erase(self, session_id: str, requested_by: str) -> list[str]:
        """Erases the session everywhere; what was erased where (empty: nothing held it).

        Raises :class:`~emotion_service.plugins.manager.PluginError` when a plugin failed.
        """
        self.mark(session_id)
        erased = self.plugins.on_erase(session_id, requested_by)
        if self.jobs is not None:
            # The queue's database, when apart from the store's, holds the session's jobs (any
            # state, with their metadata and recordings); the same database: already erased above.
            rows = self.jobs.store.erase(session_id, requested_by)
            if rows:
                erased.append(f"jobs: {rows} rows")
        if not erased:
            self.unmark(session_id)
        return erased

    def session_ids_before(self, store_ids: list[str], before: object) -> list[str]:
        """``store_ids`` plus the sessions of the jobs submitted before ``before`` in the queue's database."""
        if self.jobs is None:
            return store_ids
        more = [s for s in self.jobs.store.session_ids_before(before) if s not in set(store_ids)]  # type: ignore[arg-type]
        return store_ids + more


def _digest(session_id: str) -> bytes:
    return hashlib.sha256(session_id.encode()).digest()
