"""The job queue's lease: a worker that lost its job (lease expired, another worker took it) can
no longer write it: neither finish it, nor fail it, nor renew or release it."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from emotion_service.server.job_queue import FAILED, RUNNING, SUCCEEDED, JobQueue, RecordingInput


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
    assert row.state == SUCCEEDED and row.utterances == {"utterances": [{"label": "SAD"}]} and row.error is None
    assert queue.content(job.id, 0) is None
