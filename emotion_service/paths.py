"""Where the repository's own files are: the bundled models and the shared data beside a checkout."""

from __future__ import annotations

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
# The default model, the recipe the cross-validation chose: a frozen Whisper-base encoder and a small
# head (models/emotion-whisper-probe/README.md).
WHISPER_PROBE_MODEL = REPO_ROOT / "models" / "emotion-whisper-probe"
BUNDLED_MODEL = WHISPER_PROBE_MODEL
# The fast model: a log-mel CNN, three times the clips per second and less accurate
# (models/emotion-logmel-cnn/README.md); `emotion serve --model models/emotion-logmel-cnn`.
LOGMEL_CNN_MODEL = REPO_ROOT / "models" / "emotion-logmel-cnn"
