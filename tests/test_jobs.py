"""Whole recordings as jobs, end to end on `emotion serve` processes: segmentation per channel,
a server killed mid-job, erasure, and two replicas sharing one PostgreSQL queue."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import librosa
import numpy as np
import pytest
import soundfile as sf
from sqlalchemy import create_engine, inspect, select, text

from emotion_client import EmotionClient
from emotion_service.audio import load_audio
from emotion_service.paths import BUNDLED_MODEL
from emotion_service.plugins.store import ResultStore
from emotion_service.plugins.store.schema import JobInputRow, JobRow
from emotion_service.server.job_runner import FINDING_SHARE
from tests.plugin_helpers import fresh_postgres_database
from tests.server_process import serving
from tests.test_plugins_alerts import Receiver, receiver_factory  # noqa: F401  (fixture)

DATA = Path(__file__).parent / "data"
RATE = 16_000
CLIENT = [sys.executable, "-c", "import sys; from emotion_client.cli import main; sys.exit(main())"]

pytestmark = pytest.mark.timeout(300)


@dataclass(frozen=True)
class Placed:
    """A clip placed in the test recording: its channel and where its speech lies."""

    channel: int
    start_s: float
    end_s: float


def two_party_recording(path: Path, seconds: float = 60.0, seed: int = 0) -> list[Placed]:
    """A two-channel interview made of RAVDESS clips (their speech only) with pauses of 1-2 s
    between them, each clip on one channel only, over a faint noise floor; returns where each clip lies."""
    rng = np.random.default_rng(seed)
    clips = sorted(DATA.glob("*.flac"))
    audio = np.zeros((int(seconds * RATE), 2), np.float32)
    placed: list[Placed] = []
    at = 1.0
    for number in range(100):
        speech, _ = librosa.effects.trim(load_audio(clips[number % len(clips)], RATE), top_db=30)
        if at + len(speech) / RATE > seconds - 1:
            break
        channel = int(rng.integers(2))
        start = int(at * RATE)
        audio[start : start + len(speech), channel] = speech
        placed.append(Placed(channel, start / RATE, (start + len(speech)) / RATE))
        at = (start + len(speech)) / RATE + rng.uniform(1.0, 2.0)
    audio += rng.normal(0, 10 ** (-60 / 20), audio.shape).astype(np.float32)
    sf.write(path, audio, RATE, subtype="PCM_16")
    return placed


def analyze(port: int, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CLIENT, "--target", f"127.0.0.1:{port}", "analyze", *args],
        capture_output=True,
        text=True,
        timeout=240,
    )


def store_env(url: str, tmp_path: Path) -> dict[str, str]:
    """The store and reports plugins on, writing to ``url`` and a report folder under ``tmp_path``."""
    return {
        "EMOTION_PLUGINS": "store,reports",
        "EMOTION_DATABASE_URL": url,
        "EMOTION_JOBS_DATABASE_URL": url,
        "EMOTION_STORE_SPOOL_DIR": str(tmp_path / "spool"),
        "EMOTION_REPORTS_OUTPUT_DIR": str(tmp_path / "reports"),
    }


def test_analyze_finds_every_clip_on_its_channel(tmp_path: Path) -> None:
    recording = tmp_path / "interview.wav"
    truth = two_party_recording(recording)
    url = f"sqlite:///{tmp_path / 'results.db'}"
    with serving(BUNDLED_MODEL, env=store_env(url, tmp_path)) as (port, _, _):
        done = analyze(port, str(recording), "--channels", "separate", "--wait", "--json")
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    utterances = result["utterances"]
    assert result["state"] == "succeeded" and result["session_id"]
    assert abs(len(utterances) - len(truth)) <= 2, (len(utterances), len(truth))
    for clip in truth:
        found = [
            u
            for u in utterances
            if u["channel"] == clip.channel and u["start_s"] < clip.end_s and u["end_s"] > clip.start_s
        ]
        assert len(found) == 1, (clip, found)
        assert abs(found[0]["start_s"] - clip.start_s) <= 0.5 and abs(found[0]["end_s"] - clip.end_s) <= 0.5
        assert found[0]["label"] == max(found[0]["scores"], key=found[0]["scores"].get)
        assert abs(sum(found[0]["scores"].values()) - 1) < 1e-3
    # Nothing was found on a channel where no clip was.
    for u in utterances:
        assert any(c.channel == u["channel"] and u["start_s"] < c.end_s and u["end_s"] > c.start_s for c in truth)
    # The utterances are stored as a session of kind "job", and the inline recording is gone.
    engine = create_engine(url)
    with engine.connect() as conn:
        kind = conn.execute(text("SELECT kind FROM sessions WHERE id = :s"), {"s": result["session_id"]}).scalar()
        stored = conn.execute(
            text("SELECT channel, start_s FROM results WHERE session_id = :s AND kind = 'utterance'"),
            {"s": result["session_id"]},
        ).all()
        inputs = conn.execute(select(JobInputRow.job_id)).all()
    engine.dispose()
    assert kind == "job"
    assert sorted((channel, round(start, 3)) for channel, start in stored) == sorted(
        (u["channel"], round(u["start_s"], 3)) for u in utterances
    )
    assert inputs == []


def test_a_running_job_shows_its_progress_every_second_also_while_it_finds_speech(tmp_path: Path) -> None:
    """A ten-minute recording: the job's progress moves while the speech detector listens (the first
    half of each part) and while its utterances are scored, with an ETA, long before it ends."""
    recording = tmp_path / "long.wav"
    two_party_recording(recording, seconds=600.0)
    seen: list[tuple[float, float]] = []
    with serving(BUNDLED_MODEL, env={"EMOTION_PLUGINS": "none"}) as (port, _, _):
        with EmotionClient(f"127.0.0.1:{port}") as client:
            job = client.submit_job([recording])
            deadline = time.monotonic() + 240
            while not (state := client.get_job(job.job_id)).ended:
                assert time.monotonic() < deadline
                if state.state == "running":
                    seen.append((state.progress, state.eta_s))
                time.sleep(0.05)
    assert state.state == "succeeded", state.error
    finding = [p for p, _ in seen if 0 < p < FINDING_SHARE]
    assert finding, f"no progress seen while the detector listened: {sorted(set(seen))}"
    assert any(FINDING_SHARE <= p < 1 for p, _ in seen), sorted(set(seen))
    assert all(eta > 0 for p, eta in seen if 0 < p < 1)
    assert [p for p, _ in seen] == sorted(p for p, _ in seen)  # it never goes back


def test_a_job_survives_its_server_being_stopped_and_killed(tmp_path: Path) -> None:
    recordings = []
    for number in range(6):
        path = tmp_path / f"part-{number}.wav"
        two_party_recording(path, seed=number)
        recordings.append(path)
    url = f"sqlite:///{tmp_path / 'results.db'}"
    env = store_env(url, tmp_path)
    slow = ("--job-lease-s", "2", "--job-max-in-flight", "1", "--background-max-batch-size", "1")
    engine = create_engine(url)
    job_id = ""
    # Stopped (SIGTERM) once, then killed (SIGKILL) once, then let finish.
    for stop, at in ((signal.SIGTERM, 0.2), (signal.SIGKILL, 0.5)):
        with serving(BUNDLED_MODEL, *slow, env=env) as (port, proc, _):
            with EmotionClient(f"127.0.0.1:{port}") as client:
                job_id = job_id or client.submit_job(recordings, channels="separate").job_id
                deadline = time.monotonic() + 60
                while (seen := client.get_job(job_id)).progress < at:
                    assert time.monotonic() < deadline and not seen.ended, seen
                    time.sleep(0.05)
            proc.send_signal(stop)
            proc.wait(timeout=60)
        assert seen.state == "running" and seen.progress < 1.0
        if stop == signal.SIGTERM:
            with engine.connect() as conn:
                state, token, parts = conn.execute(
                    select(JobRow.state, JobRow.lease_token, JobRow.parts).where(JobRow.id == job_id)
                ).one()
            # Put back at once with its finished parts, not left running until its lease runs out.
            assert (state, token) == ("queued", None) and parts, (state, token, sorted(parts or {}))

    def stored(session_id: str) -> int:
        with engine.connect() as conn:
            query = text("SELECT COUNT(*) FROM results WHERE session_id = :s")
            return int(conn.execute(query, {"s": session_id}).scalar() or 0)

    with serving(BUNDLED_MODEL, *slow, env=env) as (port, _, _):
        with EmotionClient(f"127.0.0.1:{port}") as client:
            finished = client.wait_job(job_id, timeout=180)
        # The store writes behind the job (a queue, and a spool while the database file is locked by
        # the job queue's own writes, which shares it here): wait for it while the server runs.
        deadline = time.monotonic() + 60
        while stored(finished.session_id) < len(finished.utterances) and time.monotonic() < deadline:
            time.sleep(0.2)
    assert finished.state == "succeeded", finished.error
    assert finished.attempts == 3
    assert {u.recording for u in finished.utterances} == set(range(6))
    rows = stored(finished.session_id)
    with engine.connect() as conn:
        inputs = conn.execute(select(JobInputRow.job_id)).all()
    engine.dispose()
    # Every utterance stored once: the part cut short by the kill was run again without duplicates.
    assert rows == len(finished.utterances)
    assert inputs == []


def test_erase_leaves_no_row_naming_the_session_and_no_report(tmp_path: Path) -> None:
    recording = tmp_path / "interview.wav"
    two_party_recording(recording, seconds=20.0)
    url = f"sqlite:///{tmp_path / 'results.db'}"
    env = store_env(url, tmp_path)
    reports = tmp_path / "reports"
    with serving(BUNDLED_MODEL, env=env) as (port, _, _):
        done = analyze(port, str(recording), "--channels", "separate", "--wait", "--json")
        assert done.returncode == 0, done.stderr
        session = json.loads(done.stdout)["session_id"]
        # The report is written once the job's end is (just after --wait returns).
        deadline = time.monotonic() + 30
        while not (reports.is_dir() and any(session in path.name for path in reports.iterdir())):
            assert time.monotonic() < deadline, "the job's session was reported"
            time.sleep(0.1)

    erased = subprocess.run(
        [sys.executable, "-m", "emotion_service", "erase", "--session", session],
        capture_output=True,
        text=True,
        env={**os.environ, **env},
        timeout=120,
    )
    assert erased.returncode == 0, erased.stderr
    assert f"erased session {session}" in erased.stdout
    engine = create_engine(url)
    inspector = inspect(engine)
    with engine.connect() as conn:
        for table in inspector.get_table_names():
            if table == "erasures":
                continue
            for column in inspector.get_columns(table):
                hits = conn.execute(
                    text(f'SELECT COUNT(*) FROM "{table}" WHERE CAST("{column["name"]}" AS TEXT) LIKE :s'),
                    {"s": f"%{session}%"},
                ).scalar()
                assert hits == 0, f"{table}.{column['name']} still names the session"
        hashed = ResultStore(url).erasure_id(session)
        record = conn.execute(text("SELECT requested_by FROM erasures WHERE session_id = :s"), {"s": hashed}).all()
    engine.dispose()
    assert len(record) == 1 and record[0][0].startswith("cli:")
    assert not [path for path in reports.iterdir() if session in path.name]


def test_two_replicas_share_one_queue_each_job_taken_once(tmp_path: Path) -> None:
    recordings = []
    for number in range(8):
        path = tmp_path / f"call-{number}.wav"
        two_party_recording(path, seconds=20.0, seed=number)
        recordings.append(path)
    with fresh_postgres_database() as url:
        env = store_env(url, tmp_path)
        with serving(BUNDLED_MODEL, env=env) as (port_a, _, _), serving(BUNDLED_MODEL, env=env) as (port_b, _, _):
            with EmotionClient(f"127.0.0.1:{port_a}") as a, EmotionClient(f"127.0.0.1:{port_b}") as b:
                jobs = [
                    (a if n % 2 else b).submit_job([path], channels="separate") for n, path in enumerate(recordings)
                ]
                finished = [a.wait_job(job.job_id, timeout=180) for job in jobs]
        engine = create_engine(url)
        with engine.connect() as conn:
            rows = conn.execute(select(JobRow.id, JobRow.attempts, JobRow.lease_owner)).all()
            stored = dict(
                conn.execute(text("SELECT session_id, COUNT(*) FROM results GROUP BY session_id")).all()  # type: ignore[arg-type]
            )
        engine.dispose()
    assert all(job.state == "succeeded" for job in finished), [job.error for job in finished]
    assert len(rows) == 8 and all(attempts == 1 for _, attempts, _ in rows), rows
    assert len({owner for _, _, owner in rows}) == 2, "both replicas took jobs from the one queue"
    for job in finished:
        assert stored.get(job.session_id, 0) == len(job.utterances)


def _run_job(env: dict[str, str], recording: Path, session_id: str, kill_at: float | None) -> tuple[object, str, int]:
    """Runs a job to its end on `emotion serve`; with ``kill_at``, the first server is killed once the job's
    progress reaches it and a second one finishes it. Returns the job, the servers' logs, and attempts."""
    # A short lease: progress is saved every third of it, so the job is seen (and killed) mid-way.
    slow = ("--job-lease-s", "0.6", "--job-max-in-flight", "1", "--background-max-batch-size", "1")
    logs = ""
    if kill_at is not None:
        with serving(BUNDLED_MODEL, *slow, env=env) as (port, proc, log):
            with EmotionClient(f"127.0.0.1:{port}") as client:
                job = client.submit_job([recording], channels="mix", session_id=session_id)
                deadline = time.monotonic() + 60
                while (seen := client.get_job(job.job_id)).progress < kill_at:
                    assert time.monotonic() < deadline and not seen.ended, seen
                    time.sleep(0.02)
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            logs += log.read_text()
        assert seen.state == "running" and seen.progress < 1.0, seen
    with serving(BUNDLED_MODEL, *slow, env=env) as (port, proc, log):
        with EmotionClient(f"127.0.0.1:{port}") as client:
            if kill_at is None:
                job = client.submit_job([recording], channels="mix", session_id=session_id)
            finished = client.wait_job(job.job_id, timeout=180)
        proc.send_signal(signal.SIGTERM)  # a clean stop delivers what the webhook has queued
        proc.wait(timeout=60)
        logs += log.read_text()
    return finished, logs, finished.attempts


def test_a_job_taken_over_fires_its_alerts_report_and_webhooks_once(
    tmp_path: Path, receiver_factory: type[Receiver]  # noqa: F811  (the fixture)
) -> None:
    """A replica killed mid-job and another finishing it: the alerts stored and POSTed, the report
    written and the job's end POSTed are those of an uninterrupted run of the same job, once each."""
    recording = tmp_path / "interview.wav"
    two_party_recording(recording, seconds=90.0)
    config = tmp_path / "emotion.toml"  # thresholds the bundled model's scores set off on this recording
    config.write_text('[plugins.threshold_alerts]\nthresholds = {NEU = 0.3, SAD = 0.1}\nhysteresis = 0.05\n')
    receiver = receiver_factory([])
    counted = {}
    # Killed once about a third of the utterances are scored (and some alerts raised): the first
    # FINDING_SHARE of a part's progress is the speech detector's, before any alert can fire.
    for name, kill_at in (("straight", None), ("taken-over", FINDING_SHARE + 0.3 * (1 - FINDING_SHARE))):
        url = f"sqlite:///{tmp_path / f'{name}.db'}"
        env = {
            **store_env(url, tmp_path / name),
            "EMOTION_PLUGINS": "store,reports,threshold_alerts,webhook",
            "EMOTION_WEBHOOK_URL": receiver.url,
            "EMOTION_CONFIG": str(config),
        }
        finished, logs, attempts = _run_job(env, recording, name, kill_at)
        assert finished.state == "succeeded", finished.error  # type: ignore[attr-defined]
        assert attempts == (1 if kill_at is None else 2)
        engine = create_engine(url)
        with engine.connect() as conn:
            stored = conn.execute(
                text("SELECT kind, label, time_s FROM alerts WHERE session_id = :s ORDER BY time_s, label"), {"s": name}
            ).all()
        engine.dispose()
        posted = [body for _, body in receiver.requests if body.get("session_id") == name]
        ended = [b for _, b in receiver.requests if b.get("event") == "job_ended" and b["job"]["session_id"] == name]
        reports = [line for line in logs.splitlines() if '"session_reports_written"' in line and name in line]
        counted[name] = (
            sorted((a["alert"]["label"], a["alert"]["time_s"]) for a in posted),
            [(kind, label, round(t, 3)) for kind, label, t in stored],
            len(ended),
            len(reports),
        )
    assert counted["straight"][0], "the run raised alerts (else this test shows nothing)"
    assert counted["taken-over"] == counted["straight"]
    assert counted["straight"][2:] == (1, 1)
