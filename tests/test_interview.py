"""The interview integration: segments, pause detection, per-question reports, JSON and HTML.

The interview is made of RAVDESS clips of known emotions with silence between
them, so every question's span is known. The tiny test model is untrained:
the tests check that each question reports exactly its own windows and
alerts, not that the model is right.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from emotion_client import AsyncEmotionClient, EmotionClient
from emotion_client.audio import AudioFile
from emotion_client.interview import (
    PauseSettings,
    Segment,
    SegmentError,
    assess_interview,
    assess_interview_async,
    find_segments,
    load_segments,
    render_html,
)
from emotion_client.interview.pauses import frame_levels_db
from emotion_client.interview.report import emotion_stats
from emotion_service.plugins.hookspecs import hookimpl
from emotion_service.plugins.manager import load_plugins
from emotion_service.plugins.types import Alert, Result
from emotion_service.server.app import EmotionServer
from tests.client_support import Interview, make_interview
from tests.conftest import LABELS, make_settings

EMOTIONS = ["NEU", "HAP", "SAD", "ANG"]
ALERT_WINDOWS = {3: "threshold", 17: "anomaly"}


class AlertOnWindows:
    """Raises an alert after chosen windows, so the tests know where alerts belong."""

    @hookimpl
    def on_result(self, result: Result) -> list[Alert] | None:
        kind = ALERT_WINDOWS.get(result.index) if result.kind == "window" else None
        if kind is None:
            return None
        return [
            Alert(
                kind=kind,
                message=f"test alert on window {result.index}",
                label=result.label,
                value=result.scores[result.label],
                time_s=result.end_s,
                source="tests",
            )
        ]


@pytest.fixture(scope="module")
async def alerting_server(tiny_model: Path, server: EmotionServer) -> AsyncIterator[EmotionServer]:
    plugins = load_plugins("none")
    plugins.pm.register(AlertOnWindows(), name="alert-on-windows")
    srv = EmotionServer(make_settings(tiny_model), plugins=plugins)
    await srv.start()
    await srv.load_model(backend=server.servicer.state.backend)
    yield srv
    await srv.stop(grace=0)


@pytest.fixture(scope="module")
def interview(tmp_path_factory: pytest.TempPathFactory) -> Interview:
    return make_interview(tmp_path_factory.mktemp("interview"), EMOTIONS, gap_s=1.0)


@pytest.fixture(scope="module")
def segments_files(interview: Interview, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("segments")
    as_json = folder / "questions.json"
    as_json.write_text(
        json.dumps(
            {
                "questions": [
                    {"id": q, "start": a, "end": b, "text": f"Question {e}"} for q, a, b, e in interview.questions
                ]
            }
        )
    )
    as_csv = folder / "questions.csv"
    as_csv.write_text(
        "id,start,end,text\n" + "".join(f"{q},{a},{b},Question {e}\n" for q, a, b, e in interview.questions)
    )
    return as_json, as_csv


def test_segments_load_from_json_and_csv(interview: Interview, segments_files: tuple[Path, Path]) -> None:
    as_json, as_csv = segments_files
    expected = [Segment(q, a, b, f"Question {e}") for q, a, b, e in interview.questions]
    assert load_segments(as_json) == load_segments(as_csv) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("id,start,end\nq1,5,2\n", "start < end"),
        ("id,start,end\nq1,0,5\nq2,4,8\n", "overlap"),
        ("id,start,end\nq1,0,5\nq1,6,8\n", "twice"),
        ("id,start\nq1,0\n", "missing 'end'"),
        ("id,start,end\nq1,zero,5\n", "not a time"),
    ],
)
def test_bad_segments_are_explained(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "q.csv"
    path.write_text(text)
    with pytest.raises(SegmentError, match=message):
        load_segments(path)


def test_times_may_be_clock_strings(tmp_path: Path) -> None:
    path = tmp_path / "q.json"
    path.write_text(json.dumps([{"question_id": "intro", "start_s": "0:05", "end_s": "1:02.5"}]))
    assert load_segments(path) == [Segment("intro", 5.0, 62.5)]


def test_pauses_split_the_questions(interview: Interview, monkeypatch: pytest.MonkeyPatch) -> None:
    audio = AudioFile(interview.path)
    found = find_segments(audio, PauseSettings(min_pause_s=1.0))
    assert [s.id for s in found] == ["q1", "q2", "q3", "q4"]
    for segment, (_, start, end, _) in zip(found, interview.questions):
        # The speech of each clip lies inside the clip, past its leading silence.
        assert start <= segment.start_s < segment.end_s <= end + 0.3
        assert segment.end_s - segment.start_s > 1.0
    # Without NumPy the same levels come out of pure Python.
    with_numpy = frame_levels_db(audio.chunks(10.0), audio.format, 0.03)
    monkeypatch.setitem(sys.modules, "numpy", None)
    without = frame_levels_db(audio.chunks(10.0), audio.format, 0.03)
    assert without == pytest.approx(with_numpy, abs=1e-6)


def check_report(report, interview: Interview, windows_per_question_min: int = 2) -> dict:
    """Each question spans its clip and reports exactly the windows whose midpoint falls in it."""
    data = json.loads(report.to_json())
    assert data["schema"] == "emotion-client/interview-report" and data["schema_version"] == "1.1"
    assert data["api_version"] == "emotion.v1" and data["labels"] == list(LABELS)
    timeline = data["timeline"]
    assert data["parties"] == [] and {t["speaker"] for t in timeline} <= {""}  # a stream is not diarized
    # Every window is either on the timeline or a silence, once, in order.
    indices = sorted([w["index"] for w in timeline] + [w["index"] for w in data["silences"]])
    assert indices == list(range(len(indices)))
    assert all(w["voiced_fraction"] < 0.2 for w in data["silences"])
    for question, (qid, start, end, emotion) in zip(data["questions"], interview.questions):
        assert (question["id"], question["start_s"], question["end_s"]) == (qid, start, end)
        assert question["text"] == f"Question {emotion}"
        mine = [w for w in report.windows if start <= (w.start_s + w.end_s) / 2 < end]
        assert question["window_indices"] == [w.index for w in mine]
        assert len(mine) >= windows_per_question_min
        assert all(t["question_id"] == qid for t in timeline if t["index"] in question["window_indices"])
        # Dominant label, shares and confidence come from this question's windows only.
        stats = emotion_stats(mine, LABELS)
        assert question["dominant_label"] == stats.dominant_label
        assert question["dominant_label"] in {w.label for w in mine}
        assert question["shares"] == pytest.approx(stats.shares)
        assert sum(question["shares"].values()) == pytest.approx(1.0)
        assert question["confidence"] == pytest.approx(stats.mean_scores[stats.dominant_label])
    assigned = sum(len(q["window_indices"]) for q in data["questions"])
    assert data["overall"]["unassigned_window_count"] == len(timeline) - assigned
    assert data["overall"]["window_count"] == len(timeline)
    assert data["overall"]["duration_s"] == pytest.approx(interview.duration_s, abs=0.01)
    return data


async def test_interview_report_per_question(
    alerting_server: EmotionServer, interview: Interview, segments_files: tuple[Path, Path]
) -> None:
    segments = load_segments(segments_files[1])

    def run() -> object:
        with EmotionClient(f"127.0.0.1:{alerting_server.port}") as client:
            return assess_interview(client, interview.path, segments, window_s=1.0, hop_s=0.5, session_id="iv-1")

    report = await asyncio.to_thread(run)
    data = check_report(report, interview)
    assert data["session_id"] == "iv-1" and data["segmentation"] == "provided"
    assert (data["window_s"], data["hop_s"]) == (1.0, 0.5)
    # Each alert is reported under the question of the window it followed.
    owner = {t["index"]: t["question_id"] for t in data["timeline"]}
    for index, kind in ALERT_WINDOWS.items():
        question = next(q for q in data["questions"] if q["id"] == owner[index])
        assert [a["message"] for a in question["alerts"]] == [f"test alert on window {index}"]
        assert question["alert_count"] == 1 and question["anomaly_count"] == (kind == "anomaly")
    assert data["overall"]["alert_count"] == 2 and data["overall"]["anomaly_count"] == 1

    page = render_html(report)
    assert page.startswith("<!DOCTYPE html>") and page.rstrip().endswith("</html>")
    assert "<script" not in page and "http" not in page.replace('xmlns="http', "")  # self-contained
    for qid, *_ in interview.questions:
        assert f">{qid}<" in page
    assert "test alert on window 17" in page


async def test_interview_async_with_pause_detection(server: EmotionServer, interview: Interview) -> None:
    async with AsyncEmotionClient(f"127.0.0.1:{server.port}") as client:
        report = await assess_interview_async(
            client, interview.path, window_s=1.0, hop_s=0.5, pauses=PauseSettings(min_pause_s=1.0)
        )
    data = report.to_dict()
    assert data["segmentation"] == "pauses" and [q["id"] for q in data["questions"]] == ["q1", "q2", "q3", "q4"]
    for question, (_, start, end, _) in zip(data["questions"], interview.questions):
        assert start <= question["start_s"] < question["end_s"] <= end + 0.3
        assert question["window_count"] >= 1 and question["dominant_label"] in LABELS


def test_each_question_reports_its_own_dominant_emotion() -> None:
    """With known window labels (no model), every question gets the emotion of its own windows."""
    from emotion_client.interview.report import StreamRecord, build_report
    from emotion_client.results import BatchingInfo, ModelInfo, StreamSummary, WindowResult

    segments = [Segment("q1", 0.0, 4.0), Segment("q2", 5.0, 9.0), Segment("q3", 10.0, 14.0)]
    truth = {"q1": "HAP", "q2": "SAD", "q3": "ANG"}
    record = StreamRecord()
    for i in range(27):  # 1 s windows every 0.5 s over 14 s
        start = i * 0.5
        owner = next((s.id for s in segments if s.contains(start + 0.5)), None)
        label = truth.get(owner, "NEU")
        scores = {other: 0.04 for other in LABELS} | {label: 0.8}
        record.add(WindowResult(i, start, start + 1.0, label, scores))
    record.add(StreamSummary("s", 27, 14.0, "NEU", {}, {}, 0))
    info = ModelInfo("m", "1", LABELS, 16000, "cpu", "float32", "x", BatchingInfo(1, 0, 1, False), 60, 1, 0.5)
    report = build_report(record, segments, info, recording="r.wav", window_s=1.0, hop_s=0.5, segmentation="provided")
    assert {q.id: q.stats.dominant_label for q in report.questions} == truth
    assert all(
        q.stats.shares[truth[q.id]] == 1.0 and q.stats.confidence == pytest.approx(0.8) for q in report.questions
    )
    assert report.to_dict()["overall"]["unassigned_window_count"] == 27 - sum(
        q.stats.window_count for q in report.questions
    )


def _job(utterances: list[tuple[float, float, str, str]], parties: tuple = ()) -> object:
    from emotion_client.results import Job, Utterance

    rows = tuple(
        Utterance(0, 0, a, b, label, {label: 0.9} if label else {}, speaker=speaker, no_speech=not label)
        for a, b, speaker, label in utterances
    )
    return Job("j", "s", "succeeded", 1.0, 60.0, 0.0, "", ("call.wav",), "mix", 1, "", "", rows, {}, parties)


def test_a_diarized_report_clips_each_partys_time_to_the_question_and_knows_what_it_does_not_know(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from emotion_client.cli import _print_interview
    from emotion_client.interview import Segment
    from emotion_client.interview.report import StreamRecord, build_report
    from emotion_client.results import BatchingInfo, ModelInfo, PartySummary

    info = ModelInfo("m", "1", tuple(LABELS), 16_000, "cpu", "float32", "X", BatchingInfo(8, 5.0, 64, True), 60.0, 3.0, 1.5)
    questions = [Segment("q1", 0.0, 20.0), Segment("q2", 20.0, 40.0), Segment("q3", 40.0, 60.0)]
    served = tuple(PartySummary(p, 1, 1.0, 0.5, "ANG", {}, {}, n) for p, n in (("S2", 1), ("S10", 3)))
    job = _job([(0.0, 14.0, "S2", "ANG"), (14.0, 25.0, "S10", "SAD"), (30.0, 45.0, "S2", "HAP")], served)
    report = build_report(StreamRecord.from_job(job), questions, info, recording="call.wav", window_s=0.0, hop_s=0.0,
                          segmentation="provided")  # fmt: skip
    assert [p.party for p in report.parties] == ["S2", "S10"]  # natural order, as the server names them
    assert report.alert_count == 4 and json.loads(report.to_json())["overall"]["alert_count"] == 4
    q1 = {p.party: p.seconds for p in report.questions[0].parties}
    assert q1 == pytest.approx({"S2": 14.0, "S10": 6.0})  # S10's 14-25 s utterance is q1's (its middle): 6 s inside
    # One speaker: the server gives no per-party summary, so the alert count is unknown, not 0.
    alone = build_report(StreamRecord.from_job(_job([(1.0, 5.0, "S1", "NEU")])), questions, info,
                         recording="call.wav", window_s=0.0, hop_s=0.0, segmentation="provided")  # fmt: skip
    assert alone.parties[0].alert_count is None and alone.alert_count is None
    # No speech at all: still a diarized report (utterances, not windows of 0 s).
    silent = build_report(StreamRecord.from_job(_job([(0.0, 6.0, "", "")])), questions, info,
                          recording="call.wav", window_s=0.0, hop_s=0.0, segmentation="provided")  # fmt: skip
    assert silent.diarized and silent.parties == () and "utterances of a diarized job" in render_html(silent)
    # The terminal counts what the report holds: utterances of a diarized job, in both tables.
    _print_interview(report)
    headers = [line.split() for line in capsys.readouterr().out.splitlines() if line.startswith(("QUESTION", "SPEAKER"))]
    assert [h[2] for h in headers[:1]] == ["UTTERANCES"] and "UTTERANCES" in headers[1]
