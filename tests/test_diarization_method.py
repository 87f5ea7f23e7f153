"""The diarization method itself, without a server: speakers counted and told apart in one channel
(tests/data clips of a man, actor 21, and a woman, actor 20), the PLDA model that ships with it, and
the clustering with a given count."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from emotion_service.audio import load_audio
from emotion_service.diarization import (
    DiarizationSettings,
    Diarizer,
    Plda,
    Turn,
    agglomerate,
    cluster,
    diarization_error_rate,
)
from emotion_service.segmentation import Segmenter
from tests.test_diarization import RATE, one_channel_conversation


@pytest.fixture(scope="module")
def tools() -> tuple[Segmenter, Diarizer]:
    return Segmenter(), Diarizer()


def diarized(tools: tuple[Segmenter, Diarizer], wave: np.ndarray, num_speakers: int = 0) -> list[Turn]:
    """The recording's utterances with their speakers, as a job finds them (0.4 s pauses joined)."""
    segmenter, diarizer = tools
    found = diarizer.diarize(wave, RATE, diarizer.speech(segmenter, wave, RATE), num_speakers, join_gap_s=0.4, max_utterance_s=30.0)
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
    assert model.mean.shape == (256,) and model.transform.shape == (256, 50) and model.psi.shape == (50,)
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


def test_a_recording_without_speech_has_nobody_to_tell_apart(tools: tuple[Segmenter, Diarizer]) -> None:
    rng = np.random.default_rng(0)
    assert diarized(tools, rng.normal(0, 1e-4, 6 * RATE).astype(np.float32)) == []
    assert diarized(tools, np.zeros(3 * RATE, np.float32), num_speakers=2) == []
