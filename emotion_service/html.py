"""The one set of HTML templates (Jinja2, autoescaped), one stylesheet and one colour per emotion.

Session and period reports render here; the colours come from :mod:`emotion_client.colours`,
shared with the client's interview report.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

from emotion_client.colours import EMOTION_COLOURS, SEVERITY_COLOURS, label_colours

_ENVIRONMENT = Environment(
    loader=PackageLoader("emotion_service", "templates"),
    autoescape=select_autoescape(["html", "css"]),
    undefined=StrictUndefined,  # a misspelt variable fails the render instead of printing nothing
    trim_blocks=True,
    lstrip_blocks=True,
)
_ENVIRONMENT.globals.update(severity_colours=SEVERITY_COLOURS)


def render(template: str, labels: list[str], **context: Any) -> str:
    """Renders ``template`` with ``context``, ``labels`` and their colours, and the generation time."""
    colours = {**EMOTION_COLOURS, **label_colours(labels)}
    generated = datetime.now(UTC).isoformat(timespec="seconds")
    return _ENVIRONMENT.get_template(template).render(labels=labels, colours=colours, generated_at=generated, **context)
