"""The benches' flags as a person types them: a bad one fails at once (exit 2), naming it, before
any conversation is made, server started or model loaded for the work."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from emotion_service.paths import REPO_ROOT


@pytest.mark.parametrize(
    ("bench", "flags", "said"),
    [
        ("diarization", ["--seeds", "0"], "argument --seeds: 0: give a whole number of 1 or more"),
        ("diarization", ["--tune", "--pause-db", "-2"], "--pause-db -2: give a number of 0 or more (0 turns it off)"),
        ("diarization", ["--tune", "--vad-threshold", "0"], "--vad-threshold 0: give a speech probability between 0"),
        ("diarization", ["--tune", "--merges", "15,nan"], "--merges nan: give a log-likelihood ratio of 0 or more"),
        ("diarization", ["--tune", "--merges", ","], "--merges: give at least one merge threshold"),
        ("diarization", ["--tune", "--speeds", "3"], "--speeds 3: give speed factors from 0.5 to 2"),
        ("diarization", ["--pause-db", "0"], "--pause-db applies only with --tune"),
        ("diarization", ["--blocks", "60"], "--blocks applies only with --tune"),
        ("diarization", ["--tune", "--count-given"], "--count-given applies to the measurement, not to --tune"),
        ("diarization", ["--data", "{empty}"], "no FLAC clips in Actor_19"),
        ("diarization", ["--data", "{one_actor}"], "no FLAC clips in Actor_20"),
        ("serve_throughput", ["--callers", "0"], "argument --callers: 0: give a whole number of 1 or more"),
        ("train_throughput", ["--warmup", "-1"], "argument --warmup: -1: give a whole number of 0 or more"),
        ("train_throughput", ["--workers", "1,0"], "argument --workers: 0: give a whole number of 1 or more"),
        (
            "job_priority",
            ["--job-seconds", "0.001"],
            "argument --job-seconds: 0.001: give a number of seconds of at least 1",
        ),
        ("ui_load", ["--seconds", "nan"], "argument --seconds: nan: give a number of seconds of at least 1"),
        ("stream_capacity", ["--ladder", "25", "0"], "argument --ladder: 0: give a whole number of 1 or more"),
        ("stream_capacity", ["--port", "70000"], "argument --port: 70000: give a whole number from 1 to 65535"),
        # 20 s is under the 1 MiB message size but over the server's 10 s a message may carry.
        ("stream_capacity", ["--chunk-ms", "20000"], "argument --chunk-ms: 20000: give a whole number from 1 to 10000"),
        ("alerts", ["--within-s", "inf"], "argument --within-s: inf: give a number of seconds of at least 1"),
    ],
)
def test_a_bad_bench_flag_fails_at_once_naming_it(bench: str, flags: list[str], said: str, tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    (tmp_path / "one" / "Actor_19").mkdir(parents=True)
    (tmp_path / "one" / "Actor_19" / "03-01-01-01-01-01-19.flac").write_bytes(b"")
    args = [flag.format(empty=tmp_path / "empty", one_actor=tmp_path / "one") for flag in flags]
    script = REPO_ROOT / "bench" / f"{bench}.py"
    done = subprocess.run([sys.executable, str(script), *args], capture_output=True, text=True, timeout=120)
    assert done.returncode == 2, done.stderr
    assert said in done.stderr.splitlines()[-1], done.stderr


def test_the_chunk_cap_follows_the_settings_the_bench_server_reads() -> None:
    """The server stream_capacity.py starts inherits its environment (and $EMOTION_CONFIG): a
    message limit set there bounds --chunk-ms, down (2 s: 2001 ms refused) and up (60 s: 20 s taken,
    the run then stopped by the missing model folder, checked after the flags)."""
    script = REPO_ROOT / "bench" / "stream_capacity.py"

    def run(seconds: str, chunk: str) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "EMOTION_MAX_STREAM_MESSAGE_SECONDS": seconds}
        flags = ["--chunk-ms", chunk, "--model", "/nonexistent-model"]
        return subprocess.run(
            [sys.executable, str(script), *flags], capture_output=True, text=True, timeout=120, env=env
        )

    refused = run("2", "2001")
    assert refused.returncode == 2
    assert "argument --chunk-ms: 2001: give a whole number from 1 to 2000" in refused.stderr.splitlines()[-1]
    taken = run("60", "20000")
    assert taken.returncode == 2 and "--model /nonexistent-model: not a model folder" in taken.stderr.splitlines()[-1]
