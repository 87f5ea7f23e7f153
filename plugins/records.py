"""A finished or stored session as reports see it: its summary plus when it started."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Literal

from plugins.types import Alert, Result, SessionSummary


@dataclass(frozen=True)
class SessionRecord:
    """One session: ``kind`` is ``"stream"`` (windows) or ``"classify"`` (one answer)."""

    summary: SessionSummary
    started_at: datetime
    kind: Literal["stream", "classify"]

    @classmethod
    def from_summary(cls, summary: SessionSummary, ended_at: datetime | None = None) -> "SessionRecord":
        """A stream that just ended (``ended_at`` defaults to now)."""
        ended_at = ended_at or datetime.now(timezone.utc)
        return cls(summary, ended_at - timedelta(seconds=summary.duration_s), "stream")


def summarise(
    session_id: str,
    results: Sequence[Result],
    alerts: Sequence[Alert],
    metadata: dict[str, str],
    duration_s: float | None = None,
) -> SessionSummary:
    """Shares of winning windows, mean scores and the dominant label (most wins, then highest mean).

    The same rule as the live stream summary; ``duration_s`` defaults to the
    end of the last result.
    """
    labels = sorted({label for r in results for label in r.scores})
    count = len(results)
    wins = {label: sum(r.label == label for r in results) for label in labels}
    means = {label: sum(r.scores.get(label, 0.0) for r in results) / count for label in labels}
    return SessionSummary(
        session_id=session_id,
        window_count=count,
        duration_s=max((r.end_s for r in results), default=0.0) if duration_s is None else duration_s,
        dominant_label=max(labels, key=lambda label: (wins[label], means[label])) if labels else "",
        shares={label: wins[label] / count for label in labels},
        mean_scores=means,
        results=tuple(results),
        alerts=tuple(alerts),
        metadata=metadata,
        model_name=results[0].model_name if results else "",
    )
