"""`emotion evaluate`: metrics JSON and plots for a served model, scored as the server scores."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from emotion_service.audio import load_audio
from emotion_service.server.model import ModelBackend
from emotion_service.tuning.datasets import load_manifest_csv
from emotion_service.tuning.evaluate import roc_one_vs_rest, score_examples
from emotion_service.tuning.metrics import compute_metrics
from tests.conftest import LABELS
from tests.plugin_helpers import emotion
from tests.tuning_helpers import write_manifest


def test_evaluate_writes_metrics_and_plots(
    tiny_model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    output = tmp_path / "eval"
    assert (
        emotion("evaluate", str(tiny_model), str(write_manifest(tmp_path)), "--dataset", "csv", "--output", str(output))
        == 0
    )
    metrics = json.loads((output / "metrics.json").read_text())
    assert metrics["n"] == 12 and set(metrics["per_class"]) == set(LABELS)
    assert {"accuracy", "uar", "macro_f1", "confusion_matrix"} <= set(metrics)
    assert set(metrics["roc_auc"]["per_class"]) == set(LABELS) and 0 <= metrics["roc_auc"]["macro"] <= 1
    for plot in ("confusion.png", "roc.png"):
        assert (output / plot).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert json.loads(capsys.readouterr().out)["n"] == 12


def test_uar_is_the_mean_recall_over_the_classes_the_truth_holds() -> None:
    # "c" is predicted but never true: it has no recall to average, while macro-F1 counts it as 0.
    metrics = compute_metrics(["a", "a", "b", "b"], ["a", "c", "b", "b"], ["a", "b", "c"])
    assert metrics["uar"] == pytest.approx((0.5 + 1.0) / 2)
    assert metrics["accuracy"] == pytest.approx(0.75)
    assert metrics["macro_f1"] == pytest.approx((2 / 3 + 1.0 + 0.0) / 3)
    with pytest.raises(ValueError, match=r"\['z'\]"):  # never recalled, it must not drop out unseen
        compute_metrics(["a", "b", "z", "z"], ["a", "b", "a", "b"], ["a", "b", "c"])


def test_speaker_filter_and_empty_selection(
    tiny_model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    manifest = str(write_manifest(tmp_path))
    assert (
        emotion(
            *[
                "evaluate",
                str(tiny_model),
                manifest,
                "--dataset",
                "csv",
                "--speakers",
                "s1",
                "--output",
                str(tmp_path / "e"),
            ]
        )
        == 0
    )
    assert json.loads(capsys.readouterr().out)["n"] == 3
    assert emotion("evaluate", str(tiny_model), manifest, "--dataset", "csv", "--speakers", "nobody") == 2
    assert "no examples" in capsys.readouterr().err


def test_scores_match_the_server_backend(tiny_model: Path, tmp_path: Path) -> None:
    examples = load_manifest_csv(write_manifest(tmp_path))[:2]
    labels, probabilities = score_examples(str(tiny_model), examples, device="cpu")
    backend = ModelBackend.load(str(tiny_model), device="cpu")
    assert tuple(labels) == LABELS
    np.testing.assert_allclose(probabilities[1], backend.predict([load_audio(examples[1].path)])[0], rtol=1e-5)


def test_roc_skips_a_class_without_positives() -> None:
    probabilities = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4]])
    curves = roc_one_vs_rest(["A", "B", "A"], probabilities, ["A", "B"])
    assert curves["A"]["auc"] == 1.0
    assert roc_one_vs_rest(["A", "A"], probabilities[:2], ["A", "B"]) == {"A": None, "B": None}


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_evaluate_scores_in_the_dtype_asked_and_records_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], dtype: str
) -> None:
    """`--dtype` is honoured whatever the CPU, and every metrics.json says what it was scored in."""
    from emotion_service.paths import BUNDLED_MODEL

    manifest = str(write_manifest(tmp_path))
    output = tmp_path / dtype
    args = ["evaluate", str(BUNDLED_MODEL), manifest, "--dataset", "csv", "--dtype", dtype, "--output", str(output)]
    assert emotion(*args) == 0
    assert json.loads((output / "metrics.json").read_text())["dtype"] == dtype
    assert json.loads(capsys.readouterr().out)["dtype"] == dtype
    assert emotion(*args, "--conditions", "level-20dB") == 0
    assert json.loads((output / "conditions" / "level-20dB" / "metrics.json").read_text())["dtype"] == dtype
