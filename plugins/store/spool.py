"""A durable local spool: the writes the results database has not taken yet, on disk, in order.

While the database is unreachable (or slow enough that the writer's queue fills), each write
is appended as one JSON line to ``pending.jsonl`` and fsynced before the append returns, so a
result answered to a caller survives a crash of the server. :meth:`Spool.replay` hands the
spooled writes, oldest first, to a write function; a segment is deleted only once all of it
has been written. The database writes are idempotent (results keyed by session, kind and
window index; alerts by an event id), so a replay that is interrupted and repeated writes
nothing twice.

Spooled entries hold what the database would hold: scores, labels, times, metadata, and,
only when audio retention is on, the audio already encrypted.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import structlog

log = structlog.get_logger(__name__)

Entry = dict[str, Any]
PENDING = "pending.jsonl"
REPLAYING_PREFIX = "replaying-"
REJECTED = "rejected.jsonl"


class Spool:
    """Append-only JSON-lines segments under ``folder``; thread-safe."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.folder.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()

    @property
    def pending_path(self) -> Path:
        """The segment new entries are appended to."""
        return self.folder / PENDING

    def append(self, entries: Sequence[Entry]) -> None:
        """Appends ``entries`` and fsyncs: once this returns, they survive a crash."""
        if not entries:
            return
        lines = "".join(json.dumps(entry, separators=(",", ":")) + "\n" for entry in entries)
        with self._lock, open(self.pending_path, "a", encoding="utf-8") as handle:
            handle.write(lines)
            handle.flush()
            os.fsync(handle.fileno())

    def has_pending(self) -> bool:
        """Whether any entry waits for the database."""
        return any(self._segments()) or (self.pending_path.exists() and self.pending_path.stat().st_size > 0)

    def count(self) -> int:
        """How many entries wait (reads the segments: for tests and metrics, not the hot path)."""
        paths = [*self._segments(), self.pending_path]
        return sum(len(list(_read(path))) for path in paths if path.exists())

    def replay(self, write: Callable[[list[Entry]], None], batch_size: int = 500) -> int:
        """Writes every spooled entry, oldest first, in batches; returns how many were written.

        The pending segment is first renamed (so appends continue into a new one), then each
        segment is written and deleted. ``write`` raising stops the replay; what was not
        written stays for the next call (a partly written batch is written again: writes are
        idempotent).
        """
        with self._lock:
            if self.pending_path.exists() and self.pending_path.stat().st_size > 0:
                self.pending_path.rename(self.folder / f"{REPLAYING_PREFIX}{time.time_ns():020d}.jsonl")
        written = 0
        for segment in self._segments():
            entries = list(_read(segment))
            for start in range(0, len(entries), batch_size):
                write(entries[start : start + batch_size])
                written += len(entries[start : start + batch_size])
            segment.unlink()
        if written:
            log.info("spool_replayed", entries=written)
        return written

    def reject(self, entries: Sequence[Entry], reason: str) -> None:
        """Keeps entries the database refused for a reason other than being away, for a person to look at."""
        with self._lock, open(self.folder / REJECTED, "a", encoding="utf-8") as handle:
            for entry in entries:
                handle.write(json.dumps({"reason": reason, "entry": entry}, separators=(",", ":")) + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        log.error("spool_entries_rejected", count=len(entries), reason=reason, file=str(self.folder / REJECTED))

    def _segments(self) -> list[Path]:
        return sorted(self.folder.glob(f"{REPLAYING_PREFIX}*.jsonl"))


def _read(path: Path) -> Iterator[Entry]:
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            try:
                yield json.loads(line)
            except json.JSONDecodeError:
                # Only a crash in the middle of an append leaves a torn line, and only as the last
                # one: that write had not returned, so no caller was told it was stored.
                log.warning("spool_torn_line_skipped", file=str(path), line=number)
