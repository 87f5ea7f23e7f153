"""A pretrained speaker encoder as a training-time teacher: soft labels for knowledge distillation.

The ``resemblyzer`` wheel ships a GE2E voice encoder (three LSTM layers over 40 mel power bands,
trained on thousands of speakers; Apache-2.0, no download). Frozen, its 256-d utterance embedding
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

import importlib.util
from collections.abc import Sequence
from pathlib import Path

import librosa
import numpy as np
import structlog
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GroupKFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from torch import nn

log = structlog.get_logger(__name__)

RATE = 16_000
# resemblyzer's hyperparameters (its hparams.py): 25 ms windows every 10 ms, 40 mel bands,
# partial utterances of 160 frames; its own preprocessing normalises to -30 dBFS.
WINDOW, HOP, MELS, PARTIAL = 400, 160, 40, 160
TARGET_DBFS = -30.0
PROBE_C = 0.1  # L2 strength of the probe: 256 features, a few hundred clips per fold


def encoder_weights() -> Path:
    """The pretrained weights inside the installed ``resemblyzer`` wheel (found without importing it)."""
    spec = importlib.util.find_spec("resemblyzer")
    if spec is None or not spec.submodule_search_locations:
        raise ValueError("--teacher speaker-encoder needs the resemblyzer wheel: pip install resemblyzer")
    return Path(next(iter(spec.submodule_search_locations))) / "pretrained.pt"


class SpeakerEncoder(nn.Module):
    """resemblyzer's ``VoiceEncoder`` network: LSTM, linear, ReLU, L2 norm of the mean over partials."""

    def __init__(self) -> None:
        super().__init__()
        self.lstm = nn.LSTM(MELS, 256, 3, batch_first=True)
        self.linear = nn.Linear(256, 256)
        self.register_buffer("mel", torch.from_numpy(librosa.filters.mel(sr=RATE, n_fft=WINDOW, n_mels=MELS)))
        self.register_buffer("window", torch.hann_window(WINDOW))

    @classmethod
    def from_wheel(cls) -> SpeakerEncoder:
        encoder = cls()
        state = torch.load(encoder_weights(), map_location="cpu", weights_only=True)["model_state"]
        # The checkpoint also holds GE2E's similarity scale and bias, which only training used.
        encoder.load_state_dict({k: v for k, v in state.items() if k.startswith(("lstm.", "linear."))}, strict=False)
        return encoder.eval()

    def _partials(self, wave: np.ndarray) -> torch.Tensor:
        """(partials, 160, 40) mel power frames, 50 % overlap, of the clip at -30 dBFS."""
        rms = float(np.sqrt(np.mean(np.square(wave, dtype=np.float64)))) if len(wave) else 0.0
        samples = torch.from_numpy(np.asarray(wave, dtype=np.float32) * (10 ** (TARGET_DBFS / 20) / max(rms, 1e-6)))
        spectrum = torch.stft(samples, WINDOW, HOP, window=self.window, center=True, pad_mode="constant",
                              return_complex=True)  # fmt: skip
        frames = (self.mel @ spectrum.abs().pow(2)).T  # (frames, 40), as librosa.feature.melspectrogram
        if len(frames) < PARTIAL:
            frames = nn.functional.pad(frames, (0, 0, 0, PARTIAL - len(frames)))
        return frames.unfold(0, PARTIAL, PARTIAL // 2).transpose(1, 2)

    @torch.inference_mode()
    def embed(self, waves: Sequence[np.ndarray], batch_size: int = 64) -> np.ndarray:
        """(clips, 256) utterance embeddings of 16 kHz mono clips."""
        partials = [self._partials(wave) for wave in waves]
        stacked = torch.cat(partials)
        outputs = []
        for start in range(0, len(stacked), batch_size):
            _, (hidden, _) = self.lstm(stacked[start : start + batch_size])
            outputs.append(torch.relu(self.linear(hidden[-1])))
        embeddings = nn.functional.normalize(torch.cat(outputs), dim=1)
        per_clip = torch.split(embeddings, [len(p) for p in partials])
        return torch.stack([nn.functional.normalize(p.mean(0), dim=0) for p in per_clip]).numpy()


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
