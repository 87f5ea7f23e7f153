"""Scores a served model on a labelled corpus: metrics as JSON, confusion matrix and ROC curves as PNG."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # headless: files only, no display

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import structlog  # noqa: E402
from sklearn.metrics import ConfusionMatrixDisplay, roc_auc_score, roc_curve  # noqa: E402
from tqdm import tqdm  # noqa: E402

from emotion_service.audio import load_audio  # noqa: E402
from emotion_service.tuning.datasets import Example  # noqa: E402
from emotion_service.tuning.metrics import compute_metrics  # noqa: E402

log = structlog.get_logger(__name__)


def score_examples(
    model: str, examples: Sequence[Example], device: str = "auto", torch_threads: int = 0
) -> tuple[list[str], np.ndarray]:
    """Label names and (clips, labels) probabilities, each clip scored on its own as a Classify request is.

    Loads the model with the server's ModelBackend and runs the same ``preprocess`` plugins
    (selected by EMOTION_PLUGINS) with stage "serve", so the figures are the service's own.
    """
    from emotion_service.plugins.manager import load_plugins
    from emotion_service.server.model import ModelBackend

    backend = ModelBackend.load(model, device=device, torch_threads=torch_threads)
    plugins = load_plugins()
    rate = backend.info.sample_rate
    probabilities = []
    for example in tqdm(examples, desc="evaluate", unit="clip"):
        wave = plugins.preprocess(load_audio(example.path, rate), rate, {"stage": "serve"})
        probabilities.append(backend.predict([wave])[0])
    return list(backend.info.labels), np.stack(probabilities)


def roc_one_vs_rest(y_true: Sequence[str], probabilities: np.ndarray, labels: Sequence[str]) -> dict[str, Any]:
    """Per-class one-vs-rest ROC curves and AUCs; a class with no positives (or no negatives) has none."""
    truth = np.asarray(y_true)
    curves: dict[str, Any] = {}
    for i, label in enumerate(labels):
        positives = truth == label
        if positives.all() or not positives.any():
            curves[label] = None
            continue
        fpr, tpr, _ = roc_curve(positives, probabilities[:, i])
        curves[label] = {
            "auc": float(roc_auc_score(positives, probabilities[:, i])),
            "fpr": fpr.tolist(),
            "tpr": tpr.tolist(),
        }
    return curves


def evaluate(
    model: str, examples: Sequence[Example], output: Path, device: str = "auto", torch_threads: int = 0
) -> dict[str, Any]:
    """Scores `examples`, writes metrics.json, confusion.png and roc.png into `output`, returns the metrics."""
    if not examples:
        raise ValueError("no examples to evaluate (check the dataset, its labels and --speakers)")
    labels, probabilities = score_examples(model, examples, device, torch_threads)
    foreign = {example.label for example in examples} - set(labels)
    if foreign:
        raise ValueError(
            f"labels {', '.join(sorted(foreign))} are not the model's ({', '.join(labels)}): map or skip them first"
        )
    y_true = [example.label for example in examples]
    y_pred = [labels[i] for i in probabilities.argmax(axis=1)]
    metrics = compute_metrics(y_true, y_pred, labels)
    curves = roc_one_vs_rest(y_true, probabilities, labels)
    aucs = {label: curve["auc"] for label, curve in curves.items() if curve is not None}
    metrics["roc_auc"] = {"per_class": aucs, "macro": float(np.mean(list(aucs.values()))) if aucs else None}
    metrics["model"] = model
    output.mkdir(parents=True, exist_ok=True)
    (output / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    _plot_confusion(np.asarray(metrics["confusion_matrix"]), labels, output / "confusion.png")
    _plot_roc(curves, output / "roc.png")
    log.info(
        "evaluated", model=model, n=metrics["n"], accuracy=metrics["accuracy"], uar=metrics["uar"], output=str(output)
    )
    return metrics


def _plot_confusion(matrix: np.ndarray, labels: Sequence[str], path: Path) -> None:
    figure, axes = plt.subplots(figsize=(6, 5))
    ConfusionMatrixDisplay(matrix, display_labels=list(labels)).plot(ax=axes, colorbar=False, cmap="Blues")
    axes.set_title("confusion matrix (rows: true, columns: predicted)")
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def _plot_roc(curves: dict[str, Any], path: Path) -> None:
    figure, axes = plt.subplots(figsize=(6, 5))
    for label, curve in curves.items():
        if curve is not None:
            axes.plot(curve["fpr"], curve["tpr"], label=f"{label} (AUC {curve['auc']:.2f})")
    axes.plot([0, 1], [0, 1], linestyle="--", color="grey", linewidth=1)
    axes.set(xlabel="false positive rate", ylabel="true positive rate", title="one-vs-rest ROC")
    axes.legend(loc="lower right")
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
