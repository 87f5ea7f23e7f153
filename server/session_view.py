"""What a session's page draws beside its table: who spoke when, and each party's tallies.

- :func:`lanes`: one lane per party (a speaker; else a channel; one lane when there is neither),
  each utterance or window a span from its start to its end in its emotion's colour (a span without
  speech is drawn grey). Touching spans of one party and one emotion are drawn as one; past
  ``MAX_LANE_SPANS`` each lane is cut into equal stretches, each drawn in the emotion most of its
  results won, so a long session's page stays small.
- :func:`tallies`: per party, and for everyone (key ``""``), what the distribution and the header
  show (results, seconds of speech, wins and score sums per emotion): the page's speaker filter and
  a running stream's page (which adds each window as it arrives) recompute shares, means and the
  dominant emotion from them, by the rule of :func:`emotion_service.plugins.types.summarise`.

A party is named as in the page's table (``data-party``): the speaker, else ``channel N``.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from typing import Any

from emotion_service.plugins.types import Result, party_of, party_order

# At most this many spans on a page (past it, the lanes are drawn in equal stretches).
MAX_LANE_SPANS = 4000
# Spans closer than this (seconds) count as touching.
TOUCHING_S = 1e-3


def lanes(results: Sequence[Result], labels: Sequence[str], duration_s: float) -> dict[str, Any]:
    """The lanes' data for the page's script: ``parties`` (``key`` as in ``data-party``, ``name``
    shown), ``spans`` as ``[start_s, end_s, label index (-1: no speech), party index, results]``,
    ``duration_s``, and ``binned`` (the stretch in seconds, or 0 when every span is drawn)."""
    keys = sorted({party_of(r) for r in results}, key=party_order)
    speakers = any(r.speaker for r in results)
    names = ["all" if len(keys) == 1 and not speakers else key for key in keys]
    index = {label: i for i, label in enumerate(labels)}
    duration = max([duration_s, *(r.end_s for r in results)])
    by_party: dict[str, list[Result]] = defaultdict(list)
    for r in results:
        by_party[party_of(r)].append(r)
    spans = [span for p, key in enumerate(keys) for span in _merged(by_party[key], index, p)]
    binned = 0.0
    if len(spans) > MAX_LANE_SPANS:
        stretches = max(1, MAX_LANE_SPANS // max(1, len(keys)))
        binned = duration / stretches
        spans = [span for p, key in enumerate(keys) for span in _binned(by_party[key], index, p, binned)]
    return {
        "parties": [{"key": key, "name": name} for key, name in zip(keys, names, strict=True)],
        "spans": spans,
        "duration_s": round(duration, 3),
        "binned": round(binned, 3),
    }


def _label_index(result: Result, index: dict[str, int]) -> int:
    return -1 if result.no_speech or result.label not in index else index[result.label]


def _merged(results: Iterable[Result], index: dict[str, int], party: int) -> list[list[Any]]:
    spans: list[list[Any]] = []
    for r in sorted(results, key=lambda r: (r.start_s, r.end_s)):
        label = _label_index(r, index)
        last = spans[-1] if spans else None
        if last is not None and last[2] == label and r.start_s <= last[1] + TOUCHING_S:
            last[1] = max(last[1], round(r.end_s, 3))
            last[4] += 1
        else:
            spans.append([round(r.start_s, 3), round(r.end_s, 3), label, party, 1])
    return spans


def _binned(results: Iterable[Result], index: dict[str, int], party: int, width: float) -> list[list[Any]]:
    """Equal stretches of ``width`` seconds, each in the emotion most of its results won (no speech
    when none of them held speech); touching stretches of one emotion merged."""
    stretches: dict[int, list[Result]] = defaultdict(list)
    for r in results:
        stretches[int(((r.start_s + r.end_s) / 2) // width)].append(r)
    spans: list[list[Any]] = []
    for k in sorted(stretches):
        held = stretches[k]
        won = Counter(_label_index(r, index) for r in held if not r.no_speech)
        label = max(sorted(won), key=lambda i: won[i]) if won else -1
        start, end = round(k * width, 3), round((k + 1) * width, 3)
        last = spans[-1] if spans else None
        if last is not None and last[2] == label and start <= last[1] + TOUCHING_S:
            last[1] = end
            last[4] += len(held)
        else:
            spans.append([start, end, label, party, len(held)])
    return spans


def tallies(results: Sequence[Result], labels: Sequence[str]) -> dict[str, dict[str, Any]]:
    """Per party (and ``""``: everyone): ``count`` (results with speech), ``seconds`` of them,
    ``wins`` and ``sums`` of scores per emotion. Results without speech claim nothing."""
    out: dict[str, dict[str, Any]] = {
        key: {"count": 0, "seconds": 0.0, "wins": {}, "sums": {}} for key in ["", *{party_of(r) for r in results}]
    }
    for r in results:
        if r.no_speech:
            continue
        for key in ("", party_of(r)):
            t = out[key]
            t["count"] += 1
            t["seconds"] += max(0.0, r.end_s - r.start_s)
            t["wins"][r.label] = t["wins"].get(r.label, 0) + 1
            for label in labels:
                t["sums"][label] = t["sums"].get(label, 0.0) + r.scores.get(label, 0.0)
    for t in out.values():
        t["seconds"] = round(t["seconds"], 3)
        t["sums"] = {label: round(value, 5) for label, value in t["sums"].items()}
    return out
