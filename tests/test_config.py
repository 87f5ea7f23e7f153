"""Settings precedence (flags > environment > TOML > defaults) and early, named errors."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from server.config import BUNDLED_MODEL, ConfigError, Settings, add_arguments, from_arguments


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
        ({"environ": {"EMOTION_PORT": "fifty"}}, "EMOTION_PORT: port must be a int"),
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
