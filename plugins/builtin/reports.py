"""Built-in plugin ``reports``: a JSON and HTML report of every stream when it ends.

Writes ``session-<id>.json`` and ``session-<id>.html`` under ``output_dir``:
the emotion timeline with alerts marked, the distribution of emotions, the
alerts and every window. The same pages, and period summaries with trends
across sessions, come on demand from ``emotion report`` (which reads the
``store`` plugin's database).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from emotion_service.plugins.hookspecs import hookimpl
from emotion_service.plugins.reports import session_report_paths, write_session_report
from emotion_service.plugins.types import SessionRecord, SessionSummary
from emotion_service.settings import load_plugin_config, setting

NAME = "reports"


@dataclass(frozen=True)
class ReportsConfig:
    """Settings of ``[plugins.reports]`` / ``EMOTION_REPORTS_*``."""

    output_dir: str = setting("emotion-reports", "Folder the reports are written to (created when missing).")
    html: bool = setting(True, "Write the HTML page next to the JSON document.")


class Reports:
    """The ``reports`` plugin (``on_session_end``)."""

    def __init__(self, config: ReportsConfig | None = None) -> None:
        self.config = config or load_plugin_config(NAME, ReportsConfig)

    @hookimpl
    def on_session_end(self, summary: SessionSummary) -> list[str]:
        """Writes the session's report; returns the paths written."""
        paths = write_session_report(
            SessionRecord.from_summary(summary), Path(self.config.output_dir), self.config.html
        )
        return [str(path) for path in paths]

    @hookimpl
    def on_erase(self, session_id: str) -> list[str] | None:
        """Deletes the session's report files."""
        removed = [path for path in session_report_paths(session_id, Path(self.config.output_dir)) if path.exists()]
        for path in removed:
            path.unlink()
        return [f"reports: {len(removed)} files"] if removed else None
