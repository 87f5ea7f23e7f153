"""Recording conditions for the robustness evaluation: the same clips, heard as real recordings are.

Each :class:`Condition` turns a clean clip (mono float32 at 16 kHz) into the clip as another
microphone, room, line or codec would deliver it: level changes, additive noise of three colours
at several SNRs, babble made from *training* speakers, leading / trailing / inner silence,
narrowband telephone (8 kHz, also mu-law), low-bitrate lossy codecs and synthetic room reverb.
Every random draw is seeded by the condition's name and the clip's index, so a rerun scores the
very same audio. ``emotion evaluate --conditions all`` scores every condition.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from emotion_service.degradations import (
    RATE,
    Transform,
    babble_transform,
    codec_transform,
    gain_transform,
    noise_transform,
    reverb_transform,
    silence_transform,
    telephone_transform,
)


@dataclass(frozen=True)
class Condition:
    """One way of hearing the clips: a name, its family, an SNR when it has one, and the transform."""

    name: str
    family: str
    transform: Transform
    snr_db: float | None = None

    def apply(self, wave: np.ndarray, index: int) -> np.ndarray:
        """The clip under this condition; the draw depends only on the condition and ``index``."""
        seed = int.from_bytes(hashlib.sha256(f"{self.name}:{index}".encode()).digest()[:8], "little")
        out = self.transform(np.asarray(wave, dtype=np.float32), np.random.default_rng(seed))
        return np.clip(out, -1.0, 1.0).astype(np.float32)


def all_conditions(babble_pool: Sequence[np.ndarray] = ()) -> list[Condition]:
    """Every condition of ``--conditions all`` (babble only when a pool of training speech is given)."""
    conditions = [Condition("clean", "clean", lambda wave, rng: wave)]
    conditions += [Condition(f"level{db:+d}dB", "level", gain_transform(db)) for db in (-30, -20, -10, 6)]
    for colour in ("white", "pink", "brown"):
        conditions += [
            Condition(f"noise-{colour}-{snr}dB", f"noise-{colour}", noise_transform(colour, snr), float(snr))
            for snr in (20, 10, 5, 0)
        ]
    if babble_pool:
        conditions += [
            Condition(f"babble-{snr}dB", "babble", babble_transform(babble_pool, 4, snr), float(snr))
            for snr in (20, 10, 5, 0)
        ]
    conditions += [
        Condition("silence-before-2.5s", "silence", silence_transform(2.5, 0.0)),
        Condition("silence-after-2.5s", "silence", silence_transform(0.0, 2.5)),
        Condition("silence-around-2.5s", "silence", silence_transform(2.5, 2.5)),
        Condition("silence-inner-1s", "silence", silence_transform(0.0, 0.0, 1.0)),
        Condition("telephone-8k", "telephone", telephone_transform(mu_law=False)),
        Condition("telephone-8k-mulaw", "telephone", telephone_transform(mu_law=True)),
        # libsndfile's LAME refuses level 1.0 at 16 kHz; 0.9 is its lowest accepted
        Condition("codec-mp3-low", "codec", codec_transform("MP3", "MPEG_LAYER_III", RATE, 0.9)),
        Condition("codec-vorbis-low", "codec", codec_transform("OGG", "VORBIS", RATE, 1.0)),
        Condition("codec-opus-low", "codec", codec_transform("OGG", "OPUS", RATE, 1.0)),
    ]
    conditions += [Condition(f"reverb-rt60-{rt60:g}s", "reverb", reverb_transform(rt60)) for rt60 in (0.3, 0.6, 1.0)]
    return conditions


def select(names: str, babble_pool: Sequence[np.ndarray] = ()) -> list[Condition]:
    """``all``, ``clean``, or a comma-separated list of condition names or families."""
    available = all_conditions(babble_pool)
    if names == "all":
        return available
    wanted = [part.strip() for part in names.split(",") if part.strip()]
    chosen = [c for c in available if c.name in wanted or c.family in wanted]
    unknown = sorted(set(wanted) - {c.name for c in available} - {c.family for c in available})
    if unknown:
        known = ", ".join(sorted({c.family for c in available}))
        raise ValueError(f"--conditions: unknown condition(s) {', '.join(unknown)}; families: {known}, or 'all'")
    return chosen
