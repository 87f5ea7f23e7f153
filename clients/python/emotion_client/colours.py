"""One colour per emotion, and per alert severity, for every page and chart the project draws.

The client's interview report and the service's reports (and its web UI) all read these,
so ANG is the same red everywhere. It lives in the client distribution because the
client must not depend on the service, while the service already depends on the client.
"""

from __future__ import annotations

from collections.abc import Sequence

EMOTION_COLOURS: dict[str, str] = {
    "ANG": "#d62728",
    "DIS": "#8c8c00",
    "FEA": "#9467bd",
    "HAP": "#ff9f1c",
    "NEU": "#8c8c8c",
    "SAD": "#1f77b4",
}
# Labels outside the usual six (a fine-tuned model may have others) take these in turn.
SPARE_COLOURS: tuple[str, ...] = ("#17becf", "#e377c2", "#2ca02c", "#bcbd22", "#7f7f7f", "#8c564b")
SEVERITY_COLOURS: dict[str, str] = {"info": "#1f5f9f", "warning": "#a15c00", "critical": "#b00020"}
# Windows answered as silent: a thin light-grey line, so a pause reads as a pause, not as missing data.
SILENCE_COLOUR = "#c8c8c8"


def label_colours(labels: Sequence[str]) -> dict[str, str]:
    """A colour per label: fixed ones for the usual six, spares (in sorted order) for the rest."""
    spare = iter(SPARE_COLOURS * (len(labels) // len(SPARE_COLOURS) + 1))
    return {label: EMOTION_COLOURS.get(label) or next(spare) for label in sorted(labels)}
