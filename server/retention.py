"""Retention: sessions older than ``retention_days`` are erased on a schedule, as an erasure would.

Every ``retention_check_s`` the server lists the sessions started before the cutoff in the
results store's database, and the sessions of the jobs submitted before it (a cancelled or failed
job may have made no session), and erases each as DeleteSession does (every plugin's ``on_erase``:
store rows, jobs in any state, reports, retained audio; then the job queue's database),
recorded as requested by ``retention``. Off when ``retention_days`` is 0. With several
replicas each runs it; an erasure of a session already gone does nothing.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import structlog

from emotion_service.plugins.manager import PluginHost
from emotion_service.plugins.store import ResultStore
from emotion_service.server.config import Settings
from emotion_service.server.erasure import Erasures

log = structlog.get_logger(__name__)

REQUESTED_BY = "retention"


class Retention:
    """The periodic purge of one replica."""

    def __init__(
        self, settings: Settings, plugins: PluginHost, store_url: str, erasures: Erasures | None = None
    ) -> None:
        """``store_url``: the results store's database, where the sessions are; ``erasures``: the
        server's erasure path (default: the plugins' ``on_erase`` only)."""
        self.settings = settings
        self.plugins = plugins
        self.erasures = erasures if erasures is not None else Erasures(plugins)
        self._store_url = store_url
        self._store: ResultStore | None = None
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Starts the schedule (nothing when retention is off)."""
        if self.settings.retention_days > 0:
            self._task = asyncio.create_task(self._loop(), name="retention")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        self.close()

    def close(self) -> None:
        """Closes the database connections it opened."""
        if self._store is not None:
            self._store.close()

    def purge(self, now: datetime | None = None) -> list[str]:
        """Erases every session started more than ``retention_days`` before ``now``; their ids."""
        cutoff = (now or datetime.now(UTC)) - timedelta(days=self.settings.retention_days)
        if self._store is None:
            self._store = ResultStore(self._store_url)
        expired = self.erasures.session_ids_before(self._store.session_ids_before(cutoff), cutoff)
        for session_id in expired:
            self.erasures.erase(session_id, REQUESTED_BY)
        if expired:
            log.info("retention_purged", sessions=len(expired), cutoff=cutoff.isoformat())
        return expired

    async def _loop(self) -> None:
        while True:
            try:
                await asyncio.to_thread(self.purge)
            except Exception as exc:  # the database is away or a plugin failed: try again next time
                log.warning("retention_failed", reason=f"{type(exc).__name__}: {exc}")
            await asyncio.sleep(self.settings.retention_check_s)
