"""Reports of sessions and periods: JSON documents and self-contained HTML pages with matplotlib plots."""

from emotion_service.plugins.reports.documents import session_report_paths, write_period_report, write_session_report

__all__ = ["session_report_paths", "write_period_report", "write_session_report"]
