"""Loads plugins and calls their hooks with the project's chaining and error rules."""

from __future__ import annotations

import os
from importlib.metadata import entry_points
from typing import Any, Callable

import numpy as np
import pluggy
import structlog

from plugins import hookspecs
from plugins.types import Alert, Result, SessionSummary

log = structlog.get_logger(__name__)

PROJECT = "emotion"
ENTRY_POINT_GROUP = "emotion.plugins"
PLUGINS_ENV = "EMOTION_PLUGINS"


class PluginError(RuntimeError):
    """A plugin raised inside a hook whose failure fails the request."""

    def __init__(self, plugin: str, hook: str, cause: BaseException) -> None:
        super().__init__(f"plugin {plugin!r} failed in {hook}: {type(cause).__name__}: {cause}")
        self.plugin = plugin
        self.hook = hook


class PluginHost:
    """The plugin manager plus the calling conventions documented in :mod:`plugins.hookspecs`."""

    def __init__(self, pm: pluggy.PluginManager) -> None:
        self.pm = pm

    def names(self) -> list[str]:
        """Registered plugin names, in registration order."""
        return [name for name, _ in self.pm.list_name_plugin()]

    def preprocess(self, waveform: np.ndarray, sample_rate: int, context: dict[str, Any]) -> np.ndarray:
        """Runs the ``preprocess`` chain; raises :class:`PluginError`."""
        return self._chain("preprocess", waveform, sample_rate=sample_rate, context=context)

    def augment(self, waveform: np.ndarray, sample_rate: int, rng: np.random.Generator) -> np.ndarray:
        """Runs the ``augment`` chain; raises :class:`PluginError`."""
        return self._chain("augment", waveform, sample_rate=sample_rate, rng=rng)

    def on_result(self, result: Result) -> list[Alert]:
        """Calls every ``on_result``; returns their alerts, skipping plugins that raise."""
        alerts: list[Alert] = []
        for returned in self._each("on_result", result=result):
            alerts.extend(returned or [])
        return alerts

    def on_alert(self, alert: Alert, session_id: str) -> None:
        """Hands an alert to every sink."""
        self._each("on_alert", alert=alert, session_id=session_id)

    def on_session_end(self, summary: SessionSummary) -> list[str]:
        """Calls every ``on_session_end``; returns what they wrote."""
        written: list[str] = []
        for returned in self._each("on_session_end", summary=summary):
            written.extend(returned or [])
        return written

    def _impls(self, hook: str) -> list[pluggy.HookImpl]:
        # pluggy stores implementations in reverse call order.
        return list(reversed(getattr(self.pm.hook, hook).get_hookimpls()))

    def _chain(self, hook: str, waveform: np.ndarray, **kwargs: Any) -> np.ndarray:
        for impl in self._impls(hook):
            available = {"waveform": waveform, **kwargs}
            try:
                out = impl.function(**{name: available[name] for name in impl.argnames})
            except Exception as exc:
                log.exception("plugin_failed", plugin=impl.plugin_name, hook=hook)
                raise PluginError(impl.plugin_name, hook, exc) from exc
            if out is not None:
                waveform = np.asarray(out, dtype=np.float32)
        return waveform

    def _each(self, hook: str, **kwargs: Any) -> list[Any]:
        results = []
        for impl in self._impls(hook):
            call: Callable[..., Any] = impl.function
            try:
                results.append(call(**{name: kwargs[name] for name in impl.argnames}))
            except Exception:
                log.exception("plugin_failed", plugin=impl.plugin_name, hook=hook)
        return results


def load_plugins(selection: str | None = None) -> PluginHost:
    """Registers the plugins of entry-point group ``emotion.plugins``, built-ins included.

    ``selection`` (default ``$EMOTION_PLUGINS``): empty or ``all`` loads every
    installed plugin, ``none`` loads none, otherwise a comma-separated list of
    entry-point names to load.
    """
    selection = (os.environ.get(PLUGINS_ENV, "all") if selection is None else selection).strip()
    wanted = None if selection in ("", "all") else {n.strip() for n in selection.split(",") if n.strip()}
    pm = pluggy.PluginManager(PROJECT)
    pm.add_hookspecs(hookspecs)
    for entry in entry_points(group=ENTRY_POINT_GROUP):
        if wanted is None or entry.name in wanted:
            pm.register(entry.load(), name=entry.name)
    log.debug("plugins_loaded", plugins=[name for name, _ in pm.list_name_plugin()])
    return PluginHost(pm)
