"""Classification metrics for emotion recognition, computed with scikit-learn."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from sklearn.metrics import (
    accuracy_score,
    confusion_matrix,
    f1_score,
    precision_recall_fscore_support,
)


def compute_metrics(y_true: Sequence[str], y_pred: Sequence[str], labels: Sequence[str]) -> dict[str, Any]:
    """Accuracy, UAR (macro recall), macro-F1, per-class precision/recall/F1 and the confusion matrix.

    The confusion matrix has true labels as rows and predictions as columns, in `labels` order.
    Every true label must be one of `labels` (a ValueError names those that are not): a class left
    out would drop out of the UAR unseen.
    """
    labels = list(labels)
    if unknown := sorted(set(y_true) - set(labels)):
        raise ValueError(f"true labels {unknown} are not among the labels scored ({labels})")
    precision, recall, f1, support = precision_recall_fscore_support(y_true, y_pred, labels=labels, zero_division=0)
    return {
        "n": len(y_true),
        "accuracy": float(accuracy_score(y_true, y_pred)),
        # The unweighted average recall, over the classes the truth holds (scikit-learn's balanced
        # accuracy, without its warning when a small set lacks a class the model predicts).
        "uar": float(np.mean(recall[support > 0])),
        "macro_f1": float(f1_score(y_true, y_pred, labels=labels, average="macro", zero_division=0)),
        "per_class": {
            label: {
                "precision": float(precision[i]),
                "recall": float(recall[i]),
                "f1": float(f1[i]),
                "support": int(support[i]),
            }
            for i, label in enumerate(labels)
        },
        "labels": labels,
        "confusion_matrix": confusion_matrix(y_true, y_pred, labels=labels).tolist(),
    }
