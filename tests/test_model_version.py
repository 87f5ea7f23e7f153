"""model_version names what the model computes: its weight bytes and its config, not its folder."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from safetensors.torch import load_file, save_file
from transformers import AutoConfig

from emotion_service.paths import BUNDLED_MODEL
from emotion_service.server.model import VERSION_CACHE, model_version


def copy_model(target: Path) -> Path:
    shutil.copytree(BUNDLED_MODEL, target, ignore=shutil.ignore_patterns("evaluation", VERSION_CACHE))
    return target


def version(folder: Path) -> str:
    return model_version(str(folder), AutoConfig.from_pretrained(folder))


def test_same_weights_in_two_folders_give_one_version(tmp_path: Path) -> None:
    first, second = copy_model(tmp_path / "a"), copy_model(tmp_path / "elsewhere" / "b")
    assert version(first) == version(second)
    assert len(version(first)) == 12


def test_a_changed_weight_of_the_same_size_gives_another_version(tmp_path: Path) -> None:
    folder = copy_model(tmp_path / "m")
    before = version(folder)
    weights = folder / "model.safetensors"
    tensors = load_file(weights)
    name = sorted(tensors)[0]
    tensors[name] = tensors[name].clone()
    tensors[name].view(-1)[0] += 1.0
    size = weights.stat().st_size
    save_file(tensors, weights, metadata={"format": "pt"})
    assert weights.stat().st_size == size
    assert version(folder) != before


def test_weight_hashes_are_cached_beside_the_model_and_reused(tmp_path: Path) -> None:
    folder = copy_model(tmp_path / "m")
    first = version(folder)
    cache = json.loads((folder / VERSION_CACHE).read_text())
    assert set(cache) == {"model.safetensors"}
    # A cache entry is trusted while size and mtime match: plant a different hash and see it used.
    cache["model.safetensors"]["sha256"] = "0" * 64
    (folder / VERSION_CACHE).write_text(json.dumps(cache))
    assert version(folder) != first
    # Touching the file invalidates the entry: the real hash comes back.
    (folder / "model.safetensors").touch()
    assert version(folder) == first
