"""Built-in plugin ``anomaly``: unusual stretches and sudden shifts of a session's emotion scores.

Each stream window gives a score vector ``x`` (one probability per emotion).
Two tests run per window, each firing an ``anomaly`` alert once and re-arming
when its statistic falls back below a lower level (hysteresis):

* **baseline** — the session's normal is the running mean ``mu`` and covariance
  ``S`` (Welford's online algorithm) of the windows before the last
  ``smoothing_windows``. Once it holds ``warmup_windows`` windows, the mean ``s``
  of the last ``smoothing_windows`` windows is compared with it by the
  Mahalanobis distance
  ``d = sqrt((s - mu)^T (S + min_std^2 I)^-1 (s - mu))``: roughly "how many
  standard deviations away", accounting for emotions that move together. The
  ridge ``min_std^2 I`` keeps ``S`` invertible (scores sum to 1, so ``S`` is
  singular) and stops a very steady session from flagging tiny wobbles.
  Windows are added to the baseline only while no baseline anomaly is active,
  so a long unusual stretch stays unusual instead of becoming the new normal.
* **shift** — the mean of the last ``smoothing_windows`` windows against the mean
  of the ``smoothing_windows`` before them, by total variation distance
  ``0.5 * sum(|a - b|)``: the share of probability mass that moved between
  emotions (0 = same, 1 = completely different).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np

from emotion_service.plugins.hookspecs import hookimpl
from emotion_service.plugins.session_state import SessionStates
from emotion_service.plugins.types import Alert, Result, SessionSummary
from emotion_service.settings import check, load_plugin_config, setting

NAME = "anomaly"


@dataclass(frozen=True)
class AnomalyConfig:
    """Settings of ``[plugins.anomaly]`` / ``EMOTION_ANOMALY_*``."""

    warmup_windows: int = setting(5, "Windows that form the baseline before the baseline test starts.")
    smoothing_windows: int = setting(
        3, "Windows averaged before comparing (and the length of each stretch of the shift test)."
    )
    distance_threshold: float = setting(4.0, "Mahalanobis distance from the baseline that raises an alert.")
    distance_rearm: float = setting(2.0, "The baseline test re-arms below this distance.")
    min_std: float = setting(0.05, "Floor of each emotion's standard deviation (the ridge added to the covariance).")
    shift_threshold: float = setting(
        0.35, "Total variation distance between consecutive stretches that raises an alert."
    )
    shift_rearm: float = setting(0.15, "The shift test re-arms below this distance.")
    max_sessions: int = setting(10_000, "Most concurrent sessions whose state is kept (least recently used dropped).")

    def __post_init__(self) -> None:
        check(
            f"plugin {NAME!r}",
            self,
            {
                "warmup_windows": (self.warmup_windows >= 2, "must be at least 2"),
                "smoothing_windows": (self.smoothing_windows >= 1, "must be at least 1"),
                "distance_rearm": (
                    0 <= self.distance_rearm < self.distance_threshold,
                    "must lie in [0, distance_threshold)",
                ),
                "min_std": (self.min_std > 0, "must be positive"),
                "shift_threshold": (0 < self.shift_threshold <= 1, "must lie in (0, 1]"),
                "shift_rearm": (0 <= self.shift_rearm < self.shift_threshold, "must lie in [0, shift_threshold)"),
                "max_sessions": (self.max_sessions >= 1, "must be at least 1"),
            },
        )


class Baseline:
    """Running mean and covariance of vectors (Welford)."""

    def __init__(self, size: int) -> None:
        self.count = 0
        self.mean = np.zeros(size)
        self._m2 = np.zeros((size, size))

    def add(self, x: np.ndarray) -> None:
        """Adds one vector."""
        self.count += 1
        delta = x - self.mean
        self.mean = self.mean + delta / self.count
        self._m2 += np.outer(delta, x - self.mean)

    def distance(self, x: np.ndarray, min_std: float) -> float:
        """Mahalanobis distance of ``x`` under the sample covariance plus ``min_std**2`` on the diagonal."""
        covariance = self._m2 / max(self.count - 1, 1) + min_std**2 * np.eye(len(x))
        delta = x - self.mean
        return float(np.sqrt(delta @ np.linalg.solve(covariance, delta)))


class SessionTracker:
    """The two tests for one session; :meth:`update` returns ``(test, statistic)`` for each that fires."""

    def __init__(self, labels: tuple[str, ...], config: AnomalyConfig) -> None:
        self.labels = labels
        self.config = config
        self.baseline = Baseline(len(labels))
        self.recent: deque[np.ndarray] = deque(maxlen=2 * config.smoothing_windows)
        self.baseline_armed = True
        self.shift_armed = True

    def update(self, x: np.ndarray) -> list[tuple[str, float]]:
        """Feeds one window's score vector."""
        c = self.config
        n = c.smoothing_windows
        self.recent.append(x)
        fired = []
        if self.baseline.count >= c.warmup_windows:
            distance = self.baseline.distance(np.mean(list(self.recent)[-n:], axis=0), c.min_std)
            if self.baseline_armed and distance >= c.distance_threshold:
                self.baseline_armed = False
                fired.append(("baseline", distance))
            elif not self.baseline_armed and distance < c.distance_rearm:
                self.baseline_armed = True
        if self.baseline_armed and len(self.recent) > n:
            # The window leaving the compared stretch joins the baseline: the
            # stretch is never compared with a baseline that already holds it.
            self.baseline.add(self.recent[-n - 1])
        if len(self.recent) == 2 * n:
            stretches = list(self.recent)
            shift = 0.5 * float(np.abs(np.mean(stretches[n:], axis=0) - np.mean(stretches[:n], axis=0)).sum())
            if self.shift_armed and shift >= c.shift_threshold:
                self.shift_armed = False
                fired.append(("shift", shift))
            elif not self.shift_armed and shift < c.shift_rearm:
                self.shift_armed = True
        return fired


class AnomalyDetector:
    """The ``anomaly`` plugin (``on_result`` for stream windows, ``on_session_end``)."""

    def __init__(self, config: AnomalyConfig | None = None) -> None:
        self.config = config or load_plugin_config(NAME, AnomalyConfig)
        self._sessions: SessionStates[dict[tuple[str, ...], SessionTracker]] = SessionStates(
            dict, self.config.max_sessions
        )

    @hookimpl
    def on_result(self, result: Result) -> list[Alert]:
        """Feeds a stream window to its session's tracker; Classify answers have no session to compare with."""
        if result.kind != "window":
            return []
        labels = tuple(sorted(result.scores))
        trackers = self._sessions.get(result.session_id)
        tracker = trackers.setdefault(labels, SessionTracker(labels, self.config))
        x = np.array([result.scores[label] for label in labels])
        return [self._alert(result, tracker, test, value) for test, value in tracker.update(x)]

    @hookimpl
    def on_session_end(self, summary: SessionSummary) -> None:
        """Forgets the finished session."""
        self._sessions.drop(summary.session_id)

    def _alert(self, result: Result, tracker: SessionTracker, test: str, value: float) -> Alert:
        n = self.config.smoothing_windows
        stretches = list(tracker.recent)
        latest = np.mean(stretches[-n:], axis=0)
        if test == "baseline":
            moved = latest - tracker.baseline.mean
            message = f"emotion scores far from this session's baseline (Mahalanobis distance {value:.1f})"
        else:
            moved = latest - np.mean(stretches[:n], axis=0)
            message = f"sudden shift of emotion: {value:.0%} of the score mass moved within {2 * n} windows"
        label = tracker.labels[int(np.argmax(moved))]
        return Alert(
            kind="anomaly",
            label=label,
            severity="warning",
            message=f"{message}; {label} rose most",
            value=value,
            time_s=result.end_s,
            source=NAME,
            details={"test": test, "window_index": str(result.index)},
        )
