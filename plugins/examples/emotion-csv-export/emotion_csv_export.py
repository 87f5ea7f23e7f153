"""Example third-party plugin: writes each finished stream's windows to ``<dir>/<session>.csv``.

A plugin is any importable module (or class) with functions marked by the
``emotion`` hook marker; this package registers itself under the entry-point
group ``emotion.plugins`` in its ``pyproject.toml``, and the service finds it
once it is installed. ``EMOTION_CSV_EXPORT_DIR`` names the folder (default
``emotion-csv``).
"""

from __future__ import annotations

import csv
import os
import re
from pathlib import Path
from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    from emotion_service.plugins.types import SessionSummary

# The same marker as ``from emotion_service.plugins import hookimpl``, without depending on the service.
hookimpl = pluggy.HookimplMarker("emotion")


def _path(session_id: str) -> Path:
    folder = Path(os.environ.get("EMOTION_CSV_EXPORT_DIR") or "emotion-csv")
    return folder / (re.sub(r"[^A-Za-z0-9._-]", "_", session_id) + ".csv")


@hookimpl
def on_session_end(summary: SessionSummary) -> list[str]:
    """Writes one row per window: index, start, end, label, no_speech, then each emotion's score.

    A window without speech (``no_speech``) has an empty label and no scores: its cells stay empty.
    """
    path = _path(summary.session_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    labels = sorted(summary.mean_scores)
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["index", "start_s", "end_s", "label", "no_speech", *labels])
        for r in summary.results:
            quiet = getattr(r, "no_speech", False)  # a service older than its speech detector has no such field
            scores = ["" if quiet else f"{r.scores[k]:.4f}" for k in labels]
            writer.writerow([r.index, f"{r.start_s:.3f}", f"{r.end_s:.3f}", r.label, str(quiet).lower(), *scores])
    return [str(path)]


@hookimpl
def on_erase(session_id: str, requested_by: str) -> list[str] | None:
    """A plugin that writes anything about a session must remove it when the session is erased."""
    path = _path(session_id)
    if not path.exists():
        return None
    path.unlink()
    return [f"emotion-csv-export: {path.name}"]
