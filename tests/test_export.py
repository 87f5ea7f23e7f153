"""emotion export --format onnx: a graph ONNX Runtime runs with dynamic batch and length, matching PyTorch."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from emotion_service.audio import load_audio
from emotion_service.paths import LOGMEL_CNN_MODEL
from tests.conftest import recordings
from tests.plugin_helpers import emotion

pytest.importorskip("onnxruntime", reason="the 'export' extra is not installed")


def test_the_log_mel_cnn_exports_and_runs_in_onnx_runtime(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from emotion_service.tuning.export import export_onnx

    clips = [load_audio(path)[: 16000 * (2 + i % 3)] for i, path in enumerate(recordings()[:4])]
    report = export_onnx(LOGMEL_CNN_MODEL, tmp_path / "onnx", clips)
    assert report.path.is_file() and report.inputs == ("input_features", "attention_mask")
    assert (tmp_path / "onnx" / "preprocessor_config.json").is_file()
    assert report.max_logit_difference < 1e-3

    import onnxruntime
    from transformers import AutoFeatureExtractor

    import emotion_service.architectures  # noqa: F401

    extractor = AutoFeatureExtractor.from_pretrained(tmp_path / "onnx")  # features documented beside the graph
    inputs = extractor(clips, sampling_rate=16000, padding=True, return_tensors="np", return_attention_mask=True)
    session = onnxruntime.InferenceSession(str(report.path), providers=["CPUExecutionProvider"])
    logits = session.run(["logits"], {k: inputs[k] for k in report.inputs})[0]
    assert logits.shape == (4, 6) and np.isfinite(logits).all()


def test_emotion_export_command_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert emotion("export", "--format", "onnx", str(LOGMEL_CNN_MODEL), str(tmp_path / "out")) == 0
    out = capsys.readouterr().out
    assert "largest logit difference" in out and (tmp_path / "out" / "model.onnx").is_file()
    assert emotion("export", "--format", "onnx", str(tmp_path / "nowhere"), str(tmp_path / "x")) == 2
    probe = tmp_path / "probe"
    probe.mkdir()
    (probe / "config.json").write_text('{"model_type": "whisper-probe"}')
    assert emotion("export", "--format", "onnx", str(probe), str(tmp_path / "y")) == 2
    assert "cannot be exported to ONNX" in capsys.readouterr().err


def test_a_hubert_checkpoint_exports_too(tiny_model: Path, tmp_path: Path) -> None:
    from emotion_service.tuning.export import export_onnx

    clips = [load_audio(path)[: 16000 * (2 + i % 2)] for i, path in enumerate(recordings()[:3])]
    report = export_onnx(tiny_model, tmp_path / "hubert-onnx", clips)
    assert report.inputs == ("input_values", "attention_mask")
    assert report.max_logit_difference < 1e-4
