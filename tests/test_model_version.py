"""model_version names what the model computes: the content of every file of its folder that changes
answers (weights, config.json, preprocessor_config.json, label files), not its folder, not its notes."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from safetensors.torch import load_file, save_file
from transformers import AutoConfig

from emotion_service.paths import LOGMEL_CNN_MODEL
from emotion_service.server.model import model_version


def copy_model(target: Path) -> Path:
    """A copy of the log-mel CNN: the model whose front end has settings of its own (noise_margin_db)."""
    shutil.copytree(LOGMEL_CNN_MODEL, target, ignore=shutil.ignore_patterns("evaluation", ".emotion-weights*"))
    return target


def version(folder: Path) -> str:
    return model_version(str(folder), AutoConfig.from_pretrained(folder))


def edit_json(path: Path, **changes: object) -> None:
    path.write_text(json.dumps(json.loads(path.read_text()) | changes, indent=2) + "\n")


def test_same_files_in_two_folders_give_one_version(tmp_path: Path) -> None:
    first, second = copy_model(tmp_path / "a"), copy_model(tmp_path / "elsewhere" / "b")
    assert version(first) == version(second)
    assert len(version(first)) == 12


def test_a_changed_weight_of_the_same_size_and_time_gives_another_version(tmp_path: Path) -> None:
    folder = copy_model(tmp_path / "m")
    before = version(folder)
    weights = folder / "model.safetensors"
    stat = weights.stat()
    tensors = load_file(weights)
    name = sorted(tensors)[0]
    tensors[name] = tensors[name].clone()
    tensors[name].view(-1)[0] += 1.0
    save_file(tensors, weights, metadata={"format": "pt"})
    # Same size and modification time: only the bytes tell (a size-and-mtime cache would not).
    os.utime(weights, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert weights.stat().st_size == stat.st_size and weights.stat().st_mtime_ns == stat.st_mtime_ns
    assert version(folder) != before


def test_a_changed_front_end_setting_gives_another_version(tmp_path: Path) -> None:
    folder = copy_model(tmp_path / "m")
    before = version(folder)
    settings = folder / "preprocessor_config.json"
    assert json.loads(settings.read_text())["noise_margin_db"] == 6
    edit_json(settings, noise_margin_db=12)
    assert version(folder) != before
    edit_json(settings, noise_margin_db=6)
    assert version(folder) == before, "the same settings again, written anew, are the same version"


def test_a_changed_label_file_gives_another_version(tmp_path: Path) -> None:
    folder = copy_model(tmp_path / "m")
    (folder / "labels.txt").write_text("ANG\nDIS\nFEA\nHAP\nNEU\nSAD\n")
    before = version(folder)
    (folder / "labels.txt").write_text("ANG\nDIS\nFEA\nHAP\nSAD\nNEU\n")
    assert version(folder) != before
    (folder / "label_map.json").write_text('{"NEU": "neutral"}')
    assert version(folder) != before


def test_resaving_with_another_transformers_and_notes_beside_the_model_keep_the_version(tmp_path: Path) -> None:
    folder = copy_model(tmp_path / "m")
    before = version(folder)
    edit_json(folder / "config.json", transformers_version="9.9.9")  # re-saved: the same model
    (folder / "README.md").write_text("retrained notes\n")
    edit_json(folder / "metrics.json", accuracy=0.01)  # evaluated again: the same model
    (folder / "train_seconds.txt").write_text("123\n")
    assert version(folder) == before
