"""Recording conditions of the robustness evaluation: seeded, what they say they are, and scored."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from emotion_service.audio import load_audio
from emotion_service.degradations import RATE, mix_at_snr
from emotion_service.tuning.conditions import all_conditions, select
from tests.conftest import recordings
from tests.plugin_helpers import emotion
from tests.tuning_helpers import write_manifest


@pytest.fixture(scope="module")
def speech() -> np.ndarray:
    return load_audio(recordings()[0])


def test_every_condition_is_seeded_finite_and_bounded(speech: np.ndarray) -> None:
    pool = [load_audio(path) for path in recordings()[6:10]]
    conditions = all_conditions(pool)
    assert len({c.name for c in conditions}) == len(conditions) == 33
    for condition in conditions:
        first, again, other = condition.apply(speech, 3), condition.apply(speech, 3), condition.apply(speech, 4)
        assert np.array_equal(first, again), condition.name
        assert np.isfinite(first).all() and np.abs(first).max() <= 1.0
        assert abs(len(first) - len(speech)) <= 6 * RATE, condition.name
        if condition.family.startswith(("noise", "babble", "reverb")):
            assert not np.array_equal(first, other), f"{condition.name}: the draw must depend on the clip"


def test_noise_is_mixed_at_the_stated_snr(speech: np.ndarray) -> None:
    rng = np.random.default_rng(0)
    noise = rng.standard_normal(len(speech))
    mixed = mix_at_snr(speech, noise, 10.0)
    measured = 10 * np.log10(np.mean(speech**2) / np.mean((mixed - speech) ** 2))
    assert measured == pytest.approx(10.0, abs=0.01)


def test_telephone_removes_the_upper_band_and_silence_adds_it(speech: np.ndarray) -> None:
    by_name = {c.name: c for c in all_conditions()}
    phone = by_name["telephone-8k"].apply(speech, 0)
    spectrum = np.abs(np.fft.rfft(phone)) ** 2
    frequencies = np.fft.rfftfreq(len(phone), 1 / RATE)
    assert spectrum[frequencies > 4200].sum() < 1e-4 * spectrum.sum()
    padded = by_name["silence-around-2.5s"].apply(speech, 0)
    assert len(padded) == len(speech) + 5 * RATE and not padded[: 2 * RATE].any()
    quieter = by_name["level-20dB"].apply(speech, 0)
    assert np.sqrt(np.mean(quieter**2)) == pytest.approx(0.1 * np.sqrt(np.mean(speech**2)), rel=1e-3)


def test_unknown_conditions_are_named() -> None:
    with pytest.raises(ValueError, match="unknown condition.*thunder"):
        select("noise-white,thunder")
    assert {c.family for c in select("telephone,codec")} == {"telephone", "codec"}


def test_evaluate_scores_each_condition(tiny_model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    output = tmp_path / "robust"
    manifest = str(write_manifest(tmp_path))
    arguments = ["evaluate", str(tiny_model), manifest, "--dataset", "csv", "--speakers", "s0,s1"]
    assert emotion(*arguments, "--conditions", "clean,level,babble,noise-white", "--output", str(output)) == 0
    rows = json.loads((output / "conditions.json").read_text())
    names = [row["condition"] for row in rows]
    assert names[:5] == ["clean", "level-30dB", "level-20dB", "level-10dB", "level+6dB"]
    assert "babble-0dB" in names and "noise-white-0dB" in names
    assert all(row["n"] == 6 for row in rows)
    assert json.loads((output / "conditions" / "babble-10dB" / "metrics.json").read_text())["snr_db"] == 10.0
    assert (output / "accuracy_vs_snr.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "| noise-white-5dB |" in capsys.readouterr().out
