"""``emotion export --format onnx MODEL_DIR OUT_DIR``: a served model as an ONNX graph.

The graph takes what the model's feature extractor makes (``input_features`` or ``input_values``,
and ``attention_mask`` when the extractor gives one) with dynamic batch and length axes, and
returns ``logits``. Feature extraction stays outside the graph, documented beside it: the output
folder keeps the model's ``preprocessor_config.json`` and ``config.json``, so
``AutoFeatureExtractor.from_pretrained(OUT_DIR)`` makes the inputs exactly as the server does.
After export the graph is run with ONNX Runtime on real clips, alone and as one padded batch,
and the largest logit difference against PyTorch is reported.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from emotion_service.server.model import ModelBackend

ONNX_FILE = "model.onnx"
COPIED = ("config.json", "preprocessor_config.json", "README.md")


@dataclass(frozen=True)
class ExportReport:
    """What was written and how closely ONNX Runtime reproduces PyTorch."""

    path: Path
    inputs: tuple[str, ...]
    max_logit_difference: float
    clips_checked: int


class _Logits(torch.nn.Module):
    """The classifier as a function of positional tensors, returning logits only."""

    def __init__(self, model: torch.nn.Module, names: tuple[str, ...]) -> None:
        super().__init__()
        self.model = model
        self.names = names

    def forward(self, *tensors: torch.Tensor) -> torch.Tensor:
        return self.model(**dict(zip(self.names, tensors, strict=True))).logits


def export_onnx(model_dir: Path, out_dir: Path, clips: list[np.ndarray], opset: int = 18) -> ExportReport:
    """Exports ``model_dir`` to ``out_dir/model.onnx`` and checks it on ``clips`` (mono float32 at the model's rate)."""
    import onnxruntime

    backend = ModelBackend.load(str(model_dir), device="cpu", dtype="float32")
    # Clones: the server makes its features in inference mode, and tracing needs ordinary tensors.
    example = {name: tensor.clone() for name, tensor in backend.features(clips[:2]).items()}
    names = tuple(example)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / ONNX_FILE
    dynamic = {name: {0: "batch", 1: "length"} for name in names}
    with torch.no_grad():
        torch.onnx.export(
            _Logits(backend.model, names).eval(),
            tuple(example.values()),
            str(path),
            input_names=list(names),
            output_names=["logits"],
            dynamic_axes={**dynamic, "logits": {0: "batch"}},
            opset_version=opset,
            dynamo=False,
        )
    for name in COPIED:
        if (model_dir / name).exists():
            shutil.copy2(model_dir / name, out_dir / name)
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    worst = 0.0
    for group in [[clip] for clip in clips] + [clips]:
        inputs = backend.features(group)
        with torch.inference_mode():
            expected = backend.model(**inputs).logits.numpy()
        got = session.run(["logits"], {name: tensor.numpy() for name, tensor in inputs.items()})[0]
        worst = max(worst, float(np.abs(got - expected).max()))
    return ExportReport(path, names, worst, len(clips))
