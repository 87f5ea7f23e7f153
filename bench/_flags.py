"""What the benches' flags share: argparse types that refuse a value the bench cannot run with, so a
bad flag fails at once naming itself ("argument --callers: 0: give a whole number of 1 or more")
instead of deep inside a run, or as a run that measures nothing."""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable


def whole_number(least: int, most: int | None = None) -> Callable[[str], int]:
    """The argparse type of a whole number from ``least`` (to ``most``)."""
    wanted = f"a whole number of {least} or more" if most is None else f"a whole number from {least} to {most}"

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = None
        if value is None or value < least or (most is not None and value > most):
            raise argparse.ArgumentTypeError(f"{text}: give {wanted}")
        return value

    return parse


def floats(text: str) -> tuple[float, ...]:
    """The argparse type of a comma-separated list of numbers ('' is none)."""
    try:
        return tuple(float(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: give numbers separated by commas, e.g. 0.9,1.1") from None


def whole_numbers(least: int) -> Callable[[str], tuple[int, ...]]:
    """The argparse type of comma-separated whole numbers of ``least`` or more, e.g. 1,2."""
    one = whole_number(least)

    def parse(text: str) -> tuple[int, ...]:
        values = tuple(one(part) for part in text.split(",") if part.strip())
        if not values:
            raise argparse.ArgumentTypeError(f"{text!r}: give whole numbers separated by commas, e.g. 1,2")
        return values

    return parse


def seconds(least: float) -> Callable[[str], float]:
    """The argparse type of a finite length of time of at least ``least`` seconds (over 0)."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            value = math.nan
        if not (math.isfinite(value) and value >= least and value > 0):
            raise argparse.ArgumentTypeError(f"{text}: give a number of seconds of at least {least:g}")
        return value

    return parse


at_least_one = whole_number(1)  # callers, steps, clips, seeds...
zero_or_more = whole_number(0)  # untimed warm-up steps
port_number = whole_number(1, 65535)
# A clip as short as an utterance worth scoring (a model's convolutions need a few tenths of a
# second), and a phase or job long enough to measure anything in.
clip_seconds = seconds(0.5)
phase_seconds = seconds(1.0)
