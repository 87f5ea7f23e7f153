"""Built-in plugin ``augmentation``: training clips heard as real recordings are (``augment``).

Two stages, each effect with its own probability:

1. Recording conditions (:mod:`emotion_service.degradations`, the transforms the robustness
   evaluation measures), in the order a signal meets them: silence padding (leading, trailing
   or inner pauses), a synthetic room (reverb), noise of a random colour at an SNR drawn from a
   range, babble of other training clips (a reservoir of clips this plugin has seen), a
   telephone line (8 kHz band, half of them mu-law), a low-bitrate codec round trip.
2. audiomentations: ``PitchShift``, ``TimeStretch`` (the clip's length changes with its speed)
   and ``Gain`` (a range wide enough to cover distant and close microphones).

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
from audiomentations import Compose, Gain, PitchShift, TimeStretch

from emotion_service import degradations
from emotion_service.plugins.hookspecs import hookimpl
from emotion_service.settings import check, load_plugin_config, setting

NAME = "augmentation"

_GLOBAL_RANDOM = threading.Lock()


@dataclass(frozen=True)
class AugmentationConfig:
    """Settings of ``[plugins.augmentation]`` / ``EMOTION_AUGMENTATION_*``."""

    silence_p: float = setting(0.2, "Probability of padding silence before, after or inside the clip.")
    max_silence_s: float = setting(2.5, "Longest silence padded, in seconds.")
    reverb_p: float = setting(0.2, "Probability of a synthetic room (reverb).")
    min_rt60_s: float = setting(0.2, "Shortest reverberation time of the room, in seconds.")
    max_rt60_s: float = setting(1.0, "Longest reverberation time of the room, in seconds.")
    noise_p: float = setting(0.5, "Probability of adding noise (white, pink or brown, equally likely).")
    min_snr_db: float = setting(0.0, "Lowest signal-to-noise ratio of the noise and the babble, in dB.")
    max_snr_db: float = setting(30.0, "Highest signal-to-noise ratio of the noise and the babble, in dB.")
    babble_p: float = setting(0.15, "Probability of mixing in babble: up to 4 other training clips.")
    babble_pool: int = setting(64, "How many earlier training clips the babble reservoir keeps.")
    telephone_p: float = setting(0.15, "Probability of an 8 kHz telephone band (half of them mu-law).")
    codec_p: float = setting(0.1, "Probability of a low-bitrate MP3, Vorbis or Opus round trip.")
    pitch_p: float = setting(0.3, "Probability of a pitch shift.")
    min_semitones: float = setting(-2.0, "Largest downward pitch shift, in semitones (negative).")
    max_semitones: float = setting(2.0, "Largest upward pitch shift, in semitones.")
    stretch_p: float = setting(0.3, "Probability of a time stretch.")
    min_rate: float = setting(0.9, "Slowest speed factor of the time stretch.")
    max_rate: float = setting(1.1, "Fastest speed factor of the time stretch.")
    gain_p: float = setting(0.5, "Probability of a gain change.")
    min_gain_db: float = setting(-30.0, "Largest attenuation, in dB (negative).")
    max_gain_db: float = setting(6.0, "Largest boost, in dB.")

    def __post_init__(self) -> None:
        probabilities = (
            self.silence_p, self.reverb_p, self.noise_p, self.babble_p, self.telephone_p, self.codec_p,
            self.pitch_p, self.stretch_p, self.gain_p,
        )  # fmt: skip
        check(
            f"plugin {NAME!r}",
            self,
            {
                "*_p": (all(0 <= p <= 1 for p in probabilities), "must lie in [0, 1]"),
                "max_silence_s": (self.max_silence_s >= 0, "must be at least 0"),
                "min_rt60_s": (0 < self.min_rt60_s <= self.max_rt60_s, "must be positive and at most max_rt60_s"),
                "babble_pool": (self.babble_pool >= 1, "must be at least 1"),
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
        self._pool: list[np.ndarray] = []  # babble reservoir: earlier training clips
        self._transforms = Compose(
            [
                PitchShift(min_semitones=c.min_semitones, max_semitones=c.max_semitones, p=c.pitch_p),
                TimeStretch(min_rate=c.min_rate, max_rate=c.max_rate, leave_length_unchanged=False, p=c.stretch_p),
                Gain(min_gain_db=c.min_gain_db, max_gain_db=c.max_gain_db, p=c.gain_p),
            ]
        )

    @hookimpl
    def augment(self, waveform: np.ndarray, sample_rate: int, rng: np.random.Generator) -> np.ndarray:
        """Applies the transforms with randomness drawn from ``rng`` only."""
        if sample_rate != degradations.RATE:
            raise ValueError(f"plugin {NAME!r} works at {degradations.RATE} Hz, got {sample_rate} Hz audio")
        waveform = self._recording(np.asarray(waveform, dtype=np.float32), rng)
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

    def _recording(self, wave: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Stage 1: the recording conditions, each drawn with its probability and its settings from ``rng``."""
        c, clean = self.config, wave
        draws = rng.random(6)  # one draw per effect, always taken, so settings do not shift later draws
        if draws[0] < c.silence_p:
            before, after, inner = rng.uniform(0, c.max_silence_s, 3) * (rng.random(3) < 0.5)
            wave = degradations.silence_transform(before, after, inner)(wave, rng)
        if draws[1] < c.reverb_p:
            wave = degradations.reverb_transform(rng.uniform(c.min_rt60_s, c.max_rt60_s))(wave, rng)
        if draws[2] < c.noise_p:
            colour = ("white", "pink", "brown")[int(rng.integers(3))]
            wave = degradations.noise_transform(colour, rng.uniform(c.min_snr_db, c.max_snr_db))(wave, rng)
        if draws[3] < c.babble_p and self._pool:
            talkers = int(rng.integers(1, 5))
            wave = degradations.babble_transform(self._pool, talkers, rng.uniform(c.min_snr_db, c.max_snr_db))(
                wave, rng
            )
        if draws[4] < c.telephone_p:
            wave = degradations.telephone_transform(mu_law=bool(rng.random() < 0.5))(wave, rng)
        if draws[5] < c.codec_p:
            fmt, subtype, lowest = _CODECS[int(rng.integers(len(_CODECS)))]
            wave = degradations.codec_transform(fmt, subtype, degradations.RATE, rng.uniform(0.5, lowest))(wave, rng)
        self._remember(clean, rng)
        return np.clip(wave, -1.0, 1.0).astype(np.float32)

    def _remember(self, clean: np.ndarray, rng: np.random.Generator) -> None:
        """Reservoir of clean training clips for babble: full until ``babble_pool``, then one replaced at random."""
        if len(self._pool) < self.config.babble_pool:
            self._pool.append(clean)
        else:
            self._pool[int(rng.integers(len(self._pool)))] = clean


# (format, subtype, highest compression level libsndfile accepts at 16 kHz)
_CODECS = (("MP3", "MPEG_LAYER_III", 0.9), ("OGG", "VORBIS", 1.0), ("OGG", "OPUS", 1.0))
