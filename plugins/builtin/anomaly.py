"""Built-in plugin ``anomaly``: unusual stretches and sudden shifts of a session's emotion scores.

Each stream window gives a score vector ``x`` (one probability per emotion).
Two tests run per window, each firing an ``anomaly`` alert once and re-arming
when its statistic falls back below a lower level (hysteresis):

* **baseline** — the session's normal is the running mean ``mu`` and covariance
  ``S`` (Welford's online algorithm) of the ``m`` windows before the last
  ``smoothing_windows`` (``n``). Once it holds ``warmup_windows`` windows, the mean
  ``s`` of the last ``n`` windows is compared with it like with like: ``s - mu``
  is a difference of two means, whose covariance is not ``S`` (that of one window)
  but ``S * f * (1/n + 1/m)``. The factor ``f`` accounts for overlapping windows:
  two windows whose audio overlaps by a fraction ``o`` are correlated by about
  ``o``, so the mean of ``n`` consecutive windows varies more than ``n``
  independent ones would: ``f = 1 + 2 * sum_k (1 - k/n) * max(0, 1 - k (1 - o))``
  for ``k = 1 .. n-1``, with ``o`` read from the windows' own start and end times.
  The statistic is the Mahalanobis distance
  ``d = sqrt((s - mu)^T (S f (1/n + 1/m) + min_std^2 I / n)^-1 (s - mu))``; for a
  session whose emotion does not change, ``d^2`` follows about a chi-square
  distribution with (number of emotions - 1) degrees of freedom (scores sum to 1),
  so the alert level is its ``1 - false_alarm_rate`` quantile: a steady session
  raises a baseline alert on at most that share of windows. The test re-arms when
  ``d^2`` falls below the distribution's median. The ridge ``min_std^2 I / n`` keeps
  the covariance invertible (scores sum to 1, so ``S`` is singular) and stops a very
  steady session from flagging tiny wobbles. Windows join the baseline only while
  no baseline anomaly is active, so a long unusual stretch stays unusual instead of
  becoming the new normal.
* **shift** — the mean of the last ``smoothing_windows`` windows against the mean
  of the ``smoothing_windows`` before them, by total variation distance
  ``0.5 * sum(|a - b|)``: the share of probability mass that moved between
  emotions (0 = same, 1 = completely different).

A test fires only once its statistic has stayed at or above its level for
``persistence_windows`` consecutive windows: real speech wobbles between
neighbouring emotions from one window to the next, a real change lasts.

The defaults are calibrated for the bundled model on real sessions of the
RAVDESS training actors (``python -m emotion_service.tuning.alert_calibration``,
run by ``make model``): they are read from the model folder's
``alert_calibration.json``, which also states the false alarms per hour of
steady speech they give.

Each alert explains itself: which emotion moved, from what to what, over which
seconds, and how its statistic ranks among the session's own earlier values.
"""

from __future__ import annotations

import json
import math
from bisect import bisect_left, insort
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import structlog
from scipy.stats import chi2
from scipy.stats import f as f_dist

from emotion_service.paths import BUNDLED_MODEL
from emotion_service.plugins.hookspecs import hookimpl
from emotion_service.plugins.session_state import SessionStates
from emotion_service.plugins.types import Alert, Result, SessionSummary
from emotion_service.settings import check, load_plugin_config, setting

log = structlog.get_logger(__name__)

NAME = "anomaly"
CALIBRATION_FILE = "alert_calibration.json"
# Used only when the bundled model's calibration file is missing (e.g. an install without models/).
FALLBACK = {"smoothing_windows": 3, "persistence_windows": 1, "false_alarm_rate": 0.005,
            "shift_threshold": 0.35, "shift_rearm": 0.15}  # fmt: skip


def calibrated_defaults(model_folder: Any = BUNDLED_MODEL, base: dict[str, Any] | None = None) -> dict[str, Any]:
    """The settings ``tuning/alert_calibration.py`` chose for a model (the bundled one by default).

    A setting the file lacks comes from ``base`` (default: the built-in fallbacks); a file that is
    missing, unreadable or holds a value of the wrong kind gives ``base`` whole, with a warning
    naming the file and what is wrong (a missing file says nothing: not every model is calibrated).
    """
    base = dict(FALLBACK if base is None else base)
    path = Path(model_folder) / CALIBRATION_FILE
    try:
        settings = json.loads(path.read_text())["settings"]
        if not isinstance(settings, dict):
            raise TypeError(f'"settings" is {type(settings).__name__}, not a table')
        chosen = {}
        for name, default in base.items():
            value = settings.get(name, default)
            if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
                raise TypeError(f"{name} is {value!r}, not a finite number")
            if isinstance(default, int) and value != int(value):
                raise TypeError(f"{name} is {value!r}, not a whole number")
            chosen[name] = type(default)(value)
    except FileNotFoundError:
        return base
    except (OSError, ValueError, KeyError, TypeError) as exc:
        log.warning("anomaly_calibration_unusable", file=str(path), problem=str(exc), using="the earlier defaults")
        return base
    return chosen


CALIBRATED = calibrated_defaults()
# The shift test re-arms at this share of its level (tuning/alert_calibration.py calibrates so).
REARM_SHARE = 0.5


@dataclass(frozen=True)
class AnomalyConfig:
    """Settings of ``[plugins.anomaly]`` / ``EMOTION_ANOMALY_*``."""

    warmup_windows: int = setting(10, "Windows that form the baseline before the baseline test starts.")
    smoothing_windows: int = setting(
        CALIBRATED["smoothing_windows"],
        "Windows averaged before comparing (and the length of each stretch of the shift test).",
    )
    persistence_windows: int = setting(
        CALIBRATED["persistence_windows"],
        "Consecutive windows a test's statistic must stay at or above its level before it fires.",
    )
    false_alarm_rate: float = setting(
        CALIBRATED["false_alarm_rate"],
        "Nominal share of windows of a steady session on which the baseline test's statistic exceeds its "
        "level (sets the level; calibrated on real sessions for the bundled model).",
    )
    min_std: float = setting(0.05, "Floor of each emotion's standard deviation (the ridge added to the covariance).")
    shift_threshold: float = setting(
        CALIBRATED["shift_threshold"],
        "Total variation distance between consecutive stretches that raises an alert (calibrated on real sessions).",
    )
    shift_rearm: float = setting(CALIBRATED["shift_rearm"], "The shift test re-arms below this distance.")
    max_sessions: int = setting(10_000, "Most concurrent sessions whose state is kept (least recently used dropped).")

    @staticmethod
    def derived_settings(values: dict[str, Any], given: set[str]) -> dict[str, Any]:
        """A ``shift_threshold`` given without a ``shift_rearm`` re-arms at half of it, as every calibration
        sets it: a lower threshold alone must not leave the calibrated re-arm level at or above it."""
        if "shift_threshold" in given and "shift_rearm" not in given:
            values = {**values, "shift_rearm": round(values["shift_threshold"] * REARM_SHARE, 4)}
        return values

    def __post_init__(self) -> None:
        check(
            f"plugin {NAME!r}",
            self,
            {
                "warmup_windows": (self.warmup_windows >= 2, "must be at least 2"),
                "smoothing_windows": (self.smoothing_windows >= 1, "must be at least 1"),
                "persistence_windows": (self.persistence_windows >= 1, "must be at least 1"),
                "false_alarm_rate": (0 < self.false_alarm_rate < 0.5, "must lie in (0, 0.5)"),
                "min_std": (self.min_std > 0, "must be positive"),
                "shift_threshold": (0 < self.shift_threshold <= 1, "must lie in (0, 1]"),
                "shift_rearm": (0 <= self.shift_rearm < self.shift_threshold,
                                f"must lie in [0, shift_threshold={self.shift_threshold:g})"),
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

    def distance(self, mean_of_n: np.ndarray, n: int, inflation: float, min_std: float) -> float:
        """Mahalanobis distance of the mean of ``n`` windows from the baseline's mean.

        The covariance is that of a difference of two means, ``S * inflation * (1/n + 1/count)``
        (``inflation`` for correlated windows), plus ``min_std**2 / n`` on the diagonal.
        """
        single = self._m2 / max(self.count - 1, 1)
        covariance = single * inflation * (1 / n + 1 / self.count) + (min_std**2 / n) * np.eye(len(mean_of_n))
        delta = mean_of_n - self.mean
        return float(np.sqrt(delta @ np.linalg.solve(covariance, delta)))


def overlap_inflation(n: int, overlap: float) -> float:
    """How much more the mean of ``n`` consecutive windows varies than that of ``n`` independent ones.

    Windows overlapping by a fraction ``overlap`` of their audio are taken to correlate by
    the share of audio two windows ``k`` apart have in common, ``max(0, 1 - k (1 - overlap))``.
    """
    step = 1 - min(max(overlap, 0.0), 1.0)
    return 1 + 2 * sum((1 - k / n) * max(0.0, 1 - k * step) for k in range(1, n))


def shift_statistic(stretches: np.ndarray | list[np.ndarray], n: int) -> float:
    """The shift test's statistic: total variation distance between the mean of the last ``n`` rows and
    that of the ``n`` rows before them."""
    rows = np.asarray(stretches)
    return 0.5 * float(np.abs(rows[-n:].mean(axis=0) - rows[-2 * n : -n].mean(axis=0)).sum())


class History:
    """A session's earlier values of one statistic, to say how unusual a new one is."""

    def __init__(self) -> None:
        self._sorted: list[float] = []

    def __len__(self) -> int:
        return len(self._sorted)

    def share_below(self, value: float) -> float:
        """Share of the earlier values strictly below ``value`` (1.0 when there are none)."""
        if not self._sorted:
            return 1.0
        return bisect_left(self._sorted, value) / len(self._sorted)

    def add(self, value: float) -> None:
        insort(self._sorted, value)


@dataclass(frozen=True)
class Firing:
    """A test that fired: its statistic, how it ranks in the session, and the stretches it compared."""

    test: str
    value: float
    level: float
    share_below: float  # share of the session's earlier values of the statistic below this one
    earlier: int  # how many earlier values there were
    before: np.ndarray  # the mean scores it compared against (the baseline, or the earlier stretch)
    after: np.ndarray  # the mean scores of the latest stretch
    start_s: float  # from the start of the first window compared ...
    end_s: float  # ... to the end of the latest one

    def __iter__(self):  # type: ignore[no-untyped-def]
        """Unpacks as ``(test, value)``, as :meth:`SessionTracker.update` returned before."""
        return iter((self.test, self.value))


class SessionTracker:
    """The two tests for one session; :meth:`update` returns a :class:`Firing` for each that fires."""

    def __init__(self, labels: tuple[str, ...], config: AnomalyConfig) -> None:
        self.labels = labels
        self.config = config
        self.degrees = max(len(labels) - 1, 1)
        self.alert_level = float("inf")
        self.rearm_level = float(np.sqrt(chi2.ppf(0.5, self.degrees)))
        self.overlap = 0.0
        self.last_distance = 0.0  # the baseline statistic of the latest window (0 during warm-up)
        self.last_shift = 0.0  # the shift statistic of the latest window (0 until it has 2n windows)
        self._last_span: tuple[float, float] | None = None
        self.baseline = Baseline(len(labels))
        self.recent: deque[np.ndarray] = deque(maxlen=2 * config.smoothing_windows)
        self.spans: deque[tuple[float, float]] = deque(maxlen=2 * config.smoothing_windows)
        self.baseline_armed = True
        self.shift_armed = True
        self.runs = {"baseline": 0, "shift": 0}  # consecutive windows at or above each level
        self.history = {"baseline": History(), "shift": History()}

    def _alert_level(self) -> float:
        """The distance a steady session exceeds on ``false_alarm_rate`` of its windows.

        Hotelling's T^2 quantile rather than the chi-square one: the baseline's covariance is
        itself estimated, from few windows early in a session, and overlapping windows carry
        less information than their count (an effective count of ``m / f``).
        """
        p = self.degrees
        effective = max(self.baseline.count / overlap_inflation(self.baseline.count, self.overlap), p + 2.0)
        quantile = f_dist.ppf(1 - self.config.false_alarm_rate, p, effective - p)
        return float(np.sqrt(p * (effective - 1) / (effective - p) * quantile))

    def _persisted(self, test: str, exceeded: bool) -> bool:
        self.runs[test] = self.runs[test] + 1 if exceeded else 0
        return self.runs[test] >= self.config.persistence_windows

    def _firing(self, test: str, value: float, level: float, before: np.ndarray, first: int) -> Firing:
        n = self.config.smoothing_windows
        history = self.history[test]
        # The shift compares two stretches, so the change lies within both; the baseline test, the latest one.
        start = self.spans[first][0] if test == "shift" else self.spans[-min(n, len(self.spans))][0]
        return Firing(test, value, level, history.share_below(value), len(history), before,
                      np.mean(list(self.recent)[-n:], axis=0), start, self.spans[-1][1])  # fmt: skip

    def update(self, x: np.ndarray, span: tuple[float, float] | None = None) -> list[Firing]:
        """Feeds one window's score vector (``span``: its start and end in seconds, for the overlap)."""
        c = self.config
        n = c.smoothing_windows
        if span is not None:
            if self._last_span is not None and span[1] > span[0]:
                self.overlap = max(0.0, self._last_span[1] - span[0]) / (span[1] - span[0])
            self._last_span = span
        self.recent.append(x)
        self.spans.append(span if span is not None else (0.0, 0.0))
        fired = []
        if self.baseline.count >= c.warmup_windows:
            stretch = list(self.recent)[-n:]
            inflation = overlap_inflation(len(stretch), self.overlap)
            distance = self.baseline.distance(np.mean(stretch, axis=0), len(stretch), inflation, c.min_std)
            self.last_distance = distance
            self.alert_level = self._alert_level()
            persisted = self._persisted("baseline", distance >= self.alert_level)
            if self.baseline_armed and persisted:
                self.baseline_armed = False
                fired.append(self._firing("baseline", distance, self.alert_level, self.baseline.mean.copy(), 0))
            elif not self.baseline_armed and distance < self.rearm_level:
                self.baseline_armed = True
            self.history["baseline"].add(distance)
        if self.baseline_armed and len(self.recent) > n:
            # The window leaving the compared stretch joins the baseline: the
            # stretch is never compared with a baseline that already holds it.
            self.baseline.add(self.recent[-n - 1])
        if len(self.recent) == 2 * n:
            stretches = list(self.recent)
            shift = shift_statistic(stretches, n)
            self.last_shift = shift
            persisted = self._persisted("shift", shift >= c.shift_threshold)
            if self.shift_armed and persisted:
                self.shift_armed = False
                fired.append(self._firing("shift", shift, c.shift_threshold, np.mean(stretches[:n], axis=0), 0))
            elif not self.shift_armed and shift < c.shift_rearm:
                self.shift_armed = True
            self.history["shift"].add(shift)
        return fired


def explain(labels: tuple[str, ...], firing: Firing) -> tuple[str, str, dict[str, str]]:
    """The alert's label, its sentence and its details: what moved, from what to what, when, how unusual.

    E.g. ``NEU 70% -> ANG 55% between 12.0 s and 18.0 s; larger than 99.5% of this session's
    200 earlier changes``.
    """
    rose = labels[int(np.argmax(firing.after - firing.before))]
    was = labels[int(np.argmax(firing.before))]
    usual = " (its usual)" if firing.test == "baseline" else ""
    move = (
        f"{was} {firing.before[labels.index(was)]:.0%}{usual} -> {rose} {firing.after[labels.index(rose)]:.0%}"
        f" between {firing.start_s:.1f} s and {firing.end_s:.1f} s"
    )
    if firing.earlier == 0:
        rank = "the first comparison of this session"
    else:
        share = firing.share_below
        what = "changes" if firing.test == "shift" else "distances from its usual"
        if share >= 1:
            rank = f"larger than any of this session's {firing.earlier} earlier {what}"
        else:
            digits = 1 if share >= 0.99 else 0
            rank = f"larger than {share:.{digits}%} of this session's {firing.earlier} earlier {what}"
    now = f"{was} now {firing.after[labels.index(was)]:.0%}; " if was != rose else ""
    if firing.test == "shift":
        what = f"sudden shift of emotion: {move} ({now}{firing.value:.0%} of the score mass moved); {rank}"
    else:
        what = f"emotion far from this session's usual: {move} ({now}distance {firing.value:.1f}); {rank}"
    details = {
        "from_label": was,
        "from_score": f"{firing.before[labels.index(was)]:.3f}",
        "to_label": rose,
        "to_score": f"{firing.after[labels.index(rose)]:.3f}",
        "start_s": f"{firing.start_s:.1f}",
        "end_s": f"{firing.end_s:.1f}",
        "level": f"{firing.level:.4g}",
        "session_share_below": f"{firing.share_below:.4f}",
        "session_earlier": str(firing.earlier),
    }
    return rose, what, details


class AnomalyDetector:
    """The ``anomaly`` plugin (``on_result`` for stream windows, ``on_session_end``)."""

    def __init__(self, config: AnomalyConfig | None = None) -> None:
        # A config given here (tests, the calibration's replay) is kept whatever model is served.
        self._given = config is not None
        self.config = config or load_plugin_config(NAME, AnomalyConfig)
        self._sessions: SessionStates[dict[tuple[str, ...], SessionTracker]] = SessionStates(
            dict, self.config.max_sessions
        )

    @hookimpl
    def on_model_loaded(self, model_folder: str) -> None:
        """The served model's own calibration as the defaults (the bundled model's are only right for it);
        the config file and ``EMOTION_ANOMALY_*`` still win. A folder without one keeps the bundled
        model's, and says so in the log."""
        if self._given:
            return
        if not model_folder or not (Path(model_folder) / CALIBRATION_FILE).is_file():
            log.warning("anomaly_not_calibrated_for_model", model_folder=model_folder, using="the bundled model's")
            return
        self.config = load_plugin_config(NAME, AnomalyConfig, defaults=calibrated_defaults(model_folder, CALIBRATED))
        log.info("anomaly_calibration", model_folder=model_folder, shift_threshold=self.config.shift_threshold,
                 false_alarm_rate=self.config.false_alarm_rate)  # fmt: skip

    @hookimpl
    def on_result(self, result: Result) -> list[Alert]:
        """Feeds a stream window to its session's tracker; Classify answers have no session to compare with,
        and a window without speech has no emotion to compare."""
        if result.kind != "window" or result.no_speech:
            return []
        labels = tuple(sorted(result.scores))
        trackers = self._sessions.get(result.session_id)
        tracker = trackers.setdefault(labels, SessionTracker(labels, self.config))
        x = np.array([result.scores[label] for label in labels])
        fired = tracker.update(x, (result.start_s, result.end_s))
        return [self._alert(result, tracker, firing) for firing in fired]

    @hookimpl
    def on_session_end(self, summary: SessionSummary) -> None:
        """Forgets the finished session."""
        self._sessions.drop(summary.session_id)

    def _alert(self, result: Result, tracker: SessionTracker, firing: Firing) -> Alert:
        label, message, details = explain(tracker.labels, firing)
        return Alert(
            kind="anomaly",
            label=label,
            severity="warning",
            message=message,
            value=firing.value,
            time_s=result.end_s,
            source=NAME,
            details={"test": firing.test, "window_index": str(result.index), **details},
            speaker=result.speaker,
        )
