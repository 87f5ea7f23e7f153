"""Session and period reports: a JSON document plus a self-contained HTML page (plots inlined)."""

from __future__ import annotations

import dataclasses
import json
import re
from collections import Counter
from collections.abc import Sequence
from datetime import datetime, timezone
from html import escape
from pathlib import Path
from typing import Any

from plugins.records import SessionRecord
from plugins.reports import charts
from plugins.types import SessionSummary

_STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2rem auto; max-width: 1100px;
       color: #222; padding: 0 1rem; }
h1 { font-size: 1.6rem; margin-bottom: .2rem; } h2 { font-size: 1.2rem; margin-top: 2rem; }
.sub { color: #666; margin-top: 0; }
table { border-collapse: collapse; margin: .5rem 0; font-size: .9rem; }
th, td { border-bottom: 1px solid #ddd; padding: .3rem .7rem; text-align: left; vertical-align: top; }
th { background: #f5f5f5; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
figure { margin: 1rem 0; } figure img { max-width: 100%; } figcaption { color: #666; font-size: .85rem; }
.warning { color: #b22222; } .critical { color: #7f0000; font-weight: bold; } .info { color: #1f5f9f; }
footer { margin-top: 3rem; color: #888; font-size: .8rem; }
"""


def session_document(record: SessionRecord) -> dict[str, Any]:
    """The JSON report of one session: facts, shares, mean scores, alerts and every window."""
    s = record.summary
    return {
        "report": "session",
        "generated_at": _iso(datetime.now(timezone.utc)),
        **_session_facts(record),
        "shares": s.shares,
        "mean_scores": s.mean_scores,
        "metadata": s.metadata,
        "alerts": [dataclasses.asdict(a) for a in s.alerts],
        "windows": [
            {"index": r.index, "start_s": r.start_s, "end_s": r.end_s, "label": r.label, "scores": r.scores} for r in s.results
        ],
    }


def period_document(records: Sequence[SessionRecord], since: datetime, until: datetime) -> dict[str, Any]:
    """The JSON report of every session started in ``[since, until)``: totals and one line per session."""
    shares, means = _pooled_distribution(records)
    return {
        "report": "period",
        "generated_at": _iso(datetime.now(timezone.utc)),
        "since": _iso(since),
        "until": _iso(until),
        "session_count": len(records),
        "window_count": sum(r.summary.window_count for r in records),
        "alert_counts": dict(Counter(a.kind for r in records for a in r.summary.alerts)),
        "shares": shares,
        "mean_scores": means,
        "sessions": [
            {**_session_facts(r), "mean_scores": r.summary.mean_scores, "metadata": r.summary.metadata} for r in records
        ],
    }


def _pooled_distribution(records: Sequence[SessionRecord]) -> tuple[dict[str, float], dict[str, float]]:
    """Shares of windows won and mean scores over all windows of all sessions."""
    results = [result for record in records for result in record.summary.results]
    labels = sorted({label for result in results for label in result.scores})
    count = len(results) or 1
    shares = {label: sum(r.label == label for r in results) / count for label in labels}
    means = {label: sum(r.scores.get(label, 0.0) for r in results) / count for label in labels}
    return shares, means


def session_html(record: SessionRecord) -> str:
    """A page for people: facts, timeline with alerts, distribution, the alerts and the windows."""
    s = record.summary
    facts = _session_facts(record)
    rows = [
        ("Session", s.session_id),
        ("Kind", record.kind),
        ("Started (UTC)", facts["started_at"]),
        ("Duration", f"{s.duration_s:.1f} s"),
        ("Windows", str(s.window_count)),
        ("Dominant emotion", s.dominant_label or "-"),
        ("Alerts", str(len(s.alerts))),
        ("Model", s.model_name or "-"),
        *((f"metadata: {k}", v) for k, v in sorted(s.metadata.items())),
    ]
    alerts = _table(
        ("time (s)", "kind", "emotion", "severity", "value", "message"),
        [(f"{a.time_s:.1f}", a.kind, a.label, _span(a.severity, a.severity), f"{a.value:.3g}", a.message) for a in s.alerts],
    )
    labels = sorted(s.mean_scores)
    windows = _table(
        ("#", "from (s)", "to (s)", "emotion", *labels),
        [
            (str(r.index), f"{r.start_s:.1f}", f"{r.end_s:.1f}", r.label, *(f"{r.scores.get(k, 0.0):.3f}" for k in labels))
            for r in s.results
        ],
    )
    body = f"""
<h1>Emotion report: session {escape(s.session_id)}</h1>
<p class="sub">{escape(facts["started_at"])} · {s.duration_s:.1f} s · dominant emotion
<strong>{escape(s.dominant_label or "-")}</strong> · {len(s.alerts)} alert(s)</p>
{_table(("", ""), rows)}
<h2>Timeline</h2>
{
        _figure(
            charts.timeline_png(record),
            "Emotion timeline",
            "Each emotion's score over the session, stacked; dashed lines mark alerts.",
        )
    }
<h2>Distribution</h2>
{
        _figure(
            charts.distribution_png(s.shares, s.mean_scores),
            "Emotion distribution",
            "Share of windows each emotion won, and its mean score.",
        )
    }
<h2>Alerts</h2>
{alerts if s.alerts else "<p>No alerts were raised.</p>"}
<h2>Windows</h2>
<details><summary>{s.window_count} window(s)</summary>{windows}</details>
"""
    return _page(f"Emotion report: {s.session_id}", body)


def period_html(records: Sequence[SessionRecord], since: datetime, until: datetime) -> str:
    """A page for people: totals, trends over sessions, pooled distribution, one row per session."""
    doc = period_document(records, since, until)
    alerts = ", ".join(f"{n} {kind}" for kind, n in sorted(doc["alert_counts"].items())) or "none"
    sessions = _table(
        ("started (UTC)", "session", "kind", "duration (s)", "windows", "dominant", "alerts"),
        [
            (
                f["started_at"],
                f["session_id"],
                f["kind"],
                f"{f['duration_s']:.1f}",
                str(f["window_count"]),
                f["dominant_label"] or "-",
                str(f["alert_count"]),
            )
            for f in doc["sessions"]
        ],
    )
    if records:
        plots = f"""
<h2>Trends</h2>
{_figure(charts.trends_png(records), "Trends over sessions", "Mean score of each emotion per session, and alerts per session.")}
<h2>Distribution</h2>
{
            _figure(
                charts.distribution_png(doc["shares"], doc["mean_scores"]),
                "Emotion distribution",
                "Over every window of every session: share won by each emotion, and its mean score.",
            )
        }
<h2>Sessions</h2>
{sessions}"""
    else:
        plots = "<p>No sessions started in this period.</p>"
    body = f"""
<h1>Emotion report: {escape(doc["since"])} to {escape(doc["until"])}</h1>
<p class="sub">{len(records)} session(s) · {doc["window_count"]} window(s) · alerts: {escape(alerts)}</p>
{plots}
"""
    return _page("Emotion report: period", body)


def write_session_report(record: SessionRecord, output_dir: Path, html: bool = True) -> list[Path]:
    """Writes ``session-<id>.json`` (and ``.html``) under ``output_dir``; returns the paths."""
    stem = f"session-{_safe_name(record.summary.session_id)}"
    return _write(output_dir, stem, session_document(record), session_html(record) if html else None)


def write_period_report(
    records: Sequence[SessionRecord], since: datetime, until: datetime, output_dir: Path, html: bool = True
) -> list[Path]:
    """Writes ``period-<since>-<until>.json`` (and ``.html``) under ``output_dir``; returns the paths."""
    stem = f"period-{since:%Y%m%dT%H%M%S}-{until:%Y%m%dT%H%M%S}"
    return _write(output_dir, stem, period_document(records, since, until), period_html(records, since, until) if html else None)


def _safe_name(text: str) -> str:
    """``text`` reduced to characters safe in a file name."""
    return re.sub(r"[^A-Za-z0-9._-]", "_", text)[:120] or "_"


def _write(output_dir: Path, stem: str, document: dict[str, Any], html: str | None) -> list[Path]:
    output_dir.mkdir(parents=True, exist_ok=True)
    paths = [output_dir / f"{stem}.json"]
    paths[0].write_text(json.dumps(document, indent=2, ensure_ascii=False) + "\n")
    if html is not None:
        paths.append(output_dir / f"{stem}.html")
        paths[1].write_text(html)
    return paths


def _session_facts(record: SessionRecord) -> dict[str, Any]:
    s: SessionSummary = record.summary
    return {
        "session_id": s.session_id,
        "kind": record.kind,
        "started_at": _iso(record.started_at),
        "duration_s": s.duration_s,
        "window_count": s.window_count,
        "dominant_label": s.dominant_label,
        "alert_count": len(s.alerts),
        "model_name": s.model_name,
    }


def _iso(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).isoformat(timespec="seconds")


class _Html(str):
    """Markup that table cells take as it is (everything else is escaped)."""


def _span(css_class: str, text: str) -> _Html:
    return _Html(f'<span class="{escape(css_class)}">{escape(text)}</span>')


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    def cell(value: str) -> str:
        text = value if isinstance(value, _Html) else escape(value)
        numeric = re.fullmatch(r"-?[0-9.]+", value) is not None
        return f'<td class="num">{text}</td>' if numeric else f"<td>{text}</td>"

    head = "".join(f"<th>{escape(h)}</th>" for h in header) if any(header) else ""
    body = "".join("<tr>" + "".join(cell(v) for v in row) + "</tr>" for row in rows)
    return f"<table>{f'<tr>{head}</tr>' if head else ''}{body}</table>"


def _figure(png_base64: str, alt: str, caption: str) -> str:
    return (
        f'<figure><img alt="{escape(alt)}" src="data:image/png;base64,{png_base64}">'
        f"<figcaption>{escape(caption)}</figcaption></figure>"
    )


def _page(title: str, body: str) -> str:
    generated = _iso(datetime.now(timezone.utc))
    return f"""<!DOCTYPE html>
<html lang="en">
<head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{escape(title)}</title><style>{_STYLE}</style></head>
<body>{body}
<footer>Generated {generated} by emotion-service. Scores are model estimates, not diagnoses.</footer>
</body>
</html>
"""
