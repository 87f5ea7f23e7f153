"""Speaker diarization of one-channel recordings: the error rate, a diarized job end to end on an
`emotion serve` process through the client CLI (--diarize, JSON and CSV), and the store's `speaker`."""

from __future__ import annotations

import csv
import io
import json
import subprocess
from pathlib import Path

import librosa
import numpy as np
import pytest
import soundfile as sf
from sqlalchemy import create_engine, select, text

from emotion_service.audio import load_audio
from emotion_service.diarization import Turn, diarization_error_rate
from emotion_service.paths import BUNDLED_MODEL
from emotion_service.plugins.reports.documents import session_report_paths
from emotion_service.plugins.store import ResultStore
from emotion_service.plugins.store.schema import JobRow
from emotion_service.plugins.types import Alert, Result, summarise_parties
from tests.server_process import serving
from tests.test_jobs import CLIENT, analyze, store_env

DATA = Path(__file__).parent / "data"
RATE = 16_000


def test_diarization_error_rate_counts_missed_false_alarm_and_confusion() -> None:
    reference = [Turn(0.0, 4.0, "anna"), Turn(5.0, 9.0, "bob")]
    perfect = [Turn(0.0, 4.0, "S2"), Turn(5.0, 9.0, "S1")]  # names do not matter, only the mapping
    assert diarization_error_rate(reference, perfect)["der"] == 0.0
    # One speaker for everything: bob's scored speech (4 s less 2 x 0.25 s collars) is confusion.
    merged = diarization_error_rate(reference, [Turn(0.0, 4.0, "S1"), Turn(5.0, 9.0, "S1")])
    assert abs(merged["confusion"] - 0.5) < 0.01 and merged["missed"] == merged["false_alarm"] == 0.0
    # Half of anna's turn missed, 1 s of speech in the pause (outside the collars) a false alarm.
    partial = diarization_error_rate(reference, [Turn(2.0, 4.0, "S1"), Turn(4.0, 9.0, "S2")])
    assert abs(partial["missed"] - 1.75 / 7) < 0.01 and abs(partial["false_alarm"] - 0.5 / 7) < 0.01
    assert abs(partial["der"] - (partial["missed"] + partial["false_alarm"] + partial["confusion"])) < 1e-9


def one_channel_conversation(path: Path) -> list[Turn]:
    """Actor 21 (a man) and actor 20 (a woman) taking turns in one channel, 0.6-1 s pauses."""
    man = [p for p in sorted(DATA.glob("*-21.flac"))][:6]
    woman = sorted(DATA.glob("*-20.flac"))[0]  # the one clip of actor 20 here, said again each turn
    rng = np.random.default_rng(0)
    pieces, truth, at = [np.zeros(RATE // 2, np.float32)], [], RATE // 2
    for turn in range(10):
        clip = man[turn // 2] if turn % 2 == 0 else woman
        speech, _ = librosa.effects.trim(load_audio(clip, RATE), top_db=30)
        speech = speech * (0.5 + rng.uniform(0, 0.5))
        truth.append(Turn(at / RATE, (at + len(speech)) / RATE, "man" if turn % 2 == 0 else "woman"))
        pause = np.zeros(int(rng.uniform(0.6, 1.0) * RATE), np.float32)
        pieces += [speech, pause]
        at += len(speech) + len(pause)
    wave = np.concatenate(pieces) + rng.normal(0, 1e-3, at).astype(np.float32)
    sf.write(path, wave, RATE, subtype="PCM_16")
    return truth


def speakers_of(utterances: list[dict], truth: list[Turn]) -> dict[str, str]:
    """For each true turn, the speaker of the utterances overlapping it (one each); the mapping true -> found."""
    mapping: dict[str, str] = {}
    for turn in truth:
        found = {u["speaker"] for u in utterances if u["start_s"] < turn.end_s and u["end_s"] > turn.start_s}
        assert len(found) == 1, (turn, found)
        speaker = found.pop()
        assert mapping.setdefault(turn.speaker, speaker) == speaker, (turn, mapping)
    assert len(set(mapping.values())) == len(mapping), mapping  # one found speaker per true one
    return mapping


def test_a_diarized_job_labels_each_utterance_with_its_speaker(tmp_path: Path) -> None:
    recording = tmp_path / "conversation.wav"
    truth = one_channel_conversation(recording)
    url = f"sqlite:///{tmp_path / 'results.db'}"
    half = round(truth[4].end_s + 0.3, 2)  # questions: the first five turns, then the other five
    (tmp_path / "questions.csv").write_text(f"id,start,end\nq1,0,{half}\nq2,{half},{truth[-1].end_s + 0.5:.2f}\n")
    with serving(BUNDLED_MODEL, env=store_env(url, tmp_path)) as (port, _, _):
        done = analyze(port, str(recording), "--diarize", "--wait", "--json")
        counted = analyze(port, str(recording), "--diarize", "--num-speakers", "2", "--csv")
        interview = subprocess.run(
            [*CLIENT, "--target", f"127.0.0.1:{port}", "interview", str(recording), "--diarize",
             "--questions", str(tmp_path / "questions.csv"), "--json", str(tmp_path / "interview.json"),
             "--html", str(tmp_path / "interview.html")],
            capture_output=True, text=True, timeout=240,
        )  # fmt: skip
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    utterances = result["utterances"]
    assert result["state"] == "succeeded"
    # Two speakers found (the count not given), each true turn labelled as one of them, consistently.
    assert {u["speaker"] for u in utterances} == {"S1", "S2"}
    mapping = speakers_of(utterances, truth)
    assert mapping == {"man": "S1", "woman": "S2"}  # named in order of first appearance
    # A summary per party in the job's result, and the same in the session's JSON and HTML reports.
    spoken = [u for u in utterances if not u["no_speech"]]
    parties = result["parties"]
    assert [p["party"] for p in parties] == ["S1", "S2"]
    for party in parties:
        mine = [u for u in spoken if u["speaker"] == party["party"]]
        assert party["count"] == len(mine)
        assert abs(party["seconds"] - sum(u["end_s"] - u["start_s"] for u in mine)) < 0.01
        wins = {label: sum(u["label"] == label for u in mine) / len(mine) for label in party["shares"]}
        assert party["shares"] == pytest.approx(wins)
        assert party["dominant_label"] in {label for label, share in wins.items() if share == max(wins.values())}
    assert sum(p["time_share"] for p in parties) == pytest.approx(1.0)
    written = {path.suffix: path for path in session_report_paths(result["session_id"], tmp_path / "reports")}
    document = json.loads(written[".json"].read_text())
    for reported, answered in zip(document["parties"], parties, strict=True):  # the same summary, the same names
        assert reported.keys() == answered.keys()
        assert {k: reported[k] for k in ("party", "count", "dominant_label", "alert_count")} == {
            k: answered[k] for k in ("party", "count", "dominant_label", "alert_count")
        }
        assert reported["shares"] == pytest.approx(answered["shares"])
        assert reported["time_share"] == pytest.approx(answered["time_share"])
    assert {w["speaker"] for w in document["windows"]} == {"S1", "S2"}
    assert "Per speaker" in written[".html"].read_text()
    # --num-speakers and --csv: the same speakers, one row per utterance.
    assert counted.returncode == 0, counted.stderr
    rows = list(csv.DictReader(io.StringIO(counted.stdout)))
    assert rows and rows[0].keys() >= {"recording", "channel", "speaker", "start_s", "end_s", "label"}
    rows_as_utterances = [
        {"speaker": r["speaker"], "start_s": float(r["start_s"]), "end_s": float(r["end_s"])} for r in rows
    ]
    assert speakers_of(rows_as_utterances, truth) == mapping
    # The store keeps each utterance's speaker.
    engine = create_engine(url)
    with engine.connect() as conn:
        stored = conn.execute(
            text("SELECT start_s, speaker FROM results WHERE session_id = :s AND kind = 'utterance'"),
            {"s": result["session_id"]},
        ).all()
    engine.dispose()
    assert sorted((round(start, 3), speaker) for start, speaker in stored) == sorted(
        (round(u["start_s"], 3), u["speaker"]) for u in utterances
    )
    # The interview integration, diarized: a summary per party for the whole interview and per question.
    assert interview.returncode == 0, interview.stderr
    assert "SPEAKER" in interview.stdout
    # An interview is diarized into its two parties unless told otherwise: the job asked for two.
    engine = create_engine(url)
    with engine.connect() as conn:
        asked = [row.request for row in conn.execute(select(JobRow.request).order_by(JobRow.created_at))]
    engine.dispose()
    assert [(r["diarize"], r["num_speakers"]) for r in asked] == [(True, 0), (True, 2), (True, 2)]
    report = json.loads((tmp_path / "interview.json").read_text())
    timeline = report["timeline"]
    assert speakers_of(timeline, truth) == mapping  # each entry is an utterance with its speaker
    assert [p["party"] for p in report["parties"]] == ["S1", "S2"]
    for party, served in zip(report["parties"], parties, strict=True):  # the whole interview: the job's own summary
        assert party["window_count"] == served["count"] and party["alert_count"] == served["alert_count"]
        assert party["dominant_label"] == served["dominant_label"]
    for question in report["questions"]:
        mine = [t for t in timeline if t["question_id"] == question["id"]]
        assert [p["party"] for p in question["parties"]] == sorted({t["speaker"] for t in mine})
        for party in question["parties"]:
            theirs = [t for t in mine if t["speaker"] == party["party"]]
            assert party["window_count"] == len(theirs)
            assert party["seconds"] == pytest.approx(sum(t["end_s"] - t["start_s"] for t in theirs))
        assert sum(p["time_share"] for p in question["parties"]) == pytest.approx(1.0)
    page = (tmp_path / "interview.html").read_text()
    assert "Per speaker" in page and page.count(">S1<") >= 2 and page.count(">S2<") >= 2  # table row and timeline lane


def test_the_store_adds_the_speaker_column_to_an_older_database(tmp_path: Path) -> None:
    """Results and alerts keep their speaker, also in a database made before they carried one."""
    url = f"sqlite:///{tmp_path / 'old.db'}"
    ResultStore(url).close()
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text("ALTER TABLE results DROP COLUMN speaker"))  # as a store of an older version made it
        conn.execute(text("ALTER TABLE alerts DROP COLUMN speaker"))
    engine.dispose()
    store = ResultStore(url)
    store.add_result(
        Result(
            session_id="s",
            request_id="j",
            kind="utterance",
            label="HAP",
            scores={"HAP": 1.0},
            start_s=1.0,
            end_s=2.0,
            speaker="S2",
        )  # fmt: skip
    )
    store.add_alert("s", Alert(kind="threshold", message="S2: anger", label="ANG", time_s=2.0, speaker="S2"))
    record = store.session("s")
    store.close()
    assert record is not None and [r.speaker for r in record.summary.results] == ["S2"]
    assert [a.speaker for a in record.summary.alerts] == ["S2"]


def test_each_party_gets_its_time_emotions_and_alerts() -> None:
    def said(start: float, end: float, speaker: str, label: str = "", no_speech: bool = False, score: float = 0.8) -> Result:
        scores = {} if no_speech else {"HAP": 0.1, "SAD": 0.1, label: score}
        return Result(session_id="s", request_id="j", kind="utterance", label=label, scores=scores,
                      start_s=start, end_s=end, speaker=speaker, no_speech=no_speech)  # fmt: skip

    results = [said(0, 2, "S1", "HAP"), said(2.5, 4, "S2", "SAD", score=0.9), said(5, 6, "S1", "HAP"), said(4.2, 4.9, "S2", "HAP"),
               said(6, 7, "S2", no_speech=True)]  # fmt: skip
    alerts = [Alert(kind="anomaly", message="m", time_s=3.9), Alert(kind="anomaly", message="m", time_s=6.5)]
    s1, s2 = summarise_parties(results, alerts)
    assert (s1.party, s1.count, s1.seconds, s1.dominant_label, s1.shares["HAP"]) == ("S1", 2, 3.0, "HAP", 1.0)
    assert (s2.party, s2.count, s2.seconds, s2.shares["SAD"]) == ("S2", 2, 2.2, 0.5)
    assert s2.dominant_label == "SAD"  # one win each: the higher mean score decides
    assert s1.time_share == pytest.approx(3.0 / 5.2) and s2.time_share == pytest.approx(2.2 / 5.2)
    # An alert is its party's whose utterance holds it, else the nearest utterance with speech.
    assert (s1.alert_count, s2.alert_count) == (1, 1)
    # Overlapping speech (two channels): an alert stamped at the end of S2's utterance is S2's,
    # though S1 speaks over it and is listed first.
    overlap = [said(0, 10, "S1", "HAP"), said(3, 5, "S2", "SAD")]
    alert = Alert(kind="anomaly", message="m", time_s=5.0)
    assert [p.alert_count for p in summarise_parties(overlap, [alert])] == [0, 1]
    # An alert that names its party is that party's, wherever it falls.
    named = Alert(kind="threshold", message="m", time_s=5.0, speaker="S1")
    assert [p.alert_count for p in summarise_parties(overlap, [named])] == [1, 0]
    # Parties in natural order: S2 before S10.
    many = [said(k, k + 0.5, f"S{n}", "HAP") for k, n in enumerate((10, 2, 1))]
    assert [p.party for p in summarise_parties(many)] == ["S1", "S2", "S10"]
    assert summarise_parties([r for r in results if r.speaker == "S1"], alerts) == []  # one party: no table
