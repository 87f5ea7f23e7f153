"""--dtype auto picks what the hardware runs well and falls back when scores drift; --quantize int8."""

from __future__ import annotations

import numpy as np
import pytest
import structlog
import torch

from emotion_service.paths import LOGMEL_CNN_MODEL
from emotion_service.server import model as model_module
from emotion_service.server.model import ASSUME_CPU_BF16_ENV, ModelBackend, auto_dtype


@pytest.mark.parametrize(
    ("flags", "expected"),
    [
        ({"avx2", "amx_bf16", "amx_tile"}, "bfloat16"),
        ({"avx512f", "avx512_bf16"}, "bfloat16"),
        ({"avx2", "fma"}, "float32"),
    ],
)
def test_auto_dtype_reads_the_cpu_flags(monkeypatch: pytest.MonkeyPatch, flags: set[str], expected: str) -> None:
    monkeypatch.delenv(ASSUME_CPU_BF16_ENV, raising=False)
    monkeypatch.setattr(model_module, "cpu_flags", lambda: flags)
    assert auto_dtype(torch.device("cpu")) == expected


@pytest.mark.parametrize(("assumed", "expected"), [("1", "bfloat16"), ("0", "float32")])
def test_the_switch_makes_auto_behave_as_on_a_cpu_with_or_without_bf16(
    monkeypatch: pytest.MonkeyPatch, assumed: str, expected: str
) -> None:
    monkeypatch.setenv(ASSUME_CPU_BF16_ENV, assumed)
    for flags in ({"avx2"}, {"avx512f", "avx512_bf16", "amx_bf16"}):  # whatever the CPU says
        monkeypatch.setattr(model_module, "cpu_flags", lambda flags=flags: flags)
        assert auto_dtype(torch.device("cpu")) == expected
    served = ModelBackend.load(str(LOGMEL_CNN_MODEL), dtype="auto", torch_threads=1)
    assert served.info.dtype == expected  # the bundled model's scores agree in bf16: auto keeps it


def test_a_bad_switch_value_is_refused_naming_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ASSUME_CPU_BF16_ENV, "yes")
    with pytest.raises(ValueError, match="EMOTION_ASSUME_CPU_BF16='yes'"):
        auto_dtype(torch.device("cpu"))


def test_this_machines_flags_are_read() -> None:
    flags = model_module.cpu_flags()
    assert "sse2" in flags or not flags  # x86 Linux lists sse2; other platforms read nothing


def test_auto_keeps_bf16_when_scores_agree_and_falls_back_when_they_drift(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(model_module, "auto_dtype", lambda device: "bfloat16")
    kept = ModelBackend.load(str(LOGMEL_CNN_MODEL), dtype="auto", torch_threads=1)
    assert kept.info.dtype == "bfloat16" and next(kept.model.parameters()).dtype == torch.bfloat16
    monkeypatch.setattr(model_module, "DTYPE_TOLERANCE", 0.0)  # no drift allowed: bf16 must give way
    with structlog.testing.capture_logs() as logs:
        fallen = ModelBackend.load(str(LOGMEL_CNN_MODEL), dtype="auto", torch_threads=1)
    assert fallen.info.dtype == "float32" and next(fallen.model.parameters()).dtype == torch.float32
    assert any(e["event"] == "dtype_fallback" and e["tried"] == "bfloat16" for e in logs)
    clip = [np.random.default_rng(0).standard_normal(32000).astype(np.float32) * 0.1]
    reference = ModelBackend.load(str(LOGMEL_CNN_MODEL), dtype="float32", torch_threads=1)
    np.testing.assert_allclose(fallen.predict(clip), reference.predict(clip), atol=1e-6)


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_an_explicit_dtype_is_used_as_asked_whatever_the_cpu(monkeypatch: pytest.MonkeyPatch, dtype: str) -> None:
    clips = [np.random.default_rng(i).standard_normal(32000).astype(np.float32) * 0.1 for i in range(3)]
    reference = ModelBackend.load(str(LOGMEL_CNN_MODEL), dtype="float32", torch_threads=1).predict(clips)
    for assumed in ("0", "1"):
        monkeypatch.setenv(ASSUME_CPU_BF16_ENV, assumed)
        backend = ModelBackend.load(str(LOGMEL_CNN_MODEL), dtype=dtype, torch_threads=1)
        assert backend.info.dtype == dtype and next(backend.model.parameters()).dtype == getattr(torch, dtype)
        # Both paths answer, and bf16 stays within the tolerance dtype=auto allows.
        assert np.abs(backend.predict(clips) - reference).max() <= model_module.DTYPE_TOLERANCE


def test_int8_quantisation_is_reported_and_stays_close() -> None:
    clips = [np.random.default_rng(i).standard_normal(32000).astype(np.float32) * 0.1 for i in range(4)]
    reference = ModelBackend.load(str(LOGMEL_CNN_MODEL), dtype="float32", torch_threads=1)
    quantised = ModelBackend.load(str(LOGMEL_CNN_MODEL), dtype="float32", torch_threads=1, quantize="int8")
    assert quantised.info.dtype == "float32+int8-linear"
    assert any(type(m).__module__.startswith("torch.ao.nn.quantized") for m in quantised.model.modules())
    assert np.abs(quantised.predict(clips) - reference.predict(clips)).max() < 0.05
