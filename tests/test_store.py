"""The results store on SQLite and on a real PostgreSQL server, alone and behind a running server."""

from __future__ import annotations

import dataclasses
import random
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import LargeBinary, create_engine, event, inspect, select, text

from emotion_service.plugins import Alert, Result
from emotion_service.plugins.manager import load_plugins
from emotion_service.plugins.store import ResultStore, StoreError
from emotion_service.plugins.store.schema import Base, MetadataRow, SessionRow
from emotion_service.plugins.types import SessionSummary, summarise
from emotion_service.server.job_queue import SUCCEEDED, JobQueue, RecordingInput
from tests.plugin_helpers import (
    fresh_postgres_database,
    ravdess_interview,
    run_stream,
    serving,
    settle,
    stream_requests,
)


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'results.db'}"
    else:
        with fresh_postgres_database() as url:
            yield url


@pytest.fixture
def store(database_url: str) -> Iterator[ResultStore]:
    opened = ResultStore(database_url)
    yield opened
    opened.close()


def window(session: str, index: int, label: str = "ANG", metadata: dict[str, str] | None = None) -> Result:
    scores = {"ANG": 0.1, "NEU": 0.1, "SAD": 0.1} | {label: 0.8}
    return Result(
        session, session, "window", label, scores, index * 1.5, index * 1.5 + 3.0, index, "tiny", metadata or {}
    )


def test_a_stream_round_trips(store: ResultStore) -> None:
    meta = {"candidate": "c-17", "interview": "i-3"}
    for i, label in enumerate(["NEU", "ANG", "ANG"]):
        store.add_result(window("s1", i, label, meta))
    store.add_alert(
        "s1", Alert(kind="threshold", label="ANG", message="angry", value=0.8, time_s=6.0, details={"k": "v"})
    )
    store.end_session(SessionSummary("s1", 3, 6.5, "ANG", {}, {}, (), (), meta, "tiny"))
    record = store.session("s1")
    assert record is not None and record.kind == "stream"
    s = record.summary
    assert [r.label for r in s.results] == ["NEU", "ANG", "ANG"] and [r.index for r in s.results] == [0, 1, 2]
    assert s.results[1].scores == {"ANG": 0.8, "NEU": 0.1, "SAD": 0.1}
    assert s.metadata == meta and s.model_name == "tiny" and s.duration_s == 6.5
    assert s.dominant_label == "ANG" and s.shares["ANG"] == pytest.approx(2 / 3)
    assert [(a.kind, a.label, a.details) for a in s.alerts] == [("threshold", "ANG", {"k": "v"})]
    assert record.started_at.tzinfo is not None and abs(datetime.now(UTC) - record.started_at) < timedelta(minutes=5)
    assert store.session("missing") is None


def test_classify_answers_are_one_result_sessions(store: ResultStore) -> None:
    store.add_result(Result("req-1", "req-1", "classify", "SAD", {"SAD": 0.9, "ANG": 0.1}, 0.0, 2.5))
    record = store.session("req-1")
    assert record is not None and record.kind == "classify" and record.summary.window_count == 1


def test_results_without_speech_round_trip_and_claim_no_emotion(store: ResultStore) -> None:
    quiet = Result("quiet", "quiet", "window", "", {}, 1.5, 4.5, 1, "tiny", no_speech=True, voiced_fraction=0.0)
    store.add_result(window("quiet", 0, "ANG"))  # made by hand: its voiced fraction was not measured
    store.add_result(quiet)
    store.add_result(replace(window("quiet", 2, "SAD"), voiced_fraction=0.62))
    record = store.session("quiet")
    assert record is not None
    s = record.summary
    assert [(r.label, r.no_speech, r.voiced_fraction) for r in s.results] == [
        ("ANG", False, None),
        ("", True, 0.0),
        ("SAD", False, 0.62),
    ]
    assert s.results[1].scores == {}
    assert s.window_count == 2, "a result without speech is no window with an emotion"
    assert sum(s.shares.values()) == pytest.approx(1.0) and s.shares["ANG"] == pytest.approx(0.5)
    assert s.mean_scores["ANG"] == pytest.approx((0.8 + 0.1) / 2)


def test_an_older_store_gains_the_no_speech_columns(database_url: str) -> None:
    ResultStore(database_url).close()
    engine = create_engine(database_url.replace("postgresql://", "postgresql+psycopg://"))
    with engine.begin() as conn:  # as a store of a version before the speech detector made it
        conn.execute(text("ALTER TABLE results DROP COLUMN no_speech"))
        conn.execute(text("ALTER TABLE results DROP COLUMN voiced_fraction"))
        conn.execute(
            text("INSERT INTO sessions (id, kind, model_name, started_at) VALUES ('old', 'classify', 'tiny', :t)"),
            {"t": datetime.now(UTC).replace(tzinfo=None)},
        )
        conn.execute(
            text(
                "INSERT INTO results (session_id, request_id, kind, position, start_s, end_s, label, scores, "
                "model_name, created_at) VALUES ('old', 'old', 'classify', 0, 0, 2, 'SAD', '{\"SAD\": 1.0}', "
                "'tiny', :t)"
            ),
            {"t": datetime.now(UTC).replace(tzinfo=None)},
        )
    store = ResultStore(database_url)
    columns = {c["name"] for c in inspect(store.engine).get_columns("results")}
    store.add_result(Result("new", "new", "classify", "", {}, 0.0, 3.0, no_speech=True, voiced_fraction=0.0))
    old, new = store.session("old"), store.session("new")
    store.close()
    engine.dispose()
    assert {"no_speech", "voiced_fraction"} <= columns
    assert old is not None and [(r.label, r.no_speech, r.voiced_fraction) for r in old.summary.results] == [
        ("SAD", False, None)
    ], "a row stored before reads as speech, its voiced fraction unknown"
    assert new is not None and new.summary.results[0].no_speech and new.summary.window_count == 0


def test_an_older_store_gains_the_jobs_pending_hand_over(database_url: str) -> None:
    """A database made before job ends were kept until handed on: its jobs table gains the column and
    the lease index, and the jobs it had read as handed on (none is taken as an orphaned end)."""
    queue = JobQueue(database_url)
    queue.submit([RecordingInput("call.flac", content=b"x")], "mix", {}, "ended-before")
    claim = queue.claim("replica-a", lease_s=60.0)
    assert claim is not None and queue.finish(claim, SUCCEEDED, [])  # as an older version ended it
    queue.close()
    engine = create_engine(database_url.replace("postgresql://", "postgresql+psycopg://"))
    with engine.begin() as conn:  # as a store of a version before the hand-over was kept
        conn.execute(text("DROP INDEX ix_jobs_lease_expires"))
        conn.execute(text("ALTER TABLE jobs DROP COLUMN hand_over"))
    engine.dispose()
    queue = JobQueue(database_url)
    queue.submit([RecordingInput("call.flac", content=b"x")], "mix", {}, "ended-after")
    claim = queue.claim("replica-a", lease_s=60.0)
    assert claim is not None and queue.finish(claim, SUCCEEDED, [], "", [], {"job": {}}, 0.0)
    found = inspect(queue.engine)
    columns = {c["name"] for c in found.get_columns("jobs")}
    indexes = {i["name"] for i in found.get_indexes("jobs")}
    time.sleep(0.01)
    orphan = queue.claim_hand_over("replica-b", 60.0)
    queue.close()
    assert "hand_over" in columns and "ix_jobs_lease_expires" in indexes
    assert orphan is not None and (orphan.session_id, orphan.payload) == ("ended-after", {"job": {}})


def test_sessions_since_selects_by_start_time(store: ResultStore) -> None:
    before = datetime.now(UTC) - timedelta(seconds=1)
    store.add_result(window("early", 0))
    middle = datetime.now(UTC)
    store.add_result(window("late", 0))
    after = datetime.now(UTC) + timedelta(seconds=1)
    assert [r.summary.session_id for r in store.sessions_since(before)] == ["early", "late"]
    assert [r.summary.session_id for r in store.sessions_since(before, until=middle)] == ["early"]
    assert store.sessions_since(after) == []


def test_the_session_list_is_summarised_by_the_database_as_summarise_does(
    store: ResultStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``session_summaries`` (the web UI's sessions list) gives every session the summary
    ``summarise`` makes of its results (windows without speech, missing scores, ended and running
    sessions, alerts counted), in a fixed number of grouped queries: no result is loaded."""
    rng = random.Random(7)
    labels = ["ANG", "HAP", "NEU", "SAD"]
    for n in range(24):
        session, results = f"s{n}", []
        for i in range(rng.randint(1, 12)):
            quiet = rng.random() < 0.3
            scores = {} if quiet else {label: rng.random() for label in labels[: rng.randint(2, 4)]}
            label = "" if quiet else max(scores, key=scores.__getitem__)
            results.append(
                Result(
                    session,
                    f"r{i}",
                    "window",
                    label,
                    scores,
                    i * 1.5,
                    i * 1.5 + 3,
                    i,
                    "tiny",
                    {"n": str(n)},
                    no_speech=quiet,
                )
            )
        alerts = [
            Alert(kind="threshold", label="ANG", message=f"m{k}", value=0.5, time_s=k) for k in range(rng.randint(0, 3))
        ]
        entries = [store.result_entry(r) for r in results] + [store.alert_entry(session, a) for a in alerts]
        if rng.random() < 0.5:
            entries.append(store.session_end_entry(summarise(session, results, alerts, {}, len(results) * 1.5)))
        store.write(entries)
    expected = {r.summary.session_id: r for r in store.find_sessions(limit=20)}
    statements: list[str] = []
    event.listen(store.engine, "before_cursor_execute", lambda *args: statements.append(args[2]))
    monkeypatch.setattr(store, "_load", lambda *_: pytest.fail("the list loaded results"))
    listed = store.session_summaries(limit=20)
    assert len(statements) <= 7, statements  # ids, sessions, metadata, counts, wins, score sums, alerts
    assert [s.record.summary.session_id for s in listed] == list(expected)
    for listing in listed:
        got, want = listing.record.summary, expected[listing.record.summary.session_id].summary
        assert listing.alert_count == len(want.alerts) and got.results == () and got.alerts == ()
        assert (got.window_count, got.dominant_label, got.duration_s, got.end_reason, got.metadata) == (
            want.window_count, want.dominant_label, want.duration_s, want.end_reason, want.metadata
        )  # fmt: skip
        assert got.shares == pytest.approx(want.shares) and got.mean_scores == pytest.approx(want.mean_scores)
        assert listing.record.started_at == expected[got.session_id].started_at
    assert store.session_summaries(search="no such session") == []


def test_concurrent_writers_of_one_new_session(store: ResultStore) -> None:
    meta = {"k": "v"}
    threads = [threading.Thread(target=store.add_result, args=(window("busy", i, metadata=meta),)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    with store.engine.connect() as conn:
        assert conn.execute(select(SessionRow.id).where(SessionRow.id == "busy")).all() == [("busy",)]
        assert conn.execute(select(MetadataRow.key).where(MetadataRow.session_id == "busy")).all() == [("k",)]
    record = store.session("busy")
    assert record is not None and sorted(r.index for r in record.summary.results) == list(range(8))


def test_no_table_can_hold_audio() -> None:
    # job_inputs holds a job's inline recordings until the job ends, then they are deleted
    # (tests/test_jobs.py checks that no input is left behind).
    tables = [table for name, table in Base.metadata.tables.items() if name != "job_inputs"]
    columns = [column for table in tables for column in table.columns]
    assert not [c for c in columns if isinstance(c.type, LargeBinary)]
    assert not [c for c in columns if any(word in c.name for word in ("audio", "wave", "pcm", "sample"))]


def test_unusable_urls_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="no results database at"):
        ResultStore(f"sqlite:///{tmp_path / 'absent.db'}", must_exist=True)
    with pytest.raises(StoreError, match="unsupported database 'mysql'"):
        ResultStore("mysql://u:secret@host/db")
    with pytest.raises(
        StoreError, match=r"cannot open the results database postgresql\+psycopg://u:\*\*\*@127\.0\.0\.1:9/db"
    ):
        ResultStore("postgresql://u:secret@127.0.0.1:9/db")


async def test_a_served_stream_lands_in_the_store(
    tiny_model: Path, database_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("EMOTION_DATABASE_URL", database_url)
    monkeypatch.setenv("EMOTION_STORE_SPOOL_DIR", str(tmp_path / "spool"))
    monkeypatch.setenv("EMOTION_THRESHOLD_ALERTS_THRESHOLDS", "FEA=0.1,ANG=0.1")
    monkeypatch.setenv("EMOTION_THRESHOLD_ALERTS_HYSTERESIS", "0.05")
    requests = stream_requests(ravdess_interview()[: 16000 * 8], "served-1", {"candidate": "c-42"})
    plugins = load_plugins("threshold_alerts,store")
    async with serving(tiny_model, plugins) as (server, stub):
        responses = await run_stream(stub, requests)
        await settle(server)
    plugins.pm.get_plugin("store").store.close()
    windows = [r.window for r in responses if r.HasField("window")]
    alerts = [r.alert for r in responses if r.HasField("alert")]
    assert len(windows) >= 4 and {a.label for a in alerts} == {"FEA", "ANG"}
    store = ResultStore(database_url, must_exist=True)
    record = store.session("served-1")
    store.close()
    assert record is not None and record.summary.metadata == {"candidate": "c-42"}
    assert [(r.index, r.label) for r in record.summary.results] == [(w.index, w.label) for w in windows]
    assert sorted(a.label for a in record.summary.alerts) == ["ANG", "FEA"]
    assert record.summary.duration_s == pytest.approx(8.0)


def test_a_jobs_session_is_a_jobs_even_without_speech(store: ResultStore, database_url: str) -> None:
    """A job whose recording holds no speech writes no result: its session is made by its end, which
    says it was a job's (``SessionSummary.kind``), as a job's results would; a stream's stays a stream's."""
    silent = replace(summarise("silent-job", [], [], {"source": "web upload"}, duration_s=5.0), kind="job")
    store.end_session(silent)
    heard = Result("heard-job", "r0", "utterance", "", {}, 0.0, 2.0, no_speech=True)  # its results say "job"
    store.end_session(summarise("heard-job", [heard], [], {}, duration_s=2.0))
    store.end_session(summarise("empty-stream", [], [], {}, duration_s=1.0))
    kinds = {s: store.session(s).kind for s in ("silent-job", "heard-job", "empty-stream")}  # type: ignore[union-attr]
    assert kinds == {"silent-job": "job", "heard-job": "job", "empty-stream": "stream"}
    assert sorted(r.summary.session_id for r in store.find_sessions(kind="job")) == ["heard-job", "silent-job"]


def test_an_alert_without_a_speaker_keeps_the_event_id_it_had() -> None:
    """Alerts spooled before they carried a speaker are replayed with the ids they were written with:
    a speakerless alert's id is what it was; a speaker makes another alert."""
    import hashlib
    import json

    from emotion_service.plugins.store.repository import alert_event_id

    alert = Alert(kind="threshold", message="ANG high", label="ANG", value=0.7, time_s=1.0, source="threshold_alerts")
    before = {k: v for k, v in dataclasses.asdict(alert).items() if k != "speaker"}  # as alerts were
    expected = hashlib.sha256(json.dumps(["s", before], sort_keys=True, default=str).encode()).hexdigest()[:32]
    assert alert_event_id("s", alert) == expected
    assert alert_event_id("s", replace(alert, speaker="S2")) != expected
