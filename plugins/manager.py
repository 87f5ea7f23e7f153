"""Loads plugins and calls their hooks with the project's chaining and error rules."""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from dataclasses import dataclass
from importlib.metadata import EntryPoint, entry_points
from types import ModuleType
from typing import Any

import numpy as np
import pluggy
import structlog

from emotion_service.plugins import hookspecs
from emotion_service.plugins.types import Alert, JobSummary, Result, SessionSummary
from emotion_service.settings import ConfigError

log = structlog.get_logger(__name__)

PROJECT = "emotion"
ENTRY_POINT_GROUP = "emotion.plugins"
PLUGINS_ENV = "EMOTION_PLUGINS"
TRACE_ENV = "EMOTION_TRACE_PLUGINS"
BUILTIN_DISTRIBUTION = "emotion-service"
HOOKS = (
    "preprocess",
    "augment",
    "on_result",
    "on_alert",
    "on_session_end",
    "on_job_end",
    "on_model_loaded",
    "on_shutdown",
    "on_erase",
)


class PluginError(RuntimeError):
    """A plugin raised inside a hook whose failure fails the request."""

    def __init__(self, plugin: str, hook: str, cause: BaseException) -> None:
        super().__init__(f"plugin {plugin!r} failed in {hook}: {type(cause).__name__}: {cause}")
        self.plugin = plugin
        self.hook = hook
        self.cause = cause


class PluginLoadError(ConfigError):
    """A plugin could not be found, imported, built or validated; the message names it."""


@dataclass(frozen=True)
class PluginInfo:
    """What ``emotion plugins`` shows about one loaded plugin."""

    name: str
    hooks: tuple[str, ...]
    source: str
    distribution: str


class PluginHost:
    """The plugin manager plus the calling conventions documented in :mod:`plugins.hookspecs`.

    Hooks may be called from several threads at once (one per request);
    plugins keep their own state thread-safe. With ``trace`` on (default:
    ``$EMOTION_TRACE_PLUGINS=1``), every hook call is logged as a ``plugin_call``
    event with the plugin, the hook, its duration and its outcome, as datasette's
    ``DATASETTE_TRACE_PLUGINS`` does; request and session ids come from the log context.
    """

    def __init__(
        self,
        pm: pluggy.PluginManager,
        sources: Mapping[str, tuple[str, str]] | None = None,
        trace: bool | None = None,
    ) -> None:
        self.pm = pm
        self._sources = dict(sources or {})
        self.trace = (
            os.environ.get(TRACE_ENV, "").strip().lower() in ("1", "true", "yes", "on") if trace is None else trace
        )

    def names(self) -> list[str]:
        """Registered plugin names, in registration order."""
        return [name for name, _ in self.pm.list_name_plugin()]

    def call_order(self, hook: str) -> list[str]:
        """Names of the plugins implementing ``hook``, in the order they are called."""
        return [impl.plugin_name for impl in self._impls(hook)]

    def describe(self) -> list[PluginInfo]:
        """Each plugin with its hooks and where it comes from, in registration order."""
        infos = []
        for name, plugin in self.pm.list_name_plugin():
            hooks = tuple(hook for hook in HOOKS if name in self.call_order(hook))
            source, distribution = self._sources.get(name, (_qualified_name(plugin), ""))
            infos.append(PluginInfo(name, hooks, source, distribution))
        return infos

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
        """Calls every ``on_session_end``; returns (and logs) what they wrote."""
        written: list[str] = []
        for returned in self._each("on_session_end", summary=summary):
            written.extend(returned or [])
        if written:
            log.info("session_reports_written", session_id=summary.session_id, written=written)
        return written

    def on_job_end(self, job: JobSummary) -> None:
        """Tells every plugin a job ended."""
        self._each("on_job_end", job=job)

    def on_erase(self, session_id: str, requested_by: str) -> list[str]:
        """Every plugin removes what it holds of the session; raises :class:`PluginError` if one fails."""
        erased: list[str] = []
        for returned in self._each("on_erase", strict=True, session_id=session_id, requested_by=requested_by):
            erased.extend(returned or [])
        log.info("session_erased", session_id=session_id, requested_by=requested_by, erased=erased)
        return erased

    def on_model_loaded(self, model_name: str, model_folder: str, labels: list[str]) -> None:
        """Tells every plugin which model is about to be served."""
        self._each("on_model_loaded", model_name=model_name, model_folder=model_folder, labels=labels)

    def on_shutdown(self) -> None:
        """Lets every plugin flush and close."""
        self._each("on_shutdown")

    def flush(self, timeout: float = 30.0) -> bool:
        """Waits for the plugins' sink queues to empty (plugins with a ``flush(timeout)`` method); for tests."""
        return all(
            plugin.flush(timeout) for plugin in self.pm.get_plugins() if callable(getattr(plugin, "flush", None))
        )

    def _impls(self, hook: str) -> list[pluggy.HookImpl]:
        # pluggy stores implementations in reverse call order.
        return list(reversed(getattr(self.pm.hook, hook).get_hookimpls()))

    def _call(self, impl: pluggy.HookImpl, hook: str, available: Mapping[str, Any]) -> Any:
        """One hook implementation, called with the arguments it names; traced when asked."""
        started = time.perf_counter()
        outcome = "error"
        try:
            returned = impl.function(**{name: available[name] for name in impl.argnames})
            outcome = "ok" if returned is None else f"returned {type(returned).__name__}"
            return returned
        finally:
            if self.trace:
                log.info(
                    "plugin_call",
                    plugin=impl.plugin_name,
                    hook=hook,
                    duration_ms=round((time.perf_counter() - started) * 1000, 3),
                    outcome=outcome,
                )

    def _chain(self, hook: str, waveform: np.ndarray, **kwargs: Any) -> np.ndarray:
        for impl in self._impls(hook):
            try:
                out = self._call(impl, hook, {"waveform": waveform, **kwargs})
            except Exception as exc:
                log.exception("plugin_failed", plugin=impl.plugin_name, hook=hook)
                raise PluginError(impl.plugin_name, hook, exc) from exc
            if out is not None:
                waveform = np.asarray(out, dtype=np.float32)
        return waveform

    def _each(self, hook: str, strict: bool = False, **kwargs: Any) -> list[Any]:
        # Per-plugin isolation: one plugin raising never keeps the others from their turn, unless
        # ``strict`` (an erasure must not be reported done when a plugin failed it).
        results = []
        for impl in self._impls(hook):
            try:
                results.append(self._call(impl, hook, kwargs))
            except Exception as exc:
                log.exception("plugin_failed", plugin=impl.plugin_name, hook=hook)
                if strict:
                    raise PluginError(impl.plugin_name, hook, exc) from exc
        return results


def load_plugins(selection: str | None = None) -> PluginHost:
    """Registers the plugins of entry-point group ``emotion.plugins``, built-ins included.

    ``selection`` (default ``$EMOTION_PLUGINS``): empty or ``all`` loads every
    installed plugin, ``none`` loads none, otherwise a comma-separated list of
    entry-point names to load. An entry point names a module (its functions are
    the hook implementations) or a class (built once per call, with no
    arguments, so each host gets its own state).

    Built-ins (the ``emotion-service`` distribution) are registered first, by
    name, then third-party plugins by distribution and name; pluggy calls the
    last registered first, so third-party implementations run before the
    built-ins unless ``tryfirst``/``trylast`` say otherwise.

    Raises :class:`PluginLoadError` naming the plugin when one is unknown,
    fails to import or build, or implements a hook that does not exist.
    """
    selection = (os.environ.get(PLUGINS_ENV, "all") if selection is None else selection).strip()
    available = _entry_points()
    if selection in ("", "all"):
        wanted = list(available)
    elif selection == "none":
        wanted = []
    else:
        names = {n.strip() for n in selection.split(",") if n.strip()}
        unknown = sorted(names - set(available))
        if unknown:
            raise PluginLoadError(
                f"{PLUGINS_ENV} names unknown plugin(s) {', '.join(unknown)}; installed: {', '.join(available) or 'none'} "
                "(or 'all' / 'none')"
            )
        wanted = [name for name in available if name in names]
    plugins: dict[str, object] = {}
    sources: dict[str, tuple[str, str]] = {}
    for name in wanted:
        entry = available[name]
        plugins[name] = _build(entry)
        sources[name] = (entry.value, _distribution(entry))
    host = build_host(plugins, sources)
    log.info("plugins_loaded", plugins=host.names())
    return host


def build_host(
    plugins: Mapping[str, object], sources: Mapping[str, tuple[str, str]] | None = None, trace: bool | None = None
) -> PluginHost:
    """A host of already-built plugins, registered in the mapping's order (tests, embedding)."""
    pm = pluggy.PluginManager(PROJECT)
    pm.add_hookspecs(hookspecs)
    for name, plugin in plugins.items():
        try:
            pm.register(plugin, name=name)
        except pluggy.PluginValidationError as exc:
            raise PluginLoadError(f"plugin {name!r} is invalid: {exc}") from exc
        for impl in (i for hook in HOOKS for i in getattr(pm.hook, hook).get_hookimpls() if i.plugin_name == name):
            if impl.hookwrapper or impl.wrapper:
                raise PluginLoadError(f"plugin {name!r}: hook wrappers are not supported ({impl.function.__name__})")
    try:
        pm.check_pending()
    except pluggy.PluginValidationError as exc:
        raise PluginLoadError(
            f"plugin {pm.get_name(exc.plugin)!r} implements a hook that does not exist: {exc}"
        ) from exc
    return PluginHost(pm, sources, trace)


def _entry_points() -> dict[str, EntryPoint]:
    """Installed plugins by name: built-ins first (by name), then the others by distribution and name."""
    found = entry_points(group=ENTRY_POINT_GROUP)
    ordered = sorted(
        found, key=lambda e: (_distribution_name(e) != BUILTIN_DISTRIBUTION, _distribution_name(e), e.name)
    )
    by_name: dict[str, EntryPoint] = {}
    for entry in ordered:
        if entry.name in by_name and by_name[entry.name].value != entry.value:
            raise PluginLoadError(
                f"two plugins are named {entry.name!r}: {by_name[entry.name].value} and {entry.value}; uninstall one"
            )
        by_name[entry.name] = entry
    return by_name


def _build(entry: EntryPoint) -> object:
    try:
        loaded = entry.load()
        return loaded() if isinstance(loaded, type) else loaded
    except ConfigError as exc:
        raise PluginLoadError(f"plugin {entry.name!r} is misconfigured: {exc}") from exc
    except Exception as exc:
        raise PluginLoadError(
            f"plugin {entry.name!r} ({entry.value}) failed to load: {type(exc).__name__}: {exc}"
        ) from exc


def _distribution_name(entry: EntryPoint) -> str:
    return entry.dist.metadata["Name"] if entry.dist is not None else ""


def _distribution(entry: EntryPoint) -> str:
    return f"{entry.dist.metadata['Name']} {entry.dist.version}" if entry.dist is not None else ""


def _qualified_name(plugin: object) -> str:
    if isinstance(plugin, ModuleType):
        return plugin.__name__
    kind = type(plugin)
    return f"{kind.__module__}:{kind.__qualname__}"
