"""Where the repository's own files are: the bundled model and the shared data beside a checkout."""

from __future__ import annotations

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
BUNDLED_MODEL = REPO_ROOT / "models" / "emotion-logmel-cnn"
