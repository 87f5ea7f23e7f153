"""The one settings loader, for the service and for every plugin, strict.

A group of settings is a frozen dataclass whose fields are made with :func:`setting`
(a default, one line of help, optionally an environment variable of its own).
:func:`load` fills it from, in rising precedence,

1. the defaults written in the dataclass,
2. one table of the TOML file named by ``--config`` or ``$EMOTION_CONFIG``
   (the service's own keys at the top level or under ``[server]``; a plugin's under
   ``[plugins.<name>]``),
3. ``EMOTION_*`` environment variables (``EMOTION_MAX_BATCH_SIZE``; a plugin's are
   ``EMOTION_<PLUGIN>_<KEY>`` unless the field names its own),
4. command-line flags (the service only: :func:`add_arguments`).

Every value is checked against its field's type *without* loose conversions: TOML
``max_batch_size = true`` or ``port = 6000.9``, or ``EMOTION_INSECURE=ture``, fail at
start with a :class:`ConfigError` that names the key, where the value came from and
what was expected, as does an unknown key in a table. A hand-written checker is used
rather than pydantic: pydantic's lax mode turns ``true`` into ``1`` for an ``int``
field, the very conversion this module exists to refuse, and its strict mode rejects
every environment string.

Supported field types: ``str``, ``int``, ``float``, ``bool`` and ``dict[str, float]``
(TOML: an inline table; environment: ``"ANG=0.6,SAD=0.7"``).
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import os
import re
import tomllib
import typing
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

CONFIG_ENV = "EMOTION_CONFIG"
ENV_PREFIX = "EMOTION_"
_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")

C = TypeVar("C")


class ConfigError(ValueError):
    """A setting has a value the service cannot use; the message names it and its source."""


def setting(default: Any, help: str, env: str | None = None, metavar: str | None = None) -> Any:
    """A field of a settings dataclass: its default, one line of help, optionally its own variable."""
    metadata = {"help": help, "env": env, "metavar": metavar}
    if isinstance(default, dict):
        return dataclasses.field(default_factory=lambda: dict(default), metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


def fields_of(cls: type) -> dict[str, dataclasses.Field[Any]]:
    """The settings dataclass's fields by name."""
    return {f.name: f for f in dataclasses.fields(cls)}


def help_of(cls: type, name: str) -> str:
    """The help line of one setting."""
    return fields_of(cls)[name].metadata["help"]


def config_path(environ: Mapping[str, str] | None = None, config_file: Path | None = None) -> Path | None:
    """The TOML file in force: ``config_file`` when given, else ``$EMOTION_CONFIG``, else none."""
    environ = os.environ if environ is None else environ
    return config_file or (Path(environ[CONFIG_ENV]) if environ.get(CONFIG_ENV) else None)


def load(
    cls: type[C],
    *,
    table: Callable[[dict[str, Any]], tuple[str, dict[str, Any]]],
    env_var: Callable[[dataclasses.Field[Any]], str],
    overrides: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
    config_file: Path | None = None,
    defaults: Mapping[str, Any] | None = None,
) -> C:
    """Builds ``cls`` from defaults < TOML table < environment < ``overrides`` (flags).

    ``defaults`` replaces the dataclass's own defaults for the fields it names (e.g. what a model's
    calibration chose); whatever the file, the environment or a flag sets still wins over them.

    ``table`` picks this group's table out of the parsed TOML file and names it (for
    messages); ``env_var`` names a field's environment variable. ``overrides`` values
    of ``None`` mean "not given". A check in the dataclass's ``__post_init__`` that
    raises :class:`ConfigError` via :func:`check` gets the failing value's source added.
    A class may define ``derived_settings(values, given) -> values``: settings that follow others
    unless given themselves (``given``: the names a file, the environment or a flag set).
    """
    environ = os.environ if environ is None else environ
    fields = fields_of(cls)
    types = typing.get_type_hints(cls)
    values: dict[str, Any] = {key: value for key, value in (defaults or {}).items() if key in fields}
    sources: dict[str, str] = {key: "the model's calibration" for key in values}
    path = config_path(environ, config_file)
    if path is not None:
        name, data = table(read_toml(path))
        if not isinstance(data, dict):
            raise ConfigError(f"config file {path}: {name} must be a table")
        unknown = sorted(set(data) - set(fields))
        if unknown:
            raise ConfigError(
                f"config file {path}: {name} has unknown setting(s) {', '.join(unknown)}; known: {', '.join(fields)}"
            )
        for key, raw in data.items():
            sources[key] = f"config file {path}, {name}"
            values[key] = coerce(types[key], raw, f"{key} (from {sources[key]})", text=False)
    for key, f in fields.items():
        var = env_var(f)
        raw = environ.get(var)
        if raw is not None and raw != "":
            sources[key] = f"environment variable {var}"
            values[key] = coerce(types[key], raw, f"{key} (from {sources[key]})", text=True)
    for key, raw in (overrides or {}).items():
        if raw is not None:
            sources[key] = f"flag --{key.replace('_', '-')}"
            values[key] = coerce(types[key], raw, f"{key} (from {sources[key]})", text=False)
    derive = getattr(cls, "derived_settings", None)
    if derive is not None:
        given = {key for key, source in sources.items() if source != "the model's calibration"}
        values = derive(values, given)
    try:
        return cls(**values)
    except _CheckFailed as failed:
        where = sources.get(failed.key, "the default")
        raise ConfigError(f"{failed} (set by {where})") from None


class _CheckFailed(ConfigError):
    def __init__(self, message: str, key: str) -> None:
        super().__init__(message)
        self.key = key


def check(owner: str, settings: Any, checks: Mapping[str, tuple[bool, str]]) -> None:
    """Raises :class:`ConfigError` for the first failed check: ``{key: (ok, what is expected)}``.

    Call it from a settings dataclass's ``__post_init__``; :func:`load` adds where the
    failing value came from.
    """
    for key, (ok, expected) in checks.items():
        if not ok:
            raise _CheckFailed(f"{owner}: invalid {key}={getattr(settings, key)!r}: {expected}", key)


def read_toml(path: Path) -> dict[str, Any]:
    """A parsed TOML file, or a :class:`ConfigError` saying why it cannot be read."""
    try:
        return tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}") from None


def coerce(kind: Any, raw: Any, where: str, text: bool) -> Any:
    """``raw`` as a value of ``kind``, strictly.

    ``text`` says the value is text to parse (an environment variable); otherwise it is a
    typed value (TOML, a parsed flag) that must already have the field's type.
    """
    expected = _expected(kind)
    if not text and isinstance(raw, str) and kind is not str and typing.get_origin(kind) is not dict:
        raise ConfigError(f"{where}: expected {expected}, got {raw!r}")
    try:
        if typing.get_origin(kind) is dict:
            items = _parse_pairs(raw) if isinstance(raw, str) else raw
            if not isinstance(items, Mapping):
                raise ValueError(raw)
            return {str(k): _number(float, v) for k, v in items.items()}
        if kind is bool:
            if isinstance(raw, bool):
                return raw
            if isinstance(raw, str) and raw.strip().lower() in _TRUE + _FALSE:
                return raw.strip().lower() in _TRUE
            raise ValueError(raw)
        if kind in (int, float):
            return _number(kind, raw)
        if kind is str:
            if isinstance(raw, (str, Path)):
                return str(raw)
            raise ValueError(raw)
    except (TypeError, ValueError, OverflowError):
        raise ConfigError(f"{where}: expected {expected}, got {raw!r}") from None
    raise ConfigError(f"{where}: settings of type {kind!r} are not supported")


def _number(kind: type, raw: Any) -> Any:
    if isinstance(raw, bool):
        raise ValueError(raw)
    if isinstance(raw, str):
        raw = raw.strip()
        value = int(raw, 10) if kind is int else float(raw)
    elif kind is int and isinstance(raw, int):
        value = raw
    elif kind is float and isinstance(raw, (int, float)):
        value = float(raw)
    else:
        raise ValueError(raw)
    if kind is float and not math.isfinite(value):
        raise ValueError(raw)
    return value


def _expected(kind: Any) -> str:
    if typing.get_origin(kind) is dict:
        return "LABEL=NUMBER pairs (a TOML table, or comma-separated in the environment)"
    if kind is bool:
        return "a boolean (true/false; in the environment 1/0, true/false, yes/no or on/off)"
    return {int: "a whole number", float: "a number", str: "a string"}.get(kind, repr(kind))


def _parse_pairs(raw: str) -> dict[str, str]:
    pairs = {}
    for item in filter(None, (part.strip() for part in raw.split(","))):
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(item)
        pairs[key.strip()] = value.strip()
    return pairs


def plugin_env_var(plugin: str, field: dataclasses.Field[Any]) -> str:
    """The environment variable of one plugin setting: its own name, or ``EMOTION_<PLUGIN>_<KEY>``."""
    return field.metadata.get("env") or ENV_PREFIX + re.sub(r"\W", "_", f"{plugin}_{field.name}").upper()


def load_plugin_config(
    plugin: str,
    cls: type[C],
    environ: Mapping[str, str] | None = None,
    config_file: Path | None = None,
    defaults: Mapping[str, Any] | None = None,
) -> C:
    """A plugin's settings from its ``[plugins.<plugin>]`` table and ``EMOTION_<PLUGIN>_*`` variables
    (over ``defaults``, see :func:`load`)."""

    def table(data: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        return f"[plugins.{plugin}]", data.get("plugins", {}).get(plugin, {})

    return load(
        cls,
        table=table,
        env_var=lambda f: plugin_env_var(plugin, f),
        environ=environ,
        config_file=config_file,
        defaults=defaults,
    )


_DEFAULT_METAVARS = {int: "N", float: "NUM", str: "TEXT"}


def add_arguments(parser: argparse.ArgumentParser, cls: type, env_var: Callable[[dataclasses.Field[Any]], str]) -> None:
    """Adds one ``--flag`` per field; defaults stay ``None`` so an unset flag overrides nothing."""
    types = typing.get_type_hints(cls)
    for name, f in fields_of(cls).items():
        kind = types[name]
        help_text = f"{f.metadata['help']} [env {env_var(f)}; default: {f.default}]"
        flag = "--" + name.replace("_", "-")
        if kind is bool:
            parser.add_argument(flag, dest=name, action=argparse.BooleanOptionalAction, default=None, help=help_text)
            continue
        parser.add_argument(
            flag,
            dest=name,
            type=kind,
            default=None,
            metavar=f.metadata.get("metavar") or _DEFAULT_METAVARS[kind],
            help=help_text,
        )


def flag_values(args: argparse.Namespace, cls: type) -> dict[str, Any]:
    """The parsed flags of ``cls``'s fields (``None`` where not given)."""
    return {name: getattr(args, name, None) for name in fields_of(cls)}
