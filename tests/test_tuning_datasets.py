"""Corpus loaders, label mapping and speaker-independent splits, on tiny synthetic folders."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from emotion_service.audio import load_audio
from emotion_service.tuning.datasets import (
    LABELS6,
    Example,
    load_cremad,
    load_dataset,
    load_manifest_csv,
    map_labels,
    parse_label_map,
    parse_speakers,
    train_val_split,
)


def _wav(path: Path, seconds: float = 0.1) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, np.zeros(int(16000 * seconds), dtype=np.float32), 16000)
    return path


def test_cremad_reads_speaker_and_label_from_the_name(tmp_path: Path) -> None:
    _wav(tmp_path / "AudioWAV" / "1001_DFA_ANG_XX.wav")
    _wav(tmp_path / "AudioWAV" / "1002_IEO_SAD_HI.wav")
    (tmp_path / "notes.txt").write_text("not audio")
    examples = load_cremad(tmp_path)
    assert [(e.speaker, e.label) for e in examples] == [("1001", "ANG"), ("1002", "SAD")]
    assert load_audio(examples[0].path).shape == (1600,)


def test_csv_manifest_paths_are_relative_to_the_csv(tmp_path: Path) -> None:
    _wav(tmp_path / "clips" / "a.wav")
    manifest = tmp_path / "manifest.csv"
    with manifest.open("w", newline="") as handle:
        csv.writer(handle).writerows([["path", "label", "speaker"], ["clips/a.wav", "HAP", "s1"]])
    assert load_dataset("csv", manifest) == [Example(tmp_path / "clips" / "a.wav", "HAP", "s1")]


def test_csv_manifest_without_a_column_is_refused(tmp_path: Path) -> None:
    (tmp_path / "m.csv").write_text("path,label\na.wav,HAP\n")
    with pytest.raises(ValueError, match="speaker"):
        load_manifest_csv(tmp_path / "m.csv")


def test_unknown_dataset_kind_is_named() -> None:
    with pytest.raises(ValueError, match="crema"):
        load_dataset("crema", Path("."))


def test_label_map_skips_and_counts_labels_outside_the_model() -> None:
    examples = [Example(Path("a"), "angry", "1"), Example(Path("b"), "NEU", "1"), Example(Path("c"), "calm", "2")]
    kept, skipped = map_labels(examples, LABELS6, {"angry": "ANG"})
    assert [e.label for e in kept] == ["ANG", "NEU"] and skipped == 1


def test_parse_speakers() -> None:
    assert parse_speakers("19-21") == ["19", "20", "21"]
    assert parse_speakers("1001, 1002") == ["1001", "1002"]


def _corpus(speakers: int = 10, per_label: int = 2) -> list[Example]:
    return [
        Example(Path(f"{s}-{label}-{i}.wav"), label, f"spk{s}")
        for s in range(speakers)
        for label in LABELS6
        for i in range(per_label)
    ]


def test_default_split_keeps_every_speaker_in_one_split() -> None:
    train, val = train_val_split(_corpus(), val_fraction=0.2, seed=1)
    assert {e.speaker for e in train}.isdisjoint({e.speaker for e in val})
    assert len(train) + len(val) == len(_corpus())
    assert {e.label for e in val} == set(LABELS6)  # stratified: every class is validated


def test_random_split_warns_that_speakers_leak() -> None:
    with pytest.warns(UserWarning, match="same speakers"):
        train, val = train_val_split(_corpus(), val_fraction=0.25, by_speaker=False)
    assert len(val) == 30 and {e.speaker for e in train} & {e.speaker for e in val}


def test_parse_label_map() -> None:
    assert parse_label_map("angry=ANG, sad = SAD") == {"angry": "ANG", "sad": "SAD"}
    assert parse_label_map(None) == {}
