"""Settings of plugins, read like the server's own: environment > TOML file > defaults.

A plugin describes its settings as a frozen dataclass whose fields are made
with :func:`setting`. :func:`load_plugin_config` fills it from

1. the ``[plugins.<name>]`` table of the TOML file named by ``$EMOTION_CONFIG``
   (the same file as the server's settings), then
2. environment variables ``EMOTION_<NAME>_<KEY>`` (upper case; a field may name
   another variable, e.g. the store's ``EMOTION_DATABASE_URL``), which win.

Supported field types: ``str``, ``int``, ``float``, ``bool`` and
``dict[str, float]`` (TOML: an inline table; environment: ``"ANG=0.6,SAD=0.7"``).
"""

from __future__ import annotations

import dataclasses
import os
import re
import tomllib
import typing
from pathlib import Path
from typing import Any, Mapping, TypeVar

from server.config import ConfigError

CONFIG_ENV = "EMOTION_CONFIG"
ENV_PREFIX = "EMOTION_"

C = TypeVar("C")


def setting(default: Any, help: str, env: str | None = None) -> Any:
    """A plugin setting: its default, one line of help, and optionally its own environment variable."""
    metadata = {"help": help, "env": env}
    if isinstance(default, dict):
        return dataclasses.field(default_factory=lambda: dict(default), metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


def env_var(plugin: str, field: dataclasses.Field[Any]) -> str:
    """The environment variable of one setting: its own name, or ``EMOTION_<PLUGIN>_<KEY>``."""
    return field.metadata.get("env") or ENV_PREFIX + re.sub(r"\W", "_", f"{plugin}_{field.name}").upper()


def load_plugin_config(
    plugin: str,
    cls: type[C],
    environ: Mapping[str, str] | None = None,
    config_file: Path | None = None,
) -> C:
    """Builds ``cls`` from the plugin's TOML table and environment variables.

    ``config_file`` defaults to ``$EMOTION_CONFIG``. Raises :class:`ConfigError`
    naming the plugin, the key and where the bad value came from.
    """
    environ = os.environ if environ is None else environ
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    types = typing.get_type_hints(cls)
    path = config_file or (Path(environ[CONFIG_ENV]) if environ.get(CONFIG_ENV) else None)
    values: dict[str, Any] = {}
    if path is not None:
        table = _plugin_table(path, plugin)
        unknown = sorted(set(table) - set(fields))
        if unknown:
            raise ConfigError(
                f"config file {path}: [plugins.{plugin}] has unknown setting(s) {', '.join(unknown)}; known: {', '.join(fields)}"
            )
        for name, raw in table.items():
            values[name] = _coerce(types[name], raw, f"config file {path}: [plugins.{plugin}] {name}")
    for name, f in fields.items():
        var = env_var(plugin, f)
        raw = environ.get(var)
        if raw is not None and raw != "":
            values[name] = _coerce(types[name], raw, f"environment variable {var}")
    return cls(**values)


def _plugin_table(path: Path, plugin: str) -> dict[str, Any]:
    """The ``[plugins.<plugin>]`` table of a TOML file (empty when absent)."""
    try:
        data = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}") from None
    table = data.get("plugins", {}).get(plugin, {})
    if not isinstance(table, dict):
        raise ConfigError(f"config file {path}: plugins.{plugin} must be a table")
    return table


def check(plugin: str, checks: Mapping[str, tuple[bool, str]]) -> None:
    """Raises :class:`ConfigError` for the first failed check: ``{key: (ok, what is expected)}``."""
    for key, (ok, expected) in checks.items():
        if not ok:
            raise ConfigError(f"plugin {plugin!r}: invalid {key}: {expected}")


def _coerce(kind: Any, raw: Any, where: str) -> Any:
    try:
        if typing.get_origin(kind) is dict:
            items = _parse_pairs(raw) if isinstance(raw, str) else dict(raw)
            return {str(k): float(v) for k, v in items.items()}
        if kind is bool:
            if isinstance(raw, bool):
                return raw
            if str(raw).lower() not in ("1", "true", "yes", "on", "0", "false", "no", "off"):
                raise ValueError(raw)
            return str(raw).lower() in ("1", "true", "yes", "on")
        if kind in (int, float) and isinstance(raw, bool):
            raise ValueError(raw)
        return kind(raw)
    except (TypeError, ValueError):
        expected = "LABEL=NUMBER pairs separated by commas" if typing.get_origin(kind) is dict else kind.__name__
        raise ConfigError(f"{where}: expected {expected}, got {raw!r}") from None


def _parse_pairs(raw: str) -> dict[str, str]:
    pairs = {}
    for item in filter(None, (part.strip() for part in raw.split(","))):
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(item)
        pairs[key.strip()] = value.strip()
    return pairs
