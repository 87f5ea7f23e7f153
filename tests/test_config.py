"""Settings precedence (flags > environment > TOML > defaults) and early, named errors."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from emotion_service.server.config import BUNDLED_MODEL, ConfigError, Settings, add_arguments, from_arguments


def test_defaults_are_the_contract() -> None:
    settings = Settings.load(environ={})
    assert settings.port == 50051
    assert settings.host == "127.0.0.1"
    assert Path(settings.model) == BUNDLED_MODEL
    assert settings.device == "auto"


def test_precedence_flags_over_env_over_file_over_defaults(tmp_path: Path) -> None:
    toml = tmp_path / "emotion.toml"
    toml.write_text('port = 6000\nmax_batch_size = 4\nmodel = "from-file"\nlog_level = "debug"\n')
    env = {"EMOTION_PORT": "7000", "EMOTION_MODEL": "from-env", "EMOTION_CONFIG": str(toml)}
    settings = Settings.load({"port": 8000, "host": None}, environ=env)
    assert settings.port == 8000  # flag
    assert settings.model == "from-env"  # environment
    assert settings.max_batch_size == 4  # file
    assert settings.log_level == "debug"  # file
    assert settings.max_queue_size == 256  # default


def test_server_table_in_toml(tmp_path: Path) -> None:
    toml = tmp_path / "emotion.toml"
    toml.write_text("[server]\nport = 6001\n")
    assert Settings.load(environ={}, config_file=toml).port == 6001


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"overrides": {"max_batch_size": 0}}, "invalid max_batch_size=0"),
        ({"overrides": {"hop_s": 5.0}}, "invalid hop_s=5.0"),
        ({"overrides": {"device": "tpu"}}, "invalid device='tpu'"),
        (
            {"environ": {"EMOTION_PORT": "fifty"}},
            r"port \(from environment variable EMOTION_PORT\): expected a whole number",
        ),
        (
            {"environ": {"EMOTION_MAX_BATCH_SIZE": "0"}},
            r"invalid max_batch_size=0.*set by environment variable EMOTION_MAX_BATCH_SIZE",
        ),
    ],
)
def test_bad_values_name_the_setting(kwargs: dict, message: str) -> None:
    kwargs.setdefault("environ", {})
    with pytest.raises(ConfigError, match=message):
        Settings.load(**kwargs)


def test_unknown_toml_key_is_named(tmp_path: Path) -> None:
    toml = tmp_path / "bad.toml"
    toml.write_text("prot = 1\n")
    with pytest.raises(ConfigError, match="unknown setting.*prot"):
        Settings.load(environ={}, config_file=toml)


def test_flags_parse_into_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("EMOTION_CONFIG", raising=False)
    monkeypatch.setenv("EMOTION_MAX_QUEUE_SIZE", "9")
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    settings = from_arguments(parser.parse_args(["--port", "1234", "--max-queue-delay-ms", "2.5"]))
    assert (settings.port, settings.max_queue_delay_ms, settings.max_queue_size) == (1234, 2.5, 9)


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        (
            "max_batch_size = true",
            r"max_batch_size \(from config file .*, top level\): expected a whole number, got True",
        ),
        ("port = 6000.9", r"port \(from config file .*\): expected a whole number, got 6000.9"),
        ("port = 6000.0", r"port \(from config file .*\): expected a whole number"),
        ('port = "6000"', r"port \(from config file .*\): expected a whole number, got '6000'"),
        ("insecure = 1", r"insecure \(from config file .*\): expected a boolean"),
        ("max_queue_delay_ms = false", r"max_queue_delay_ms .*: expected a number, got False"),
        ("model = 3", r"model .*: expected a string, got 3"),
        ("[server]\nprot = 1", r"\[server\] has unknown setting\(s\) prot"),
        (
            "[server]\nmax_batch_size = 0",
            r"invalid max_batch_size=0: must be at least 1\. .*\(set by config file .*\[server\]\)",
        ),
        ("[server]\nlog_format = 'xml'", r"invalid log_format='xml': must be json or console\. "),
        ("[server]\nhop_s = 5.0", r"invalid hop_s=5.0: must be more than 0 and at most window_s\. "),
    ],
)
def test_toml_typos_fail_naming_key_file_and_expectation(tmp_path: Path, toml: str, message: str) -> None:
    path = tmp_path / "emotion.toml"
    path.write_text(toml + "\n")
    with pytest.raises(ConfigError, match=message):
        Settings.load(environ={}, config_file=path)


@pytest.mark.parametrize("raw", ["ture", "2", "enabled", " "])
def test_environment_boolean_typos_fail(raw: str) -> None:
    with pytest.raises(
        ConfigError, match=r"insecure \(from environment variable EMOTION_INSECURE\): expected a boolean"
    ):
        Settings.load(environ={"EMOTION_INSECURE": raw + "x" if raw == " " else raw})


@pytest.mark.parametrize(("raw", "value"), [("1", True), ("TRUE", True), ("off", False), ("no", False)])
def test_environment_booleans_parse(raw: str, value: bool) -> None:
    assert Settings.load(environ={"EMOTION_INSECURE": raw}).insecure is value


def test_float_setting_takes_a_toml_integer(tmp_path: Path) -> None:
    path = tmp_path / "emotion.toml"
    path.write_text("max_queue_delay_ms = 3\n")
    assert Settings.load(environ={}, config_file=path).max_queue_delay_ms == 3.0


def test_plugin_settings_go_through_the_same_checks(tmp_path: Path) -> None:
    from emotion_service.plugins.builtin.threshold_alerts import NAME, ThresholdAlertsConfig
    from emotion_service.settings import load_plugin_config

    path = tmp_path / "emotion.toml"
    path.write_text(f"[plugins.{NAME}]\nsmoothing_windows = true\n")
    with pytest.raises(
        ConfigError, match=rf"smoothing_windows \(from config file .*\[plugins.{NAME}\]\): expected a whole number"
    ):
        load_plugin_config(NAME, ThresholdAlertsConfig, environ={}, config_file=path)
