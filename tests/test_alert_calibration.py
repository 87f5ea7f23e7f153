"""The anomaly plugin's calibration on real sessions (tuning/alert_calibration.py) and its explained alerts.

The calibration itself runs on the training actors of ../shared/data (``make calibrate-alerts``);
these tests run on a fresh clone: synthetic score sequences for the calibration's search, and
sessions made of the RAVDESS clips in tests/data (test actors 20-21, used here only to check,
never to calibrate) scored by the bundled model for the promise that its defaults keep a steady
session quiet and catch a real change.
"""

from __future__ import annotations

import json
import re
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import structlog.testing

from emotion_service.paths import BUNDLED_MODEL, LOGMEL_CNN_MODEL, WHISPER_PROBE_MODEL
from emotion_service.plugins.builtin.anomaly import (
    CALIBRATION_FILE,
    AnomalyConfig,
    AnomalyDetector,
    SessionTracker,
    calibrated_defaults,
    shift_statistic,
)
from emotion_service.plugins.manager import build_host
from emotion_service.tuning.alert_calibration import (
    TEST_ACTORS,
    TRAIN_ACTORS,
    CrossFitScorer,
    Part,
    ScoredSession,
    SessionSpec,
    WindowScorer,
    bench_specs,
    build_waveform,
    calibrate,
    caught_within,
    fire_times,
    lowest_level,
    measure,
    replay,
    stream_windows,
    training_specs,
)
from tests.plugin_helpers import serving

DATA = Path(__file__).parent / "data"
LABELS = ("ANG", "DIS", "FEA", "HAP", "NEU", "SAD")
RATE = 16_000


def clip(emotion: str, intensity: str, statement: str = "01") -> Path:
    return DATA / f"03-01-{emotion}-{intensity}-{statement}-01-21.flac"


# Actor 21's clips in tests/data: (actor, label, intensity) -> files, as ravdess_clips gives them.
CLIPS = {
    ("21", "NEU", "normal"): [clip("01", "01")],
    ("21", "HAP", "strong"): [clip("03", "02")],
    ("21", "SAD", "strong"): [clip("04", "02")],
    ("21", "ANG", "strong"): [clip("05", "02")],
    ("21", "FEA", "strong"): [clip("06", "02")],
    ("21", "DIS", "strong"): [clip("07", "02")],
}
# Both intensities of one emotion in turn: a steady emotion whose scores wobble as real speech's do.
CLIPS.update({("21", label, "mixed"): [clip(code, "01"), clip(code, "02")]
              for label, code in (("HAP", "03"), ("SAD", "04"), ("ANG", "05"), ("FEA", "06"), ("DIS", "07"))})  # fmt: skip


def test_calibration_sessions_use_training_actors_and_the_bench_test_actors() -> None:
    train = [s for group in training_specs().values() for s in group]
    assert {s.actor for s in train} == set(TRAIN_ACTORS), "calibration must never see actors 19-24"
    test = bench_specs()
    assert {s.actor for group in test.values() for s in group} == set(TEST_ACTORS)
    assert len(test["steady"]) == 36 and sum(s.duration_s for s in test["steady"]) == 54 * 60
    assert len(test["neutral_to_emotion"]) == 24
    assert all(s.change_s == 45 and s.parts[0].label == "NEU" for s in test["neutral_to_emotion"])
    assert any(s.pause_s > 0 for s in training_specs()["steady"]), "steady sessions with pauses are calibrated on"


def test_sessions_loop_clips_insert_pauses_and_cut_to_length() -> None:
    lengths = {path: 16_000 + 1000 * i for i, path in enumerate(sorted({p for v in CLIPS.values() for p in v}))}

    def load(path: Path) -> np.ndarray:
        return np.full(lengths[path], 0.5, np.float32)

    spec = SessionSpec("s", "21", (Part("NEU", "normal", 5.0), Part("ANG", "strong", 4.0)), pause_s=1.0, pause_every=2)
    wave = build_waveform(spec, CLIPS, load, RATE)
    assert len(wave) == 9 * RATE and spec.change_s == 5.0 and not spec.steady
    neu = lengths[CLIPS[("21", "NEU", "normal")][0]]
    # clip, clip + 1 s pause, clip, ... then cut at 5 s; the ANG part starts at exactly 5 s.
    assert (wave[:neu] == 0.5).all() and (wave[2 * neu : 2 * neu + RATE] == 0).all()
    assert (wave[5 * RATE : 5 * RATE + 100] == 0.5).all()


def test_stream_windows_skip_pauses_as_the_server_answers_them_silent() -> None:
    from emotion_service.audio import load_audio
    from emotion_service.server.config import Settings

    speech = load_audio(clip("05", "02"), RATE)
    wave = np.concatenate([speech, speech, np.zeros(8 * RATE, np.float32), speech, speech])
    settings = Settings()
    every = stream_windows(wave, RATE, 3.0, 1.5, dataclass_replace(settings, silence_voiced_fraction=0.0))
    voiced = stream_windows(wave, RATE, 3.0, 1.5, settings)
    assert len(voiced) < len(every)
    pause = (2 * len(speech), 2 * len(speech) + 8 * RATE)
    assert all(not (pause[0] <= w.start and w.end <= pause[1]) for w in voiced), "a window of pure pause is skipped"
    assert [w.index for w in every] == list(range(len(every)))


def dataclass_replace(obj, **changes):  # type: ignore[no-untyped-def]
    import dataclasses

    return dataclasses.replace(obj, **changes)


def test_fire_times_follow_the_plugins_rule_exactly() -> None:
    """The calibration's fast replay of the shift test and the plugin must fire on the same windows."""
    rng = np.random.default_rng(5)
    config = AnomalyConfig(smoothing_windows=2, persistence_windows=2, shift_threshold=0.3, shift_rearm=0.15,
                           false_alarm_rate=0.001, warmup_windows=10_000)  # fmt: skip
    scores = rng.dirichlet(np.ones(6) * 0.7, size=300)
    tracker = SessionTracker(LABELS, config)
    plugin_times, trace = [], []
    for i, x in enumerate(scores):
        fired = tracker.update(x, (1.5 * i, 1.5 * i + 3))
        plugin_times += [1.5 * i + 3 for f in fired if f.test == "shift"]
        trace.append(tracker.last_shift if i >= 3 else np.nan)
    assert trace[3] == pytest.approx(shift_statistic(scores[:4], 2))
    times = 1.5 * np.arange(300) + 3
    assert plugin_times and fire_times(np.array(trace), times, 0.3, 0.15, 2) == plugin_times
    assert fire_times(np.array(trace), times, 0.3, 0.15, 1)[0] < plugin_times[0], "persistence holds alerts back"


def test_lowest_level_and_caught_within() -> None:
    candidates = np.linspace(0.0, 1.0, 101)
    assert lowest_level(candidates, lambda c: c >= 0.37) == pytest.approx(0.37)
    assert lowest_level(candidates, lambda c: False) == 1.0
    assert caught_within([10.0, 47.0], 45.0, 6.0) and not caught_within([10.0, 52.0], 45.0, 6.0)
    assert not caught_within([44.0], 45.0, 6.0)


def synthetic(name: str, rng: np.random.Generator, parts: list[tuple[str, int]], wobble: float) -> ScoredSession:
    """Windows every 1.5 s whose top emotion wobbles between two neighbours, as real scores do."""
    rows = []
    for label, count in parts:
        for _ in range(count):
            p = np.full(6, 0.02)
            top = LABELS.index(label)
            mix = rng.uniform(0.5 - wobble, 0.5 + wobble)
            p[top] += 0.9 * mix
            p[(top + 1) % 6] += 0.9 * (1 - mix)
            rows.append(p / p.sum())
    n = len(rows)
    spec = SessionSpec(name, "00", tuple(Part(label, "strong", count * 1.5) for label, count in parts))
    spans = np.stack([1.5 * np.arange(n), 1.5 * np.arange(n) + 3], axis=1)
    return ScoredSession(spec, LABELS, np.array(rows), spans, np.arange(n))


def test_calibration_keeps_steady_sessions_within_the_budget_and_catches_changes() -> None:
    rng = np.random.default_rng(11)
    steady = [synthetic(f"s{i}", rng, [(LABELS[i % 6], 120)], wobble=0.45) for i in range(12)]
    changes = [synthetic(f"c{i}", rng, [("NEU", 30), (LABELS[i % 4], 30)], wobble=0.2) for i in range(8)]
    result = calibrate({"steady": steady, "neutral_to_emotion": changes}, target_per_hour=3.0,
                       smoothing=(2, 3), persistence=(1, 2), rates=(0.01, 0.001), log=lambda _: None)  # fmt: skip
    hours = 12 * 120 * 1.5 / 3600
    assert result["training"]["false_alarms"] <= 3.0 * hours
    assert result["training"]["caught"] >= 6
    # The wobble (up to 0.45 of the mass between two neighbours, every window) is above the old fixed level.
    assert result["settings"]["shift_threshold"] > 0.35
    config = AnomalyConfig(**result["settings"])
    again = measure(steady, changes, lambda: AnomalyDetector(config))
    assert again.false_alarms == result["training"]["false_alarms"] and again.caught == result["training"]["caught"]
    legacy = measure(steady, [], lambda: AnomalyDetector(AnomalyConfig(smoothing_windows=3, persistence_windows=1,
                     shift_threshold=0.35, shift_rearm=0.15, false_alarm_rate=0.005)))  # fmt: skip
    assert legacy.false_alarms > again.false_alarms, "the fixed level alarms on wobble"


def test_the_plugin_takes_its_defaults_from_the_bundled_models_calibration() -> None:
    path = BUNDLED_MODEL / CALIBRATION_FILE
    calibration = json.loads(path.read_text())
    config = AnomalyConfig()
    for name, value in calibration["settings"].items():
        assert getattr(config, name) == value, name
    assert calibration["training"]["false_alarms_per_hour"] <= calibration["target_false_alarms_per_hour"]
    assert calibration["sessions"]["steady"] >= 100


def test_a_missing_or_broken_calibration_file_falls_back(tmp_path: Path) -> None:
    assert calibrated_defaults(tmp_path)["shift_threshold"] == 0.35
    (tmp_path / CALIBRATION_FILE).write_text('{"settings": {"shift_threshold": 0.61, "persistence_windows": 2}}')
    defaults = calibrated_defaults(tmp_path)
    assert defaults["shift_threshold"] == 0.61 and defaults["persistence_windows"] == 2
    assert defaults["smoothing_windows"] == 3


def test_an_alert_says_what_changed_from_what_to_what_when_and_how_unusual() -> None:
    config = AnomalyConfig(smoothing_windows=2, persistence_windows=1, shift_threshold=0.4, shift_rearm=0.2)
    rng = np.random.default_rng(2)
    session = synthetic("explain", rng, [("NEU", 40), ("ANG", 10)], wobble=0.1)
    alerts = replay(session, AnomalyDetector(config))
    shift = next(a for a in alerts if a.details["test"] == "shift")
    assert shift.label == "ANG" and shift.details["from_label"] == "NEU" and shift.details["to_label"] == "ANG"
    match = re.search(r"NEU (\d+)% -> ANG (\d+)% between ([\d.]+) s and ([\d.]+) s", shift.message)
    assert match, shift.message
    assert float(match[1]) / 100 == pytest.approx(float(shift.details["from_score"]), abs=0.006)
    assert float(match[2]) / 100 == pytest.approx(float(shift.details["to_score"]), abs=0.006)
    start, end = float(match[3]), float(match[4])
    assert end == pytest.approx(shift.time_s) and start == pytest.approx(end - 3 - 3 * 1.5)  # 2n windows compared
    assert start < 60.0 < end, "the change (at 60 s) lies within the stretch named"
    assert re.search(r"larger than (any|99\.\d%) of this session's \d+ earlier changes", shift.message), shift.message
    assert float(shift.details["session_share_below"]) >= 0.99
    assert int(shift.details["session_earlier"]) > 30
    baseline = next(a for a in alerts if a.details["test"] == "baseline")
    usual = baseline.details["from_label"]
    assert usual in ("NEU", "SAD"), "the baseline's top emotion: neutral wobbling towards sad"
    assert f"{usual} " in baseline.message and "(its usual) -> ANG" in baseline.message
    assert "earlier distances from its usual" in baseline.message


def test_the_first_comparison_of_a_session_says_so() -> None:
    config = AnomalyConfig(smoothing_windows=1, persistence_windows=1, shift_threshold=0.3, shift_rearm=0.1)
    plugin = AnomalyDetector(config)
    session = synthetic("first", np.random.default_rng(0), [("NEU", 1), ("ANG", 1)], wobble=0.0)
    (alert,) = replay(session, plugin)
    assert "the first comparison of this session" in alert.message


# --- the promise, on real speech through the bundled model ------------------------------------------


@pytest.fixture(scope="module")
def scorer() -> WindowScorer:
    return WindowScorer(BUNDLED_MODEL, None, cache=None, clips=CLIPS)


def test_defaults_keep_steady_real_sessions_quiet_and_catch_a_real_change(scorer: WindowScorer) -> None:
    """Actor 21 (tests/data): steady sessions of each emotion (its normal and strong clips looped to 90 s,
    with and without 3 s pauses; the model's scores wobble between them as on real speech) raise no
    anomaly alert at the defaults; 45 s neutral then 45 s of strong anger, fear or sadness raise one
    within 6 s. The hand-set shift level this calibration replaced raised 24 alerts on these 15 minutes."""
    steady = [
        scorer.score(
            SessionSpec(f"steady-{label}-{pause}", "21", (Part(label, "mixed", 90.0),), pause, 2 if pause else 0)
        )
        for label in ("HAP", "SAD", "ANG", "FEA", "DIS")
        for pause in (0.0, 3.0)
    ]
    changes = [
        scorer.score(SessionSpec(f"change-{label}", "21", (Part("NEU", "normal", 45.0), Part(label, "strong", 45.0))))
        for label in ("ANG", "FEA", "SAD")
    ]
    figures = measure(steady, changes, lambda: AnomalyDetector(AnomalyConfig()))
    print(f"\n{figures.as_dict()}")
    assert figures.false_alarms == 0, "a steady session raised an anomaly alert"
    assert figures.caught == len(changes) and figures.early == 0


def test_cross_fit_scores_each_actor_with_the_fold_model_that_never_trained_on_it(tmp_path: Path) -> None:
    """``--cross-fit``: a session goes to the fold model whose held-out actors include its actor; an
    actor no fold holds out, or a folder without folds.json, is refused by name."""
    (tmp_path / "fold0").symlink_to(LOGMEL_CNN_MODEL)
    (tmp_path / "fold1").symlink_to(WHISPER_PROBE_MODEL)
    (tmp_path / "folds.json").write_text(json.dumps({"held_out": {"fold0": ["21"], "fold1": ["20"]}}))
    clips = {**CLIPS, **{("20", label, intensity): paths for (_, label, intensity), paths in CLIPS.items()}}
    crossed = CrossFitScorer(tmp_path, None, cache=None, clips=clips)
    for actor, model in (("21", LOGMEL_CNN_MODEL), ("20", WHISPER_PROBE_MODEL)):
        spec = SessionSpec(f"steady-{actor}", actor, (Part("ANG", "mixed", 12.0),))
        expected = WindowScorer(model, None, cache=None, clips=clips).score(spec).scores
        np.testing.assert_allclose(crossed.score_all([spec], progress=False)[0].scores, expected, atol=1e-6)
    with pytest.raises(SystemExit, match="actor 05"):
        crossed.score(SessionSpec("steady-05", "05", (Part("ANG", "mixed", 12.0),)))
    with pytest.raises(SystemExit, match="folds.json"):
        CrossFitScorer(tmp_path / "fold0", None, cache=None)
    (tmp_path / "folds.json").write_text(json.dumps({"held_out": {"fold0": ["21"], "fold1": ["20", "21"]}}))
    with pytest.raises(SystemExit, match="actor 21 is held out by two fold models"):
        CrossFitScorer(tmp_path, None, cache=None)


def test_the_card_section_is_inserted_once_and_replaced_on_recalibration(tmp_path: Path) -> None:
    from emotion_service.tuning.alert_calibration import update_card

    card = tmp_path / "README.md"
    card.write_text("# Model\n\n## Test results\n\nx\n\n## Intended use and limits\n\ny\n")
    update_card(card, "## Alerts\n\nfirst\n")
    update_card(card, "## Alerts\n\nsecond\n")
    text = card.read_text()
    assert text.count("## Alerts") == 1 and "second" in text and "first" not in text
    assert text.index("## Test results") < text.index("## Alerts") < text.index("## Intended use and limits")


async def test_the_served_models_calibration_sets_the_anomaly_plugins_defaults(
    tiny_model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A server hands its model folder to ``on_model_loaded``: the anomaly plugin then alerts at the
    levels calibrated for that model (not the bundled model's), and settings given still win."""
    model = tmp_path / "calibrated-model"
    shutil.copytree(tiny_model, model)
    calibrated = {"smoothing_windows": 4, "persistence_windows": 2, "false_alarm_rate": 0.002,
                  "shift_threshold": 0.61, "shift_rearm": 0.2}  # fmt: skip
    (model / CALIBRATION_FILE).write_text(json.dumps({"settings": calibrated}))
    detector = AnomalyDetector()
    assert detector.config.shift_threshold == calibrated_defaults(BUNDLED_MODEL)["shift_threshold"]
    async with serving(model, build_host({"anomaly": detector})):
        for name, value in calibrated.items():
            assert getattr(detector.config, name) == value, name

    monkeypatch.setenv("EMOTION_ANOMALY_SHIFT_THRESHOLD", "0.55")
    monkeypatch.setenv("EMOTION_ANOMALY_SHIFT_REARM", "0.25")
    detector = AnomalyDetector()
    async with serving(model, build_host({"anomaly": detector})):
        assert detector.config.shift_threshold == 0.55  # the environment wins over the calibration
        assert detector.config.shift_rearm == 0.25
        assert detector.config.persistence_windows == 2

    bare = tmp_path / "uncalibrated-model"
    shutil.copytree(tiny_model, bare)
    monkeypatch.delenv("EMOTION_ANOMALY_SHIFT_THRESHOLD")
    monkeypatch.delenv("EMOTION_ANOMALY_SHIFT_REARM")
    detector = AnomalyDetector()
    async with serving(bare, build_host({"anomaly": detector})):
        assert detector.config == AnomalyConfig()  # no calibration of its own: the bundled model's
    # A file that sets part of the settings: the rest are the bundled model's, not built-in fallbacks.
    (model / CALIBRATION_FILE).write_text(json.dumps({"settings": {"shift_threshold": 0.9}}))
    detector = AnomalyDetector()
    async with serving(model, build_host({"anomaly": detector})):
        assert detector.config == replace(AnomalyConfig(), shift_threshold=0.9)


def test_a_shift_threshold_set_alone_rearms_at_half_of_it(monkeypatch: pytest.MonkeyPatch) -> None:
    """Lowering the threshold alone (below the calibrated re-arm level) must not stop the server: the
    re-arm follows it at the calibration's share; a re-arm level given as well is kept."""
    monkeypatch.setenv("EMOTION_ANOMALY_SHIFT_THRESHOLD", "0.3")
    config = AnomalyDetector().config
    assert config.shift_threshold == 0.3 and config.shift_rearm == 0.15
    monkeypatch.setenv("EMOTION_ANOMALY_SHIFT_REARM", "0.1")
    assert AnomalyDetector().config.shift_rearm == 0.1
    monkeypatch.delenv("EMOTION_ANOMALY_SHIFT_THRESHOLD")
    monkeypatch.delenv("EMOTION_ANOMALY_SHIFT_REARM")
    assert AnomalyDetector().config.shift_rearm == calibrated_defaults(BUNDLED_MODEL)["shift_rearm"]


@pytest.mark.parametrize(
    "text",
    ["{not json", '{"settings": [1, 2]}', '{"settings": {"shift_threshold": "high"}}',
     '{"settings": {"persistence_windows": 2.9}}', '{"settings": {"false_alarm_rate": NaN}}'],  # fmt: skip
)
def test_an_unusable_calibration_keeps_the_earlier_defaults_and_names_the_file(tmp_path: Path, text: str) -> None:
    (tmp_path / CALIBRATION_FILE).write_text(text)
    bundled = calibrated_defaults(BUNDLED_MODEL)
    with structlog.testing.capture_logs() as logs:
        assert calibrated_defaults(tmp_path, bundled) == bundled
    assert [e["file"] for e in logs if e["event"] == "anomaly_calibration_unusable"] == [str(tmp_path / CALIBRATION_FILE)]
