"""Where the repository's own files are: the bundled models and the shared data beside a checkout."""

from __future__ import annotations

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
# The default model: a log-mel CNN (models/emotion-logmel-cnn/README.md).
BUNDLED_MODEL = REPO_ROOT / "models" / "emotion-logmel-cnn"
LOGMEL_CNN_MODEL = BUNDLED_MODEL  # by name, where a test or tool needs the CNN itself
# The accurate model for English speech: a frozen Whisper-base encoder and a small head
# (models/emotion-whisper-probe/README.md); `emotion serve --model models/emotion-whisper-probe`.
WHISPER_PROBE_MODEL = REPO_ROOT / "models" / "emotion-whisper-probe"
