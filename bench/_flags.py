"""What the benches' flags share: argparse types that refuse a value the bench cannot run with, so a
bad flag fails at once naming itself ("argument --callers: 0: give a whole number of 1 or more")
instead of deep inside a run, or as a run that measures nothing."""

from __future__ import annotations

import argparse
import math


def at_least_one(text: str) -> int:
    """A whole number of 1 or more (callers, steps, clips, seeds...)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: give a whole number of 1 or more") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value}: give a whole number of 1 or more")
    return value


def zero_or_more(text: str) -> int:
    """A whole number of 0 or more (untimed warm-up steps)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: give a whole number of 0 or more") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"{value}: give a whole number of 0 or more")
    return value


def positive_seconds(text: str) -> float:
    """A finite length of time over 0, in seconds."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: give a number of seconds over 0") from None
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"{text}: give a number of seconds over 0")
    return value
