"""The generalisation conditions measure what they say, and cross-validation keeps its speakers apart."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from emotion_service.tuning import honest_conditions as hc
from emotion_service.tuning import whisper_probe
from emotion_service.tuning.datasets import Example
from tests.conftest import load_mono, recordings


@pytest.fixture(scope="module")
def clip() -> np.ndarray:
    return load_mono(recordings()[0]).astype(np.float64)


def voiced_mask(clean: np.ndarray) -> np.ndarray:
    frames = np.lib.stride_tricks.sliding_window_view(clean, 400)[::160]
    level = 10 * np.log10(np.mean(frames**2, axis=1) + 1e-20)
    return level > np.quantile(level, 0.95) - 30


def test_snr_is_measured_at_the_speech_not_over_the_whole_clip(clip: np.ndarray) -> None:
    rng = np.random.default_rng(0)
    noise = rng.standard_normal(len(clip))
    noisy = hc.mix_at_speech_snr(clip, noise, 10.0)
    added = noisy - clip
    frames = np.lib.stride_tricks.sliding_window_view(clip, 400)[::160]
    speech = np.mean(np.mean(frames**2, axis=1)[voiced_mask(clip)])
    assert 10 * np.log10(speech / np.mean(added**2)) == pytest.approx(10.0, abs=0.05)
    # the clip is partly pause: its whole-clip SNR is lower than at the speech
    whole = 10 * np.log10(np.mean(clip**2) / np.mean(added**2))
    assert whole < 8.0


def test_far_field_rooms_have_realistic_direct_to_reverberant_ratios() -> None:
    near, middle, far = (hc.make_room(d, count=6, seed=1) for d in (0.5, 1.5, 3.0))
    assert near.drr_db() > middle.drr_db() > far.drr_db()
    assert -9.0 < middle.drr_db() < -2.0  # a talker 1.5 m from a laptop: about -5 dB
    assert far.drr_db() < -5.0


def test_parties_sharing_a_room_are_heard_from_their_own_distances() -> None:
    near, far = hc.shared_room([0.5, 1.5], seed=3)
    assert hc.Room(0.5, (near,)).drr_db() > hc.Room(1.5, (far,)).drr_db() + 3.0
    assert np.max(np.abs(near)) > 2 * np.max(np.abs(far))  # the direct sound falls with distance
    # one room: its reverberant field (from 50 ms on) is about as loud wherever a talker stands
    late = [10 * np.log10(np.sum(r[800:] ** 2)) for r in (near, far)]
    assert abs(late[0] - late[1]) < 1.0
    assert all(np.array_equal(a, b) for a, b in zip((near, far), hc.shared_room([0.5, 1.5], seed=3), strict=True))


def test_level_chain_has_a_noise_floor_and_quantisation(clip: np.ndarray) -> None:
    out = hc.level_chain_transform(-30)(clip, np.random.default_rng(0))
    step = 2.0 / 2**16
    np.testing.assert_allclose(out / step, np.round(out / step), atol=1e-6)
    pause = out[: 4000] if not voiced_mask(clip)[:20].any() else out[-4000:]
    level = 10 * np.log10(np.mean(pause**2))
    assert -80 < level < -60  # the -70 dBFS floor, not digital silence


def test_room_tone_is_a_rooms_quiet_not_zeros(clip: np.ndarray) -> None:
    out = hc.room_tone_transform(2.5)(clip, np.random.default_rng(0))
    lead = out[: 2 * 16_000]
    assert len(out) == len(clip) + 5 * 16_000
    assert -66 < 10 * np.log10(np.mean(lead**2)) < -54


def _examples() -> list[Example]:
    return [Example(Path(f"{s}-{i}.flac"), "ANG", s) for s in (f"{n:02d}" for n in range(1, 25)) for i in range(2)]


def test_cross_validation_never_scores_a_training_actor_nor_sees_a_test_actor() -> None:
    examples = _examples()
    seen = set()
    for held in whisper_probe.FOLDS:
        scored, train = whisper_probe.fold_split(examples, held)
        assert {e.speaker for e in scored} == set(held)
        assert not {e.speaker for e in scored} & {e.speaker for e in train}
        assert not ({e.speaker for e in scored} | {e.speaker for e in train}) & set(whisper_probe.TEST)
        seen |= set(held)
    assert seen == set(whisper_probe.TRAINING)


class _RecordingFeatures:
    """Which clip sets training asks for: their tags (the vectors themselves do not matter here)."""

    def __init__(self) -> None:
        self.tags: list[str] = []

    def audio(self, example: Example) -> np.ndarray:
        return np.zeros(16_000, dtype=np.float32)

    def get(self, tag: str, examples, apply) -> np.ndarray:  # noqa: ANN001
        self.tags.append(tag)
        return np.zeros((len(examples), whisper_probe.LAYERS + 1, 4), dtype=np.float32)


def test_leave_one_family_out_trains_without_the_scored_familys_twin() -> None:
    features = _RecordingFeatures()
    recipe = whisper_probe.RECIPES["probe-multicondition-c0.05"]
    everyone = [e for e in _examples() if e.speaker in whisper_probe.TRAINING]
    x, y = whisper_probe.training_set(features, recipe, everyone, everyone[:6], [], "reverb")  # type: ignore[arg-type]
    assert {tag.split("-")[1] for tag in features.tags} == {"clean", *whisper_probe.TRAINING_FAMILIES} - {"reverb"}
    assert len(x) == len(y) == 6 * len(whisper_probe.TRAINING_FAMILIES)
    assert set(hc.TRAINING_TWIN.values()) <= set(whisper_probe.TRAINING_FAMILIES) | {"level", "crop"}


def test_a_recipe_that_trains_on_crops_is_scored_on_cut_clips_without_them() -> None:
    everyone = [e for e in _examples() if e.speaker in whisper_probe.TRAINING]
    recipe = whisper_probe.RECIPES["probe-multicondition-c0.05-crops-layer3"]
    for drop, families in ((None, {"clean", "crop", *whisper_probe.TRAINING_FAMILIES}),
                           (hc.TRAINING_TWIN["cut"], {"clean", *whisper_probe.TRAINING_FAMILIES})):  # fmt: skip
        features = _RecordingFeatures()
        whisper_probe.training_set(features, recipe, everyone, everyone[:6], [], drop)  # type: ignore[arg-type]
        assert {tag.split("-")[1] for tag in features.tags} == families


def test_a_random_crop_is_a_stretch_of_the_speech() -> None:
    rng = np.random.default_rng(0)
    wave = np.zeros(4 * 16_000, dtype=np.float32)
    wave[16_000:48_000] = np.linspace(0.2, 0.4, 32_000)  # "speech" from 1 s to 3 s, every sample its own value
    starts = []
    for _ in range(30):
        crop = whisper_probe.random_crop(wave, rng)
        assert 16_000 <= len(crop) <= 40_000  # 1.0 to 2.5 s
        start = int(np.flatnonzero(wave == crop[np.flatnonzero(crop)[0]])[0]) - int(np.flatnonzero(crop)[0])
        np.testing.assert_array_equal(wave[start : start + len(crop)], crop)  # one stretch of the clip
        starts.append(start)
    assert min(starts) >= 16_000 - 1_600 - 2_048  # at most 0.1 s (and trim's frame) before the speech
    assert len(set(starts)) > 20  # from anywhere in it, not always the onset
    # Clips shorter than the crop, or speech from the very first sample: the whole clip, no error.
    for short in (np.linspace(0.2, 0.4, 8_000, dtype=np.float32), np.linspace(0.2, 0.4, 28_800, dtype=np.float32)):
        for seed in range(20):
            crop = whisper_probe.random_crop(short, np.random.default_rng(seed))
            assert 0 < len(crop) <= len(short) and np.all(np.isin(crop, short))


def test_the_cv_leaves_out_a_familys_twin_only_where_the_recipe_trains_on_it() -> None:
    crops = whisper_probe.RECIPES["mlp-ensemble-multicondition-crops-layer3"]
    plain = whisper_probe.RECIPES["mlp-ensemble-multicondition-layer3"]
    clean = whisper_probe.RECIPES["probe-clean"]
    assert crops.held_out_for("cut") == "crop" and plain.held_out_for("cut") is None
    assert crops.held_out_for("far-field") == plain.held_out_for("far-field") == "reverb"
    assert clean.held_out_for("far-field") is None and crops.held_out_for("clean") is None
