"""Built-in plugin ``threshold_alerts``: an alert when an emotion's smoothed score crosses its threshold.

Per session, party (speaker, else channel) and emotion, the score is averaged over the last
``smoothing_windows`` windows (fewer at the start of a stream): in an interview each party's
alerts come from that party's own utterances. When that
average reaches the emotion's threshold an alert fires once; the emotion
re-arms only after the average falls below ``threshold - hysteresis``, so a
score hovering around the threshold does not raise a flurry of alerts. A
Classify call is judged on its own (one result, no smoothing, no state kept).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from emotion_service.plugins.hookspecs import hookimpl
from emotion_service.plugins.session_state import SessionStates
from emotion_service.plugins.types import Alert, Result, SessionSummary, party_of
from emotion_service.settings import check, load_plugin_config, setting

NAME = "threshold_alerts"


@dataclass(frozen=True)
class ThresholdAlertsConfig:
    """Settings of ``[plugins.threshold_alerts]`` / ``EMOTION_THRESHOLD_ALERTS_*``."""

    thresholds: dict[str, float] = setting(
        {"ANG": 0.6, "FEA": 0.6, "SAD": 0.6},
        "Emotion label -> smoothed score at which an alert fires (labels the model lacks are ignored).",
    )
    hysteresis: float = setting(0.15, "An emotion re-arms once its smoothed score falls below threshold - hysteresis.")
    smoothing_windows: int = setting(3, "Windows averaged into the smoothed score.")
    severity: str = setting("warning", "Severity of the alerts: info, warning or critical.")
    max_sessions: int = setting(10_000, "Most concurrent sessions whose state is kept (least recently used dropped).")

    def __post_init__(self) -> None:
        check(
            f"plugin {NAME!r}",
            self,
            {
                "thresholds": (all(0 < t <= 1 for t in self.thresholds.values()), "each threshold must lie in (0, 1]"),
                "hysteresis": (
                    all(0 <= self.hysteresis < t for t in self.thresholds.values()),
                    "must be at least 0 and below every threshold (an emotion re-arms below threshold - hysteresis)",
                ),
                "smoothing_windows": (self.smoothing_windows >= 1, "must be at least 1"),
                "severity": (self.severity in ("info", "warning", "critical"), "must be info, warning or critical"),
                "max_sessions": (self.max_sessions >= 1, "must be at least 1"),
            },
        )


@dataclass
class _SessionState:
    recent: deque[dict[str, float]]
    spans: deque[tuple[float, float]]
    disarmed: set[str] = field(default_factory=set)
    previous: dict[str, float] = field(default_factory=dict)  # each emotion's smoothed score one window before


class ThresholdAlerts:
    """The ``threshold_alerts`` plugin (``on_result``, ``on_session_end``)."""

    def __init__(self, config: ThresholdAlertsConfig | None = None) -> None:
        self.config = config or load_plugin_config(NAME, ThresholdAlertsConfig)
        # Per session: each party's state (a diarized or per-channel job's utterances interleave).
        self._sessions: SessionStates[dict[str, _SessionState]] = SessionStates(dict, self.config.max_sessions)

    @hookimpl
    def on_result(self, result: Result) -> list[Alert]:
        """Updates the session's smoothed scores; returns the alerts that fire now.

        A result without speech claims no emotion: it neither raises an alert nor enters the
        smoothing (a pause does not dilute the speech around it)."""
        if result.no_speech:
            return []
        if result.kind == "classify":
            state = self._new_state()
        else:
            parties = self._sessions.get(result.session_id)
            state = parties.setdefault(party_of(result), self._new_state())
        state.recent.append(result.scores)
        state.spans.append((result.start_s, result.end_s))
        alerts = []
        for label, threshold in self.config.thresholds.items():
            if label not in result.scores:
                continue
            smoothed = sum(scores.get(label, 0.0) for scores in state.recent) / len(state.recent)
            if label not in state.disarmed and smoothed >= threshold:
                state.disarmed.add(label)
                alerts.append(self._alert(result, label, smoothed, threshold, state))
            elif label in state.disarmed and smoothed < threshold - self.config.hysteresis:
                state.disarmed.discard(label)
            state.previous[label] = smoothed
        return alerts

    @hookimpl
    def on_session_end(self, summary: SessionSummary) -> None:
        """Forgets the finished session."""
        self._sessions.drop(summary.session_id)

    def _new_state(self) -> _SessionState:
        n = self.config.smoothing_windows
        return _SessionState(recent=deque(maxlen=n), spans=deque(maxlen=n))

    def _alert(self, result: Result, label: str, smoothed: float, threshold: float, state: _SessionState) -> Alert:
        """E.g. ``ANG 64% reached its threshold 60% (mean of 3 window(s) between 3.0 s and 9.0 s); ANG was
        41% one window before``: what rose, over which seconds, from what."""
        rearm = threshold - self.config.hysteresis
        windows = len(state.recent)
        start, end = state.spans[0][0], state.spans[-1][1]
        span = f" between {start:.1f} s and {end:.1f} s" if result.kind != "classify" else ""
        message = f"{label} {smoothed:.0%} reached its threshold {threshold:.0%} (mean of {windows} window(s){span})"
        details = {"threshold": f"{threshold:g}", "rearm_below": f"{rearm:g}", "windows": str(windows),
                   "start_s": f"{start:.1f}", "end_s": f"{end:.1f}"}  # fmt: skip
        if label in state.previous:
            message += f"; {label} was {state.previous[label]:.0%} one window before"
            details["previous"] = f"{state.previous[label]:.3f}"
        if result.speaker:
            message = f"{result.speaker}: {message}"
        return Alert(
            kind="threshold",
            label=label,
            severity=self.config.severity,  # type: ignore[arg-type]
            message=message,
            value=smoothed,
            time_s=result.end_s,
            source=NAME,
            details=details,
            speaker=result.speaker,
        )
