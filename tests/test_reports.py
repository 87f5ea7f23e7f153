"""Reports from real streams of RAVDESS recordings: at session end, and from `emotion report`."""

from __future__ import annotations

import base64
import json
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from emotion_service.plugins.manager import load_plugins
from emotion_service.plugins.reports import documents
from emotion_service.plugins.types import Alert, Result, SessionRecord, summarise
from tests.plugin_helpers import emotion, ravdess_interview, run_stream, serving, settle, stream_requests

PNG = re.compile(r'<img alt="([^"]+)" src="data:image/png;base64,([A-Za-z0-9+/=]+)"')


def images(html: str) -> dict[str, bytes]:
    """The page's inlined images by alt text; each must be a PNG."""
    found = {alt: base64.b64decode(data) for alt, data in PNG.findall(html)}
    assert all(png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 5000 for png in found.values())
    return found


@pytest.fixture(scope="module")
async def served(tiny_model: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Two interviews streamed through a server running the alert, anomaly, store and report plugins."""
    folder = tmp_path_factory.mktemp("reports")
    database = f"sqlite:///{folder / 'results.db'}"
    with pytest.MonkeyPatch.context() as env:
        env.setenv("EMOTION_DATABASE_URL", database)
        env.setenv("EMOTION_STORE_SPOOL_DIR", str(folder / "spool"))
        env.setenv("EMOTION_REPORTS_OUTPUT_DIR", str(folder / "live"))
        env.setenv("EMOTION_THRESHOLD_ALERTS_THRESHOLDS", "FEA=0.1,ANG=0.1")
        env.setenv("EMOTION_THRESHOLD_ALERTS_HYSTERESIS", "0.05")
        plugins = load_plugins("threshold_alerts,anomaly,store,reports")
    interview = ravdess_interview()
    async with serving(tiny_model, plugins) as (server, stub):
        first = await run_stream(stub, stream_requests(interview, "interview-1", {"candidate": "c-1"}))
        second = await run_stream(stub, stream_requests(interview[::-1].copy(), "interview-2", {"candidate": "c-2"}))
        await settle(server)
    return {"folder": folder, "database": database, "first": first, "second": second}


def test_session_end_writes_json_and_html_with_plots(served: dict[str, Any]) -> None:
    folder = served["folder"]
    responses = served["first"]
    windows = [r.window for r in responses if r.HasField("window")]
    alerts = [r.alert for r in responses if r.HasField("alert")]
    assert len(windows) >= 10 and len(alerts) >= 2
    document = json.loads((folder / "live" / "session-interview-1.json").read_text())
    assert document["session_id"] == "interview-1" and document["metadata"] == {"candidate": "c-1"}
    assert [w["label"] for w in document["windows"]] == [w.label for w in windows]
    assert sorted(a["label"] for a in document["alerts"]) == sorted(a.label for a in alerts)
    assert document["duration_s"] == pytest.approx(len(ravdess_interview()) / 16000)
    html = (folder / "live" / "session-interview-1.html").read_text()
    assert set(images(html)) == {"Emotion timeline", "Emotion distribution"}
    assert "interview-1" in html and "c-1" in html and "threshold" in html


def test_emotion_report_for_a_session_reads_the_store(served: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    out = served["folder"] / "on-demand"
    assert emotion("report", "--session", "interview-2", "--database-url", str(served["database"]), "--output", str(out)) == 0
    written = capsys.readouterr().out.split()
    assert written == [str(out / "session-interview-2.json"), str(out / "session-interview-2.html")]
    document = json.loads((out / "session-interview-2.json").read_text())
    windows = [r.window for r in served["second"] if r.HasField("window")]
    assert [w["index"] for w in document["windows"]] == [w.index for w in windows]
    assert document["alert_count"] == len(document["alerts"]) >= 2
    assert set(images((out / "session-interview-2.html").read_text())) == {"Emotion timeline", "Emotion distribution"}


def test_emotion_report_since_shows_trends_across_sessions(served: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    out = served["folder"] / "period"
    assert emotion("report", "--since", "1h", "--database-url", str(served["database"]), "--output", str(out)) == 0
    json_path, html_path = map(Path, capsys.readouterr().out.split())
    document = json.loads(json_path.read_text())
    assert document["session_count"] == 2
    assert [s["session_id"] for s in document["sessions"]] == ["interview-1", "interview-2"]
    assert document["alert_counts"]["threshold"] >= 4
    html = html_path.read_text()
    assert set(images(html)) == {"Trends over sessions", "Emotion distribution"}
    assert "interview-1" in html and "interview-2" in html


def test_emotion_report_errors_are_one_line(served: dict[str, Any], capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert emotion("report", "--session", "nope", "--database-url", str(served["database"]), "--output", str(tmp_path)) == 1
    assert "no session 'nope'" in capsys.readouterr().err
    assert emotion("report", "--session", "x", "--database-url", f"sqlite:///{tmp_path / 'none.db'}") == 2
    assert "no results database at" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        emotion("report", "--since", "last tuesday")
    assert "neither an ISO date/time" in capsys.readouterr().err


def test_windows_without_speech_are_shown_as_such_and_count_as_no_emotion() -> None:
    def window(index: int, label: str, voiced: float) -> Result:
        scores = {"ANG": 0.1, "NEU": 0.1, "SAD": 0.1} | {label: 0.8}
        return Result("r", "r", "window", label, scores, index * 1.5, index * 1.5 + 3, index, voiced_fraction=voiced)

    quiet = Result("r", "r", "window", "", {}, 1.5, 4.5, 1, no_speech=True, voiced_fraction=0.0)
    results = [window(0, "ANG", 0.5), quiet, window(2, "SAD", 0.7), window(3, "SAD", 0.6)]
    record = SessionRecord(summarise("r", results, [], {}, 7.5), datetime.now(UTC), "stream")
    document = documents.session_document(record)
    assert [(w["label"], w["no_speech"], w["voiced_fraction"]) for w in document["windows"]] == [
        ("ANG", False, 0.5),
        ("", True, 0.0),
        ("SAD", False, 0.7),
        ("SAD", False, 0.6),
    ]
    assert document["window_count"] == 3 and document["dominant_label"] == "SAD"
    assert document["shares"] == pytest.approx({"ANG": 1 / 3, "NEU": 0.0, "SAD": 2 / 3})
    html = documents.session_html(record)
    assert html.count("no speech: no emotion claimed") == 1 and "Without speech" in html
    period = documents.period_document([record], datetime(2026, 1, 1, tzinfo=UTC), datetime.now(UTC))
    assert period["window_count"] == 3
    assert period["shares"] == pytest.approx({"ANG": 1 / 3, "NEU": 0.0, "SAD": 2 / 3}), "pooled over speech only"


def test_the_html_alert_table_names_each_alerts_speaker() -> None:
    """A diarized session's report says whose alert each row is; a session without speakers keeps its columns."""

    def said(start: float, speaker: str, label: str) -> Result:
        scores = {"ANG": 0.1, "NEU": 0.1} | {label: 0.8}
        return Result("s", "j", "utterance", label, scores, start, start + 2, speaker=speaker)

    results = [said(0, "S1", "NEU"), said(2.5, "S2", "ANG"), said(5, "S1", "NEU")]
    alerts = [Alert(kind="threshold", message="anger held", label="ANG", time_s=4.5, value=0.8, speaker="S2")]
    html = documents.session_html(SessionRecord(summarise("s", results, alerts, {}, 7.0), datetime.now(UTC), "job"))
    table = html.split("Alerts in time order")[1].split("</table>")[0]
    assert "<th>speaker</th>" in table and "<td>S2</td>" in table
    plain = [Result("s", "j", "window", "ANG", {"ANG": 0.9}, 0, 3, 0)]
    unnamed = [Alert(kind="anomaly", message="unusual", label="ANG", time_s=3.0)]
    html = documents.session_html(SessionRecord(summarise("s", plain, unnamed, {}, 3.0), datetime.now(UTC), "stream"))
    assert "<th>speaker</th>" not in html.split("Alerts in time order")[1].split("</table>")[0]
