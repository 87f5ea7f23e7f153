"""Retention: sessions older than ``retention_days`` are erased on a schedule, as an erasure would.

Every ``retention_check_s`` the server lists the sessions started before the cutoff in the
results database and erases each through the plugins' ``on_erase`` hooks (store rows, jobs,
reports, retained audio), recorded as requested by ``retention``. Off when ``retention_days``
is 0. With several replicas each runs it; an erasure of a session already gone does nothing.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import structlog

from emotion_service.plugins.manager import PluginHost
from emotion_service.server.config import Settings
from emotion_service.server.job_queue import JobQueue

log = structlog.get_logger(__name__)

REQUESTED_BY = "retention"


class Retention:
    """The periodic purge of one replica."""

    def __init__(self, settings: Settings, plugins: PluginHost, jobs: JobQueue) -> None:
        self.settings = settings
        self.plugins = plugins
        self.jobs = jobs
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Starts the schedule (nothing when retention is off)."""
        if self.settings.retention_days > 0:
            self._task = asyncio.create_task(self._loop(), name="retention")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    def purge(self, now: datetime | None = None) -> list[str]:
        """Erases every session started more than ``retention_days`` before ``now``; their ids."""
        cutoff = (now or datetime.now(UTC)) - timedelta(days=self.settings.retention_days)
        expired = self.jobs.session_ids_before(cutoff)
        for session_id in expired:
            self.plugins.on_erase(session_id, REQUESTED_BY)
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
