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
