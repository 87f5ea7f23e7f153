"""Emotional speech corpora: manifests, speaker-independent splits, audio loading."""

from __future__ import annotations

import csv
import warnings
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import structlog
from sklearn.model_selection import GroupShuffleSplit, StratifiedGroupKFold, train_test_split

log = structlog.get_logger(__name__)

LABELS6 = ("ANG", "DIS", "FEA", "HAP", "NEU", "SAD")
AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".mp3")


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


def load_cremad(root: Path) -> list[Example]:
    """CREMA-D clips (``1001_DFA_ANG_XX.wav``) under root; the speaker is the first field.

    Its six emotion codes (ANG DIS FEA HAP NEU SAD) are already the model's label names.
    """
    examples = []
    for path in sorted(Path(root).rglob("*")):
        fields = path.stem.split("_")
        if path.suffix.lower() in AUDIO_SUFFIXES and len(fields) == 4:
            examples.append(Example(path=path, label=fields[2], speaker=fields[0]))
    return examples


def load_manifest_csv(path: Path) -> list[Example]:
    """Any corpus described by a CSV with columns path, label, speaker (paths relative to the CSV)."""
    path = Path(path)
    with path.open(newline="") as handle:
        reader = csv.DictReader(handle)
        missing = {"path", "label", "speaker"} - set(reader.fieldnames or ())
        if missing:
            raise ValueError(f"{path}: manifest lacks column(s) {', '.join(sorted(missing))}")
        return [Example(path=path.parent / row["path"], label=row["label"], speaker=row["speaker"]) for row in reader]


LOADERS: dict[str, Callable[[Path], list[Example]]] = {
    "ravdess": load_ravdess,
    "emodb": load_emodb,
    "cremad": load_cremad,
    "csv": load_manifest_csv,
}


def load_dataset(kind: str, location: Path) -> list[Example]:
    """Examples of a corpus by loader name (ravdess, emodb, cremad, csv)."""
    if kind not in LOADERS:
        raise ValueError(f"unknown dataset {kind!r}; known: {', '.join(LOADERS)}")
    return LOADERS[kind](Path(location))


def map_labels(
    examples: Iterable[Example], labels: Sequence[str], mapping: Mapping[str, str] | None = None
) -> tuple[list[Example], int]:
    """Relabel through `mapping` (identity where it has no entry) onto `labels`.

    Returns the examples whose label lands in `labels`, and how many were skipped.
    """
    wanted = set(labels)
    mapping = mapping or {}
    kept: list[Example] = []
    skipped = 0
    for example in examples:
        label = mapping.get(example.label, example.label)
        if label in wanted:
            kept.append(replace(example, label=label))
        else:
            skipped += 1
    if skipped:
        log.info("labels_skipped", skipped=skipped, kept=len(kept))
    return kept, skipped


def parse_label_map(text: str | None) -> dict[str, str]:
    """{'angry': 'ANG', ...} from 'angry=ANG,sad=SAD'."""
    pairs = (item.split("=", 1) for item in (text or "").split(",") if item.strip())
    return {source.strip(): target.strip() for source, target in pairs}


def parse_speakers(text: str) -> list[str]:
    """Speaker ids from "19-24" (a two-digit range, as the manifests spell them) or "1001,1002"."""
    speakers: list[str] = []
    for part in (p.strip() for p in text.split(",") if p.strip()):
        first, dash, last = part.partition("-")
        speakers.extend(speaker_ids(int(first), int(last)) if dash else [part])
    return speakers


def train_val_split(
    examples: Sequence[Example], val_fraction: float = 0.2, seed: int = 0, by_speaker: bool = True
) -> tuple[list[Example], list[Example]]:
    """Split into (train, validation), stratified by label.

    By speaker (the default) every speaker lands in exactly one split, so validation measures
    how the model does on unseen voices. ``by_speaker=False`` is the seed notebook's random
    split: the same speakers on both sides, so its scores are optimistic.
    """
    if not 0 < val_fraction < 1:
        raise ValueError(f"val_fraction must lie in (0, 1), not {val_fraction}")
    labels = [example.label for example in examples]
    indices = np.arange(len(examples))
    if by_speaker:
        groups = [example.speaker for example in examples]
        folds = max(2, min(round(1 / val_fraction), len(set(groups))))
        if max(Counter(labels).values()) >= folds:
            splitter = StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=seed)
        else:  # too few clips per class to stratify (tiny corpora): split speakers unstratified
            splitter = GroupShuffleSplit(n_splits=1, test_size=val_fraction, random_state=seed)
        train_idx, val_idx = next(splitter.split(indices, labels, groups))
    else:
        warnings.warn(
            "random split: the same speakers are in training and validation, so validation scores "
            "overstate accuracy on new voices",
            stacklevel=2,
        )
        log.warning("speakers_leak", split="random")
        stratify = labels if min(Counter(labels).values()) >= 2 else None
        train_idx, val_idx = train_test_split(indices, test_size=val_fraction, random_state=seed, stratify=stratify)
    return [examples[i] for i in train_idx], [examples[i] for i in val_idx]
