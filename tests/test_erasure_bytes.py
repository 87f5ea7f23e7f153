"""Erased means gone, on disk: after a stream with alerts, a finished job and a cancelled job are
each erased, no byte of any file in the server's working folder (databases with their -wal and
-shm files, spool, reports, CSV exports) holds any of the three session ids, nor does any file name.
A real `emotion serve` process with the default plugins (all of them, the installed CSV example too)."""

from __future__ import annotations

import io
import signal
import time
import uuid
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from emotion_client import EmotionClient
from emotion_service.paths import BUNDLED_MODEL
from tests.plugin_helpers import ravdess_interview
from tests.server_process import serving

pytestmark = pytest.mark.timeout(300)


def files_naming(folder: Path, session_ids: list[str]) -> dict[str, list[str]]:
    """Each id -> the files under ``folder`` whose bytes or path (relative to it) hold it."""
    found: dict[str, list[str]] = {s: [] for s in session_ids}
    for path in sorted(folder.rglob("*")):
        if not path.is_file():
            continue
        data = path.read_bytes()
        name = str(path.relative_to(folder))
        for session_id in session_ids:
            if session_id.encode() in data or session_id in name:
                found[session_id].append(name)
    return found


def wav(wave: np.ndarray) -> bytes:
    out = io.BytesIO()
    sf.write(out, wave, 16000, format="WAV", subtype="PCM_16")
    return out.getvalue()


def test_erased_sessions_leave_no_byte_in_any_file_of_the_working_folder(tmp_path: Path) -> None:
    work = tmp_path / "work"
    work.mkdir()
    config = tmp_path / "emotion.toml"  # thresholds the bundled model's scores set off: alerts to erase
    config.write_text('[plugins.threshold_alerts]\nthresholds = {NEU = 0.3, SAD = 0.1}\nhysteresis = 0.05\n')
    tag = uuid.uuid4().hex[:12]
    streamed, finished, cancelled = f"streamed-{tag}", f"finished-{tag}", f"cancelled-{tag}"
    ids = [streamed, finished, cancelled]
    env = {
        "EMOTION_PLUGINS": "all",
        "EMOTION_JOBS_DATABASE_URL": "",  # the queue in the store's database, in the working folder
        "EMOTION_CONFIG": str(config),
    }
    interview = ravdess_interview()
    with serving(BUNDLED_MODEL, "--job-workers", "1", env=env, cwd=work) as (port, proc, log):
        with EmotionClient(f"127.0.0.1:{port}") as client:
            events = list(client.stream(interview[: 16000 * 8], sample_rate=16000, session_id=streamed,
                                        metadata={"candidate": streamed}))  # fmt: skip
            assert any(type(e).__name__ == "Alert" for e in events), "the stream raised alerts"
            job = client.submit_job([wav(interview)], channels="mix", session_id=finished,
                                    metadata={"interview": finished})  # fmt: skip
            # Queued behind the first job (one worker), cancelled before it ran: no session, only the job.
            other = client.submit_job([wav(interview[: 16000 * 3])], channels="mix",
                                      session_id=cancelled, metadata={"interview": cancelled})  # fmt: skip
            assert client.cancel_job(other.job_id).state == "cancelled"
            done = client.wait_job(job.job_id, timeout=180)
            assert done.state == "succeeded" and done.utterances, done.error
            time.sleep(1.0)  # the job's end hooks (report, CSV) run after its end is written
            before = files_naming(work, ids)
            assert before[streamed] and before[finished] and before[cancelled], before

            for session_id in ids:
                assert client.delete_session(session_id), session_id
            assert files_naming(work, ids) == {s: [] for s in ids}, "while the server runs"
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
        assert log.read_text().count('"session_erased"') == 3
    assert files_naming(work, ids) == {s: [] for s in ids}, "after it stopped"
    written = {p.name for p in work.iterdir()}
    assert {"emotion-results.db", "emotion-reports", "emotion-spool"} <= written, written
