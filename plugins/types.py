"""The values that travel through the hooks."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np


@dataclass(frozen=True)
class Alert:
    """An event for people: a threshold crossed, an unusual stretch, ...

    Mirrors ``emotion.v1.Alert``.
    """

    kind: str
    message: str
    label: str = ""
    severity: Literal["info", "warning", "critical"] = "warning"
    value: float = 0.0
    time_s: float = 0.0
    source: str = ""
    details: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Result:
    """One classified unit: a whole ``Classify`` recording or one stream window.

    ``audio`` is the audio the model scored (mono float32 at ``sample_rate``,
    after the ``preprocess`` hooks), or None (e.g. results read back from the
    store). Plugins must not persist it unless the operator asked: the ``store``
    plugin keeps it only with ``retain_audio`` on, and then encrypted.
    """

    session_id: str
    request_id: str
    kind: Literal["classify", "window"]
    label: str
    scores: dict[str, float]
    start_s: float
    end_s: float
    index: int = 0
    model_name: str = ""
    metadata: dict[str, str] = field(default_factory=dict)
    audio: np.ndarray | None = field(default=None, repr=False, compare=False)
    sample_rate: int = field(default=0, repr=False, compare=False)


@dataclass(frozen=True)
class SessionSummary:
    """What a finished stream amounted to."""

    session_id: str
    window_count: int
    duration_s: float
    dominant_label: str
    shares: dict[str, float]
    mean_scores: dict[str, float]
    results: tuple[Result, ...]
    alerts: tuple[Alert, ...]
    metadata: dict[str, str] = field(default_factory=dict)
    model_name: str = ""
