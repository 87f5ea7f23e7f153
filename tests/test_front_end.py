"""The robust log-mel front end: level-invariant, silence trimmed, saved with the model, one implementation."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from transformers import AutoFeatureExtractor

import emotion_service.architectures  # noqa: F401  (registers the log-mel extractor)
from emotion_service import degradations
from emotion_service.architectures import LogMelFeatureExtractor
from emotion_service.voice_activity import StreamVoicing
from tests.conftest import load_mono, recordings

RATE = 16_000
CPU = torch.device("cpu")
ROBUST = {"voiced_threshold_db": 35.0, "normalize_level": True, "energy_floor_db": 50.0, "normalize_per_clip": True}


def extractor(**settings: object) -> LogMelFeatureExtractor:
    return LogMelFeatureExtractor(feature_size=80, num_mel_bins=80, sampling_rate=RATE, stride=2, **settings)


def features(fe: LogMelFeatureExtractor, wave: np.ndarray) -> torch.Tensor:
    return fe.torch_features([wave], CPU)["input_features"][0]


@pytest.fixture(scope="module")
def speech() -> np.ndarray:
    return load_mono(recordings()[0])


@pytest.mark.parametrize("per_clip", [True, False], ids=["per-clip-normalised", "level-only"])
@pytest.mark.parametrize("gain_db", [-30.0, -10.0, 6.0])
def test_a_quieter_or_louder_clip_gives_the_same_features(gain_db: float, per_clip: bool) -> None:
    fe = extractor(**{**ROBUST, "normalize_per_clip": per_clip})
    for path in recordings()[:4]:
        speech = load_mono(path)
        clean, louder = features(fe, speech), features(fe, (speech * 10 ** (gain_db / 20)).astype(np.float32))
        # A frame right at the voice-activity threshold may flip (one step more or less, one level
        # statistic nudged); everything else is the same clip.
        assert abs(len(louder) - len(clean)) <= 1
        steps = min(len(clean), len(louder))
        assert (louder[:steps] - clean[:steps]).abs().mean() < 0.1, path.name  # a 3 dB change moves it 0.7


def test_without_level_normalisation_the_level_changes_the_features(speech: np.ndarray) -> None:
    fe = extractor()  # the first bundled model's front end
    assert (features(fe, speech * 0.03) - features(fe, speech)).abs().max() > 1.0


@pytest.mark.parametrize(("before_s", "after_s"), [(2.5, 2.5), (2.5, 0.0), (0.0, 2.5)])
def test_silence_around_the_clip_is_trimmed_away(speech: np.ndarray, before_s: float, after_s: float) -> None:
    fe = extractor(**ROBUST)
    padded = np.concatenate(
        [np.zeros(int(before_s * RATE), np.float32), speech, np.zeros(int(after_s * RATE), np.float32)]
    )
    torch.testing.assert_close(features(fe, padded), features(fe, speech), atol=1e-3, rtol=0)


def test_a_long_inner_pause_is_cut_down_to_its_margins(speech: np.ndarray) -> None:
    fe = extractor(**ROBUST)
    middle = len(speech) // 2
    paused = np.concatenate([speech[:middle], np.zeros(3 * RATE, np.float32), speech[middle:]])
    frames_added = features(fe, paused).shape[0] - features(fe, speech).shape[0]
    # 3 s of pause are 150 stacked steps; at most the two 0.15 s margins (15 steps) may remain
    assert frames_added <= 16


@pytest.mark.parametrize("snr_db", [20.0, 10.0])
def test_the_pauses_of_a_noisy_recording_are_trimmed_with_a_noise_margin(speech: np.ndarray, snr_db: float) -> None:
    pause = np.zeros(int(2.5 * RATE), np.float32)
    padded = np.concatenate([pause, speech, pause])
    noisy = degradations.noise_transform("white", snr_db)(padded, np.random.default_rng(0))
    speech_steps = features(extractor(**ROBUST), speech).shape[0]
    pause_steps = 2 * 125  # 2.5 s on each side, in stacked 20 ms steps
    # Without the margin the noise-filled pauses are within 35 dB of the speech: all of them stay.
    assert features(extractor(**ROBUST), noisy).shape[0] > speech_steps + 0.9 * pause_steps
    kept = features(extractor(**ROBUST, noise_margin_db=6.0), noisy).shape[0]
    assert kept < speech_steps + 0.2 * pause_steps


def test_at_a_very_low_snr_the_loudest_frames_still_count_as_voice(speech: np.ndarray) -> None:
    pause = np.zeros(int(2.5 * RATE), np.float32)
    noisy = degradations.noise_transform("white", -5.0)(
        np.concatenate([pause, speech, pause]), np.random.default_rng(0)
    )
    all_steps = features(extractor(**ROBUST), noisy).shape[0]
    kept = features(extractor(**ROBUST, noise_margin_db=6.0), noisy).shape[0]
    assert 0 < kept < all_steps / 2


def test_a_noise_margin_needs_voice_detection() -> None:
    with pytest.raises(ValueError, match="needs voiced_threshold_db"):
        extractor(noise_margin_db=6.0)


def test_a_silent_clip_keeps_its_frames_and_stays_finite() -> None:
    fe = extractor(**ROBUST)
    out = fe.torch_features([np.zeros(RATE, np.float32), np.full(RATE, 1e-6, np.float32)], CPU)
    assert torch.isfinite(out["input_features"]).all()
    assert out["attention_mask"].sum(1).tolist() == [49, 49]


def test_call_and_batched_torch_features_are_one_implementation(speech: np.ndarray) -> None:
    fe = extractor(**ROBUST)
    clips = [speech, speech[: RATE // 2], np.concatenate([np.zeros(RATE, np.float32), speech])]
    called = fe(clips, sampling_rate=RATE, padding=True, return_tensors="pt", return_attention_mask=True)
    batched = fe.torch_features(clips, CPU)
    assert torch.equal(called["input_features"], batched["input_features"])
    for row, clip in enumerate(clips):  # a clip alone and in a batch: the same features
        alone = features(fe, clip)
        torch.testing.assert_close(batched["input_features"][row, : alone.shape[0]], alone)


def test_the_settings_travel_in_preprocessor_config(tmp_path) -> None:  # type: ignore[no-untyped-def]
    settings = {**ROBUST, "noise_margin_db": 6.0}
    extractor(**settings).save_pretrained(tmp_path)
    loaded = AutoFeatureExtractor.from_pretrained(tmp_path)
    assert isinstance(loaded, LogMelFeatureExtractor)
    assert {key: getattr(loaded, key) for key in settings} == settings
    assert loaded.batches_in_torch


def test_an_energy_floor_needs_level_normalisation() -> None:
    with pytest.raises(ValueError, match="needs normalize_level"):
        extractor(energy_floor_db=50.0)


def test_a_pause_in_a_stream_is_silence_against_the_speakers_level(speech: np.ndarray) -> None:
    distant = StreamVoicing(threshold_db=35.0)
    quiet = (speech * 10 ** (-30 / 20)).astype(np.float32)  # a distant speaker: level alone says nothing
    assert distant.voiced_fraction(quiet[RATE : 3 * RATE]) > 0.3
    voicing = StreamVoicing(threshold_db=35.0)
    assert voicing.voiced_fraction(speech[RATE : 3 * RATE]) > 0.3
    room = (np.random.default_rng(0).standard_normal(2 * RATE) * 10 ** (-85 / 20)).astype(np.float32)
    assert voicing.voiced_fraction(room) == 0.0  # far under the speech so far
    assert voicing.voiced_fraction(np.zeros(2 * RATE, np.float32)) == 0.0


def test_on_a_noisy_line_a_pause_is_silence_against_the_streams_noise_floor(speech: np.ndarray) -> None:
    rng = np.random.default_rng(0)
    pause = np.zeros(2 * RATE, np.float32)
    # One recording: speech, then a pause, on a line with white noise 20 dB under the speech.
    line = degradations.noise_transform("white", 20.0)(np.concatenate([speech[RATE : 3 * RATE], pause]), rng)
    talk, gap = line[: 2 * RATE], line[2 * RATE :]
    level_only, with_floor = StreamVoicing(threshold_db=35.0), StreamVoicing(threshold_db=35.0, noise_margin_db=6.0)
    assert with_floor.voiced_fraction(talk) > 0.3
    level_only.voiced_fraction(talk)
    assert level_only.voiced_fraction(gap) > 0.9  # the noise is within 35 dB of the speech
    assert with_floor.voiced_fraction(gap) < 0.2  # but no louder than the line's floor
