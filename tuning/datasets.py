"""Emotional speech corpora: manifests, speaker-independent splits, audio loading."""

from __future__ import annotations

import csv
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

LABELS6 = ("ANG", "DIS", "FEA", "HAP", "NEU", "SAD")


@dataclass(frozen=True)
class Example:
    """One labelled recording."""

    path: Path
    label: str
    speaker: str


def _load_manifest(root: Path, speaker_column: str) -> list[Example]:
    # Rows with an empty label6 (calm, surprised, boredom) have no class in the 6-class task.
    with (root / "manifest.csv").open(newline="") as handle:
        return [
            Example(path=root / row["path"], label=row["label6"], speaker=row[speaker_column])
            for row in csv.DictReader(handle)
            if row["label6"]
        ]


def load_ravdess(root: Path) -> list[Example]:
    """RAVDESS speech in the 6 classes; the speaker is the actor number ("01" ... "24")."""
    return _load_manifest(root, "actor")


def load_emodb(root: Path) -> list[Example]:
    """Berlin EmoDB in the 6 classes (evaluation only); the speaker is its two-digit id."""
    return _load_manifest(root, "speaker")


def split_by_speaker(examples: Iterable[Example], speakers: Iterable[str]) -> tuple[list[Example], list[Example]]:
    """Split into (examples of the given speakers, all the others), so no speaker spans both."""
    chosen = set(speakers)
    inside: list[Example] = []
    outside: list[Example] = []
    for example in examples:
        (inside if example.speaker in chosen else outside).append(example)
    return inside, outside


def speaker_ids(first: int, last: int) -> list[str]:
    """Two-digit speaker ids from first to last inclusive, as the manifests spell them."""
    return [f"{number:02d}" for number in range(first, last + 1)]


def load_audio(path: Path, sample_rate: int = 16000) -> np.ndarray:
    """Decode a file to mono float32 at sample_rate (a few RAVDESS files are stereo)."""
    wave, rate = sf.read(path, dtype="float32", always_2d=True)
    mono = wave.mean(axis=1)
    if rate != sample_rate:
        mono = soxr.resample(mono, rate, sample_rate)
    return np.ascontiguousarray(mono, dtype=np.float32)


def load_waves(examples: Sequence[Example], sample_rate: int = 16000) -> list[np.ndarray]:
    """Decode every example once, so training epochs read from memory."""
    return [load_audio(example.path, sample_rate) for example in examples]
