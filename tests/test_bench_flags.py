"""The benches' flags as a person types them: a bad one fails at once (exit 2), naming it, before
any conversation is made, server started or model loaded for the work."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from emotion_service.paths import REPO_ROOT


@pytest.mark.parametrize(
    ("bench", "flags", "said"),
    [
        ("diarization", ["--seeds", "0"], "argument --seeds: 0: give a whole number of 1 or more"),
        ("diarization", ["--tune", "--pause-db", "-2"], "--pause-db -2: DiarizationSettings: invalid pause_db=-2.0"),
        (
            "diarization",
            ["--tune", "--merges", "15,nan"],
            "--merges nan: DiarizationSettings: invalid merge_threshold=nan",
        ),
        ("diarization", ["--pause-db", "2"], "--pause-db applies only with --tune"),
        ("diarization", ["--tune", "--count-given"], "--count-given applies to the measurement, not to --tune"),
        ("diarization", ["--data", "{empty}"], "no FLAC clips in Actor_19"),
        ("serve_throughput", ["--callers", "0"], "argument --callers: 0: give a whole number of 1 or more"),
        ("train_throughput", ["--warmup", "-1"], "argument --warmup: -1: give a whole number of 0 or more"),
        ("ui_load", ["--seconds", "nan"], "argument --seconds: nan: give a number of seconds over 0"),
        ("stream_capacity", ["--ladder", "25", "0"], "argument --ladder: 0: give a whole number of 1 or more"),
        ("alerts", ["--within-s", "-3"], "argument --within-s: -3: give a number of seconds over 0"),
    ],
)
def test_a_bad_bench_flag_fails_at_once_naming_it(bench: str, flags: list[str], said: str, tmp_path: Path) -> None:
    args = [flag.format(empty=tmp_path) for flag in flags]
    script = REPO_ROOT / "bench" / f"{bench}.py"
    done = subprocess.run([sys.executable, str(script), *args], capture_output=True, text=True, timeout=120)
    assert done.returncode == 2, done.stderr
    assert said in done.stderr.splitlines()[-1], done.stderr
