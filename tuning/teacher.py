"""A pretrained speaker encoder as a training-time teacher: soft labels for knowledge distillation.

The ``resemblyzer`` wheel ships a GE2E voice encoder (``emotion_service.speaker_encoder``: three
LSTM layers over 40 mel power bands, trained on thousands of speakers; Apache-2.0, no download).
Frozen, its 256-d utterance embedding
holds much of what a voice sounds like, emotion included: a linear probe on it classifies RAVDESS
emotions about as well as the bundled CNN does from scratch, from a different view of the audio.
It is too slow to serve (its LSTM costs several times the CNN per clip), so it only teaches:

1. every training clip is embedded once, clean (level-normalised, so gain does not move it);
2. a linear probe gives each clip a probability per emotion, *out of fold by speaker*: the probe that
   labels a speaker's clips never saw that speaker, as a probe at serving time never would;
3. ``emotion train --teacher speaker-encoder --distillation_weight W`` mixes those soft labels into
   the loss with weight W. The student hears the augmented clip and learns what the teacher said
   of the clean one, which also teaches it to ignore the augmentation.

Nothing of the teacher reaches the model folder: serving cost and format stay the CNN's.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import structlog
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GroupKFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from emotion_service.speaker_encoder import SpeakerEncoder

log = structlog.get_logger(__name__)

PROBE_C = 0.1  # L2 strength of the probe: 256 features, a few hundred clips per fold


def soft_labels(
    embeddings: np.ndarray, label_ids: Sequence[int], speakers: Sequence[str], classes: int, folds: int = 6
) -> np.ndarray:
    """(clips, classes) probabilities of a linear probe, each clip's from a probe that never saw its speaker."""
    labels, groups = np.asarray(label_ids), np.asarray(speakers)
    splits = min(folds, len(set(speakers)))
    if splits < 2:
        raise ValueError("--teacher needs clips of at least two training speakers (its probe labels out of fold)")
    probabilities = np.zeros((len(labels), classes), dtype=np.float32)
    for train, held in GroupKFold(n_splits=splits).split(embeddings, labels, groups):
        probe = make_pipeline(StandardScaler(), LogisticRegression(C=PROBE_C, max_iter=2000))
        probe.fit(embeddings[train], labels[train])
        probabilities[np.ix_(held, probe.classes_)] = probe.predict_proba(embeddings[held])
    accuracy = float((probabilities.argmax(1) == labels).mean())
    log.info(
        "teacher", kind="speaker-encoder", clips=len(labels), folds=splits, out_of_fold_accuracy=round(accuracy, 4)
    )
    return probabilities


def speaker_encoder_soft_labels(
    waves: Sequence[np.ndarray], label_ids: Sequence[int], speakers: Sequence[str], classes: int
) -> np.ndarray:
    """The teacher's soft labels for the training clips (``--teacher speaker-encoder``)."""
    return soft_labels(SpeakerEncoder.from_wheel().embed(waves), label_ids, speakers, classes)
