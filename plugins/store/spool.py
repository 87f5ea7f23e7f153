"""A durable local spool: the writes the results database has not taken yet, on disk, in order.

While the database is unreachable (or slow enough that the writer's queue fills), each write is
inserted into ``spool.db``, a local SQLite file in WAL mode with ``synchronous=FULL``: once
:meth:`Spool.append` returns, the write survives a crash of the server, and a crash in the middle
of an append leaves the file as it was before that append (SQLite's journal, not a hand-written
format, decides what a torn write means). :meth:`Spool.replay` hands the spooled writes, oldest
first, to a write function and deletes each batch only once it was written. The database writes
are idempotent (results keyed by session, kind and window index; alerts by an event id derived
from what they are), so a replay that is interrupted and repeated writes nothing twice.

Spooled entries hold what the database would hold: scores, labels, times, metadata, and, only
when audio retention is on, the audio already encrypted. Erasure (:meth:`Spool.erase`) deletes a
session's pending and rejected writes with SQLite's ``secure_delete`` on and checkpoints the WAL,
so no byte of them stays in the file.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import structlog

log = structlog.get_logger(__name__)

Entry = dict[str, Any]
DATABASE = "spool.db"
# The JSON-lines files of earlier versions; read once into spool.db, then deleted.
_LEGACY = ("replaying-*.jsonl", "pending.jsonl")
_LEGACY_REJECTED = "rejected.jsonl"
_SCHEMA = """
CREATE TABLE IF NOT EXISTS pending (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, session_id TEXT, entry TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS pending_session ON pending (session_id);
CREATE TABLE IF NOT EXISTS rejected (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, session_id TEXT, reason TEXT NOT NULL, entry TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS rejected_session ON rejected (session_id);
"""


class Spool:
    """Pending writes in a local SQLite file under ``folder``; thread-safe."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.folder.mkdir(parents=True, exist_ok=True)
        self.path = folder / DATABASE
        self._lock = threading.Lock()
        # One connection, used under the lock: appends come from the writer thread and the
        # callers' threads (a full queue spills over), replays from the writer thread.
        self._conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=FULL")  # an append that returned is on disk
        self._conn.execute("PRAGMA secure_delete=ON")  # deleted rows are zeroed, not left in free pages
        self._conn.executescript(_SCHEMA)
        self._import_legacy()

    def append(self, entries: Sequence[Entry]) -> None:
        """Stores ``entries`` durably: once this returns, they survive a crash."""
        if not entries:
            return
        rows = [(entry.get("session_id"), json.dumps(entry, separators=(",", ":"))) for entry in entries]
        with self._transaction() as conn:
            conn.executemany("INSERT INTO pending (session_id, entry) VALUES (?, ?)", rows)

    def has_pending(self) -> bool:
        """Whether any entry waits for the database."""
        with self._lock:
            return self._conn.execute("SELECT 1 FROM pending LIMIT 1").fetchone() is not None

    def count(self) -> int:
        """How many entries wait."""
        with self._lock:
            return int(self._conn.execute("SELECT count(*) FROM pending").fetchone()[0])

    def replay(self, write: Callable[[list[Entry]], None], batch_size: int = 500) -> int:
        """Writes every entry spooled before this call, oldest first, in batches; returns how many.

        Each batch is deleted once ``write`` returns. ``write`` raising stops the replay; what
        was not confirmed stays for the next call (a batch written but not confirmed is written
        again: writes are idempotent). Entries appended meanwhile wait for the next replay.
        """
        with self._lock:
            last = self._conn.execute("SELECT coalesce(max(seq), 0) FROM pending").fetchone()[0]
        written, after = 0, 0
        while True:
            with self._lock:
                rows = self._conn.execute(
                    "SELECT seq, entry FROM pending WHERE seq > ? AND seq <= ? ORDER BY seq LIMIT ?",
                    (after, last, batch_size),
                ).fetchall()
            if not rows:
                break
            write([json.loads(entry) for _, entry in rows])
            after = rows[-1][0]
            with self._transaction() as conn:
                conn.execute("DELETE FROM pending WHERE seq <= ?", (after,))
            written += len(rows)
        if written:
            log.info("spool_replayed", entries=written)
        return written

    def reject(self, entries: Sequence[Entry], reason: str) -> None:
        """Keeps entries the database refused for a reason other than being away, for a person to look at."""
        rows = [(entry.get("session_id"), reason, json.dumps(entry, separators=(",", ":"))) for entry in entries]
        with self._transaction() as conn:
            conn.executemany("INSERT INTO rejected (session_id, reason, entry) VALUES (?, ?, ?)", rows)
        log.error("spool_entries_rejected", count=len(entries), reason=reason, file=str(self.path))

    def rejected(self) -> list[tuple[str, Entry]]:
        """The refused entries with their reasons, oldest first."""
        with self._lock:
            rows = self._conn.execute("SELECT reason, entry FROM rejected ORDER BY seq").fetchall()
        return [(reason, json.loads(entry)) for reason, entry in rows]

    def erase(self, session_id: str) -> int:
        """Deletes the session's pending and rejected entries and every trace of them in the file."""
        with self._transaction() as conn:
            deleted = conn.execute("DELETE FROM pending WHERE session_id = ?", (session_id,)).rowcount
            deleted += conn.execute("DELETE FROM rejected WHERE session_id = ?", (session_id,)).rowcount
        self.compact()
        return deleted

    def compact(self) -> None:
        """Moves the WAL into the file and truncates it, then rewrites the file without free pages."""
        with self._lock:
            self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            self._conn.execute("VACUUM")
            self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._conn
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    def _import_legacy(self) -> None:
        """Moves the JSON-lines files an earlier version left into the database, in order."""
        for pattern in _LEGACY:
            for path in sorted(self.folder.glob(pattern)):
                self.append(list(_read_lines(path)))
                path.unlink()
                log.info("spool_legacy_segment_imported", file=str(path))
        legacy_rejected = self.folder / _LEGACY_REJECTED
        if legacy_rejected.exists():
            for line in _read_lines(legacy_rejected):
                self.reject([line.get("entry", {})], str(line.get("reason", "")))
            legacy_rejected.unlink()


def _read_lines(path: Path) -> Iterator[Entry]:
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            try:
                yield json.loads(line)
            except json.JSONDecodeError:  # the old format's torn last line: that append never returned
                log.warning("spool_torn_line_skipped", file=str(path), line=number)
