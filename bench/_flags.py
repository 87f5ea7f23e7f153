"""What the benches' flags share: argparse types that refuse a value the bench cannot run with, so a
bad flag fails at once naming itself ("argument --callers: 0: give a whole number of 1 or more")
instead of deep inside a run, or as a run that measures nothing."""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable


def whole_number(least: int) -> Callable[[str], int]:
    """The argparse type of a whole number of ``least`` or more."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = None
        if value is None or value < least:
            raise argparse.ArgumentTypeError(f"{text}: give a whole number of {least} or more")
        return value

    return parse


at_least_one = whole_number(1)  # callers, steps, clips, seeds...
zero_or_more = whole_number(0)  # untimed warm-up steps


def positive_seconds(text: str) -> float:
    """A finite length of time over 0, in seconds."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"{text}: give a number of seconds over 0")
    return value
