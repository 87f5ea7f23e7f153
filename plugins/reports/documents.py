"""Session and period reports: a JSON document plus a self-contained HTML page (plots inlined)."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from emotion_service.html import render
from emotion_service.plugins.reports import charts
from emotion_service.plugins.types import SessionRecord, SessionSummary, summarise_parties


def session_document(record: SessionRecord) -> dict[str, Any]:
    """The JSON report of one session: facts, shares, mean scores, alerts, each party's summary when
    there is more than one (``parties``: speakers, else channels) and every window with its channel
    and speaker (one without speech has ``no_speech`` true, an empty label and no scores)."""
    s = record.summary
    return {
        "report": "session",
        "generated_at": _iso(datetime.now(UTC)),
        **_session_facts(record),
        "shares": s.shares,
        "mean_scores": s.mean_scores,
        "metadata": s.metadata,
        "alerts": [dataclasses.asdict(a) for a in s.alerts],
        "parties": [dataclasses.asdict(p) for p in summarise_parties(s.results, s.alerts)],
        "windows": [
            {
                "index": r.index,
                "start_s": r.start_s,
                "end_s": r.end_s,
                "channel": r.channel,
                "speaker": r.speaker,
                "label": r.label,
                "scores": r.scores,
                "no_speech": r.no_speech,
                "voiced_fraction": r.voiced_fraction,
            }
            for r in s.results
        ],
    }


def period_document(records: Sequence[SessionRecord], since: datetime, until: datetime) -> dict[str, Any]:
    """The JSON report of every session started in ``[since, until)``: totals and one line per session."""
    shares, means = _pooled_distribution(records)
    return {
        "report": "period",
        "generated_at": _iso(datetime.now(UTC)),
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
    """Shares of windows won and mean scores over all windows with speech of all sessions."""
    results = [result for record in records for result in record.summary.results if not result.no_speech]
    labels = sorted({label for result in results for label in result.scores})
    count = len(results) or 1
    shares = {label: sum(r.label == label for r in results) / count for label in labels}
    means = {label: sum(r.scores.get(label, 0.0) for r in results) / count for label in labels}
    return shares, means


def session_html(record: SessionRecord) -> str:
    """A page for people: facts, timeline with alerts, distribution, each party's summary (more than
    one), the alerts and the windows."""
    s = record.summary
    return render(
        "session_report.html",
        labels=sorted(s.mean_scores),
        record=record,
        s=s,
        facts=_session_facts(record),
        parties=summarise_parties(s.results, s.alerts),
        timeline_png=charts.timeline_png(record),
        distribution_png=charts.distribution_png(s.shares, s.mean_scores),
    )


def period_html(records: Sequence[SessionRecord], since: datetime, until: datetime) -> str:
    """A page for people: totals, trends over sessions, pooled distribution, one row per session."""
    doc = period_document(records, since, until)
    return render(
        "period_report.html",
        labels=sorted(doc["mean_scores"]),
        doc=doc,
        trends_png=charts.trends_png(records) if records else "",
        distribution_png=charts.distribution_png(doc["shares"], doc["mean_scores"]) if records else "",
    )


def session_report_paths(session_id: str, output_dir: Path) -> list[Path]:
    """Where a session's report files are (or would be) written."""
    stem = f"session-{_safe_name(session_id)}"
    return [output_dir / f"{stem}.json", output_dir / f"{stem}.html"]


def write_session_report(record: SessionRecord, output_dir: Path, html: bool = True) -> list[Path]:
    """Writes ``session-<id>.json`` (and ``.html``) under ``output_dir``; returns the paths."""
    stem = f"session-{_safe_name(record.summary.session_id)}"
    return _write(output_dir, stem, session_document(record), session_html(record) if html else None)


def write_period_report(
    records: Sequence[SessionRecord], since: datetime, until: datetime, output_dir: Path, html: bool = True
) -> list[Path]:
    """Writes ``period-<since>-<until>.json`` (and ``.html``) under ``output_dir``; returns the paths."""
    stem = f"period-{since:%Y%m%dT%H%M%S}-{until:%Y%m%dT%H%M%S}"
    return _write(
        output_dir, stem, period_document(records, since, until), period_html(records, since, until) if html else None
    )


def _safe_name(text: str) -> str:
    """``text`` reduced to characters safe in a file name; distinct ids give distinct names.

    An id that had to be changed (``a/b`` becomes ``a_b``) gets a hash of the original, so it
    cannot collide with the id ``a_b`` itself, nor with another id changed the same way.
    """
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", text)[:120]
    if safe == text and safe not in ("", ".", ".."):
        return safe
    return f"{safe}-{hashlib.sha256(text.encode()).hexdigest()[:12]}"


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
    return moment.astimezone(UTC).isoformat(timespec="seconds")
