"""The report plots, drawn with matplotlib's object API (thread-safe: no pyplot) as base64 PNG."""

from __future__ import annotations

import base64
import io
from collections.abc import Sequence

import numpy as np
from matplotlib.dates import AutoDateLocator, ConciseDateFormatter
from matplotlib.figure import Figure

from emotion_client.colours import SEVERITY_COLOURS, label_colours
from emotion_service.plugins.types import Alert, SessionRecord, SessionSummary

_ALERT_COLOURS = SEVERITY_COLOURS


def timeline_png(record: SessionRecord) -> str:
    """Stacked emotion scores over the session's time, alerts as vertical lines; stretches without
    speech are grey bands, where the stack drops to nothing (no emotion is claimed there)."""
    summary = record.summary
    labels = sorted(summary.mean_scores)
    colours = label_colours(labels)
    fig = Figure(figsize=(10, 3.8), layout="constrained")
    ax = fig.add_subplot()
    results = summary.results
    if results:
        times = np.array([(r.start_s + r.end_s) / 2 for r in results])
        scores = np.array([[r.scores.get(label, 0.0) for r in results] for label in labels])
        if len(results) == 1:  # one answer: show it across its span
            times = np.array([results[0].start_s, results[0].end_s])
            scores = np.repeat(scores, 2, axis=1)
        ax.stackplot(times, scores, labels=labels, colors=[colours[label] for label in labels], alpha=0.85)
    for number, r in enumerate(r for r in results if r.no_speech):
        ax.axvspan(r.start_s, r.end_s, color="#bbbbbb", alpha=0.35, linewidth=0, label="no speech" if number == 0 else None)
    for time_s, alerts in _alerts_by_time(summary):
        colour = _ALERT_COLOURS.get(max((a.severity for a in alerts), key=_severity_rank), "#d62728")
        ax.axvline(time_s, color=colour, linestyle="--", linewidth=1.4)
        ax.annotate(
            ", ".join(f"{a.kind}: {a.label}" if a.label else a.kind for a in alerts),
            (time_s, 1.0),
            xytext=(3, -3),
            textcoords="offset points",
            rotation=90,
            va="top",
            fontsize=8,
            color=colour,
        )
    ax.set_xlim(0, max(summary.duration_s, max((r.end_s for r in results), default=0.0), 1e-3))
    ax.set_ylim(0, 1)
    ax.set_xlabel("time in the session (s)")
    ax.set_ylabel("score (stacked)")
    ax.set_title("Emotion timeline (dashed lines: alerts)")
    if labels or any(r.no_speech for r in results):
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1), fontsize=8)
    return _png(fig)


def distribution_png(shares: dict[str, float], mean_scores: dict[str, float]) -> str:
    """Per emotion: share of windows it won and its mean score, side by side."""
    labels = sorted(mean_scores)
    fig = Figure(figsize=(7, 3.6), layout="constrained")
    ax = fig.add_subplot()
    y = np.arange(len(labels))
    ax.barh(
        y - 0.2, [shares.get(label, 0.0) for label in labels], height=0.4, label="share of windows won", color="#4c72b0"
    )
    ax.barh(y + 0.2, [mean_scores[label] for label in labels], height=0.4, label="mean score", color="#dd8452")
    ax.set_yticks(y, labels)
    ax.invert_yaxis()
    ax.set_xlim(0, 1)
    ax.set_xlabel("fraction")
    ax.set_title("Emotion distribution")
    ax.legend(loc="lower right", fontsize=8)
    return _png(fig)


def trends_png(records: Sequence[SessionRecord]) -> str:
    """Across sessions: each emotion's mean score per session, and alerts per session."""
    labels = sorted({label for record in records for label in record.summary.mean_scores})
    colours = label_colours(labels)
    fig = Figure(figsize=(10, 5.5), layout="constrained")
    scores_ax, alerts_ax = fig.subplots(2, 1, sharex=True, height_ratios=(3, 1))
    starts = [record.started_at for record in records]
    for label in labels:
        scores_ax.plot(
            starts,
            [record.summary.mean_scores.get(label, 0.0) for record in records],
            marker="o",
            markersize=3,
            label=label,
            color=colours[label],
        )
    scores_ax.set_ylim(0, 1)
    scores_ax.set_ylabel("mean score")
    scores_ax.set_title("Trends over sessions")
    if labels:
        scores_ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1), fontsize=8)
    alerts_ax.plot(starts, [len(record.summary.alerts) for record in records], marker="s", color="#d62728", linewidth=1)
    alerts_ax.set_ylabel("alerts")
    alerts_ax.set_xlabel("session start (UTC)")
    alerts_ax.set_ylim(bottom=0)
    alerts_ax.yaxis.get_major_locator().set_params(integer=True)
    locator = AutoDateLocator()
    alerts_ax.xaxis.set_major_locator(locator)
    alerts_ax.xaxis.set_major_formatter(ConciseDateFormatter(locator))
    return _png(fig)


def _severity_rank(severity: str) -> int:
    return list(_ALERT_COLOURS).index(severity) if severity in _ALERT_COLOURS else 1


def _alerts_by_time(summary: SessionSummary) -> list[tuple[float, list[Alert]]]:
    """Alerts grouped by the time they were raised (one line and one label per time)."""
    grouped: dict[float, list[Alert]] = {}
    for alert in summary.alerts:
        grouped.setdefault(round(alert.time_s, 3), []).append(alert)
    return sorted(grouped.items())


def _png(fig: Figure) -> str:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=96)
    return base64.b64encode(buffer.getvalue()).decode("ascii")
