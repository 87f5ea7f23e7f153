"""Reports of sessions and periods: JSON documents and self-contained HTML pages with matplotlib plots."""

from emotion_service.plugins.reports.documents import write_period_report, write_session_report

__all__ = ["write_period_report", "write_session_report"]
