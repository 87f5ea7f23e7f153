"""`logmel-cnn-ensemble`: seeds of one recipe in one folder, built by tuning/ensemble.py, served as any model."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from emotion_service.audio import load_audio
from emotion_service.server.model import ModelBackend
from emotion_service.tuning.ensemble import build_ensemble, main
from emotion_service.tuning.finetune import ModelArguments, build_model
from tests.conftest import LABELS, recordings
from tests.tuning_helpers import TINY_CNN

ROBUST = json.dumps({"voiced_threshold_db": 35, "normalize_level": True, "energy_floor_db": 50})


def _member(folder: Path, seed: int, config: str = TINY_CNN, features: str = ROBUST) -> Path:
    torch.manual_seed(seed)
    model, extractor = build_model(
        ModelArguments(
            from_scratch=True, architecture="logmel-cnn", config_overrides=config, feature_overrides=features
        ),
        LABELS,
    )
    # Trained-looking batch-norm statistics, different per member, so the test sees their use.
    for module in model.modules():
        if isinstance(module, (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d)):
            module.running_mean.normal_(0, 0.5)
            module.running_var.uniform_(0.5, 2.0)
    model.save_pretrained(folder)
    extractor.save_pretrained(folder)
    return folder


def test_the_ensemble_serves_the_mean_of_its_members_logits(tmp_path: Path) -> None:
    members = [_member(tmp_path / f"seed-{seed}", seed) for seed in range(3)]
    folder = build_ensemble(members, tmp_path / "ensemble")
    clips = [load_audio(path) for path in recordings()[:3]]
    clips[1] = clips[1][:20000]  # mixed lengths in one batch

    served = ModelBackend.load(str(folder), device="cpu", dtype="float32")
    assert served.info.architecture == "LogMelCNNEnsembleForAudioClassification"
    assert list(served.info.labels) == list(LABELS)
    logits = []
    for member in members:
        backend = ModelBackend.load(str(member), device="cpu", dtype="float32")
        features = backend.feature_extractor.torch_features(clips, torch.device("cpu"))
        with torch.inference_mode():
            logits.append(backend.model(**features).logits)
    expected = torch.stack(logits).mean(0).softmax(-1).numpy()
    np.testing.assert_allclose(served.predict(clips), expected, atol=1e-5)
    assert "Member 2" in (folder / "README.md").read_text()


def test_members_that_differ_are_refused_naming_the_folder(tmp_path: Path) -> None:
    first = _member(tmp_path / "a", 0)
    wider = _member(tmp_path / "b", 1, config=json.dumps({"channels": [8, 32]}))
    other_front_end = _member(tmp_path / "c", 2, features=json.dumps({"voiced_threshold_db": 30}))
    with pytest.raises(ValueError, match="b differs"):
        build_ensemble([first, wider], tmp_path / "out")
    with pytest.raises(ValueError, match="c computes other features"):
        build_ensemble([first, other_front_end], tmp_path / "out")
    with pytest.raises(SystemExit, match="error: an ensemble needs at least two model folders"):
        main([str(first), "--output", str(tmp_path / "out")])
