"""Ways a recording degrades clean speech: level, noise, babble, silence, phone lines, codecs, rooms.

Each ``*_transform`` returns a function ``(wave, rng) -> wave`` over mono float32 at 16 kHz, with
every random draw taken from ``rng``. The robustness evaluation (:mod:`emotion_service.tuning.conditions`)
applies them with fixed settings and seeds; the ``augmentation`` plugin applies them with settings
drawn per training clip, so training sees the very conditions the evaluation measures.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Sequence

import numpy as np
import soundfile as sf
import soxr
from scipy.signal import butter, fftconvolve, sosfilt

RATE = 16_000
Transform = Callable[[np.ndarray, np.random.Generator], np.ndarray]


def rms(wave: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(wave, dtype=np.float64)))) + 1e-12


def coloured_noise(length: int, colour: str, rng: np.random.Generator) -> np.ndarray:
    """White, pink (1/f power) or brown (1/f^2) noise, unit RMS."""
    white = rng.standard_normal(length)
    if colour != "white":
        spectrum = np.fft.rfft(white)
        frequencies = np.maximum(np.fft.rfftfreq(length, 1 / RATE), 1.0)
        spectrum /= np.sqrt(frequencies) if colour == "pink" else frequencies
        white = np.fft.irfft(spectrum, n=length)
    return white / rms(white)


def mix_at_snr(speech: np.ndarray, noise: np.ndarray, snr_db: float) -> np.ndarray:
    """``speech`` plus ``noise`` scaled so the speech-to-noise power ratio is ``snr_db``."""
    noise = np.resize(noise, len(speech))
    return speech + noise * (rms(speech) / rms(noise)) * 10 ** (-snr_db / 20)


def gain_transform(db: float) -> Transform:
    return lambda wave, rng: wave * 10 ** (db / 20)


def noise_transform(colour: str, snr_db: float) -> Transform:
    return lambda wave, rng: mix_at_snr(wave, coloured_noise(len(wave), colour, rng), snr_db)


def babble_transform(pool: Sequence[np.ndarray], talkers: int, snr_db: float) -> Transform:
    def transform(wave: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        babble = np.zeros(len(wave))
        for choice in rng.choice(len(pool), size=min(talkers, len(pool)), replace=False):
            voice = pool[choice]
            start = int(rng.integers(0, max(1, len(voice) - 1)))
            babble += np.resize(np.roll(voice, -start), len(wave)) / rms(voice)
        return mix_at_snr(wave, babble, snr_db)

    return transform


def silence_transform(before_s: float, after_s: float, inner_s: float = 0.0) -> Transform:
    def transform(wave: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        gap = np.zeros(int(inner_s * RATE), np.float32)
        middle = len(wave) // 2
        body = np.concatenate([wave[:middle], gap, wave[middle:]]) if inner_s else wave
        return np.concatenate(
            [np.zeros(int(before_s * RATE), np.float32), body, np.zeros(int(after_s * RATE), np.float32)]
        )

    return transform


def telephone_transform(mu_law: bool) -> Transform:
    band = butter(6, [300, 3400], btype="bandpass", fs=8000, output="sos")

    def transform(wave: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        narrow = sosfilt(band, soxr.resample(wave, RATE, 8000))
        if mu_law:  # G.711: 8-bit mu-law companding and back
            mu = 255.0
            clipped = np.clip(narrow, -1, 1)
            code = np.round((np.sign(clipped) * np.log1p(mu * np.abs(clipped)) / np.log1p(mu) + 1) / 2 * mu)
            companded = code / mu * 2 - 1
            narrow = np.sign(companded) * ((1 + mu) ** np.abs(companded) - 1) / mu
        return soxr.resample(narrow.astype(np.float32), 8000, RATE)

    return transform


def codec_transform(fmt: str, subtype: str, rate: int, level: float) -> Transform:
    def transform(wave: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        buffer = io.BytesIO()
        audio = soxr.resample(wave, RATE, rate) if rate != RATE else wave
        # compression_level near 1.0: the codec's smallest bitrates (about 25 kb/s MP3, 8 kb/s Opus)
        sf.write(buffer, audio, rate, format=fmt, subtype=subtype, compression_level=level)
        buffer.seek(0)
        decoded, got = sf.read(buffer, dtype="float32")
        decoded = soxr.resample(decoded, got, RATE) if got != RATE else decoded
        return np.resize(decoded, len(wave)) if len(decoded) >= len(wave) * 0.9 else decoded

    return transform


def room_impulse_response(rt60_s: float, rng: np.random.Generator) -> np.ndarray:
    """A synthetic room: a direct path, then exponentially decaying noise reaching -60 dB at ``rt60_s``."""
    length = int(rt60_s * RATE)
    t = np.arange(length) / RATE
    tail = rng.standard_normal(length) * np.exp(-6.9 * t / rt60_s)
    tail[: int(0.003 * RATE)] = 0.0  # first reflections arrive a few ms after the direct sound
    response = 0.6 * tail / np.sqrt(np.sum(tail**2))
    response[0] = 1.0
    return response


def reverb_transform(rt60_s: float) -> Transform:
    def transform(wave: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        wet = fftconvolve(wave, room_impulse_response(rt60_s, rng))[: len(wave)]
        return wet * (rms(wave) / rms(wet))

    return transform
