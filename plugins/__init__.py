"""The ``emotion`` plugin system: hook specs, the manager, and the built-in plugins.

A plugin imports what it needs from here::

    from emotion_service.plugins import Alert, hookimpl
"""

from emotion_service.plugins.hookspecs import hookimpl
from emotion_service.plugins.types import Alert, JobSummary, PartySummary, Result, SessionSummary

__all__ = ["Alert", "JobSummary", "PartySummary", "Result", "SessionSummary", "hookimpl"]
