"""Scores a served model on a labelled corpus: metrics as JSON, confusion matrix and ROC curves as PNG."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
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
from emotion_service.tuning.conditions import Condition  # noqa: E402
from emotion_service.tuning.datasets import Example  # noqa: E402
from emotion_service.tuning.metrics import compute_metrics  # noqa: E402

log = structlog.get_logger(__name__)


def score_examples(
    model: str, examples: Sequence[Example], device: str = "auto", torch_threads: int = 0, dtype: str = "auto"
) -> tuple[list[str], np.ndarray]:
    """Label names and (clips, labels) probabilities, each clip scored on its own as a Classify request is.

    Loads the model with the server's ModelBackend and runs the same ``preprocess`` plugins
    (selected by EMOTION_PLUGINS) with stage "serve", so the figures are the service's own.
    """
    scorer = _Scorer(model, device, torch_threads, dtype)
    return scorer.labels, scorer.score_examples(examples)


class _Scorer:
    """The server's backend and preprocess plugins, scoring clips one by one as Classify does."""

    def __init__(self, model: str, device: str, torch_threads: int, dtype: str = "auto") -> None:
        from emotion_service.plugins.manager import load_plugins
        from emotion_service.server.model import ModelBackend

        self.backend = ModelBackend.load(model, device=device, dtype=dtype, torch_threads=torch_threads)
        # What the figures were scored in: dtype=auto differs between CPUs (bf16 where it runs well).
        self.dtype = self.backend.info.dtype
        self.plugins = load_plugins()
        self.rate = self.backend.info.sample_rate
        self.labels = list(self.backend.info.labels)

    def score_examples(self, examples: Sequence[Example]) -> np.ndarray:
        # Decoded one at a time: a large corpus is never held in memory whole.
        return self.score((load_audio(example.path, self.rate) for example in examples), "evaluate", len(examples))

    def score(self, waves: Iterable[np.ndarray], desc: str, total: int) -> np.ndarray:
        rows = []
        for wave in tqdm(waves, desc=desc, unit="clip", total=total, leave=False):
            rows.append(self.backend.predict([self.plugins.preprocess(wave, self.rate, {"stage": "serve"})])[0])
        return np.stack(rows)


def evaluate_conditions(
    model: str,
    examples: Sequence[Example],
    output: Path,
    conditions: Sequence[Condition],
    device: str = "auto",
    torch_threads: int = 0,
    dtype: str = "auto",
) -> list[dict[str, Any]]:
    """Scores the examples under each condition; writes ``conditions/<name>/metrics.json``, a summary
    (``conditions.json``, ``conditions.md``) and ``accuracy_vs_snr.png`` into ``output``."""
    scorer = _Scorer(model, device, torch_threads, dtype)
    clean = [load_audio(example.path, scorer.rate) for example in examples]
    y_true = [example.label for example in examples]
    rows = []
    for condition in tqdm(conditions, desc="conditions", unit="condition"):
        waves = [condition.apply(wave, index) for index, wave in enumerate(clean)]
        probabilities = scorer.score(waves, condition.name, len(waves))
        metrics = compute_metrics(y_true, [scorer.labels[i] for i in probabilities.argmax(axis=1)], scorer.labels)
        metrics.update(
            condition=condition.name, family=condition.family, snr_db=condition.snr_db, model=model, dtype=scorer.dtype
        )
        folder = output / "conditions" / condition.name
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
        rows.append(
            {key: metrics[key] for key in ("condition", "family", "snr_db", "n", "accuracy", "uar", "macro_f1")}
        )
        log.info("condition_evaluated", condition=condition.name, accuracy=metrics["accuracy"], uar=metrics["uar"])
    (output / "conditions.json").write_text(json.dumps(rows, indent=2) + "\n")
    (output / "conditions.md").write_text(conditions_table(rows))
    _plot_snr(rows, output / "accuracy_vs_snr.png")
    return rows


def conditions_table(rows: Sequence[dict[str, Any]]) -> str:
    """The per-condition figures as a Markdown table."""
    lines = ["| condition | accuracy | UAR | macro-F1 |", "| --- | --- | --- | --- |"]
    lines += [f"| {r['condition']} | {r['accuracy']:.1%} | {r['uar']:.1%} | {r['macro_f1']:.1%} |" for r in rows]
    return "\n".join(lines) + "\n"


def _plot_snr(rows: Sequence[dict[str, Any]], path: Path) -> None:
    figure, axes = plt.subplots(figsize=(6, 4))
    clean = next((r["accuracy"] for r in rows if r["family"] == "clean"), None)
    families = sorted({r["family"] for r in rows if r["snr_db"] is not None})
    for family in families:
        points = sorted((r["snr_db"], r["accuracy"]) for r in rows if r["family"] == family)
        axes.plot([p[0] for p in points], [p[1] * 100 for p in points], marker="o", label=family)
    if clean is not None:
        axes.axhline(clean * 100, color="grey", linestyle="--", linewidth=1, label="clean")
    axes.set(xlabel="signal-to-noise ratio (dB)", ylabel="accuracy (%)", title="accuracy against SNR")
    if families:
        axes.legend(fontsize=8)
    else:  # say so, rather than hand a reader an SNR axis with nothing along it
        axes.text(0.5, 0.5, "no condition with an SNR was evaluated", ha="center", transform=axes.transAxes)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


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
    model: str,
    examples: Sequence[Example],
    output: Path,
    device: str = "auto",
    torch_threads: int = 0,
    dtype: str = "auto",
) -> dict[str, Any]:
    """Scores `examples`, writes metrics.json, confusion.png and roc.png into `output`, returns the metrics."""
    if not examples:
        raise ValueError("no examples to evaluate (check the dataset, its labels and --speakers)")
    scorer = _Scorer(model, device, torch_threads, dtype)
    labels, probabilities = scorer.labels, scorer.score_examples(examples)
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
    metrics["dtype"] = scorer.dtype
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
