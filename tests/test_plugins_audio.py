"""The audio plugins: silence trimming and loudness normalisation; seeded augmentation."""

from __future__ import annotations

import random

import librosa
import numpy as np
import pytest

from emotion_service.plugins.builtin.audio_cleanup import AudioCleanup, AudioCleanupConfig
from emotion_service.plugins.builtin.augmentation import Augmentation, AugmentationConfig
from emotion_service.plugins.manager import build_host
from tests.conftest import load_mono, recordings

RATE = 16000


def dbfs(wave: np.ndarray) -> float:
    return float(20 * np.log10(np.sqrt(np.mean(np.square(wave, dtype=np.float64)))))


@pytest.fixture(scope="module")
def cleanup() -> AudioCleanup:
    return AudioCleanup(AudioCleanupConfig(trim=True))


def test_cleanup_trims_silence_and_normalises_loudness(cleanup: AudioCleanup) -> None:
    speech = load_mono(recordings()[1])  # 3.8 s of which about 1.9 s is speech
    speech_only, _ = librosa.effects.trim(speech, top_db=30)
    hiss = np.random.default_rng(0).normal(0, 1e-4, RATE).astype(np.float32)
    padded = np.concatenate([hiss, speech * 0.5, hiss])
    out = build_host({"audio_cleanup": cleanup}).preprocess(padded, RATE, {"stage": "train"})
    assert abs(len(out) - len(speech_only)) < 0.1 * RATE, "the silence on both sides is cut"
    assert dbfs(padded) < -40 and dbfs(out) == pytest.approx(-23.0, abs=0.1)
    assert np.abs(out).max() < 10 ** (-1 / 20)


def test_cleanup_limits_peaks(cleanup: AudioCleanup) -> None:
    peaky = np.zeros(RATE, np.float32)
    peaky[::400] = 0.5  # sparse clicks: reaching the RMS target would clip them
    out = cleanup.preprocess(peaky, RATE)
    assert np.abs(out).max() == pytest.approx(10 ** (-1 / 20), rel=1e-4) and dbfs(out) < -23.0


def test_cleanup_keeps_a_silent_window_whole_and_does_not_blow_up_hiss(cleanup: AudioCleanup) -> None:
    hiss = np.random.default_rng(1).normal(0, 1e-4, 3 * RATE).astype(np.float32)
    out = cleanup.preprocess(hiss, RATE)
    assert len(out) == len(hiss)
    assert dbfs(out) == pytest.approx(dbfs(hiss) + 20.0, abs=0.01), "boost capped at max_gain_db"


def test_cleanup_steps_can_be_turned_off() -> None:
    wave = load_mono(recordings()[0])
    untouched = AudioCleanup(AudioCleanupConfig(trim=False, normalize=False)).preprocess(wave, RATE)
    np.testing.assert_array_equal(untouched, wave)


@pytest.fixture(scope="module")
def augmentation() -> Augmentation:
    return Augmentation(AugmentationConfig(noise_p=1.0, pitch_p=1.0, stretch_p=1.0, gain_p=1.0))


def test_augmentation_is_deterministic_under_a_seed_and_changes_the_audio(augmentation: Augmentation) -> None:
    wave = load_mono(recordings()[3])

    def augment(seed: int) -> np.ndarray:
        # A fresh plugin each time: the babble reservoir holds the clips seen before (in training's seeded order).
        return build_host({"augmentation": Augmentation(augmentation.config)}).augment(
            wave, RATE, np.random.default_rng(seed)
        )

    first, again, other = augment(42), augment(42), augment(43)
    np.testing.assert_array_equal(first, again)
    assert first.dtype == np.float32 and np.isfinite(first).all()
    assert len(first) != len(wave) or not np.allclose(first, wave), "the audio changed"
    assert len(other) != len(first) or not np.allclose(other, first), "another seed, another augmentation"


def test_augmentation_leaves_the_global_random_state_alone(augmentation: Augmentation) -> None:
    random.seed(5)
    np.random.seed(5)
    expected = (random.random(), np.random.random())
    random.seed(5)
    np.random.seed(5)
    augmentation.augment(load_mono(recordings()[3])[:RATE], RATE, np.random.default_rng(0))
    assert (random.random(), np.random.random()) == expected


@pytest.mark.parametrize(
    "effect", ["silence_p", "reverb_p", "noise_p", "babble_p", "telephone_p", "codec_p"], ids=lambda e: e[:-2]
)
def test_each_recording_condition_changes_the_clip_and_stays_in_range(effect: str) -> None:
    off = {name: 0.0 for name in ("silence_p", "reverb_p", "noise_p", "babble_p", "telephone_p", "codec_p")}
    plugin = Augmentation(
        AugmentationConfig(
            **{**off, effect: 1.0, "pitch_p": 0.0, "stretch_p": 0.0, "gain_p": 0.0, "max_silence_s": 1.0}
        )
    )
    waves = [load_mono(path)[: 2 * RATE] for path in recordings()[:3]]
    rng = np.random.default_rng(7)
    plugin.augment(waves[1], RATE, rng)  # babble needs an earlier training clip in the reservoir
    out = plugin.augment(waves[0], RATE, rng)
    assert out.dtype == np.float32 and np.isfinite(out).all() and np.abs(out).max() <= 1.0
    assert len(out) != len(waves[0]) or not np.allclose(out, waves[0], atol=1e-4), f"{effect} changed nothing"


def test_the_babble_reservoir_keeps_at_most_its_size() -> None:
    plugin = Augmentation(AugmentationConfig(babble_pool=2))
    rng = np.random.default_rng(0)
    for path in recordings()[:4]:
        plugin.augment(load_mono(path)[:RATE], RATE, rng)
    assert len(plugin._pool) == 2
