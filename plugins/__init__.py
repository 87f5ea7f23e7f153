"""The ``emotion`` plugin system: hook specs, the manager, and the built-in plugins.

A plugin imports what it needs from here::

    from plugins import Alert, hookimpl
"""

from plugins.hookspecs import hookimpl
from plugins.types import Alert, Result, SessionSummary

__all__ = ["Alert", "Result", "SessionSummary", "hookimpl"]
