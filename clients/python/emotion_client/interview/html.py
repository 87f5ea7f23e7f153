"""The interview report as one self-contained HTML page (inline CSS and SVG, no scripts, no links)."""

from __future__ import annotations

from collections.abc import Mapping
from html import escape

from emotion_client.colours import SEVERITY_COLOURS, SILENCE_COLOUR, label_colours
from emotion_client.interview.report import SCHEMA_VERSION, EmotionStats, InterviewReport, PartyStats
from emotion_client.results import Alert

_CSS = """
body{font:15px/1.45 system-ui,sans-serif;margin:2rem auto;max-width:1100px;color:#222;padding:0 1rem}
h1{font-size:1.6rem;margin-bottom:.2rem}
h2{font-size:1.2rem;margin-top:2rem}
.meta{color:#666;font-size:.9rem}
.chip{display:inline-block;padding:0 .45em;border-radius:.3em;color:#fff;font-weight:600}
.bar{display:flex;height:14px;width:220px;max-width:100%;border-radius:3px;overflow:hidden;background:#eee}
.scroll{overflow-x:auto;max-width:100%}
.legend span{margin-right:1em;font-size:.85rem}
.sw{display:inline-block;width:.8em;height:.8em;margin-right:.3em;border-radius:2px}
table{border-collapse:collapse;width:100%}
th,td{text-align:left;padding:.4rem .5rem;border-bottom:1px solid #e4e4e4;vertical-align:top}
th{font-size:.85rem;color:#555}
.alert{font-size:.85rem}
.cards{display:flex;gap:2rem;flex-wrap:wrap}
.card b{display:block;font-size:1.3rem}
footer{margin-top:2rem;color:#888;font-size:.8rem}
.nowrap{white-space:nowrap}
"""


def render_html(report: InterviewReport) -> str:
    """The report page: summary, timeline, one row per question, alerts."""
    colours = label_colours(report.labels)
    o = report.overall
    parts = [
        "<!DOCTYPE html>",
        # A phone lays the page out at its own width (without this, at 980 px, and shrinks it).
        '<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>Interview emotion report: {escape(report.recording)}</title><style>{_CSS}</style></head><body>",
        "<h1>Interview emotion report</h1>",
        f'<p class="meta">{escape(report.recording)} · session {escape(report.session_id)} · '
        f"model {escape(report.model.name)} {escape(report.model.version)} · {escape(report.created_at)}</p>",
        '<div class="cards">',
        _card("Dominant emotion", _chip(o.dominant_label, colours)),
        _card("Confidence", f"{o.confidence:.0%}"),
        _card("Duration", _clock(report.duration_s)),
        _card("Questions", str(len(report.questions))),
        _card("Utterances" if report.diarized else "Windows", str(o.window_count)),
        _card("Alerts", "–" if report.alert_count is None else str(report.alert_count)),
        "</div>",
        f"<h2>Emotion shares</h2>{_bar(o, colours, width=600)}{_legend(colours)}",
    ]
    if report.parties:
        parts += ["<h2>Per speaker</h2>", _parties(report.parties, colours)]
    parts += [
        "<h2>Timeline</h2>",
        _timeline(report, colours),
        "<h2>Questions</h2>",
        _questions(report, colours),
    ]
    if report.alerts:
        parts += ["<h2>Alerts</h2><ul>", *(f"<li>{_alert(a)}</li>" for a in report.alerts), "</ul>"]
    scored = (
        "utterances of a diarized job (speakers found by the server)"
        if report.diarized
        else f"windows of {report.window_s:g} s every {report.hop_s:g} s"
    )
    parts.append(
        f"<footer>Scored on {scored}; questions {escape(report.segmentation)}; "
        f"report schema {SCHEMA_VERSION}.</footer></body></html>"
    )
    return "\n".join(parts)


def _card(title: str, value_html: str) -> str:
    return f'<div class="card">{escape(title)}<b>{value_html}</b></div>'


def _chip(label: str, colours: Mapping[str, str]) -> str:
    if not label:
        return "–"
    return f'<span class="chip" style="background:{colours.get(label, "#444")}">{escape(label)}</span>'


def _clock(seconds: float) -> str:
    minutes, secs = divmod(seconds, 60)
    return f"{int(minutes)}:{secs:04.1f}"


def _bar(stats: EmotionStats, colours: Mapping[str, str], width: int = 220) -> str:
    segments = "".join(
        f'<span title="{escape(label)} {share:.0%}" '
        f'style="width:{share * 100:.2f}%;background:{colours[label]}"></span>'
        for label, share in stats.shares.items()
        if share > 0
    )
    return f'<div class="bar" style="width:{width}px">{segments}</div>'


def _legend(colours: Mapping[str, str]) -> str:
    items = "".join(
        f'<span><i class="sw" style="background:{c}"></i>{escape(label)}</span>' for label, c in colours.items()
    )
    return f'<p class="legend">{items}</p>'


def _parties(parties: tuple[PartyStats, ...], colours: Mapping[str, str]) -> str:
    rows = [
        '<div class="scroll"><table><caption>Each speaker over the whole interview</caption><tr><th>Speaker</th><th>Spoke</th>'
        "<th>Share of speech</th><th>Utterances</th><th>Dominant</th><th>Shares</th><th>Alerts</th></tr>"
    ]
    for p in parties:
        rows.append(
            f"<tr><td>{escape(p.party)}</td><td>{_clock(p.seconds)}</td><td>{p.time_share:.0%}</td>"
            f"<td>{p.stats.window_count}</td><td>{_chip(p.stats.dominant_label, colours)}</td>"
            f"<td>{_bar(p.stats, colours)}</td><td>{'–' if p.alert_count is None else p.alert_count}</td></tr>"
        )
    rows.append("</table></div>")
    return "\n".join(rows)


def _timeline(report: InterviewReport, colours: Mapping[str, str]) -> str:
    width, total = 1000.0, max(report.duration_s, 1e-6)
    # A diarized interview draws one lane per speaker (S1 on top), each 36 px high under the questions' row.
    lanes = [p.party for p in report.parties] or [""]
    lane_of = {party: i for i, party in enumerate(lanes)}
    lane_h = 36 if len(lanes) == 1 else 24
    height = 24 + lane_h * len(lanes)

    def x(t: float) -> float:
        return max(0.0, min(width, t / total * width))

    shapes = []
    for q in report.questions:
        shapes.append(
            f'<rect x="{x(q.start_s):.1f}" y="0" width="{x(q.end_s) - x(q.start_s):.1f}" height="{height + 10}" fill="#f0f0f0">'
            f"<title>{escape(q.id)}: {_clock(q.start_s)}–{_clock(q.end_s)}</title></rect>"
            f'<text x="{x(q.start_s) + 3:.1f}" y="14" font-size="12">{escape(q.id)}</text>'
        )
    # Stream windows overlap (a window every hop): each is drawn over its hop around its centre. A
    # diarized job's utterances do not overlap: each is drawn over its whole span.
    half = report.hop_s / 2 if report.hop_s else float("inf")
    kind = "utterance" if report.diarized else "window"
    for w in report.silences:
        lo, hi = x(max(w.start_s, w.mid_s - half)), x(min(w.end_s, w.mid_s + half))
        shapes.append(
            f'<rect x="{lo:.1f}" y="{24 + lane_h * len(lanes) / 2 - 2:.0f}" width="{max(hi - lo, 1):.1f}" height="4" '
            f'fill="{SILENCE_COLOUR}"><title>{kind} {w.index} {_clock(w.start_s)}–{_clock(w.end_s)}: silence '
            f"(voiced {w.voiced_fraction:.0%})</title></rect>"
        )
    for w, speaker in zip(report.windows, report.speakers):
        lo, hi = x(max(w.start_s, w.mid_s - half)), x(min(w.end_s, w.mid_s + half))
        fill = colours.get(w.label, "#444")
        who = f"{escape(speaker)} " if speaker else ""
        shapes.append(
            f'<rect x="{lo:.1f}" y="{24 + lane_h * lane_of.get(speaker, 0)}" width="{max(hi - lo, 1):.1f}" '
            f'height="{lane_h - 2}" fill="{fill}"><title>{who}{kind} {w.index} {_clock(w.start_s)}–{_clock(w.end_s)}: '
            f"{escape(w.label)} {w.confidence:.0%}</title></rect>"
        )
    if report.diarized:
        for i, lane in enumerate(lanes):
            shapes.append(f'<text x="2" y="{24 + lane_h * i + lane_h / 2 + 4:.0f}" font-size="11">{escape(lane)}</text>')
    for a in report.alerts:
        shapes.append(
            f'<circle cx="{x(a.time_s):.1f}" cy="{height + 6}" r="4" fill="#b00020"><title>{escape(a.message)}</title></circle>'
        )
    for i in range(5):
        t = total * i / 4
        anchor = ("start", "middle", "middle", "middle", "end")[i]
        shapes.append(
            f'<text x="{x(t):.1f}" y="{height + 26}" font-size="11" fill="#777" text-anchor="{anchor}">{_clock(t)}</text>'
        )
    return (
        f'<svg viewBox="0 0 {width:.0f} {height + 30}" width="100%" role="img" aria-label="emotion per {kind} over time">'
        + "".join(shapes)
        + "</svg>"
    )


def _questions(report: InterviewReport, colours: Mapping[str, str]) -> str:
    counted = "Utterances" if report.diarized else "Windows"
    by_speaker = "<th>By speaker</th>" if report.diarized else ""
    rows = [
        f'<div class="scroll"><table><tr><th>Question</th><th>Span</th><th>{counted}</th><th>Dominant</th>'
        f"<th>Confidence</th><th>Shares</th>{by_speaker}<th>Alerts</th></tr>"
    ]
    for q in report.questions:
        name = escape(q.id) + (f"<br><small>{escape(q.text)}</small>" if q.text else "")
        alerts = "<br>".join(_alert(a) for a in q.alerts) or "–"
        speakers = ""
        if report.diarized:
            each = "<br>".join(
                f'{escape(p.party)} {_chip(p.stats.dominant_label, colours)} <span class="nowrap">{p.time_share:.0%} '
                f"of the speech</span>"
                for p in q.parties
            )
            speakers = f"<td>{each or '–'}</td>"
        rows.append(
            f'<tr><td>{name}</td><td class="nowrap">{_clock(q.start_s)}–{_clock(q.end_s)}</td>'
            f"<td>{q.stats.window_count}</td>"
            f"<td>{_chip(q.stats.dominant_label, colours)}</td><td>{q.stats.confidence:.0%}</td>"
            f"<td>{_bar(q.stats, colours)}</td>{speakers}<td>{alerts}</td></tr>"
        )
    rows.append("</table></div>")
    return "\n".join(rows)


def _alert(alert: Alert) -> str:
    severity = alert.severity if alert.severity in ("info", "warning", "critical") else "info"
    return (
        f'<span class="alert" style="color:{SEVERITY_COLOURS[severity]}">{_clock(alert.time_s)} {escape(alert.severity)} {escape(alert.kind)}'
        f"{' ' + escape(alert.label) if alert.label else ''}: {escape(alert.message)}</span>"
    )
