"""resemblyzer's pretrained GE2E speaker encoder, read from its wheel: one 256-d embedding per clip.

The ``resemblyzer`` wheel ships a GE2E voice encoder (three LSTM layers over 40 mel power bands,
trained on thousands of speakers; Apache-2.0, no download). It is rebuilt here in torch and loads
the wheel's weights without importing resemblyzer (whose webrtcvad dependency is a C build).
Used by training (``tuning/teacher.py``, a distillation teacher) and by jobs (diarization).
"""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from pathlib import Path

import librosa
import numpy as np
import torch
from torch import nn

RATE = 16_000
# resemblyzer's hyperparameters (its hparams.py): 25 ms windows every 10 ms, 40 mel bands,
# partial utterances of 160 frames; its own preprocessing normalises to -30 dBFS.
WINDOW, HOP, MELS, PARTIAL = 400, 160, 40, 160
TARGET_DBFS = -30.0


def encoder_weights() -> Path:
    """The pretrained weights inside the installed ``resemblyzer`` wheel (found without importing it)."""
    spec = importlib.util.find_spec("resemblyzer")
    if spec is None or not spec.submodule_search_locations:
        raise ValueError(
            "the speaker encoder (--teacher speaker-encoder, --diarize) needs the resemblyzer wheel: "
            "pip install --no-deps resemblyzer==0.1.4"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / "pretrained.pt"
    if not path.is_file():
        raise ValueError(f"{path} is missing from the installed resemblyzer wheel: pip install --no-deps "
                         "--force-reinstall resemblyzer==0.1.4")  # fmt: skip
    return path


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
