"""The diarization bench's flags as a person types them: a bad one fails at once (exit 2), naming it,
before any conversation is made or any model loaded for the work."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from emotion_service.paths import REPO_ROOT

BENCH = REPO_ROOT / "bench" / "diarization.py"


@pytest.mark.parametrize(
    ("flags", "said"),
    [
        (["--seeds", "0"], "--seeds 0: give 1 or more"),
        (["--tune", "--pause-db", "-2"], "--pause-db -2: DiarizationSettings: invalid pause_db=-2.0"),
        (["--tune", "--merges", "15,nan"], "--merges nan: DiarizationSettings: invalid merge_threshold=nan"),
        (["--pause-db", "2"], "--pause-db applies only with --tune"),
        (["--tune", "--count-given"], "--count-given applies to the measurement, not to --tune"),
        (["--data", "{empty}"], "no FLAC clips in Actor_19"),
    ],
)
def test_a_bad_bench_flag_fails_at_once_naming_it(flags: list[str], said: str, tmp_path: Path) -> None:
    args = [flag.format(empty=tmp_path) for flag in flags]
    done = subprocess.run([sys.executable, str(BENCH), *args], capture_output=True, text=True, timeout=120)
    assert done.returncode == 2, done.stderr
    assert said in done.stderr.splitlines()[-1], done.stderr
