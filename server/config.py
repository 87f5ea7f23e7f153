"""The one settings object of the service.

Every field is a flag (``--max-batch-size``), an environment variable
(``EMOTION_MAX_BATCH_SIZE``) and a key of a TOML file (``max_batch_size``), in
that order of precedence, over the defaults written here.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import tomllib
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

REPO_ROOT = Path(__file__).resolve().parent.parent
BUNDLED_MODEL = REPO_ROOT / "models" / "emotion-logmel-cnn"
ENV_PREFIX = "EMOTION_"
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1", "[::1]")


class ConfigError(ValueError):
    """A setting has a value the service cannot use; the message names it."""


def _help(text: str, **kwargs: Any) -> Any:
    return field(metadata={"help": text}, **kwargs)


@dataclass(frozen=True)
class Settings:
    """Settings of ``emotion serve``."""

    host: str = _help("Address to listen on. Plaintext is meant for loopback; use 0.0.0.0 in containers.", default="127.0.0.1")
    port: int = _help("gRPC port. 0 picks a free port (it is logged).", default=50051)
    model: str = _help(
        "Model folder or Hugging Face hub id (any AutoModelForAudioClassification checkpoint).",
        default=str(BUNDLED_MODEL),
    )
    device: str = _help("'auto' (CUDA when present, else CPU), 'cpu', 'cuda' or 'cuda:N'.", default="auto")
    dtype: str = _help("'auto' (float16 on CUDA, float32 on CPU), 'float32', 'float16' or 'bfloat16'.", default="auto")
    torch_threads: int = _help("Intra-op threads for torch on CPU; 0 keeps torch's default (all cores).", default=0)
    max_batch_size: int = _help("Most clips or windows merged into one forward pass; 1 turns batching off.", default=8)
    max_queue_delay_ms: float = _help("Longest a request waits for others to fill its batch.", default=5.0)
    max_queue_size: int = _help("Most requests waiting for the model; beyond it calls get RESOURCE_EXHAUSTED.", default=256)
    max_audio_bytes: int = _help("Largest audio payload of one Classify call, in bytes.", default=16 * 1024 * 1024)
    max_audio_seconds: float = _help("Longest recording Classify accepts; stream longer audio.", default=60.0)
    min_audio_seconds: float = _help("Shortest audio worth classifying.", default=0.1)
    window_s: float = _help("Default stream window length in seconds.", default=3.0)
    hop_s: float = _help("Default step between stream windows in seconds.", default=1.5)
    grace_period_s: float = _help("On SIGTERM, how long in-flight calls may take to finish.", default=10.0)
    default_deadline_s: float = _help("Deadline for calls that set none; queued work past it is dropped.", default=30.0)
    max_streams: int = _help("Most concurrent StreamClassify calls; beyond it RESOURCE_EXHAUSTED.", default=64)
    max_stream_seconds: float = _help("Most audio one stream may carry, in seconds.", default=4 * 3600.0)
    stream_idle_timeout_s: float = _help("A stream sending nothing for this long is closed (DEADLINE_EXCEEDED).", default=60.0)
    tls_cert_file: str = _help("PEM server certificate (chain); with --tls-key-file turns TLS on.", default="")
    tls_key_file: str = _help("PEM private key of --tls-cert-file.", default="")
    tls_client_ca_file: str = _help("PEM CA bundle; when set, clients must present a certificate it signed (mTLS).", default="")
    insecure: bool = _help("Allow plaintext on a non-loopback host (e.g. behind a TLS-terminating proxy).", default=False)
    auth_tokens_file: str = _help("TOML file of hashed API keys and their scopes; empty turns token auth off.", default="")
    metrics_port: int = _help("Port of the Prometheus metrics endpoint; 0 turns it off.", default=0)
    log_level: str = _help("debug, info, warning or error.", default="info")
    log_format: str = _help("'json' (one object a line) or 'console' (for people).", default="json")

    def __post_init__(self) -> None:
        checks = {
            "port": 0 <= self.port <= 65535,
            "torch_threads": self.torch_threads >= 0,
            "max_batch_size": self.max_batch_size >= 1,
            "max_queue_delay_ms": self.max_queue_delay_ms >= 0,
            "max_queue_size": self.max_queue_size >= 1,
            "max_audio_bytes": self.max_audio_bytes > 0,
            "max_audio_seconds": self.max_audio_seconds > 0,
            "min_audio_seconds": 0 <= self.min_audio_seconds < self.max_audio_seconds,
            "window_s": self.window_s > 0,
            "hop_s": 0 < self.hop_s <= self.window_s,
            "grace_period_s": self.grace_period_s >= 0,
            "metrics_port": 0 <= self.metrics_port <= 65535,
            "log_level": self.log_level in ("debug", "info", "warning", "error"),
            "log_format": self.log_format in ("json", "console"),
            "dtype": self.dtype in ("auto", "float32", "float16", "bfloat16"),
            "device": self.device in ("auto", "cpu", "cuda") or self.device.startswith("cuda:"),
            "default_deadline_s": self.default_deadline_s > 0,
            "max_streams": self.max_streams >= 1,
            "max_stream_seconds": self.max_stream_seconds > 0,
            "stream_idle_timeout_s": self.stream_idle_timeout_s > 0,
            "tls_key_file": bool(self.tls_cert_file) == bool(self.tls_key_file),
            "tls_client_ca_file": not self.tls_client_ca_file or bool(self.tls_cert_file),
        }
        for name, ok in checks.items():
            if not ok:
                raise ConfigError(f"invalid {name}={getattr(self, name)!r}: {_FIELD_HELP[name]}")
        if not (self.tls or self.insecure or self.host in LOOPBACK_HOSTS):
            raise ConfigError(
                f"refusing plaintext on non-loopback host {self.host!r}: set tls_cert_file and tls_key_file, "
                "or insecure=true when a proxy terminates TLS"
            )

    @property
    def tls(self) -> bool:
        """Whether the server listens with TLS."""
        return bool(self.tls_cert_file)

    @classmethod
    def load(
        cls,
        overrides: Mapping[str, Any] | None = None,
        environ: Mapping[str, str] | None = None,
        config_file: Path | None = None,
    ) -> "Settings":
        """Merges defaults < TOML file < ``EMOTION_*`` environment < ``overrides`` (flags).

        ``overrides`` values of ``None`` mean "not given". ``config_file``
        defaults to ``$EMOTION_CONFIG`` when set.
        """
        environ = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        path = config_file or (Path(environ["EMOTION_CONFIG"]) if environ.get("EMOTION_CONFIG") else None)
        if path is not None:
            values.update(_read_toml(path))
        for name in _FIELD_TYPES:
            raw = environ.get(ENV_PREFIX + name.upper())
            if raw is not None and raw != "":
                values[name] = _coerce(name, raw, f"environment variable {ENV_PREFIX}{name.upper()}")
        values.update({k: v for k, v in (overrides or {}).items() if v is not None})
        return cls(**values)


_FIELDS = {f.name: f for f in dataclasses.fields(Settings)}
_FIELD_TYPES: dict[str, type] = {name: typing.get_type_hints(Settings)[name] for name in _FIELDS}
_FIELD_HELP = {name: f.metadata["help"] for name, f in _FIELDS.items()}


def _coerce(name: str, raw: Any, where: str) -> Any:
    kind = _FIELD_TYPES[name]
    try:
        if kind is bool:
            return str(raw).lower() in ("1", "true", "yes", "on")
        return kind(raw)
    except (TypeError, ValueError):
        raise ConfigError(f"{where}: {name} must be a {kind.__name__}, got {raw!r}") from None


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        data = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}") from None
    # Accept both a flat file and one with a [server] table; [plugins.*] tables
    # belong to the plugins (plugins/config.py).
    table = {k: v for k, v in data.get("server", data).items() if k != "plugins"}
    unknown = sorted(set(table) - set(_FIELDS))
    if unknown:
        raise ConfigError(f"config file {path}: unknown setting(s) {', '.join(unknown)}; known: {', '.join(_FIELDS)}")
    return {name: _coerce(name, value, f"config file {path}") for name, value in table.items()}


_METAVARS = {
    "host": "HOST",
    "port": "PORT",
    "model": "PATH_OR_ID",
    "metrics_port": "PORT",
    "device": "DEVICE",
    "tls_cert_file": "PEM",
    "tls_key_file": "PEM",
    "tls_client_ca_file": "PEM",
    "auth_tokens_file": "TOML",
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Adds one ``--flag`` per setting; defaults stay ``None`` so unset flags don't override."""
    parser.add_argument("--config", type=Path, default=None, help="TOML file of settings (also $EMOTION_CONFIG).")
    for name, f in _FIELDS.items():
        kind = _FIELD_TYPES[name]
        help_text = f"{f.metadata['help']} [env {ENV_PREFIX}{name.upper()}; default: {f.default}]"
        if kind is bool:
            parser.add_argument(
                "--" + name.replace("_", "-"), dest=name, action=argparse.BooleanOptionalAction, default=None, help=help_text
            )
            continue
        parser.add_argument(
            "--" + name.replace("_", "-"),
            dest=name,
            type=kind,
            default=None,
            metavar=_METAVARS.get(name, {int: "N", float: "NUM", str: "TEXT"}[kind]),
            help=help_text,
        )


def from_arguments(args: argparse.Namespace) -> Settings:
    """Builds the settings from parsed flags, the environment and the config file."""
    return Settings.load({name: getattr(args, name, None) for name in _FIELDS}, config_file=args.config)
