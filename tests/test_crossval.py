"""Speaker-level cross-validation folds: actors 01-18 only, each once, both genders in every fold."""

from __future__ import annotations

import pytest

from emotion_service.tuning.crossval import CONDITIONS, TRAINING_SPEAKERS, folds, summarise
from emotion_service.tuning.datasets import parse_speakers


@pytest.mark.parametrize("k", [2, 3, 6])
def test_folds_split_the_training_actors_and_never_touch_the_test_actors(k: int) -> None:
    speaker_folds = folds(k)
    dealt = [speaker for fold in speaker_folds for speaker in fold]
    assert sorted(dealt) == TRAINING_SPEAKERS and len(set(dealt)) == len(dealt)
    assert not set(dealt) & set(parse_speakers("19-24"))
    if k % 2:  # RAVDESS: odd actors are men, even ones women; an odd k deals both into every fold
        assert all({int(s) % 2 for s in fold} == {0, 1} for fold in speaker_folds)


def test_a_fold_count_out_of_range_is_refused() -> None:
    with pytest.raises(ValueError, match="--cv must lie between 2 and 18"):
        folds(1)


def test_summary_is_mean_and_sample_deviation_over_folds_and_seeds() -> None:
    def run(accuracy: float) -> dict:
        return {
            "conditions": [{"condition": c, "accuracy": accuracy, "uar": accuracy / 2} for c in CONDITIONS.split(",")]
        }

    summary = summarise([run(0.5), run(0.7)])
    assert summary["clean"]["accuracy"] == pytest.approx(0.6)
    assert summary["clean"]["accuracy_std"] == pytest.approx(0.1414, abs=1e-4)
    assert summary["telephone-8k"]["uar"] == pytest.approx(0.3)


def test_a_fold_trains_on_the_other_training_actors_only(tmp_path) -> None:
    # A RAVDESS folder with one clip per actor 01-24: fold 0 of 3 holds out actors 01, 04, ..., 16;
    # its model must train on the 12 other training actors, never on the test actors 19-24.
    import csv

    import torch

    from emotion_service.tuning.crossval import run_fold
    from tests.conftest import recordings
    from tests.tuning_helpers import RAVDESS_CODES, TINY_CNN

    clips = recordings()
    data = tmp_path / "ravdess"
    data.mkdir()
    with (data / "manifest.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["path", "actor", "label6"])
        for actor in range(1, 25):
            clip = clips[actor % len(clips)]
            writer.writerow([clip.resolve(), f"{actor:02d}", RAVDESS_CODES[clip.stem.split("-")[2]]])
    fold = folds(3)[0]
    extra = ["--num_train_epochs", "1", "--config_overrides", TINY_CNN, "--per_device_train_batch_size", "4"]
    threads = torch.get_num_threads()
    try:
        run = run_fold(data, tmp_path / "fold0", fold, seed=0, epochs=1, extra=extra)
    finally:
        torch.set_num_threads(threads)
    card = " ".join((tmp_path / "fold0" / "README.md").read_text().split())
    trained = len(TRAINING_SPEAKERS) - len(fold)
    assert f"{trained} training and 0 validation clips" in card, "the fold trained on speakers outside actors 01-18"
    assert f"{24 - trained} of excluded speakers" in card
    excluded = card.split("of excluded speakers (")[1].split(")")[0]
    assert set(parse_speakers(excluded)) == set(parse_speakers("19-24")) | set(fold)
    assert [row["n"] for row in run["conditions"]] == [len(fold)] * len(CONDITIONS.split(","))
