"""Built-in plugin ``augmentation``: noise, pitch shift, time stretch and gain on training clips (``augment``).

The effects are audiomentations transforms, each applied with its own
probability: ``AddGaussianSNR`` (white noise at a signal-to-noise ratio drawn
from a range), ``PitchShift``, ``TimeStretch`` (the clip's length changes with
its speed) and ``Gain``.

Reproducibility: audiomentations draws from the global ``random`` and
``numpy.random`` states. Each call takes one seed from the hook's ``rng``, seeds
both global states with it under a lock, runs the transforms and restores the
previous global states, so the same ``rng`` gives the same audio and other users
of the global generators are left undisturbed.
"""

from __future__ import annotations

import random
import threading
from dataclasses import dataclass

import numpy as np
from audiomentations import AddGaussianSNR, Compose, Gain, PitchShift, TimeStretch

from emotion_service.plugins.hookspecs import hookimpl
from emotion_service.settings import check, load_plugin_config, setting

NAME = "augmentation"

_GLOBAL_RANDOM = threading.Lock()


@dataclass(frozen=True)
class AugmentationConfig:
    """Settings of ``[plugins.augmentation]`` / ``EMOTION_AUGMENTATION_*``."""

    noise_p: float = setting(0.5, "Probability of adding white noise.")
    min_snr_db: float = setting(10.0, "Lowest signal-to-noise ratio of the noise, in dB.")
    max_snr_db: float = setting(30.0, "Highest signal-to-noise ratio of the noise, in dB.")
    pitch_p: float = setting(0.3, "Probability of a pitch shift.")
    min_semitones: float = setting(-2.0, "Largest downward pitch shift, in semitones (negative).")
    max_semitones: float = setting(2.0, "Largest upward pitch shift, in semitones.")
    stretch_p: float = setting(0.3, "Probability of a time stretch.")
    min_rate: float = setting(0.9, "Slowest speed factor of the time stretch.")
    max_rate: float = setting(1.1, "Fastest speed factor of the time stretch.")
    gain_p: float = setting(0.5, "Probability of a gain change.")
    min_gain_db: float = setting(-6.0, "Largest attenuation, in dB (negative).")
    max_gain_db: float = setting(6.0, "Largest boost, in dB.")

    def __post_init__(self) -> None:
        probabilities = (self.noise_p, self.pitch_p, self.stretch_p, self.gain_p)
        check(
            f"plugin {NAME!r}",
            self,
            {
                "noise_p/pitch_p/stretch_p/gain_p": (all(0 <= p <= 1 for p in probabilities), "must lie in [0, 1]"),
                "min_snr_db": (self.min_snr_db <= self.max_snr_db, "must not exceed max_snr_db"),
                "min_semitones": (self.min_semitones <= self.max_semitones, "must not exceed max_semitones"),
                "min_rate": (0 < self.min_rate <= self.max_rate, "must be positive and at most max_rate"),
                "min_gain_db": (self.min_gain_db <= self.max_gain_db, "must not exceed max_gain_db"),
            },
        )


class Augmentation:
    """The ``augmentation`` plugin (``augment``)."""

    def __init__(self, config: AugmentationConfig | None = None) -> None:
        c = self.config = config or load_plugin_config(NAME, AugmentationConfig)
        self._transforms = Compose(
            [
                AddGaussianSNR(min_snr_db=c.min_snr_db, max_snr_db=c.max_snr_db, p=c.noise_p),
                PitchShift(min_semitones=c.min_semitones, max_semitones=c.max_semitones, p=c.pitch_p),
                TimeStretch(min_rate=c.min_rate, max_rate=c.max_rate, leave_length_unchanged=False, p=c.stretch_p),
                Gain(min_gain_db=c.min_gain_db, max_gain_db=c.max_gain_db, p=c.gain_p),
            ]
        )

    @hookimpl
    def augment(self, waveform: np.ndarray, sample_rate: int, rng: np.random.Generator) -> np.ndarray:
        """Applies the transforms with randomness drawn from ``rng`` only."""
        seed = int(rng.integers(2**32))
        with _GLOBAL_RANDOM:
            saved_random, saved_numpy = random.getstate(), np.random.get_state()
            random.seed(seed)
            np.random.seed(seed)
            try:
                out = self._transforms(
                    samples=np.ascontiguousarray(waveform, dtype=np.float32), sample_rate=sample_rate
                )
            finally:
                random.setstate(saved_random)
                np.random.set_state(saved_numpy)
        return out.astype(np.float32, copy=False)
