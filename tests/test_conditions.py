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


def _tone(frequency: float, dbfs: float, seconds: float = 2.0) -> np.ndarray:
    t = np.arange(int(seconds * RATE)) / RATE
    return (10 ** (dbfs / 20) * np.sqrt(2) * np.sin(2 * np.pi * frequency * t)).astype(np.float32)


def _gain_db(before: np.ndarray, after: np.ndarray) -> float:
    middle = slice(RATE // 2, len(before) - RATE // 2)  # away from the filters' start and end
    return float(10 * np.log10(np.mean(after[middle] ** 2) / np.mean(before[middle] ** 2)))


@pytest.mark.parametrize("name", ["telephone-8k", "telephone-8k-mulaw"])
def test_telephone_passes_only_the_300_to_3400_hz_band(name: str) -> None:
    # A phone line's band: the voice band passes, the mains hum and the top of an 8 kHz line do not.
    phone = {c.name: c for c in all_conditions()}[name]
    gains = {f: _gain_db(_tone(f, -12), phone.apply(_tone(f, -12), 0)) for f in (100, 1000, 2000, 3700)}
    assert abs(gains[1000]) < 1.0 and abs(gains[2000]) < 1.0, gains
    assert gains[100] < -30.0, f"100 Hz passes the telephone band at {gains[100]:.1f} dB"
    assert gains[3700] < -20.0, f"3.7 kHz passes the telephone band at {gains[3700]:.1f} dB"


def test_mulaw_adds_8_bit_companding_noise_at_every_level() -> None:
    # G.711 mu-law: 8-bit codes on a logarithmic scale, so the quantisation noise stays some 35 dB
    # under the signal whether it is loud or 30 dB quieter (linear 8 bits would lose those 30 dB).
    by_name = {c.name: c for c in all_conditions()}
    for dbfs in (-10, -40):
        tone = _tone(1000, dbfs)
        linear, companded = by_name["telephone-8k"].apply(tone, 0), by_name["telephone-8k-mulaw"].apply(tone, 0)
        error = np.mean((companded.astype(np.float64) - linear) ** 2)
        assert error > 0, f"telephone-8k-mulaw is plain telephone-8k at {dbfs} dBFS: no mu-law coding"
        snr = 10 * np.log10(np.mean(linear.astype(np.float64) ** 2) / error)
        assert 28.0 < snr < 48.0, f"mu-law quantisation SNR {snr:.1f} dB at {dbfs} dBFS"


@pytest.mark.parametrize(("colour", "decibels_per_decade"), [("white", 0.0), ("pink", -10.0), ("brown", -20.0)])
def test_each_noise_colour_has_its_spectral_slope(speech: np.ndarray, colour: str, decibels_per_decade: float) -> None:
    # White: flat power; pink: 1/f (-10 dB a decade); brown: 1/f^2 (-20 dB a decade).
    noisy = {c.name: c for c in all_conditions()}[f"noise-{colour}-0dB"].apply(speech, 0)
    noise = noisy.astype(np.float64) - speech
    power = np.abs(np.fft.rfft(noise)) ** 2
    frequencies = np.fft.rfftfreq(len(noise), 1 / RATE)
    edges = np.geomspace(50, 7000, 25)
    bands = [power[(frequencies >= low) & (frequencies < high)].mean() for low, high in zip(edges[:-1], edges[1:])]
    slope = np.polyfit(np.log10(np.sqrt(edges[:-1] * edges[1:])), 10 * np.log10(bands), 1)[0]
    assert slope == pytest.approx(decibels_per_decade, abs=2.0), f"{colour} noise falls {slope:.1f} dB a decade"


@pytest.mark.parametrize("rt60", [0.3, 0.6, 1.0])
def test_reverb_decays_60_db_in_its_rt60(rt60: float) -> None:
    # The room's impulse response, heard through the condition: a click, then the reverberant tail.
    click = np.zeros(int(1.5 * RATE), np.float32)
    click[0] = 1.0
    response = {c.name: c for c in all_conditions()}[f"reverb-rt60-{rt60:g}s"].apply(click, 0).astype(np.float64)
    # Schroeder's backward integration; the decay rate fitted from -10 to -40 dB, extrapolated to 60 dB.
    energy = np.cumsum(response[::-1] ** 2)[::-1]
    decay_db = 10 * np.log10(energy / energy[0])
    fitted = (decay_db <= -10) & (decay_db >= -40)
    slope = np.polyfit(np.arange(len(response))[fitted] / RATE, decay_db[fitted], 1)[0]
    assert -60 / slope == pytest.approx(rt60, rel=0.1)


BUNDLED = Path(__file__).resolve().parent.parent / "models" / "emotion-logmel-cnn"


def _babble_manifest(folder: Path, others: list[np.ndarray]) -> Path:
    """The tests/data clips under their RAVDESS actors (20, 21), plus ``others`` as actors 01 and 02."""
    import soundfile as sf

    from tests.tuning_helpers import RAVDESS_CODES

    rows = [(clip.resolve(), RAVDESS_CODES[clip.stem.split("-")[2]], clip.stem.split("-")[6]) for clip in recordings()]
    for i, wave in enumerate(others):
        path = folder / f"other-{i}.wav"
        sf.write(path, wave, RATE)
        rows.append((path, "NEU", f"{i % 2 + 1:02d}"))
    manifest = folder / "manifest.csv"
    manifest.write_text("path,label,speaker\n" + "".join(f"{p},{label},{s}\n" for p, label, s in rows))
    return manifest


def test_babble_is_made_of_the_speakers_outside_the_evaluated_ones(tmp_path: Path) -> None:
    # Babble comes from the other (training) speakers, never from the evaluated ones: when the other
    # speakers are silent, their babble is silence and every babble row scores as clean audio does.
    silent = [np.zeros(2 * RATE, np.float32) for _ in range(4)]
    output = tmp_path / "robust"
    arguments = ["evaluate", str(BUNDLED), str(_babble_manifest(tmp_path, silent)), "--dataset", "csv"]
    assert emotion(*arguments, "--speakers", "20,21", "--conditions", "clean,babble", "--output", str(output)) == 0
    rows = {row["condition"]: row for row in json.loads((output / "conditions.json").read_text())}
    assert set(rows) == {"clean", "babble-20dB", "babble-10dB", "babble-5dB", "babble-0dB"}
    clean = json.loads((output / "conditions" / "clean" / "metrics.json").read_text())["confusion_matrix"]
    assert rows["clean"]["n"] == len(recordings())
    for name in ("babble-20dB", "babble-10dB", "babble-5dB", "babble-0dB"):
        confusion = json.loads((output / "conditions" / name / "metrics.json").read_text())["confusion_matrix"]
        assert confusion == clean, f"{name} is not the silent babble of actors 01-02: the evaluated speakers babble"
