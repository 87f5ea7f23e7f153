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
import io
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import soundfile as sf
import soxr
from scipy.signal import butter, fftconvolve, sosfilt

RATE = 16_000
Transform = Callable[[np.ndarray, np.random.Generator], np.ndarray]


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


def _rms(wave: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(wave, dtype=np.float64)))) + 1e-12


def coloured_noise(length: int, colour: str, rng: np.random.Generator) -> np.ndarray:
    """White, pink (1/f power) or brown (1/f^2) noise, unit RMS."""
    white = rng.standard_normal(length)
    if colour != "white":
        spectrum = np.fft.rfft(white)
        frequencies = np.maximum(np.fft.rfftfreq(length, 1 / RATE), 1.0)
        spectrum /= np.sqrt(frequencies) if colour == "pink" else frequencies
        white = np.fft.irfft(spectrum, n=length)
    return white / _rms(white)


def mix_at_snr(speech: np.ndarray, noise: np.ndarray, snr_db: float) -> np.ndarray:
    """``speech`` plus ``noise`` scaled so the speech-to-noise power ratio is ``snr_db``."""
    noise = np.resize(noise, len(speech))
    return speech + noise * (_rms(speech) / _rms(noise)) * 10 ** (-snr_db / 20)


def _gain(db: float) -> Transform:
    return lambda wave, rng: wave * 10 ** (db / 20)


def _noise(colour: str, snr_db: float) -> Transform:
    return lambda wave, rng: mix_at_snr(wave, coloured_noise(len(wave), colour, rng), snr_db)


def _babble(pool: Sequence[np.ndarray], talkers: int, snr_db: float) -> Transform:
    def transform(wave: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        babble = np.zeros(len(wave))
        for choice in rng.choice(len(pool), size=min(talkers, len(pool)), replace=False):
            voice = pool[choice]
            start = int(rng.integers(0, max(1, len(voice) - 1)))
            babble += np.resize(np.roll(voice, -start), len(wave)) / _rms(voice)
        return mix_at_snr(wave, babble, snr_db)

    return transform


def _silence(before_s: float, after_s: float, inner_s: float = 0.0) -> Transform:
    def transform(wave: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        gap = np.zeros(int(inner_s * RATE), np.float32)
        middle = len(wave) // 2
        body = np.concatenate([wave[:middle], gap, wave[middle:]]) if inner_s else wave
        return np.concatenate(
            [np.zeros(int(before_s * RATE), np.float32), body, np.zeros(int(after_s * RATE), np.float32)]
        )

    return transform


def _telephone(mu_law: bool) -> Transform:
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


def _codec(fmt: str, subtype: str, rate: int, level: float) -> Transform:
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


def _reverb(rt60_s: float) -> Transform:
    def transform(wave: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        wet = fftconvolve(wave, room_impulse_response(rt60_s, rng))[: len(wave)]
        return wet * (_rms(wave) / _rms(wet))

    return transform


def all_conditions(babble_pool: Sequence[np.ndarray] = ()) -> list[Condition]:
    """Every condition of ``--conditions all`` (babble only when a pool of training speech is given)."""
    conditions = [Condition("clean", "clean", lambda wave, rng: wave)]
    conditions += [Condition(f"level{db:+d}dB", "level", _gain(db)) for db in (-30, -20, -10, 6)]
    for colour in ("white", "pink", "brown"):
        conditions += [
            Condition(f"noise-{colour}-{snr}dB", f"noise-{colour}", _noise(colour, snr), float(snr))
            for snr in (20, 10, 5, 0)
        ]
    if babble_pool:
        conditions += [
            Condition(f"babble-{snr}dB", "babble", _babble(babble_pool, 4, snr), float(snr)) for snr in (20, 10, 5, 0)
        ]
    conditions += [
        Condition("silence-before-2.5s", "silence", _silence(2.5, 0.0)),
        Condition("silence-after-2.5s", "silence", _silence(0.0, 2.5)),
        Condition("silence-around-2.5s", "silence", _silence(2.5, 2.5)),
        Condition("silence-inner-1s", "silence", _silence(0.0, 0.0, 1.0)),
        Condition("telephone-8k", "telephone", _telephone(mu_law=False)),
        Condition("telephone-8k-mulaw", "telephone", _telephone(mu_law=True)),
        # libsndfile's LAME refuses level 1.0 at 16 kHz; 0.9 is its lowest accepted
        Condition("codec-mp3-low", "codec", _codec("MP3", "MPEG_LAYER_III", RATE, 0.9)),
        Condition("codec-vorbis-low", "codec", _codec("OGG", "VORBIS", RATE, 1.0)),
        Condition("codec-opus-low", "codec", _codec("OGG", "OPUS", RATE, 1.0)),
    ]
    conditions += [Condition(f"reverb-rt60-{rt60:g}s", "reverb", _reverb(rt60)) for rt60 in (0.3, 0.6, 1.0)]
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
