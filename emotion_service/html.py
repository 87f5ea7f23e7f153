"""The one set of HTML templates (Jinja2, autoescaped), one stylesheet and one colour per emotion.

Session and period reports render here; the colours come from :mod:`emotion_client.colours`,
shared with the client's interview report. A chip's text is dark or white, whichever reads better
on its colour (WCAG contrast), so the palette stays the same everywhere.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

from emotion_client.colours import EMOTION_COLOURS, SEVERITY_COLOURS, label_colours

# What the codes stand for: shown in legends and as the chips' titles.
EMOTION_NAMES: dict[str, str] = {
    "ANG": "anger",
    "DIS": "disgust",
    "FEA": "fear",
    "HAP": "happiness",
    "NEU": "neutral",
    "SAD": "sadness",
}
DARK_TEXT = "#000000"
LIGHT_TEXT = "#ffffff"
# A small icon inlined in every page (the browser asks for one otherwise, and logs the 404).
FAVICON_SVG = (
    '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 16 16"><circle cx="8" cy="8" r="7" fill="#1f5f9f"/>'
    '<path d="M3 9h2l1.5-4 3 7 1.5-3h2" fill="none" stroke="#fff" stroke-width="1.5"/></svg>'
)
FAVICON_URI = "data:image/svg+xml," + quote(FAVICON_SVG)


def _luminance(colour: str) -> float:
    """WCAG relative luminance of ``#rrggbb``."""
    channels = [int(colour.lstrip("#")[i : i + 2], 16) / 255 for i in (0, 2, 4)]
    linear = [c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
    return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]


def contrast(a: str, b: str) -> float:
    """WCAG contrast ratio of two ``#rrggbb`` colours (1 to 21)."""
    la, lb = sorted((_luminance(a), _luminance(b)), reverse=True)
    return (la + 0.05) / (lb + 0.05)


def text_colour(background: str) -> str:
    """Dark or white text, whichever contrasts more with ``background`` (always at least 4.5:1)."""
    return max((DARK_TEXT, LIGHT_TEXT), key=lambda text: contrast(text, background))


def id_url(value: str) -> str:
    """A session id as one URL path segment: every reserved character encoded ("/" included)."""
    return quote(str(value), safe="")


_ENVIRONMENT = Environment(
    loader=PackageLoader("emotion_service", "templates"),
    autoescape=select_autoescape(["html", "css"]),
    undefined=StrictUndefined,  # a misspelt variable fails the render instead of printing nothing
    trim_blocks=True,
    lstrip_blocks=True,
)
_ENVIRONMENT.globals.update(severity_colours=SEVERITY_COLOURS, emotion_names=EMOTION_NAMES, favicon=FAVICON_URI)
_ENVIRONMENT.filters["id_url"] = id_url


def render(template: str, labels: list[str], **context: Any) -> str:
    """Renders ``template`` with ``context``, ``labels`` and their colours, and the generation time."""
    colours = {**EMOTION_COLOURS, **label_colours(labels)}
    chip_text = {label: text_colour(colour) for label, colour in colours.items()}
    generated = datetime.now(UTC).isoformat(timespec="seconds")
    return _ENVIRONMENT.get_template(template).render(
        labels=labels, colours=colours, chip_text=chip_text, generated_at=generated, **context
    )
