"""Question segments of an interview: read from a JSON or CSV file."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any


class SegmentError(ValueError):
    """A segments file or list is unusable; the message says where and why."""


@dataclass(frozen=True)
class Segment:
    """One question of an interview: its id, the span of its answer in seconds, and optional text."""

    id: str
    start_s: float
    end_s: float
    text: str = ""

    def contains(self, time_s: float) -> bool:
        """True when ``time_s`` lies in ``[start_s, end_s)``."""
        return self.start_s <= time_s < self.end_s


def parse_time(value: Any) -> float:
    """Seconds from a number or a ``[[hh:]mm:]ss[.fff]`` string."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, str) and value.strip():
        seconds = 0.0
        try:
            for part in value.strip().split(":"):
                seconds = seconds * 60 + float(part)
        except ValueError:
            pass
        else:
            return seconds
    raise ValueError(f"not a time: {value!r} (use seconds, mm:ss or hh:mm:ss)")


def load_segments(path: str | Path) -> list[Segment]:
    """Reads question segments from a ``.json`` or ``.csv`` file.

    JSON: a list of objects, or ``{"questions": [...]}``; CSV: a header row.
    Either way each question has ``id``, ``start`` and ``end`` (seconds, or
    ``mm:ss``) and optionally ``text``. ``question_id``, ``start_s`` and
    ``end_s`` are accepted as names too.
    """
    path = Path(path)
    try:
        raw = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise SegmentError(f"cannot read segments file {path}: {exc.strerror}") from None
    if path.suffix.lower() == ".json":
        try:
            data = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise SegmentError(f"{path}: not valid JSON: {exc}") from None
        rows = data.get("questions") if isinstance(data, dict) else data
        if not isinstance(rows, list):
            raise SegmentError(f'{path}: expected a list of questions or {{"questions": [...]}}')
    elif path.suffix.lower() == ".csv":
        rows = list(csv.DictReader(raw.splitlines()))
    else:
        raise SegmentError(f"{path}: segments must be a .json or .csv file")
    return check_segments((_segment(row, f"{path}, question {i + 1}") for i, row in enumerate(rows)), str(path))


def _segment(row: Any, where: str) -> Segment:
    if not isinstance(row, Mapping):
        raise SegmentError(f"{where}: expected an object with id, start and end")
    fields = {str(k).strip().lower(): v for k, v in row.items() if k is not None}

    def pick(*names: str) -> Any:
        for name in names:
            if fields.get(name) not in (None, ""):
                return fields[name]
        raise SegmentError(f"{where}: missing {names[0]!r}")

    try:
        start, end = parse_time(pick("start", "start_s")), parse_time(pick("end", "end_s"))
    except ValueError as exc:
        raise SegmentError(f"{where}: {exc}") from None
    return Segment(str(pick("id", "question_id")).strip(), start, end, str(fields.get("text") or "").strip())


def check_segments(segments: Iterable[Segment], origin: str = "segments") -> list[Segment]:
    """The segments sorted by start; raises :class:`SegmentError` on empty, inverted, overlapping or duplicate ones."""
    ordered = sorted(segments, key=lambda s: s.start_s)
    if not ordered:
        raise SegmentError(f"{origin}: no questions")
    seen: set[str] = set()
    for seg in ordered:
        if not 0 <= seg.start_s < seg.end_s:
            raise SegmentError(
                f"{origin}: question {seg.id!r} needs 0 <= start < end, got {seg.start_s:g}..{seg.end_s:g}"
            )
        if seg.id in seen:
            raise SegmentError(f"{origin}: question id {seg.id!r} appears twice")
        seen.add(seg.id)
    for before, after in zip(ordered, ordered[1:]):
        if after.start_s < before.end_s:
            raise SegmentError(f"{origin}: questions {before.id!r} and {after.id!r} overlap")
    return ordered
