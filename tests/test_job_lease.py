"""The job queue's lease: a worker that lost its job (lease expired, another worker took it) can
no longer write it: neither finish it, nor fail it, nor renew or release it."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import update
from sqlalchemy.exc import OperationalError

from emotion_service.plugins.hookspecs import hookimpl
from emotion_service.plugins.manager import build_host
from emotion_service.plugins.store.schema import JobRow
from emotion_service.plugins.types import Alert, JobSummary, Result, SessionSummary
from emotion_service.server.job_queue import FAILED, QUEUED, RUNNING, SUCCEEDED, Claim, JobQueue, RecordingInput
from emotion_service.server.job_runner import PROGRESS_S, JobRunner, LostJobError, _Progress, hand_over_payload
from tests.conftest import make_settings
from tests.plugin_helpers import fresh_postgres_database


@pytest.fixture
def queue(tmp_path: Path) -> Iterator[JobQueue]:
    opened = JobQueue(f"sqlite:///{tmp_path / 'jobs.db'}")
    yield opened
    opened.close()


def test_a_worker_that_lost_its_lease_cannot_finish_the_job_another_worker_holds(queue: JobQueue) -> None:
    job = queue.submit([RecordingInput("call.flac", content=b"audio bytes")], "mix", {}, "lease-session")
    stale = queue.claim("replica-a", lease_s=0.0)  # its lease expires at once: replica-a stalled
    assert stale is not None and stale.job_id == job.id
    time.sleep(0.01)
    current = queue.claim("replica-b", lease_s=60.0)
    assert current is not None and current.job_id == job.id and current.token != stale.token

    # replica-a wakes up and reports what it had: refused, and nothing of it lands.
    assert queue.finish(stale, SUCCEEDED, [{"label": "ANG"}]) is False
    assert queue.finish(stale, FAILED, None, "stale worker gave up") is False
    assert queue.progress(stale, 60.0, 1.0, 1.0) is False
    assert queue.release(stale) is False
    row = queue.get(job.id)
    assert (row.state, row.lease_owner, row.utterances, row.error) == (RUNNING, "replica-b", None, None)
    assert queue.content(job.id, 0) == b"audio bytes", "the holder still needs its recording"

    # The holder finishes it; the stale worker cannot undo that either.
    assert queue.progress(current, 60.0, 1.0, 1.0) is True
    assert queue.finish(current, SUCCEEDED, [{"label": "SAD"}]) is True
    assert queue.finish(stale, FAILED, None, "stale worker gave up") is False
    row = queue.get(job.id)
    assert (
        row.state == SUCCEEDED
        and row.utterances == {"utterances": [{"label": "SAD"}], "parties": []}
        and row.error is None
    )
    assert queue.content(job.id, 0) is None


class Counting:
    """A plugin counting the end hooks of jobs (what webhooks, reports and alert sinks see)."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    @hookimpl
    def on_alert(self, alert: Alert, session_id: str) -> None:
        self.calls.append(f"alert {session_id} {alert.label}")

    @hookimpl
    def on_session_end(self, summary: SessionSummary) -> None:
        self.calls.append(f"session_end {summary.session_id} alerts={len(summary.alerts)}")

    @hookimpl
    def on_job_end(self, job: JobSummary) -> None:
        self.calls.append(f"job_end {job.session_id} {job.state}")


def test_only_the_worker_whose_finish_lands_hands_the_job_end_to_the_plugins(queue: JobQueue) -> None:
    """A worker that lost its job (taken over after its lease expired) and reaches its end fires no
    alert, no session end (report) and no job end: the worker that finishes the job fires them once."""
    counting = Counting()
    runner = JobRunner(make_settings(Path("unused")), build_host({"counting": counting}), queue, lambda: None)
    queue.submit([RecordingInput("call.flac", content=b"audio bytes")], "mix", {}, "handed-once")
    stale = queue.claim("replica-a", lease_s=0.0)
    time.sleep(0.01)
    current = queue.claim("replica-b", lease_s=60.0)
    assert stale is not None and current is not None
    alert = Alert(kind="threshold", message="m", label="ANG", severity="warning", value=0.9, time_s=1.0, source="t")

    asyncio.run(runner._end(stale, SUCCEEDED, [], "", 3.0, [], [alert]))
    assert counting.calls == [], "a worker that lost its job handed its end on"
    asyncio.run(runner._end(current, SUCCEEDED, [], "", 3.0, [], [alert]))
    assert counting.calls == [
        "alert handed-once ANG",
        "session_end handed-once alerts=1",
        "job_end handed-once succeeded",
    ]
    asyncio.run(runner._end(current, SUCCEEDED, [], "", 3.0, [], [alert]))
    assert len(counting.calls) == 3, "an end written twice is handed on once"


class Recording(Counting):
    """:class:`Counting`, also keeping what each job end and alert handed on held."""

    def __init__(self) -> None:
        super().__init__()
        self.jobs: list[JobSummary] = []
        self.alerts: list[Alert] = []

    @hookimpl
    def on_alert(self, alert: Alert, session_id: str) -> None:
        super().on_alert(alert, session_id)
        self.alerts.append(alert)

    @hookimpl
    def on_job_end(self, job: JobSummary) -> None:
        super().on_job_end(job)
        self.jobs.append(job)


@pytest.fixture(params=["sqlite", "postgresql"])
def either_queue(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[JobQueue]:
    """A job queue on SQLite, and one on PostgreSQL (a fresh database on the test server)."""
    with contextlib.ExitStack() as stack:
        if request.param == "sqlite":
            url = f"sqlite:///{tmp_path / 'jobs.db'}"
        else:
            url = stack.enter_context(fresh_postgres_database())
        opened = JobQueue(url)
        stack.callback(opened.close)
        yield opened


async def test_a_job_end_whose_replica_died_before_handing_it_on_is_handed_on_by_another(
    either_queue: JobQueue,
) -> None:
    """Replica A writes a job's end and is killed before it hands it on: the database holds the end with
    its pending hand-over, under A's lease. Once that lease runs out, an idle worker of replica B hands
    the same alerts, session end and job end to the plugins, once; a worker that handed its own end on
    leaves nothing for anyone to hand on again."""
    either_queue.submit([RecordingInput("call.flac", content=b"audio bytes")], "mix", {"team": "t"}, "orphaned-end")
    claim = either_queue.claim("replica-a", lease_s=60.0)
    assert claim is not None
    result = Result(
        session_id="orphaned-end",
        request_id=claim.job_id,
        kind="utterance",
        label="SAD",
        scores={"SAD": 0.8, "NEU": 0.2},
        start_s=0.5,
        end_s=2.25,
        index=0,
        model_name="m",
        metadata={"team": "t"},
        speaker="S2",
        voiced_fraction=0.75,
    )
    alert = Alert(kind="threshold", message="m", label="SAD", value=0.8, time_s=0.5, source="t", speaker="S2")
    job = JobSummary(claim.job_id, "orphaned-end", SUCCEEDED, ("call.flac",), 3.0, (result,), "", {"team": "t"})
    # What replica A leaves when SIGKILL lands right after its write (the write as `_finish` makes it).
    written = either_queue.finish(claim, SUCCEEDED, [{"label": "SAD"}], "", [], hand_over_payload(job, [alert]), 0.5)
    assert written
    # The ended job keeps A's token while its end waits to be handed on: it can be neither ended again
    # nor put back in the queue nor renewed as a running job.
    assert either_queue.finish(claim, FAILED, None, "ended twice") is False
    assert either_queue.release(claim) is False and either_queue.progress(claim, 60.0, 1.0, 1.0) is False
    assert (either_queue.get(claim.job_id).state, either_queue.get(claim.job_id).error) == (SUCCEEDED, None)

    seen = Recording()
    settings = make_settings(Path("unused"), job_poll_s=0.05, job_lease_s=0.5)
    replica_b = JobRunner(settings, build_host({"seen": seen}), either_queue, lambda: None)
    assert await replica_b._hand_on_orphan() is False, "taken while replica A's lease still held it"
    replica_b.start()  # its idle workers look for ends left unhanded
    for _ in range(100):
        if seen.calls:
            break
        await asyncio.sleep(0.05)
    await asyncio.sleep(0.6)  # past a second lease: nobody hands it on again
    await replica_b.stop()
    assert seen.calls == [
        "alert orphaned-end SAD",
        "session_end orphaned-end alerts=1",
        "job_end orphaned-end succeeded",
    ], "an end written but never handed on"
    assert seen.jobs == [job] and seen.alerts == [alert], "handed on other than it was written"
    row = either_queue.get(claim.job_id)
    assert (row.state, row.hand_over, row.lease_token) == (SUCCEEDED, None, None)

    # A worker that hands its own end on records it: nothing is left for another replica.
    either_queue.submit([RecordingInput("call.flac", content=b"audio bytes")], "mix", {}, "handed-by-its-worker")
    own = either_queue.claim("replica-a", lease_s=60.0)
    assert own is not None
    replica_a = JobRunner(settings, build_host({"seen": seen}), either_queue, lambda: None)
    await replica_a._end(own, SUCCEEDED, [], "", 3.0, [], [alert])
    assert len(seen.calls) == 6
    await asyncio.sleep(0.6)
    assert await replica_b._hand_on_orphan() is False, "an end handed on by its own worker was handed on again"
    assert len(seen.calls) == 6 and either_queue.get(own.job_id).hand_over is None


class SlowReport:
    """A plugin whose job-end hook takes ``seconds`` (a long report, a slow sink)."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.ended: list[str] = []

    @hookimpl
    def on_job_end(self, job: JobSummary) -> None:
        time.sleep(self.seconds)
        self.ended.append(job.job_id)


async def test_a_hand_over_that_outlasts_its_lease_is_not_taken_over(queue: JobQueue) -> None:
    """A worker whose plugins take three leases to hand its end on renews the lease as it goes: no
    other replica takes that end over meanwhile, so it is handed on once."""
    settings = make_settings(Path("unused"), job_lease_s=0.5)
    slow, seen = SlowReport(1.5), Recording()
    replica_a = JobRunner(settings, build_host({"slow": slow}), queue, lambda: None)
    replica_b = JobRunner(settings, build_host({"seen": seen}), queue, lambda: None)
    queue.submit([RecordingInput("call.flac", content=b"audio bytes")], "mix", {}, "slow-report")
    claim = queue.claim("replica-a", lease_s=60.0)
    assert claim is not None
    ending = asyncio.create_task(replica_a._end(claim, SUCCEEDED, [], "", 3.0))
    for _ in range(3):
        await asyncio.sleep(0.4)
        replica_b._orphans_looked = 0.0  # looks at once, rather than a lease after its last look
        assert await replica_b._hand_on_orphan() is False, "taken over while its worker still handed it on"
    await ending
    assert slow.ended == [claim.job_id] and seen.calls == []
    assert queue.get(claim.job_id).hand_over is None


async def test_an_orphaned_end_of_an_erased_session_is_not_handed_on(queue: JobQueue) -> None:
    """A session erased in this process while its job's end waited to be handed on: the replica that
    takes the end over hands nothing of it to the plugins (no report or alert written back)."""
    queue.submit([RecordingInput("call.flac", content=b"audio bytes")], "mix", {}, "erased-orphan")
    claim = queue.claim("replica-a", lease_s=60.0)
    assert claim is not None
    job = JobSummary(claim.job_id, "erased-orphan", SUCCEEDED, ("call.flac",), 3.0)
    assert queue.finish(claim, SUCCEEDED, [], "", [], hand_over_payload(job, []), 0.0)
    seen = Recording()
    replica_b = JobRunner(make_settings(Path("unused")), build_host({"seen": seen}), queue, lambda: None)
    replica_b.erasures.mark("erased-orphan")
    time.sleep(0.01)
    assert await replica_b._hand_on_orphan() is True
    assert seen.calls == [], "an erased session's job end handed on"


class StoppedAsItEnds(JobQueue):
    """A real job queue whose ``finish`` returns only once the server has begun to stop: as when a
    client that saw the job's end sends SIGTERM before the worker that wrote it has resumed."""

    def __init__(self, url: str) -> None:
        super().__init__(url)
        self.written, self.stopping = threading.Event(), threading.Event()

    def finish(self, *args: Any, **kwargs: Any) -> bool:
        held = super().finish(*args, **kwargs)
        self.written.set()
        assert self.stopping.wait(10), "the test never stopped the runner"
        return held


async def test_a_job_end_written_as_the_server_stops_is_still_handed_on(tmp_path: Path) -> None:
    """The worker is cancelled by a stopping server after its job's end is written and before it
    resumes: the alerts, the session's end (report) and the job's end (webhook) are handed on, once."""
    queue = StoppedAsItEnds(f"sqlite:///{tmp_path / 'jobs.db'}")
    counting = Counting()
    runner = JobRunner(make_settings(Path("unused")), build_host({"counting": counting}), queue, lambda: None)
    queue.submit([RecordingInput("call.flac", content=b"audio bytes")], "mix", {}, "stopped-as-it-ends")
    claim = queue.claim("replica-a", lease_s=60.0)
    assert claim is not None
    alert = Alert(kind="threshold", message="m", label="SAD", severity="warning", value=0.9, time_s=1.0, source="t")
    # The worker, at its job's end (what `_work` runs last for a job).
    runner._workers = [asyncio.create_task(runner._end(claim, SUCCEEDED, [], "", 3.0, [], [alert]))]
    assert await asyncio.to_thread(queue.written.wait, 10)
    stopping = asyncio.create_task(runner.stop())
    await asyncio.sleep(0.05)  # stop() has cancelled the worker
    assert runner._workers[0].cancelling()
    queue.stopping.set()
    await stopping
    assert queue.get(claim.job_id).state == SUCCEEDED
    assert counting.calls == [
        "alert stopped-as-it-ends SAD",
        "session_end stopped-as-it-ends alerts=1",
        "job_end stopped-as-it-ends succeeded",
    ], "an end written but not handed on"
    queue.close()


class ClaimLandsAfterTheStop(JobQueue):
    """A real job queue whose ``claim`` takes its job only once the server has begun to stop: a claim
    running on a thread as the worker that asked for it is cancelled."""

    def __init__(self, url: str) -> None:
        super().__init__(url)
        self.asked, self.stopping = threading.Event(), threading.Event()

    def claim(self, owner: str, lease_s: float, diarize: bool = True) -> Claim | None:
        self.asked.set()
        assert self.stopping.wait(10), "the test never stopped the runner"
        return super().claim(owner, lease_s, diarize)


async def test_a_job_claimed_as_its_worker_is_cancelled_is_put_back(tmp_path: Path) -> None:
    """SIGTERM while a worker's claim runs on a thread: the claim lands after the worker was cancelled,
    and the stopping server puts that job back in the queue at once, not after its lease."""
    queue = ClaimLandsAfterTheStop(f"sqlite:///{tmp_path / 'jobs.db'}")
    job = queue.submit([RecordingInput("call.flac", content=b"audio bytes")], "mix", {}, "claimed-as-stopped")
    runner = JobRunner(make_settings(Path("unused"), job_lease_s=600.0), build_host({}), queue, lambda: object())
    runner.start()
    assert await asyncio.to_thread(queue.asked.wait, 10)
    stopping = asyncio.create_task(runner.stop())
    await asyncio.sleep(0.05)  # stop() has cancelled the worker; its claim is still on its thread
    queue.stopping.set()
    await stopping
    row = queue.get(job.id)
    assert (row.state, row.lease_token, row.attempts) == ("queued", None, 1), "a claim that landed at the stop kept"
    queue.close()


class EndHangs(JobQueue):
    """A real job queue whose ``finish`` hangs (the database stopped answering) until released."""

    def __init__(self, url: str) -> None:
        super().__init__(url)
        self.writing, self.release_finish = threading.Event(), threading.Event()

    def finish(self, *args: Any, **kwargs: Any) -> bool:
        self.writing.set()
        self.release_finish.wait(30)
        return super().finish(*args, **kwargs)


async def test_a_stop_waits_for_a_hung_end_write_at_most_a_lease(tmp_path: Path) -> None:
    """A job's end whose write hangs (the database stopped answering) does not hold the shutdown past a
    lease: stop() returns; the job, still running under that lease in the database, goes to whichever
    replica takes it once the lease runs out."""
    queue = EndHangs(f"sqlite:///{tmp_path / 'jobs.db'}")
    runner = JobRunner(make_settings(Path("unused"), job_lease_s=0.5), build_host({}), queue, lambda: None)
    queue.submit([RecordingInput("call.flac", content=b"audio bytes")], "mix", {}, "hung-end")
    claim = queue.claim("replica-a", lease_s=0.5)
    assert claim is not None
    runner._workers = [asyncio.create_task(runner._end(claim, SUCCEEDED, [], "", 3.0))]
    assert await asyncio.to_thread(queue.writing.wait, 10)
    started = time.monotonic()
    await asyncio.wait_for(runner.stop(), 10)
    waited = time.monotonic() - started
    queue.release_finish.set()
    await asyncio.wait_for(asyncio.gather(*runner.ending(), return_exceptions=True), 10)
    assert 0.4 < waited < 3.0, f"stop() waited {waited:.1f} s for a hung end, a lease being 0.5 s"
    queue.close()


class FlakyQueue(JobQueue):
    """A real job queue whose database fails its ``failing``-th progress write (a blip), once."""

    def __init__(self, url: str, failing: int) -> None:
        super().__init__(url)
        self.failing, self.writes = failing, 0

    def progress(self, *args: Any, **kwargs: Any) -> bool:
        self.writes += 1
        if self.writes == self.failing:
            raise OperationalError("UPDATE jobs", {}, Exception("database is locked"))
        return super().progress(*args, **kwargs)


def _running(queue: JobQueue) -> tuple[JobRunner, Claim]:
    queue.submit([RecordingInput("call.wav", content=b"RIFF")], "mix", {}, "s")
    claim = queue.claim("worker-a", 30.0)
    assert claim is not None
    return JobRunner(make_settings(Path("unused")), build_host({}), queue, lambda: None), claim


async def test_a_progress_write_that_fails_once_is_tried_again_not_fatal(tmp_path: Path) -> None:
    """Saved every second, one failed write (the database busy a moment) is logged and written at the
    next save, while the lease surely holds; the job goes on."""
    queue = FlakyQueue(f"sqlite:///{tmp_path / 'jobs.db'}", failing=2)
    runner, claim = _running(queue)
    progress = _Progress(runner, claim)
    progress.audio_s = 100.0
    await progress.save(force=True)
    for done_s in (10.0, 20.0):
        await asyncio.sleep(PROGRESS_S * 1.05)
        progress.advance(done_s)
        await progress.save()  # the first of these fails in the database: not raised
    assert queue.writes == 3 and queue.get(claim.job_id).done_s == pytest.approx(20.0)
    queue.close()


async def test_a_lost_job_waits_for_its_running_step_before_moving_on(queue: JobQueue) -> None:
    """A job cancelled while a step runs on a thread: the worker learns it at the next save, and waits
    for the step to end before it gives the job up (and takes another, whose step would queue behind)."""
    runner, claim = _running(queue)
    progress = _Progress(runner, claim)
    await progress.save(force=True)
    queue.cancel(claim.job_id)
    ended = threading.Event()

    def step() -> None:
        time.sleep(2.5 * PROGRESS_S)
        ended.set()

    with pytest.raises(LostJobError):
        await progress.saving_while(asyncio.to_thread(step))
    assert ended.is_set()


def test_a_claim_that_may_not_diarize_takes_only_jobs_that_do_not(either_queue: JobQueue) -> None:
    """A replica that cannot diarize claims with ``diarize=False``: the older diarized job is passed
    over (and one whose lease ran out too), a plain one taken, one written before jobs could diarize
    (no such key in its request) counts as plain; a replica that can diarize then takes the rest."""
    diarized = either_queue.submit([RecordingInput("a.flac", content=b"a")], "mix", {}, "s-a", "", True)
    plain = either_queue.submit([RecordingInput("b.flac", content=b"b")], "mix", {}, "s-b")
    legacy = either_queue.submit([RecordingInput("c.flac", content=b"c")], "mix", {}, "s-c")
    with either_queue.engine.begin() as conn:
        conn.execute(update(JobRow).where(JobRow.id == legacy.id).values(request={"recordings": [{"name": "c.flac"}]}))
    taken_plain = [either_queue.claim("no-wheels", 60.0, diarize=False) for _ in range(3)]
    assert [claim.job_id if claim else None for claim in taken_plain] == [plain.id, legacy.id, None]
    stale = either_queue.claim("with-wheels", 0.0)  # taken, then its replica stalled: its lease ran out
    assert stale is not None and stale.job_id == diarized.id and stale.diarize
    assert either_queue.get(diarized.id).state == RUNNING
    assert either_queue.claim("no-wheels", 60.0, diarize=False) is None
    waiting = either_queue.get(diarized.id)  # shown as waiting again, not as running on a dead replica
    assert (waiting.state, waiting.lease_token, waiting.lease_expires_at) == (QUEUED, None, None)
    taken = either_queue.claim("with-wheels", 60.0)
    assert taken is not None and taken.job_id == diarized.id
    # A plain job whose replica stalled is taken over by a replica that cannot diarize, as by any.
    plain_again = either_queue.submit([RecordingInput("d.flac", content=b"d")], "mix", {}, "s-d")
    stalled = either_queue.claim("with-wheels", 0.0)
    assert stalled is not None and stalled.job_id == plain_again.id
    over = either_queue.claim("no-wheels", 60.0, diarize=False)
    assert over is not None and over.job_id == plain_again.id and over.attempts == 2
