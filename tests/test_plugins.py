"""The plugin system: hook order and chaining, failures, discovery by entry point, configuration, CLI."""

from __future__ import annotations

import csv
import dataclasses
import json
from importlib import import_module
from importlib.metadata import entry_points
from pathlib import Path

import grpc
import numpy as np
import pytest
import structlog

from emotion_client.v1 import emotion_pb2 as pb
from emotion_service.plugins import Alert, Result, hookimpl
from emotion_service.plugins.builtin.threshold_alerts import ThresholdAlertsConfig
from emotion_service.plugins.manager import PluginError, PluginLoadError, build_host, load_plugins
from emotion_service.server.config import ConfigError, Settings
from emotion_service.settings import load_plugin_config, plugin_env_var
from tests.conftest import recordings
from tests.plugin_helpers import emotion, ravdess_interview, run_stream, serving, settle, stream_requests


class Scale:
    """preprocess: multiplies by a factor and records that it ran."""

    def __init__(self, factor: float, calls: list[str], name: str) -> None:
        self.factor, self.calls, self.name = factor, calls, name

    @hookimpl
    def preprocess(self, waveform: np.ndarray) -> np.ndarray:
        self.calls.append(self.name)
        return waveform * self.factor


class Offset:
    """preprocess, asked to run first: adds a constant."""

    def __init__(self, calls: list[str]) -> None:
        self.calls = calls

    @hookimpl(tryfirst=True)
    def preprocess(self, waveform: np.ndarray, sample_rate: int, context: dict[str, str]) -> np.ndarray:
        assert sample_rate == 16000 and context["stage"] == "serve"
        self.calls.append("offset")
        return waveform + 1.0


class Observer:
    """preprocess returning None (audio passes unchanged); on_result returning one alert."""

    @hookimpl
    def preprocess(self) -> None:
        return None

    @hookimpl
    def on_result(self, result: Result) -> list[Alert]:
        return [Alert(kind="seen", message=result.label, source="observer")]


class Broken:
    """Raises in every hook it implements."""

    @hookimpl
    def preprocess(self, waveform: np.ndarray) -> np.ndarray:
        raise RuntimeError("preprocess exploded")

    @hookimpl
    def on_result(self, result: Result) -> None:
        raise RuntimeError("on_result exploded")


def a_result(label: str = "ANG") -> Result:
    return Result("s1", "s1", "window", label, {"ANG": 0.9, "SAD": 0.1}, 0.0, 3.0)


def test_preprocess_chains_last_registered_first_and_tryfirst_leads() -> None:
    calls: list[str] = []
    double, half = Scale(2.0, calls, "double"), Scale(0.5, calls, "half")
    host = build_host({"double": double, "offset": Offset(calls), "observer": Observer(), "half": half})
    assert host.call_order("preprocess") == ["offset", "half", "observer", "double"]
    out = host.preprocess(np.ones(4, np.float32), 16000, {"stage": "serve"})
    assert calls == ["offset", "half", "double"]
    np.testing.assert_allclose(out, (1.0 + 1.0) * 0.5 * 2.0)
    assert out.dtype == np.float32


def test_raising_preprocess_is_a_plugin_error_naming_the_plugin() -> None:
    host = build_host({"observer": Observer(), "broken": Broken()})
    with pytest.raises(PluginError, match="plugin 'broken' failed in preprocess: RuntimeError: preprocess exploded"):
        host.preprocess(np.ones(4, np.float32), 16000, {"stage": "serve"})


def test_raising_on_result_is_logged_by_name_and_skipped() -> None:
    host = build_host({"observer": Observer(), "broken": Broken()})
    with structlog.testing.capture_logs() as logs:
        alerts = host.on_result(a_result())
    assert [a.kind for a in alerts] == ["seen"]
    failures = [e for e in logs if e["event"] == "plugin_failed"]
    assert failures and failures[0]["plugin"] == "broken" and failures[0]["hook"] == "on_result"


def test_trace_switch_logs_every_hook_call_with_plugin_duration_and_outcome(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EMOTION_TRACE_PLUGINS", "1")
    host = build_host({"observer": Observer(), "broken": Broken()})
    with structlog.testing.capture_logs() as logs:
        host.on_result(a_result())
    calls = {e["plugin"]: e for e in logs if e["event"] == "plugin_call"}
    assert set(calls) == {"observer", "broken"}
    assert calls["broken"]["outcome"] == "error" and calls["observer"]["outcome"] == "returned list"
    assert all(e["hook"] == "on_result" and e["duration_ms"] >= 0 for e in calls.values())
    monkeypatch.delenv("EMOTION_TRACE_PLUGINS")
    with structlog.testing.capture_logs() as logs:
        build_host({"observer": Observer()}).on_result(a_result())
    assert not [e for e in logs if e["event"] == "plugin_call"]


def test_a_misspelt_hook_or_plugin_name_fails_naming_it() -> None:
    class Typo:
        @hookimpl
        def on_resutl(self, result: Result) -> None: ...

    with pytest.raises(PluginLoadError, match="'typo' implements a hook that does not exist"):
        build_host({"typo": Typo()})
    with pytest.raises(PluginLoadError, match=r"unknown plugin.*nope.*installed: .*threshold_alerts"):
        load_plugins("threshold_alerts,nope")


def test_example_package_is_discovered_by_its_entry_point(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EMOTION_PLUGINS", "csv_export,threshold_alerts")
    host = load_plugins()
    assert host.names() == ["threshold_alerts", "csv_export"]  # built-ins are registered first
    example = next(info for info in host.describe() if info.name == "csv_export")
    assert example.source == "emotion_csv_export"
    assert example.distribution == "emotion-csv-export 0.1.0"
    assert example.hooks == ("on_session_end", "on_erase")
    assert load_plugins("none").names() == []


async def test_example_plugin_runs_in_a_real_server(
    tiny_model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EMOTION_CSV_EXPORT_DIR", str(tmp_path))
    async with serving(tiny_model, load_plugins("csv_export")) as (server, stub):
        responses = await run_stream(stub, stream_requests(ravdess_interview()[: 16000 * 7], "csv-session"))
        await settle(server)
    windows = [r.window for r in responses if r.HasField("window")]
    with (tmp_path / "csv-session.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == len(windows) >= 3
    assert [row["label"] for row in rows] == [w.label for w in windows]
    # A plugin that writes erases what it wrote: the file goes with the session.
    erased = load_plugins("csv_export").on_erase("csv-session", "test")
    assert not (tmp_path / "csv-session.csv").exists() and erased


async def test_raising_on_result_still_answers(tiny_model: Path) -> None:
    class BrokenResults:
        @hookimpl
        def on_result(self, result: Result) -> None:
            raise RuntimeError("on_result exploded")

    with structlog.testing.capture_logs() as logs:
        async with serving(tiny_model, build_host({"observer": Observer(), "broken": BrokenResults()})) as (_, stub):
            reply = await stub.Classify(
                pb.ClassifyRequest(audio=pb.Audio(content=recordings()[0].read_bytes())), timeout=30
            )
    assert reply.label and [a.kind for a in reply.alerts] == ["seen"]
    assert any(e["event"] == "plugin_failed" and e["plugin"] == "broken" for e in logs)


async def test_raising_preprocess_fails_the_call_with_internal_naming_the_plugin(tiny_model: Path) -> None:
    async with serving(tiny_model, build_host({"broken": Broken()})) as (_, stub):
        with pytest.raises(grpc.aio.AioRpcError) as unary:
            await stub.Classify(pb.ClassifyRequest(audio=pb.Audio(content=recordings()[0].read_bytes())), timeout=30)
        with pytest.raises(grpc.aio.AioRpcError) as streamed:
            await run_stream(stub, stream_requests(ravdess_interview()[: 16000 * 4], "broken-stream"))
    for error in (unary.value, streamed.value):
        assert error.code() == grpc.StatusCode.INTERNAL
        assert "plugin 'broken' failed in preprocess" in (error.details() or "")


def test_plugin_settings_come_from_the_toml_table_then_the_environment(tmp_path: Path) -> None:
    toml = tmp_path / "emotion.toml"
    toml.write_text("port = 6000\n[plugins.threshold_alerts]\nthresholds = { ANG = 0.5 }\nsmoothing_windows = 2\n")
    env = {"EMOTION_CONFIG": str(toml), "EMOTION_THRESHOLD_ALERTS_SMOOTHING_WINDOWS": "4"}
    config = load_plugin_config("threshold_alerts", ThresholdAlertsConfig, environ=env)
    assert config.thresholds == {"ANG": 0.5} and config.smoothing_windows == 4
    env["EMOTION_THRESHOLD_ALERTS_THRESHOLDS"] = "SAD=0.7, FEA=0.8"
    assert load_plugin_config("threshold_alerts", ThresholdAlertsConfig, environ=env).thresholds == {
        "SAD": 0.7,
        "FEA": 0.8,
    }
    assert Settings.load(environ={}, config_file=toml).port == 6000  # the server ignores [plugins.*]


@pytest.mark.parametrize(
    ("env", "message"),
    [
        (
            {"EMOTION_THRESHOLD_ALERTS_SMOOTHING_WINDOWS": "many"},
            r"smoothing_windows \(from environment variable EMOTION_THRESHOLD_ALERTS_SMOOTHING_WINDOWS\): expected a whole number",
        ),
        ({"EMOTION_THRESHOLD_ALERTS_THRESHOLDS": "ANG"}, "LABEL=NUMBER pairs"),
        (
            {"EMOTION_THRESHOLD_ALERTS_HYSTERESIS": "2"},
            r"plugin 'threshold_alerts': invalid hysteresis=2.0: .*set by environment variable EMOTION_THRESHOLD_ALERTS_HYSTERESIS",
        ),
    ],
)
def test_bad_plugin_settings_name_the_variable(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_plugin_config("threshold_alerts", ThresholdAlertsConfig, environ=env)


def test_unknown_key_in_a_plugin_table_is_named(tmp_path: Path) -> None:
    toml = tmp_path / "emotion.toml"
    toml.write_text("[plugins.threshold_alerts]\nthreshold = 0.5\n")
    with pytest.raises(ConfigError, match=r"\[plugins.threshold_alerts\] has unknown setting\(s\) threshold"):
        load_plugin_config("threshold_alerts", ThresholdAlertsConfig, environ={"EMOTION_CONFIG": str(toml)})


def test_emotion_plugins_lists_plugins_hooks_and_call_order(capsys: pytest.CaptureFixture[str]) -> None:
    assert emotion("plugins", "--select", "csv_export,store,alert_log") == 0
    out = capsys.readouterr().out
    assert "csv_export" in out and "emotion-csv-export 0.1.0" in out
    assert "on_session_end: csv_export -> store" in out
    assert "on_alert: store -> alert_log" in out
    assert emotion("plugins", "--select", "store", "--json") == 0
    (listed,) = json.loads(capsys.readouterr().out)
    assert listed["name"] == "store" and listed["hooks"] == ["on_result", "on_alert", "on_session_end", "on_shutdown", "on_erase"]


def test_docs_describe_every_builtin_plugin_and_setting() -> None:
    docs = (Path(__file__).parent.parent / "docs" / "plugins.md").read_text()
    builtins = [
        e for e in entry_points(group="emotion.plugins") if e.value.startswith("emotion_service.plugins.builtin.")
    ]
    assert len(builtins) == 8
    for entry in builtins:
        module = import_module(entry.module)
        assert f"### {entry.name}\n" in docs
        (config,) = [v for name, v in vars(module).items() if name.endswith("Config") and dataclasses.is_dataclass(v)]
        for f in dataclasses.fields(config):
            assert f"| `{f.name}` | `{plugin_env_var(entry.name, f)}` |" in docs, (
                f"{entry.name}.{f.name} is undocumented"
            )


def test_a_failing_erasure_is_never_reported_done() -> None:
    class Forgets:
        @hookimpl
        def on_erase(self, session_id: str) -> list[str]:
            return [f"cache: {session_id}"]

    class Stuck:
        @hookimpl
        def on_erase(self, session_id: str) -> None:
            raise OSError("report folder is read-only")

    assert build_host({"forgets": Forgets()}).on_erase("s1", "test") == ["cache: s1"]
    with pytest.raises(PluginError, match="plugin 'stuck' failed in on_erase: OSError: report folder is read-only"):
        build_host({"forgets": Forgets(), "stuck": Stuck()}).on_erase("s1", "test")
