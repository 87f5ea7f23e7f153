"""The diarization method itself, without a server: speakers counted and told apart in one channel
(tests/data clips of a man, actor 21, and a woman, actor 20), the PLDA model that ships with it, and
the clustering with a given count."""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

import librosa
import numpy as np
import pytest

from emotion_service.audio import load_audio
from emotion_service.diarization import (
    SPEECH_SHARE,
    DiarizationSettings,
    Diarizer,
    Plda,
    Turn,
    agglomerate,
    band_activity,
    cluster,
    count_by_blocks,
    diarization_error_rate,
    suppress_noise,
)
from emotion_service.segmentation import Segment, Segmenter
from tests.test_diarization import DATA, RATE, one_channel_conversation


@pytest.fixture(scope="module")
def tools() -> tuple[Segmenter, Diarizer]:
    return Segmenter(), Diarizer()


def diarized(tools: tuple[Segmenter, Diarizer], wave: np.ndarray, num_speakers: int = 0) -> list[Turn]:
    """The recording's utterances with their speakers, as a job finds them (0.4 s pauses joined)."""
    segmenter, diarizer = tools
    found = diarizer.find(segmenter, wave, RATE, num_speakers=num_speakers, join_gap_s=0.4, max_utterance_s=30.0)
    return [Turn(s.start / RATE, s.end / RATE, s.speaker) for s in found]


def test_a_man_and_a_woman_are_counted_as_two_and_told_apart(tools: tuple[Segmenter, Diarizer], tmp_path: Path) -> None:
    truth = one_channel_conversation(tmp_path / "conversation.wav")
    wave = load_audio(tmp_path / "conversation.wav", RATE)
    found = diarized(tools, wave)  # the count not given: found by the PLDA merge threshold
    assert sorted({t.speaker for t in found}) == ["S1", "S2"]
    scores = diarization_error_rate(truth, found)
    assert scores["confusion"] < 0.02 and scores["der"] < 0.10, scores
    # The count given: the same speakers; one speaker given: everything is S1.
    assert diarization_error_rate(truth, diarized(tools, wave, num_speakers=2))["confusion"] < 0.02
    assert {t.speaker for t in diarized(tools, wave, num_speakers=1)} == {"S1"}


def test_finding_speakers_reports_its_progress_past_the_speech_detector(
    tools: tuple[Segmenter, Diarizer], tmp_path: Path
) -> None:
    """A job's progress moves while speakers are found, not only while speech is: the detector's share
    of the track up to SPEECH_SHARE, a step once the voices are embedded, 1 when the speakers are found."""
    one_channel_conversation(tmp_path / "conversation.wav")
    segmenter, diarizer = tools
    shares: list[float] = []
    diarizer.find(segmenter, load_audio(tmp_path / "conversation.wav", RATE), RATE, progress=shares.append)
    assert shares == sorted(shares), shares
    assert any(0 < share <= SPEECH_SHARE for share in shares), shares
    assert any(SPEECH_SHARE < share < 1 for share in shares), f"nothing reported after the detector: {shares}"
    assert shares[-1] == 1.0


def test_one_speaker_in_six_emotions_is_found_alone(tools: tuple[Segmenter, Diarizer]) -> None:
    # Actor 21's clips (neutral, happy, sad, angry, fearful, disgust; normal and strong intensity):
    # on RAVDESS one actor's emotions move the embedding as far as a second speaker would, which is
    # what the previous k-means split on.
    clips = sorted((Path(__file__).parent / "data").glob("*-21.flac"))
    rng = np.random.default_rng(1)
    pieces = [np.zeros(RATE // 2, np.float32)]
    for clip in clips:
        pieces += [load_audio(clip, RATE), np.zeros(int(rng.uniform(0.3, 0.8) * RATE), np.float32)]
    wave = np.concatenate(pieces) + rng.normal(0, 1e-3, sum(map(len, pieces))).astype(np.float32)
    found = diarized(tools, wave)
    assert len(found) >= 6 and {t.speaker for t in found} == {"S1"}


def test_the_bundled_plda_model_and_its_text_form() -> None:
    model = Plda.bundled()
    assert model.mean.shape == (192,) and model.transform.shape == (192, 50) and model.psi.shape == (50,)
    assert np.all(model.psi > 0) and np.all(np.diff(model.psi) >= 0)
    again = Plda.decode(model.encode())
    assert np.allclose(again.transform, model.transform, atol=np.abs(model.transform).max() / 127)
    assert np.allclose(again.mean, model.mean) and np.allclose(again.psi, model.psi)


def test_clustering_follows_the_speaker_model() -> None:
    # A model in which the first axis is the speaker: two groups far apart on it and spread on the
    # others (as emotions spread one speaker) are two speakers; one group alone is one.
    rng = np.random.default_rng(0)
    model = Plda(np.zeros(4), np.eye(4), np.array([50.0, 0.01, 0.01, 0.01]))
    spread = rng.normal(0, 1, (20, 4))
    spread[:, 1] *= 3  # a large within-speaker spread on another axis
    speaker = np.where(np.arange(20) % 3 == 0, 8.0, -8.0)
    points = spread + np.outer(speaker, [1, 0, 0, 0])
    truth = ["S1" if s > 0 else "S2" for s in speaker]
    assert cluster(points, [1.0] * 20, 0, backend=model) == truth
    assert cluster(points, [1.0] * 20, 2, backend=model) == truth
    assert set(cluster(spread, [1.0] * 20, 0, backend=model)) == {"S1"}
    assert len(set(agglomerate(model, points, 5, 0.0, 6))) == 5  # a given count is kept
    assert cluster([], [], 0, backend=model) == []


def test_a_voice_heard_for_under_the_minimum_share_is_not_counted_as_a_party() -> None:
    # Two pieces of a clearly different voice among twenty: as a shout or a whisper of the one
    # speaker is, it is folded into the speaker it is most like when the count is not given; a
    # given count, or a minimum share of 0, keeps it apart.
    rng = np.random.default_rng(3)
    model = Plda(np.zeros(4), np.eye(4), np.array([50.0, 0.01, 0.01, 0.01]))
    speaker = np.where(np.arange(22) < 20, -8.0, 8.0)
    points = rng.normal(0, 1, (22, 4)) + np.outer(speaker, [1, 0, 0, 0])
    durations = [2.0] * 22
    assert DiarizationSettings().min_speaker_share == 0.2
    assert set(cluster(points, durations, 0, backend=model)) == {"S1"}
    assert cluster(points, durations, 2, backend=model) == ["S1"] * 20 + ["S2"] * 2
    keep_all = DiarizationSettings(min_speaker_share=0.0)
    assert cluster(points, durations, 0, keep_all, backend=model) == ["S1"] * 20 + ["S2"] * 2
    # The share is of the speech's duration, not of the pieces: two long pieces are a party.
    assert set(cluster(points, [1.0] * 20 + [6.0] * 2, 0, backend=model)) == {"S1", "S2"}


def test_six_parties_who_speak_alike_are_all_kept() -> None:
    # Six voices of a sixth each: under the 0.2 share, yet each is as much a party as the others.
    rng = np.random.default_rng(5)
    model = Plda(np.zeros(6), np.eye(6), np.array([50.0] * 6))
    centres = 8.0 * np.eye(6)
    points = np.concatenate([centres[k] + rng.normal(0, 0.5, (5, 6)) for k in range(6)])
    found = cluster(points, [2.0] * 30, 0, backend=model)
    assert len(set(found)) == 6 and all(len(set(found[5 * k : 5 * k + 5])) == 1 for k in range(6))


def test_a_long_recording_is_counted_block_by_block() -> None:
    # One voice over 256 s (a 2 s piece every 4 s) that keeps one register for eight pieces, then
    # the other: counted whole, 64 pieces are evidence enough to split it in two; counted on blocks
    # of at least count_block_s (60 s: four blocks of 16 pieces) it is one. Two voices taking turns
    # are still two, told apart.
    model = Plda(np.zeros(4), np.eye(4), np.array([50.0, 0.01, 0.01, 0.01]))
    rng = np.random.default_rng(0)
    n, durations = 64, [2.0] * 64
    starts = np.arange(n) * 4.0
    assert DiarizationSettings().count_block_s == 60.0 and DiarizationSettings().min_block_speech_s == 10.0
    register = np.where((np.arange(n) // 8) % 2 == 0, -1.0, 1.0)
    one = rng.normal(0, 1, (n, 4)) + np.outer(-8 + register, [1, 0, 0, 0])
    assert len(set(cluster(one, durations, 0, backend=model))) == 2  # counted whole: split by register
    assert set(cluster(one, durations, 0, backend=model, starts_s=starts)) == {"S1"}
    assert len(set(cluster(one, durations, 2, backend=model, starts_s=starts))) == 2  # a given count stands
    speaker = np.where(np.arange(n) % 3 == 0, 8.0, -8.0)
    two = rng.normal(0, 1, (n, 4)) + np.outer(speaker, [1, 0, 0, 0])
    truth = ["S1" if s > 0 else "S2" for s in speaker]
    assert cluster(two, durations, 0, backend=model, starts_s=starts) == truth


def test_the_count_of_a_long_recording_is_the_lower_median_of_its_blocks() -> None:
    model = Plda(np.zeros(4), np.eye(4), np.array([50.0, 0.01, 0.01, 0.01]))
    rng = np.random.default_rng(0)
    voice = rng.normal(0, 1, (64, 4)) + np.outer(np.full(64, -8.0), [1, 0, 0, 0])
    starts, durations = np.arange(64) * 4.0, [2.0] * 64

    def found(points: np.ndarray, at: np.ndarray = starts, pieces: int = 64) -> int:
        return len(set(cluster(points[:pieces], durations[:pieces], 0, backend=model, starts_s=at[:pieces])))

    # A shout in one block of four (counts 1, 2, 1, 1), or in one of two (126 s: counts 1, 2): one voice.
    shouted = voice.copy()
    shouted[16:32:2, 0] += 16.0
    assert found(shouted) == 1
    assert found(shouted, pieces=32) == 1
    # A second voice in three blocks of four (counts 1, 2, 2, 2): two.
    joined = voice.copy()
    joined[16::3, 0] = 8.0 + rng.normal(0, 1, len(joined[16::3]))
    assert found(joined) == 2
    # Two voices for a minute, then one remark after a long pause: the block with 2 s of speech has no
    # say, so the conversation keeps its two.
    remark = np.append(np.arange(16) * 4.0, 125.0)
    pair = voice[:17].copy()
    pair[0:16:3, 0] = 8.0
    assert found(pair, remark, 17) == 2
    # Blocks run from the first piece: silence before it does not make a short recording long (115 s
    # of speech after 90 s of silence is counted whole).
    late = np.arange(64) * 1.8 + 90.0
    assert count_by_blocks(voice, durations, late, DiarizationSettings(), model) == 0  # 0: counted whole
    with pytest.raises(ValueError, match="finite"):
        cluster(voice, durations, 0, backend=model, starts_s=[float("nan")] * 64)


def test_a_diarized_track_is_counted_on_its_seconds_at_any_rate(
    tools: tuple[Segmenter, Diarizer], monkeypatch: pytest.MonkeyPatch
) -> None:
    # 8 kHz audio: the blocks are measured in the recording's seconds, not in samples of either rate.
    import emotion_service.diarization as diarization

    seen: list[tuple[float, float]] = []
    count = diarization.count_by_blocks

    def recording(embeddings, durations_s, starts_s, settings, model):  # type: ignore[no-untyped-def]
        seen.append((min(starts_s), max(np.add(starts_s, durations_s))))
        return count(embeddings, durations_s, starts_s, settings, model)

    monkeypatch.setattr(diarization, "count_by_blocks", recording)
    clips = [load_audio(path, 8_000) for path in sorted(DATA.glob("*-21.flac"))]
    pieces = [np.zeros(4_000, np.float32)]
    for number in range(40):
        pieces += [clips[number % len(clips)], np.zeros(4_000, np.float32)]
    wave = np.concatenate(pieces)
    segmenter, diarizer = tools
    found = diarizer.find(segmenter, wave, 8_000)
    assert {s.speaker for s in found} == {"S1"}
    first, last = seen[0]
    assert 0.3 < first < 2.0 and len(wave) / 8_000 - 3.0 < last <= len(wave) / 8_000, (first, last, len(wave) / 8_000)


def test_a_recording_without_speech_has_nobody_to_tell_apart(tools: tuple[Segmenter, Diarizer]) -> None:
    rng = np.random.default_rng(0)
    assert diarized(tools, rng.normal(0, 1e-4, 6 * RATE).astype(np.float32)) == []
    assert diarized(tools, np.zeros(3 * RATE, np.float32), num_speakers=2) == []
    _, diarizer = tools
    nothing = diarizer.embed(np.zeros(RATE, np.float32), RATE, [])
    pieces, vectors = diarizer.pieces(nothing)
    assert pieces == [] and vectors.shape == (0, 192)


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("pause_part_s", 0.0, "pause_part_s=0.0: a number over 0"),
        ("pause_min_s", 0.0, "pause_min_s=0.0: a number over 0"),
        ("noise_block_s", 0.0, "noise_block_s=0.0: a number over 0"),
        ("window_s", -1.6, "window_s=-1.6: a window of 0.5 to 10 s"),
        ("window_s", 600.0, "window_s=600.0: a window of 0.5 to 10 s"),
        ("window_s", float("inf"), "window_s=inf"),
        ("hop_s", 1e-5, "hop_s=1e-05: a hop of at least one sample and at most window_s"),
        ("hop_s", 4.0, "hop_s=4.0: a hop of at least one sample and at most window_s"),
        ("hop_s", float("nan"), "hop_s=nan"),
        ("vad_threshold", 1.5, "vad_threshold=1.5: a speech probability between 0 and 1"),
        ("vad_threshold", 0.0, "vad_threshold=0.0: a speech probability between 0 and 1"),
        ("vad_threshold", "0.5", "vad_threshold='0.5': a number"),
        ("noise_gain_floor", 0.0, "noise_gain_floor=0.0: a gain over 0, at most 1"),
        ("merge_threshold", float("nan"), "merge_threshold=nan"),
        ("merge_threshold", -1.0, "merge_threshold=-1.0: a log-likelihood ratio of 0 or more"),
        ("band_rise_db", -0.75, "band_rise_db=-0.75: a number of 0 or more (0 turns it off)"),
        ("band_gap_s", -0.1, "band_gap_s=-0.1: a number of 0 or more"),
        ("min_silence_s", float("inf"), "min_silence_s=inf: a number of 0 or more"),
        ("count_block_s", float("inf"), "count_block_s=inf"),
        ("pause_margin", float("nan"), "pause_margin=nan"),
        ("max_speakers", 0, "max_speakers=0: a whole number of 1 or more"),
        ("max_speakers", 1.5, "max_speakers=1.5: a whole number of 1 or more"),
        ("min_speaker_share", 1.0, "min_speaker_share=1.0"),
        ("change_threshold", 2.0, "change_threshold=2.0: a cosine similarity from -1 to 1"),
    ],
)
def test_settings_that_cannot_work_are_refused_naming_the_setting(name: str, value: float, expected: str) -> None:
    # Refused when made, not deep inside a job (a zero-length part never ends a loop; a NaN threshold
    # merges nothing, silently).
    with pytest.raises(ValueError, match=re.escape(f"DiarizationSettings: invalid {expected}")):
        DiarizationSettings(**{name: value})


def test_settings_that_turn_a_step_off_or_never_act_are_accepted() -> None:
    off = DiarizationSettings(noise_subtraction=0.0, band_rise_db=0.0, pause_db=0.0, count_block_s=0.0)
    assert off.pause_db == 0.0
    never = DiarizationSettings(pause_margin=float("inf"), merge_threshold=float("inf"), change_threshold=-1.0)
    assert never.merge_threshold == float("inf")


def pink_noise(n: int, rng: np.random.Generator) -> np.ndarray:
    """Noise whose power falls as 1/f (as a fan's or a room's does), unit variance."""
    spectrum = np.fft.rfft(rng.normal(0, 1, n))
    spectrum /= np.sqrt(np.maximum(np.arange(len(spectrum)), 1))
    noise = np.fft.irfft(spectrum, n)
    return (noise / noise.std()).astype(np.float32)


def test_steady_noise_is_taken_out_and_speech_kept() -> None:
    speech = load_audio(sorted(DATA.glob("*-21.flac"))[0], RATE)
    wave = np.concatenate([np.zeros(RATE, np.float32), speech, np.zeros(RATE, np.float32)])
    noise = np.random.default_rng(3).normal(0, np.sqrt(np.mean(np.square(speech)) / 10**0.5), len(wave))
    noisy = (wave + noise).astype(np.float32)
    strength = DiarizationSettings().noise_subtraction
    heard = suppress_noise(noisy, RATE, strength, block_s=1.0)  # blocks of 1 s, the last one shorter
    assert heard.shape == noisy.shape
    assert np.mean(np.square(heard[:RATE])) < np.mean(np.square(noisy[:RATE])) / 4, "6 dB less noise in the pause"

    def snr_db(x: np.ndarray) -> float:
        return float(10 * np.log10(np.sum(np.square(wave)) / np.sum(np.square(x - wave))))

    assert snr_db(heard) > snr_db(noisy) + 5, "the speech is kept while the noise goes"
    # A floor that rises ninefold halfway (another room, a fan switched on) is followed: each block has its own.
    rising = noisy + np.where(np.arange(len(noisy)) >= len(noisy) // 2, 2 * noise, 0).astype(np.float32)
    heard = suppress_noise(rising, RATE, strength, block_s=1.0)
    assert np.mean(np.square(heard[-RATE:])) < np.mean(np.square(rising[-RATE:])) / 4, "6 dB less of the louder noise"
    # A sound held to the end of a track whose last block is short (0.25 s of 1 s blocks) is kept:
    # that block joins the one before, so its few frames never make the sound a floor of their own.
    held = np.arange(RATE // 4) / RATE
    vowel = sum(np.sin(2 * np.pi * 150 * k * held) / k for k in range(1, 10)).astype(np.float32) * 0.1
    ending = np.random.default_rng(4).normal(0, 0.01, 2 * RATE + RATE // 4).astype(np.float32)
    ending[-len(vowel) :] += vowel
    kept = suppress_noise(ending, RATE, strength, block_s=1.0)[-len(vowel) :]
    assert np.mean(np.square(kept)) > np.mean(np.square(ending[-len(vowel) :])) / 2, "the held sound is kept"
    # A recording without a noise floor (digital silence between turns) is left as it is.
    assert np.allclose(suppress_noise(wave, RATE, strength), wave, atol=1e-4)
    assert suppress_noise(noisy, RATE, 0.0) is noisy


@pytest.mark.parametrize("kind", ["white", "pink"])
def test_two_voices_are_found_under_steady_noise_as_loud_as_they_are(
    tools: tuple[Segmenter, Diarizer], tmp_path: Path, kind: str
) -> None:
    """Noise at 0 dB SNR: with its steady noise taken out first, speech is found where it is (missed
    plus false alarm 0.65 % under white noise, 2.7 % under pink; 2.9 % and 5.2 % without) and the two
    voices told apart (DER 0.65 % and 11.2 %: under pink noise at 0 dB the voices, embedded as
    recorded, confuse one piece; a condition the tune never made)."""
    truth = one_channel_conversation(tmp_path / "conversation.wav")
    wave = load_audio(tmp_path / "conversation.wav", RATE)
    rng = np.random.default_rng(0)
    noise = rng.normal(0, 1, len(wave)).astype(np.float32) if kind == "white" else pink_noise(len(wave), rng)
    voiced = np.concatenate([wave[round(t.start_s * RATE) : round(t.end_s * RATE)] for t in truth])
    noisy = wave + noise * np.sqrt(np.mean(np.square(voiced)))
    found = diarized(tools, noisy)
    assert len({t.speaker for t in found}) == 2
    scores = diarization_error_rate(truth, found)
    assert scores["missed"] + scores["false_alarm"] <= 0.045, scores
    assert scores["der"] <= 0.15, scores


def harmonic_voice(seconds: float, overtones: int) -> np.ndarray:
    """A steady 200 Hz voice with ``overtones`` harmonics (the k-th at 1/k), at unit RMS."""
    t = np.arange(round(seconds * RATE)) / RATE
    voice = sum(np.sin(2 * np.pi * 200 * k * t) / k for k in range(1, overtones + 1)).astype(np.float32)
    return voice / np.sqrt(np.mean(np.square(voice)))


# The power of the tests' white noise (standard deviation 0.01) between 150 and 1000 Hz: the speech band.
NOISE_IN_BAND = 0.01**2 * (1000 - 150) / (RATE / 2)


def test_the_speech_band_finds_voiced_stretches_over_the_floor() -> None:
    """Harmonic bursts (a 200 Hz voice with its overtones) 12 dB over steady noise are found where they
    are; one shorter than ``min_s`` is not; two bursts 0.1 s apart are one stretch."""
    rng = np.random.default_rng(0)
    wave = rng.normal(0, 0.01, 6 * RATE).astype(np.float32)
    voice = harmonic_voice(1.0, 5) * 0.01 * 10 ** (12 / 20) * np.sqrt(2)
    wave[RATE : 2 * RATE] += voice  # 1-2 s
    wave[3 * RATE : 3 * RATE + RATE // 5] += voice[: RATE // 5]  # 0.2 s: too short
    wave[4 * RATE : 4 * RATE + RATE // 2] += voice[: RATE // 2]  # 4-4.5 s, then 4.6-5.1 s
    wave[4 * RATE + 6 * RATE // 10 : 5 * RATE + RATE // 10] += voice[: RATE // 2]
    found = [(a / RATE, b / RATE) for a, b in band_activity(wave, RATE, rise_db=7.0, min_s=0.3, gap_s=0.15)]
    assert len(found) == 2, found
    assert found[0] == pytest.approx((1.0, 2.0), abs=0.05) and found[1] == pytest.approx((4.0, 5.1), abs=0.05)


def test_the_speech_band_hears_a_voice_under_steady_noise_and_not_the_noise_alone() -> None:
    """With the shipped settings, on 30 s of white noise (ten draws of it): two harmonic bursts (a
    200 Hz voice with its overtones) 3 dB under the noise in the speech band (13 dB under it in all)
    are found where they are, each whole (a stretch runs on at the lower rise until the band falls
    back), and the long stretches of noise alone between them are never taken for speech (a detector
    that took a pause's noise for speech would give the pauses of an interview to a speaker)."""
    settings = DiarizationSettings()
    voice = harmonic_voice(2.0, 4) * np.sqrt(NOISE_IN_BAND * 10 ** (-3 / 10))
    bursts = [(5.0, 7.0), (20.0, 21.0)]
    for seed in range(10):
        wave = np.random.default_rng(seed).normal(0, 0.01, 30 * RATE).astype(np.float32)
        for start, end in bursts:
            wave[round(start * RATE) : round(end * RATE)] += voice[: round((end - start) * RATE)]
        found = band_activity(
            wave,
            RATE,
            settings.band_rise_db,
            settings.band_min_s,
            settings.band_gap_s,
            settings.noise_block_s,
            settings.band_core_db,
            settings.band_smooth_s,
        )
        found_s = [(a / RATE, b / RATE) for a, b in found]
        assert len(found_s) == 2, (seed, found_s)
        for (a, b), (start, end) in zip(found_s, bursts, strict=True):
            # Whole (at the upper threshold alone, an edge is found up to 0.2 s late), and within
            # 0.75 s: an edge runs on by the average's half-width, then while the noise's own swings
            # stay over the lower rise (0.44 s at most in 40 draws).
            assert start - 0.75 <= a <= start + 0.05 and end - 0.05 <= b <= end + 0.75, (seed, found_s)


def test_the_speech_band_keeps_a_quiet_syllable_between_two_louder_ones() -> None:
    """Two bursts that reach the band's core, with a quieter one between them (over the rise, never
    over the core) 0.3 s from each: gaps are closed before the core is looked for, so the three are
    one stretch; looking for the core first would drop the quiet one and leave the louder two 1 s
    apart, two stretches."""
    rng = np.random.default_rng(0)
    wave = rng.normal(0, 0.01, 12 * RATE).astype(np.float32)
    voice = harmonic_voice(1.0, 4)
    loud, quiet = np.sqrt(NOISE_IN_BAND * 10 ** (6 / 10)), np.sqrt(NOISE_IN_BAND * 10 ** (-4 / 10))
    for start, end, level in ((5.0, 5.6, loud), (5.9, 6.3, quiet), (6.6, 7.2, loud)):
        wave[round(start * RATE) : round(end * RATE)] += level * voice[: round((end - start) * RATE)]
    stretches = band_activity(wave, RATE, rise_db=1.5, min_s=0.3, gap_s=0.4, core_db=4.0, smooth_s=0.1)
    found = [(a / RATE, b / RATE) for a, b in stretches]
    assert len(found) == 1, found
    assert found[0][0] <= 5.05 and found[0][1] >= 7.15, found


def test_speech_the_detector_missed_is_found_and_given_to_its_speaker(
    tools: tuple[Segmenter, Diarizer], tmp_path: Path
) -> None:
    """Under white noise at 20 dB, three turns (two of the woman's, one of the man's) said 20 dB
    quieter than the others: the speech detector misses much of them (15.9 % of the speech). The
    speech band finds more (13.7 % missed), and each stretch is given to a party (the clusters, made
    of what the detector heard, left as they were): here 0.57 s at the start of the woman's first
    quiet turn, which touches none of the detector's segments, so goes by its embedding, to her.
    Most of what the band hears of the other two quiet turns lies inside the detector's segments,
    and what sticks out of them is under ``band_min_s``. (The band of the de-noised copy at 8 dB,
    before, found 2.4 s here and gave 1.6 s to the right party, no better than always naming the
    man.) This is one conversation; the bench, over many, is what measures whose the missed speech
    is."""
    truth = one_channel_conversation(tmp_path / "conversation.wav")
    wave = load_audio(tmp_path / "conversation.wav", RATE)
    quiet = [truth[1], truth[5], truth[6]]  # two of the woman's turns and one of the man's
    for turn in quiet:
        wave[round(turn.start_s * RATE) : round(turn.end_s * RATE)] *= 0.1
    voiced = np.concatenate([wave[round(t.start_s * RATE) : round(t.end_s * RATE)] for t in truth])
    rng = np.random.default_rng(1)
    noisy = wave + rng.normal(0, np.sqrt(np.mean(np.square(voiced)) / 100), len(wave)).astype(np.float32)
    segmenter, diarizer = tools
    unaided = Diarizer(DiarizationSettings(band_rise_db=0.0))
    heard_before = diarized((segmenter, unaided), noisy)
    before = diarization_error_rate(truth, heard_before)
    found = diarized(tools, noisy)
    after = diarization_error_rate(truth, found)
    assert before["missed"] > 0.04 and after["missed"] <= before["missed"] - 0.015, (before, after)
    assert after["der"] < before["der"], (before, after)
    # Each party's name, from its loud turns; then whose the quiet turns' speech was made.
    named: dict[str, set[str]] = {}
    for turn in (t for t in truth if t not in quiet):
        named.setdefault(turn.speaker, set()).update(
            t.speaker for t in found if t.start_s < turn.end_s and t.end_s > turn.start_s
        )
    assert all(len(v) == 1 for v in named.values()) and named["man"] != named["woman"], named
    # Over the quiet turns, 10 ms at a time: the speech found now that the detector alone missed.
    right = wrong = 0
    for turn in quiet:
        for at in np.arange(turn.start_s, turn.end_s, 0.01):
            if any(t.start_s <= at < t.end_s for t in heard_before):
                continue
            speakers = {t.speaker for t in found if t.start_s <= at < t.end_s}
            if speakers:
                right, wrong = (right + 1, wrong) if speakers == named[turn.speaker] else (right, wrong + 1)
    assert right + wrong > 40 and right >= 0.8 * (right + wrong), (right, wrong)  # 0.4 s or more found


@pytest.mark.parametrize("rate", [RATE, 8_000])
def test_a_segment_carried_on_through_a_pause_between_two_parties_is_cut_there(tmp_path: Path, rate: int) -> None:
    """At a low SNR the detector carries on through a short pause, so one party's turn and the
    other's reply make one segment. Here the detector's segments of the man's third turn and the
    woman's reply are joined into one (0.6-1 s of the recording's faint noise between them), and
    the change detection is off (it needs two sub-windows of a voice on each side): the segment is
    cut at the pause and each part goes to its party, at the recording's own rate (a telephone's
    8 kHz too: the cut is found at 16 kHz and placed back in the recording's samples). With the cut
    off (``pause_db`` 0), or a part moved only when another speaker is infinitely more likely, the
    reply stays with the turn."""
    truth = one_channel_conversation(tmp_path / "conversation.wav")
    wave = load_audio(tmp_path / "conversation.wav", rate)
    settings = DiarizationSettings(change_threshold=-1.0)  # no cut from the sub-windows' similarity
    diarizer = Diarizer(settings)
    turn, reply = truth[4], truth[5]
    assert (turn.speaker, reply.speaker) == ("man", "woman")
    segments = diarizer.speech(Segmenter(), wave, rate)
    inside = [s for s in segments if s.start < reply.end_s * rate and s.end > turn.start_s * rate]
    # From just after the turn before (its pause's middle then lies under pause_part_s into the segment:
    # too near the edge to cut at) to the reply's end.
    start = min(round((truth[3].end_s + 0.05) * rate), *(s.start for s in inside))
    bridged = replace(inside[0], start=start, end=max(s.end for s in inside))
    segments = sorted([s for s in segments if s not in inside] + [bridged], key=lambda s: s.start)

    def speakers_over(found: list[Segment], said: Turn) -> set[str]:
        return {s.speaker for s in found if s.start < said.end_s * rate and s.end > said.start_s * rate}

    found = diarizer.diarize(wave, rate, segments)
    man, woman = speakers_over(found, truth[0]), speakers_over(found, truth[1])
    assert len(man) == len(woman) == 1 and man != woman, (man, woman)
    assert speakers_over(found, turn) == man and speakers_over(found, reply) == woman, found
    parts = [s for s in found if bridged.start <= s.start and s.end <= bridged.end]
    # Cut once, in the pause between them, and no part shorter than pause_part_s (0.5 s).
    assert len(parts) == 2 and turn.end_s * rate <= parts[0].end <= reply.start_s * rate, (parts, turn, reply)
    assert all(s.end - s.start >= settings.pause_part_s * rate - 1 for s in parts), parts
    for unaided in (replace(settings, pause_db=0.0), replace(settings, pause_margin=float("inf"))):
        diarizer.settings = unaided
        found = diarizer.diarize(wave, rate, segments)
        assert len(speakers_over(found, turn) | speakers_over(found, reply)) == 1, (unaided, found)
    assert diarizer.diarize(np.zeros(3 * rate, np.float32), rate, []) == []  # no speech: nobody, no crash


def test_the_first_to_speak_is_s1_when_the_speech_the_detector_missed_comes_first(
    tools: tuple[Segmenter, Diarizer], tmp_path: Path
) -> None:
    """The man's first turn is speech the detector missed (given to the speakers afterwards), so the
    clusters' first piece is the woman's: once his turn is given to him, he speaks first and is S1."""
    segmenter, diarizer = tools
    truth = one_channel_conversation(tmp_path / "conversation.wav")
    wave = load_audio(tmp_path / "conversation.wav", RATE)
    first = truth[0]
    assert first.speaker == "man"
    segments = diarizer.speech(segmenter, wave, RATE)
    missed = [s for s in segments if s.end <= (first.end_s + 0.3) * RATE]
    assert missed and len(missed) < len(segments)
    found = diarizer.diarize(wave, RATE, [s for s in segments if s not in missed], missed=missed)
    assert found[0].start == missed[0].start and found[0].speaker == "S1", found[:3]
    his = {s.speaker for s in found if any(s.start < t.end_s * RATE and s.end > t.start_s * RATE
                                          for t in truth if t.speaker == "man")}  # fmt: skip
    assert his == {"S1"} and {s.speaker for s in found} == {"S1", "S2"}, found


def test_voices_are_embedded_on_the_track_as_recorded(
    tools: tuple[Segmenter, Diarizer], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Speech is found on the copy with the steady noise taken out, but the voices are embedded on the
    track as recorded: CAM++ learnt voices under noise, not after a subtraction (on actors 01-18 the
    tune's mean DER 12.6 % on the de-noised copy, 11.5 % as recorded)."""
    one_channel_conversation(tmp_path / "conversation.wav")
    wave = load_audio(tmp_path / "conversation.wav", RATE)
    noisy = wave + np.random.default_rng(0).normal(0, 0.01, len(wave)).astype(np.float32)
    segmenter, diarizer = tools
    embedded: list[np.ndarray] = []
    embed = diarizer.embed

    def heard(waveform: np.ndarray, sample_rate: int, segments: list) -> object:
        embedded.append(waveform)
        return embed(waveform, sample_rate, segments)

    monkeypatch.setattr(diarizer, "embed", heard)
    found = diarizer.find(segmenter, noisy, RATE)
    assert {s.speaker for s in found} == {"S1", "S2"}
    assert len(embedded) == 1 and np.array_equal(embedded[0], noisy)
    assert not np.allclose(diarizer.suppress_noise(noisy, RATE), noisy, atol=1e-3)  # a copy that differs


def test_a_piece_shorter_than_a_window_is_embedded_repeated_to_fill_it(tools: tuple[Segmenter, Diarizer]) -> None:
    """A piece shorter than ``window_s`` (1.6 s) is embedded as its speech repeated to fill one window,
    as docs/operations.md says (a short clip gives the speaker encoder few frames to pool a voice
    from, and padding would add silence that is no one's), and a longer piece as it is."""
    _, diarizer = tools
    speech, _ = librosa.effects.trim(load_audio(DATA / "03-01-05-02-01-01-21.flac", RATE), top_db=30)
    short, pause = speech[: int(0.7 * RATE)], np.zeros(RATE // 2, np.float32)
    track = np.concatenate([pause, short, pause, speech, pause])
    at = len(pause) + len(short) + len(pause)
    segments = [Segment(0, len(pause), len(pause) + len(short)), Segment(0, at, at + len(speech))]
    _, vectors = diarizer.pieces(diarizer.embed(track, RATE, segments))
    window = round(diarizer.settings.window_s * RATE)
    assert len(speech) > window
    repeated = np.concatenate([short, short, short])[:window]
    expected = diarizer._voices.embed([repeated, speech])
    assert np.allclose(vectors, expected, atol=1e-4), "the short piece repeated to one window, the long one as it is"
    assert not np.allclose(vectors[0], diarizer._voices.embed([short])[0], atol=1e-2), "not the bare 0.7 s"
