"""The settings of ``emotion serve``, read by the one loader (:mod:`emotion_service.settings`).

Every field is a flag (``--max-batch-size``), an environment variable
(``EMOTION_MAX_BATCH_SIZE``) and a key of a TOML file (``max_batch_size``, at the top
level or under ``[server]``), in that order of precedence, over the defaults written here.
"""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from emotion_service.paths import BUNDLED_MODEL
from emotion_service.plugins.builtin.store import NAME as STORE
from emotion_service.plugins.builtin.store import StoreConfig
from emotion_service.settings import (
    ENV_PREFIX,
    ConfigError,
    check,
    fields_of,
    flag_values,
    help_of,
    load,
    load_plugin_config,
    setting,
)
from emotion_service.settings import add_arguments as add_setting_arguments

LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1", "[::1]")

__all__ = [
    "BUNDLED_MODEL",
    "LOOPBACK_HOSTS",
    "SETTING_NAMES",
    "ConfigError",
    "Settings",
    "add_arguments",
    "from_arguments",
]


@dataclass(frozen=True)
class Settings:
    """Settings of ``emotion serve``."""

    host: str = setting(
        "127.0.0.1",
        "Address to listen on. Plaintext is meant for loopback; use 0.0.0.0 in containers.",
        metavar="HOST",
    )
    port: int = setting(50051, "gRPC port. 0 picks a free port (it is logged).", metavar="PORT")
    model: str = setting(
        str(BUNDLED_MODEL),
        "Model folder or Hugging Face hub id (any AutoModelForAudioClassification checkpoint). Bundled: "
        "models/emotion-logmel-cnn (the default, 3x the clips/s) and models/emotion-whisper-probe (accurate).",
        metavar="PATH_OR_ID",
    )
    device: str = setting("auto", "'auto' (CUDA when present, else CPU), 'cpu', 'cuda' or 'cuda:N'.", metavar="DEVICE")
    dtype: str = setting(
        "auto",
        "'auto' (the fastest the hardware runs well: bf16 on CUDA or on CPUs with AMX / AVX-512 BF16, "
        "else float32; checked against float32 at start, falling back when scores drift), "
        "'float32', 'float16' or 'bfloat16'.",
    )
    quantize: str = setting("none", "'int8': dynamic int8 quantisation of the linear layers (CPU, opt-in); 'none'.")
    torch_threads: int = setting(
        0,
        "Intra-op threads for torch on CPU; 0 keeps torch's default (all cores).",
    )
    max_batch_size: int = setting(
        8,
        "Most clips or windows merged into one forward pass; 1 turns batching off.",
    )
    max_queue_delay_ms: float = setting(5.0, "Longest a request waits for others to fill its batch.")
    max_queue_size: int = setting(
        256,
        "Most requests waiting for the model; beyond it calls get RESOURCE_EXHAUSTED.",
    )
    max_audio_bytes: int = setting(16 * 1024 * 1024, "Largest audio payload of one Classify call, in bytes.")
    max_audio_seconds: float = setting(60.0, "Longest recording Classify accepts; stream longer audio.")
    min_audio_seconds: float = setting(0.1, "Shortest audio worth classifying.")
    max_sample_rate: int = setting(192_000, "Highest sample rate accepted, read from the header before decoding (Hz).")
    max_channels: int = setting(8, "Most channels accepted, read from the header before decoding.")
    window_s: float = setting(3.0, "Default stream window length in seconds.")
    hop_s: float = setting(1.5, "Default step between stream windows in seconds.")
    speech_threshold: float = setting(
        0.5,
        "Speech probability (Silero VAD, per 32 ms frame) a frame needs to count as speech. A Classify "
        "recording, stream window or job utterance none of whose frames reaches it is answered no_speech: "
        "no label, no scores, no model call, no alerts; voiced_fraction is the share of frames at or above "
        "it. 0 scores everything.",
    )
    silence_voiced_fraction: float = setting(
        0.2,
        "Not read by the server any more (a stream window's silence is its no_speech: see speech_threshold); "
        "kept for the alert calibration's replay of streams and for old configuration files.",
    )
    voiced_threshold_db: float = setting(
        35.0,
        "Not read by the server any more (see speech_threshold); the alert calibration's replay of streams "
        "uses it: a frame is voiced within this many dB of the stream's speech level.",
    )
    noise_margin_db: float = setting(
        6.0,
        "Not read by the server any more (see speech_threshold); the alert calibration's replay of streams "
        "uses it: a frame is voiced only this many dB above the stream's noise floor.",
    )
    grace_period_s: float = setting(10.0, "On SIGTERM, how long in-flight calls may take to finish.")
    default_deadline_s: float = setting(30.0, "Deadline for calls that set none; queued work past it is dropped.")
    stream_max_pending_windows: int = setting(
        4,
        "Windows of one stream submitted but not yet answered, at most; then the server stops reading "
        "that stream (gRPC flow control slows its sender).",
    )
    stream_backpressure_s: float = setting(
        2.0,
        "How long a stream's next window waits for a free slot before it is answered as skipped "
        "(a sender that cannot slow down loses windows, never the stream).",
    )
    stream_admission_queue_depth: int = setting(
        128,
        "New streams are refused (RESOURCE_EXHAUSTED, retry hint) while this many clips or windows wait for the model.",
    )
    stream_admission_lag_s: float = setting(
        0.5,
        "New streams are refused while the p95 window lag (last sample to answer) of the last 10 s exceeds this "
        "(a third of the default hop: refused before windows are late, not once they are).",
    )
    stream_admission_utilisation: float = setting(
        0.7,
        "New streams are admitted while the open streams ask for at most this share of the model's capacity "
        "(seconds of audio scored per second, measured at load; each stream asks window_s / hop_s).",
    )
    max_streams: int = setting(
        1000, "Most concurrent StreamClassify calls, whatever the capacity; beyond it RESOURCE_EXHAUSTED."
    )
    max_stream_seconds: float = setting(4 * 3600.0, "Most audio one stream may carry, in seconds.")
    max_stream_message_bytes: int = setting(
        1024 * 1024,
        "Largest audio_content of one stream message, in bytes (1 s of 48 kHz stereo float32 is 384 KiB); "
        "a larger one ends the stream with INVALID_ARGUMENT before it is decoded.",
    )
    max_stream_message_seconds: float = setting(
        10.0,
        "Most audio one stream message may carry, in seconds (read from its size and the stream's format "
        "before decoding, so a low declared sample rate cannot inflate a small message).",
    )
    stream_idle_timeout_s: float = setting(
        60.0,
        "A stream sending nothing for this long is closed (DEADLINE_EXCEEDED).",
    )
    job_workers: int = setting(
        1, "Jobs this replica analyses at once; 0: it takes no jobs (it still accepts and answers them)."
    )
    jobs_database_url: str = setting(
        "",
        "Database of the job queue; empty: the results store's (EMOTION_DATABASE_URL). Replicas sharing "
        "one PostgreSQL database share one queue.",
        metavar="URL",
    )
    job_lease_s: float = setting(
        30.0,
        "A running job's lease, renewed as it works: a replica that dies lets its jobs go to others after this.",
    )
    job_poll_s: float = setting(1.0, "How often an idle replica looks for queued jobs, in seconds.")
    job_max_attempts: int = setting(
        10,
        "Times a job may be taken before it is failed: a job whose every attempt ends without a result (its "
        "server killed by it, or its end never written) fails with a reason instead of being taken forever. "
        "A stopped replica's clean hand-back counts too: raise it where replicas restart often mid-job.",
    )
    max_job_bytes: int = setting(
        64 * 1024 * 1024,
        "Largest recording sent inline in SubmitJob, in bytes (also raises the gRPC message limit); "
        "larger ones go by path under job_input_dir.",
    )
    max_job_seconds: float = setting(
        4 * 3600.0,
        "Most audio one job may carry, in seconds: every recording and, with --channels separate, every "
        "channel counted. Channels are analysed one at a time, so memory is that of one channel.",
    )
    job_input_dir: str = setting(
        "",
        "Folder whose files jobs may name by path (Recording.uri); empty: jobs take inline bytes only.",
        metavar="DIR",
    )
    job_min_silence_s: float = setting(
        0.4, "Pause that ends an utterance when segmenting a job's recording by voice activity, in seconds."
    )
    job_max_utterance_s: float = setting(
        30.0, "Longer speech without such a pause is cut into utterances of at most this many seconds."
    )
    job_max_in_flight: int = setting(
        4,
        "Windows of one job waiting for the model at once: jobs queue behind live calls at low priority, "
        "and this keeps their share of the queue small.",
    )
    background_max_batch_size: int = setting(
        2,
        "Most job windows in one forward pass (at most max_batch_size): a call arriving meanwhile waits for at most "
        "one such pass.",
    )
    retention_days: float = setting(
        0.0, "Sessions older than this many days are erased (with their jobs and reports); 0 keeps them."
    )
    retention_check_s: float = setting(3600.0, "How often retention looks for sessions to erase, in seconds.")
    tls_cert_file: str = setting("", "PEM server certificate (chain); with --tls-key-file turns TLS on.", metavar="PEM")
    tls_key_file: str = setting("", "PEM private key of --tls-cert-file.", metavar="PEM")
    tls_client_ca_file: str = setting(
        "",
        "PEM CA bundle; when set, clients must present a certificate it signed (mTLS).",
        metavar="PEM",
    )
    insecure: bool = setting(
        False,
        "Allow plaintext on a non-loopback host (e.g. behind a TLS-terminating proxy).",
    )
    auth_tokens_file: str = setting(
        "",
        "TOML file of hashed API keys and their scopes; empty turns token auth off.",
        metavar="TOML",
    )
    metrics_port: int = setting(0, "Port of the Prometheus metrics endpoint; 0 turns it off.", metavar="PORT")
    http_port: int = setting(
        0,
        "Port of the web UI (sessions, live monitor, trends, analyse a recording) on --host, with the gRPC "
        "server's TLS and tokens; 0 turns it off.",
        metavar="PORT",
    )
    web_session_secret_file: str = setting(
        "",
        "File holding a secret that signs the web UI's login sessions; give every replica behind one load "
        "balancer the same file. Empty: a random secret per server (a server restart logs everyone out; the web UI process restarting does not).",
        metavar="FILE",
    )
    log_level: str = setting("info", "debug, info, warning or error.")
    log_format: str = setting("json", "'json' (one object a line) or 'console' (for people).")

    def __post_init__(self) -> None:
        expected = {
            name: (ok, f"must be {rule}. {help_of(Settings, name)}")
            for name, (ok, rule) in {
                "port": (0 <= self.port <= 65535, "0 to 65535 (0: any free port)"),
                "torch_threads": (self.torch_threads >= 0, "0 or more (0: torch's default)"),
                "max_batch_size": (self.max_batch_size >= 1, "at least 1"),
                "max_queue_delay_ms": (self.max_queue_delay_ms >= 0, "0 or more"),
                "max_queue_size": (self.max_queue_size >= 1, "at least 1"),
                "max_audio_bytes": (self.max_audio_bytes > 0, "more than 0"),
                "max_audio_seconds": (self.max_audio_seconds > 0, "more than 0"),
                "min_audio_seconds": (
                    0 <= self.min_audio_seconds < self.max_audio_seconds,
                    "0 or more and under max_audio_seconds",
                ),
                "max_sample_rate": (self.max_sample_rate >= 8000, "at least 8000"),
                "max_channels": (self.max_channels >= 1, "at least 1"),
                "window_s": (self.window_s > 0, "more than 0"),
                "hop_s": (0 < self.hop_s <= self.window_s, "more than 0 and at most window_s"),
                "speech_threshold": (0 <= self.speech_threshold < 1, "from 0 to under 1"),
                "silence_voiced_fraction": (0 <= self.silence_voiced_fraction <= 1, "from 0 to 1"),
                "voiced_threshold_db": (self.voiced_threshold_db > 0, "more than 0"),
                "noise_margin_db": (self.noise_margin_db >= 0, "0 or more"),
                "grace_period_s": (self.grace_period_s >= 0, "0 or more"),
                "metrics_port": (0 <= self.metrics_port <= 65535, "0 to 65535 (0: off)"),
                "http_port": (0 <= self.http_port <= 65535, "0 to 65535 (0: off)"),
                "log_level": (self.log_level in ("debug", "info", "warning", "error"), "debug, info, warning or error"),
                "log_format": (self.log_format in ("json", "console"), "json or console"),
                "dtype": (
                    self.dtype in ("auto", "float32", "float16", "bfloat16"),
                    "auto, float32, float16 or bfloat16",
                ),
                "quantize": (self.quantize in ("none", "int8"), "none or int8"),
                "device": (
                    self.device in ("auto", "cpu", "cuda") or self.device.startswith("cuda:"),
                    "auto, cpu, cuda or cuda:N",
                ),
                "default_deadline_s": (self.default_deadline_s > 0, "more than 0"),
                "max_streams": (self.max_streams >= 1, "at least 1"),
                "stream_max_pending_windows": (self.stream_max_pending_windows >= 1, "at least 1"),
                "stream_backpressure_s": (self.stream_backpressure_s > 0, "more than 0"),
                "stream_admission_queue_depth": (self.stream_admission_queue_depth >= 1, "at least 1"),
                "stream_admission_lag_s": (self.stream_admission_lag_s > 0, "more than 0"),
                "stream_admission_utilisation": (
                    0 < self.stream_admission_utilisation <= 1,
                    "more than 0 and at most 1",
                ),
                "max_stream_seconds": (self.max_stream_seconds > 0, "more than 0"),
                "max_stream_message_bytes": (self.max_stream_message_bytes > 0, "more than 0"),
                "max_stream_message_seconds": (self.max_stream_message_seconds > 0, "more than 0"),
                "stream_idle_timeout_s": (self.stream_idle_timeout_s > 0, "more than 0"),
                "job_workers": (self.job_workers >= 0, "0 or more (0: this replica runs no job)"),
                "job_lease_s": (self.job_lease_s > 0, "more than 0"),
                "job_poll_s": (self.job_poll_s > 0, "more than 0"),
                "job_max_attempts": (self.job_max_attempts >= 1, "at least 1"),
                "max_job_bytes": (self.max_job_bytes > 0, "more than 0"),
                "max_job_seconds": (self.max_job_seconds > 0, "more than 0"),
                "job_input_dir": (
                    not self.job_input_dir or Path(self.job_input_dir).is_dir(),
                    "an existing folder, or empty",
                ),
                "job_min_silence_s": (self.job_min_silence_s > 0, "more than 0"),
                "job_max_utterance_s": (self.job_max_utterance_s >= self.window_s, "at least window_s"),
                "job_max_in_flight": (self.job_max_in_flight >= 1, "at least 1"),
                "background_max_batch_size": (self.background_max_batch_size >= 1, "at least 1"),
                "retention_days": (self.retention_days >= 0, "0 or more (0: kept for ever)"),
                "retention_check_s": (self.retention_check_s > 0, "more than 0"),
                "tls_key_file": (
                    bool(self.tls_cert_file) == bool(self.tls_key_file),
                    "given together with tls_cert_file",
                ),
                "tls_client_ca_file": (
                    not self.tls_client_ca_file or bool(self.tls_cert_file),
                    "given only with tls_cert_file",
                ),
            }.items()
        }
        check("server", self, expected)
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
    ) -> Settings:
        """Merges defaults < TOML file < ``EMOTION_*`` environment < ``overrides`` (flags).

        ``overrides`` values of ``None`` mean "not given". ``config_file`` defaults to
        ``$EMOTION_CONFIG``. ``[plugins.*]`` tables of the same file belong to the plugins.
        """
        return load(
            cls, table=_server_table, env_var=_env_var, overrides=overrides, environ=environ, config_file=config_file
        )


def results_database_url(settings: Settings) -> str:
    """The database of the job queue and retention: ``jobs_database_url``, else the store plugin's."""
    return settings.jobs_database_url or store_database_url()


def store_database_url() -> str:
    """The store plugin's database (``EMOTION_DATABASE_URL`` or ``[plugins.store] database_url``): what the UI reads."""
    return load_plugin_config(STORE, StoreConfig).database_url


def _server_table(data: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    if "server" in data:
        return "[server]", data["server"]
    return "top level", {k: v for k, v in data.items() if k != "plugins"}


def _env_var(field: dataclasses.Field[Any]) -> str:
    return ENV_PREFIX + field.name.upper()


SETTING_NAMES = tuple(fields_of(Settings))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Adds ``--config`` and one ``--flag`` per setting; unset flags override nothing."""
    parser.add_argument("--config", type=Path, default=None, help="TOML file of settings (also $EMOTION_CONFIG).")
    add_setting_arguments(parser, Settings, _env_var)


def from_arguments(args: argparse.Namespace) -> Settings:
    """Builds the settings from parsed flags, the environment and the config file."""
    return Settings.load(flag_values(args, Settings), config_file=args.config)
