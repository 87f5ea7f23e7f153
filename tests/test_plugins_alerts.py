"""Threshold alerts (smoothing, hysteresis), anomaly detection and the alert sinks (log, webhook)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest
import structlog

from emotion_service.plugins import Alert, Result
from emotion_service.plugins.builtin.alert_log import AlertLog
from emotion_service.plugins.builtin.anomaly import AnomalyConfig, AnomalyDetector, SessionTracker
from emotion_service.plugins.builtin.threshold_alerts import ThresholdAlerts, ThresholdAlertsConfig
from emotion_service.plugins.builtin.webhook import Webhook, WebhookConfig, WebhookError
from emotion_service.plugins.manager import build_host
from emotion_service.plugins.types import SessionSummary

LABELS = ("ANG", "DIS", "FEA", "HAP", "NEU", "SAD")


def window(session: str, index: int, scores: dict[str, float], kind: str = "window") -> Result:
    label = max(scores, key=scores.__getitem__)
    return Result(session, session, kind, label, scores, index * 1.5, index * 1.5 + 3.0, index=index)  # type: ignore[arg-type]


def with_anger(anger: float) -> dict[str, float]:
    rest = (1.0 - anger) / (len(LABELS) - 1)
    return {label: anger if label == "ANG" else rest for label in LABELS}


def end_of(session: str) -> SessionSummary:
    return SessionSummary(session, 0, 0.0, "", {}, {}, (), ())


def test_threshold_fires_once_and_rearms_below_the_lower_level() -> None:
    plugin = ThresholdAlerts(ThresholdAlertsConfig(thresholds={"ANG": 0.6}, hysteresis=0.15, smoothing_windows=2))
    anger = [0.2, 0.5, 0.7, 0.8, 0.9, 0.6, 0.5, 0.42, 0.3, 0.7, 0.8]
    # smoothed: .2 .35 [.6 fires] .75 .85 .75 .55 .46 [.36 re-arms] .5 [.75 fires]
    fired = {i: plugin.on_result(window("s", i, with_anger(a))) for i, a in enumerate(anger)}
    assert [i for i, alerts in fired.items() if alerts] == [2, 10]
    alert = fired[2][0]
    assert (alert.kind, alert.label, alert.source) == ("threshold", "ANG", "threshold_alerts")
    assert alert.value == pytest.approx(0.6) and alert.time_s == pytest.approx(6.0)
    assert alert.details["rearm_below"] == "0.45"
    assert alert.message == (
        "ANG 60% reached its threshold 60% (mean of 2 window(s) between 1.5 s and 6.0 s); ANG was 35% one window before"
    )


def test_threshold_state_is_per_session_and_classify_stands_alone() -> None:
    plugin = ThresholdAlerts(ThresholdAlertsConfig(thresholds={"ANG": 0.6, "SAD": 0.9}, smoothing_windows=3))
    assert plugin.on_result(window("a", 0, with_anger(0.9)))  # a fires
    assert plugin.on_result(window("b", 0, with_anger(0.9)))  # b has its own state
    assert not plugin.on_result(window("a", 1, with_anger(0.9)))  # a stays disarmed
    for _ in range(2):  # each Classify answer is judged alone, every time
        assert [a.label for a in plugin.on_result(window("c", 0, with_anger(0.95), kind="classify"))] == ["ANG"]
    plugin.on_session_end(end_of("a"))
    assert plugin.on_result(window("a", 0, with_anger(0.9)))  # a new session with that id starts armed


def test_each_party_of_an_interview_has_its_own_threshold_state() -> None:
    """Interleaved utterances of two speakers: S1's calm answers do not dilute S2's anger (pooled,
    no mean of two in a row reaches 0.6), and S2's alert averages S2's utterances alone and names S2."""
    plugin = ThresholdAlerts(ThresholdAlertsConfig(thresholds={"ANG": 0.6}, smoothing_windows=2))

    def said(index: int, speaker: str, anger: float) -> Result:
        start = index * 4.0
        return Result("job", "job", "utterance", "ANG", with_anger(anger), start, start + 3.0, index=index,
                      speaker=speaker)  # fmt: skip

    turns = [("S1", 0.1), ("S2", 0.9), ("S1", 0.1), ("S2", 0.9), ("S1", 0.1)]
    fired = [alert for i, (speaker, anger) in enumerate(turns) for alert in plugin.on_result(said(i, speaker, anger))]
    assert [a.speaker for a in fired] == ["S2"]
    assert fired[0].message == "S2: ANG 90% reached its threshold 60% (mean of 1 window(s) between 4.0 s and 7.0 s)"


def scores_around(centre: dict[str, float], rng: np.random.Generator, noise: float = 0.03) -> dict[str, float]:
    values = np.clip(np.array([centre[label] for label in LABELS]) + rng.normal(0, noise, len(LABELS)), 0.001, None)
    return dict(zip(LABELS, (values / values.sum()).tolist(), strict=True))


def feed(plugin: AnomalyDetector, session: str, sequence: Sequence[dict[str, float]]) -> list[tuple[int, Alert]]:
    return [(i, alert) for i, scores in enumerate(sequence) for alert in plugin.on_result(window(session, i, scores))]


NEUTRAL = {"ANG": 0.08, "DIS": 0.08, "FEA": 0.08, "HAP": 0.08, "NEU": 0.6, "SAD": 0.08}
ANGRY = {"ANG": 0.7, "DIS": 0.06, "FEA": 0.06, "HAP": 0.06, "NEU": 0.06, "SAD": 0.06}


def test_anomaly_stays_quiet_on_a_steady_session() -> None:
    rng = np.random.default_rng(7)
    assert feed(AnomalyDetector(AnomalyConfig()), "steady", [scores_around(NEUTRAL, rng) for _ in range(60)]) == []


def test_anomaly_fires_once_per_test_on_a_sudden_shift() -> None:
    rng = np.random.default_rng(7)
    sequence = [scores_around(NEUTRAL, rng) for _ in range(30)] + [scores_around(ANGRY, rng) for _ in range(12)]
    # At the defaults (calibrated on real speech, whose scores wobble far more than these) the baseline
    # test catches this move at once; the shift test waits for a larger one.
    fired = feed(AnomalyDetector(AnomalyConfig()), "shifting", sequence)
    assert fired and all(30 <= i <= 32 for i, _ in fired) and fired[0][1].label == "ANG"
    assert [a.details["test"] for _, a in fired] == ["baseline"]
    # With a lower shift level and no persistence, each test fires once.
    config = AnomalyConfig(shift_threshold=0.35, shift_rearm=0.15, persistence_windows=1, smoothing_windows=3)
    fired = feed(AnomalyDetector(config), "shifting", sequence)
    by_test = {alert.details["test"]: (i, alert) for i, alert in fired}
    assert len(fired) == 2 and set(by_test) == {"baseline", "shift"}
    for i, alert in by_test.values():
        assert 30 <= i <= 32, "fires within the first windows after the shift"
        assert (alert.kind, alert.label, alert.source) == ("anomaly", "ANG", "anomaly")
    assert by_test["baseline"][1].value >= 4.0 and by_test["shift"][1].value >= 0.35


def steady_session(rng: np.random.Generator, windows: int = 120, sigma: float = 0.6):  # type: ignore[no-untyped-def]
    """A session whose emotion never changes: 3 s windows every 1.5 s, so neighbours share half their
    audio (their scores are made from shared latent halves, as overlapping windows' are)."""
    base = np.log(np.array([NEUTRAL[label] for label in LABELS]))
    halves = rng.standard_normal((windows + 1, len(LABELS))) * sigma
    for i in range(windows):
        logits = base + (halves[i] + halves[i + 1]) / np.sqrt(2)
        p = np.exp(logits - logits.max())
        yield p / p.sum(), (1.5 * i, 1.5 * i + 3.0)


@pytest.mark.parametrize("rate", [0.02, 0.005])
def test_baseline_false_alarms_stay_within_the_configured_rate(rate: float) -> None:
    config = AnomalyConfig(false_alarm_rate=rate)
    rng = np.random.default_rng(1)
    tested = exceeded = 0
    for _ in range(300):
        tracker = SessionTracker(LABELS, config)
        for scores, span in steady_session(rng):
            tracker.update(scores, span)
            if tracker.baseline.count >= config.warmup_windows:
                tested += 1
                exceeded += tracker.last_distance >= tracker.alert_level
    print(f"\nfalse alarms at {rate}: {exceeded / tested:.4f} of {tested} windows")
    assert exceeded / tested <= rate


def test_the_overlap_correction_is_what_keeps_false_alarms_down() -> None:
    """Treating overlapping windows as independent (the old comparison) alarms far more often."""
    config = AnomalyConfig(false_alarm_rate=0.005)
    rng = np.random.default_rng(1)
    exceeded = {True: 0, False: 0}
    for _ in range(100):
        trackers = {True: SessionTracker(LABELS, config), False: SessionTracker(LABELS, config)}
        for scores, span in steady_session(rng):
            for corrected, tracker in trackers.items():
                tracker.update(scores, span if corrected else None)  # no spans: no overlap known
                if tracker.baseline.count >= config.warmup_windows:
                    exceeded[corrected] += tracker.last_distance >= tracker.alert_level
    assert exceeded[False] > 2 * exceeded[True]


def test_a_real_shift_in_a_steady_session_is_caught() -> None:
    rng = np.random.default_rng(3)
    plugin = AnomalyDetector(AnomalyConfig())
    fired = []
    for i, (scores, span) in enumerate(steady_session(rng, windows=40)):
        if i >= 30:  # the speaker turns angry
            scores = 0.3 * scores + 0.7 * np.array([ANGRY[label] for label in LABELS])
        result = Result("turn", "turn", "window", "", dict(zip(LABELS, scores.tolist(), strict=True)), *span, index=i)
        fired += [(i, a) for a in plugin.on_result(result) if a.details["test"] == "baseline"]
    assert fired and 30 <= fired[0][0] <= 33 and fired[0][1].label == "ANG"


def test_anomaly_ignores_classify_answers_and_forgets_ended_sessions() -> None:
    plugin = AnomalyDetector(AnomalyConfig())
    assert plugin.on_result(window("c", 0, ANGRY, kind="classify")) == []
    feed(plugin, "s", [NEUTRAL] * 3)
    plugin.on_session_end(end_of("s"))
    assert len(plugin._sessions) == 0


def test_alert_log_writes_one_structured_event() -> None:
    alert = Alert(kind="threshold", label="ANG", message="angry", value=0.7, time_s=3.0, source="threshold_alerts")
    with structlog.testing.capture_logs() as logs:
        build_host({"alert_log": AlertLog()}).on_alert(alert, "session-1")
    (event,) = [e for e in logs if e["event"] == "alert_raised"]
    assert event["log_level"] == "warning"
    assert (event["session_id"], event["alert_kind"], event["label"], event["value"]) == (
        "session-1",
        "threshold",
        "ANG",
        0.7,
    )


class Receiver:
    """A local HTTP endpoint answering the given statuses in turn (then 200), recording requests."""

    def __init__(self, statuses: Sequence[int]) -> None:
        self.statuses = list(statuses)
        self.requests: list[tuple[dict[str, str], dict[str, object]]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                receiver.requests.append((dict(self.headers), body))
                self.send_response(receiver.statuses.pop(0) if receiver.statuses else 200)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/alerts"


@pytest.fixture
def receiver_factory() -> Iterator[type[Receiver]]:
    started: list[Receiver] = []

    class Started(Receiver):
        def __init__(self, statuses: Sequence[int]) -> None:
            super().__init__(statuses)
            threading.Thread(target=self.server.serve_forever, daemon=True).start()
            started.append(self)

    yield Started
    for receiver in started:
        receiver.server.shutdown()
        receiver.server.server_close()


def test_webhook_retries_transient_failures_then_delivers(receiver_factory: type[Receiver]) -> None:
    receiver = receiver_factory([503, 429])
    plugin = Webhook(WebhookConfig(url=receiver.url, token="s3cret", retries=3, backoff_s=0.01))
    plugin.deliver(Alert(kind="anomaly", label="SAD", message="unusual", details={"test": "shift"}), "session-9")
    assert len(receiver.requests) == 3
    headers, body = receiver.requests[-1]
    assert headers["Authorization"] == "Bearer s3cret"
    assert body["session_id"] == "session-9"
    assert body["alert"] == {
        "kind": "anomaly", "message": "unusual", "label": "SAD", "severity": "warning",
        "value": 0.0, "time_s": 0.0, "source": "", "details": {"test": "shift"}, "speaker": "",
    }  # fmt: skip


def test_webhook_gives_up_and_the_host_names_it(receiver_factory: type[Receiver]) -> None:
    receiver = receiver_factory([500, 500, 500])
    plugin = Webhook(WebhookConfig(url=receiver.url, retries=1, backoff_s=0.01))
    with pytest.raises(WebhookError, match="after 2 attempt"):
        plugin.deliver(Alert(kind="threshold", message="m"), "s")
    rejecting = receiver_factory([400])
    host = build_host({"webhook": Webhook(WebhookConfig(url=rejecting.url, retries=3, backoff_s=0.01))})
    with structlog.testing.capture_logs() as logs:
        host.on_alert(Alert(kind="threshold", message="m"), "s")
        assert host.flush(10)
    assert len(rejecting.requests) == 1, "a 4xx answer is not retried"
    assert any(e["event"] == "webhook_failed" and "HTTP 400" in e["reason"] for e in logs)


def test_webhook_retries_sleep_on_its_own_thread_not_the_callers(receiver_factory: type[Receiver]) -> None:
    receiver = receiver_factory([503, 503, 503])
    plugin = Webhook(WebhookConfig(url=receiver.url, retries=3, backoff_s=0.3))
    threads: list[str] = []
    post = plugin._post

    def recording_post(*args: object) -> object:
        threads.append(threading.current_thread().name)
        return post(*args)

    plugin._post = recording_post  # type: ignore[method-assign]
    started = time.perf_counter()
    plugin.on_alert(Alert(kind="threshold", message="m"), "s")
    assert time.perf_counter() - started < 0.1, "on_alert must only queue the delivery"
    assert plugin.flush(10)
    assert len(receiver.requests) == 4
    assert threads == ["sink-webhook"] * 4
    plugin.on_shutdown()


def test_webhook_without_url_does_nothing() -> None:
    Webhook(WebhookConfig()).on_alert(Alert(kind="threshold", message="m"), "s")
