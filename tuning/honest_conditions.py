"""Recording conditions for measuring generalisation: generators and sources training never uses.

:mod:`emotion_service.tuning.conditions` applies the very transforms the augmentation draws from
(:mod:`emotion_service.degradations`), so its table measures robustness inside the training
distribution. These conditions differ in kind, not only in setting:

- **SNR at the speech.** Noise is scaled against the power of the clean clip's voiced frames (a
  frame within 30 dB of the clip's loud frames), not the whole clip, about half of which is
  silence: "10 dB" is 10 dB where the words are.
- **Noise training never made**: coloured noise with a random spectral tilt and a resonance (a
  fan, a vent), and non-stationary noise (pink noise under slow random fades plus decaying
  impulsive knocks, as a keyboard or cutlery).
- **Far-field rooms** from the image-source method (pyroomacoustics ``ShoeBox``): random room
  sizes and absorptions for an RT60 of 0.4-0.8 s, the talker 0.5, 1.5 or 3 m from the microphone,
  each setting's direct-to-reverberant ratio measured on its impulse responses and reported.
- **Babble of voices the model never trained on**: eight talkers drawn from a pool the caller
  gives: EmoDB's speakers when scoring the test actors, the fold's other held-out actors in
  cross-validation; their *neutral* clips, because a room's background crowd talks in an everyday
  register. (A first version drew from every emotion: eight actors shouting, crying and laughing
  behind the talker. In cross-validation fold 0 the Whisper probe then scored 24 % at 10 dB, about
  chance: it named the crowd's acted emotion. That measures something else than a noisy room.)
- **Level with a real chain**: the gain, then a pink noise floor at -70 dBFS and 16-bit
  quantisation, so a quiet recording is quiet *and* noisy, as a far microphone makes it.
- **Room tone**: 2.5 s of a room's quiet (brown-tilted noise at -60 dBFS) before and after the
  speech, not digital zeros.
- **GSM phone line**: band-limited, 8 kHz, GSM 06.10 full-rate (libsndfile), a codec training
  never applies.
- **Cut short**: 2.0 s from the speech onset (30 dB under the peak), zero-padded when shorter: the
  form of this EmoDB copy, and what a stream window does to a longer sentence. Its training twin is
  the random crop (a recipe that trains on crops is scored on it without them).

Every random draw is seeded by the condition's name and the clip's index.
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import soundfile as sf
import soxr
from scipy.signal import butter, fftconvolve, lfilter, sosfilt

RATE = 16_000
# Changes whenever a generator changes, so cached clip vectors of an older generator are not reused.
HONEST_VERSION = "2"
Transform = Callable[[np.ndarray, np.random.Generator], np.ndarray]
# The family each cross-validation fold leaves out of training, for each family it scores: a
# honest condition has no training twin, so the nearest training family is held out instead.
TRAINING_TWIN = {
    "noise-tilted": "noise",
    "noise-nonstationary": "noise",
    "far-field": "reverb",
    "babble-unseen": "babble",
    "gsm-phone": "telephone",
    "level-chain": "level",
    "room-tone": "silence",
    "cut": "crop",
}


def _power(wave: np.ndarray) -> float:
    return float(np.mean(np.square(wave, dtype=np.float64))) + 1e-20


def speech_power(clean: np.ndarray, threshold_db: float = 30.0) -> float:
    """Mean power of the clip's voiced 25 ms frames (those within ``threshold_db`` of its 95th percentile)."""
    frames = np.lib.stride_tricks.sliding_window_view(clean.astype(np.float64), 400)[::160]
    if len(frames) == 0:
        return _power(clean)
    power = np.mean(frames**2, axis=1) + 1e-20
    level = 10 * np.log10(power)
    voiced = level > np.quantile(level, 0.95) - threshold_db
    return float(np.mean(power[voiced]))


def mix_at_speech_snr(clean: np.ndarray, noise: np.ndarray, snr_db: float) -> np.ndarray:
    """``clean`` plus ``noise`` scaled so voiced-frame speech power over noise power is ``snr_db``."""
    noise = np.resize(noise, len(clean))
    scale = np.sqrt(speech_power(clean) / _power(noise) * 10 ** (-snr_db / 10))
    return clean + noise * scale


def _shaped(length: int, rng: np.random.Generator, slope_db_per_octave: float) -> np.ndarray:
    spectrum = np.fft.rfft(rng.standard_normal(length))
    frequencies = np.maximum(np.fft.rfftfreq(length, 1 / RATE), 20.0)
    spectrum *= (frequencies / 1000.0) ** (slope_db_per_octave / 6.02)
    return np.fft.irfft(spectrum, n=length)


def tilted_noise(length: int, rng: np.random.Generator) -> np.ndarray:
    """Noise with a random tilt (-9 to +1 dB/octave) through a random resonance (200-2500 Hz)."""
    noise = _shaped(length, rng, float(rng.uniform(-9.0, 1.0)))
    centre = float(rng.uniform(200, 2500))
    r = 0.97
    theta = 2 * np.pi * centre / RATE
    resonance = lfilter([1 - r], [1, -2 * r * np.cos(theta), r * r], noise)
    return noise + 3.0 * resonance * np.sqrt(_power(noise) / _power(resonance))


def nonstationary_noise(length: int, rng: np.random.Generator) -> np.ndarray:
    """Pink noise under slow random fades, plus decaying knocks at random times."""
    pink = _shaped(length, rng, -3.0)
    knots = rng.uniform(0.05, 1.0, size=int(length / RATE * 3) + 2)
    envelope = np.interp(np.arange(length), np.linspace(0, length, len(knots)), knots)
    noise = pink * envelope / np.sqrt(_power(pink))
    for _ in range(rng.poisson(length / RATE * 2.5)):
        start = int(rng.integers(0, length))
        decay = int(rng.uniform(0.01, 0.08) * RATE)
        burst = rng.standard_normal(decay) * np.exp(-np.arange(decay) / (decay / 5)) * rng.uniform(2, 8)
        end = min(length, start + decay)
        noise[start:end] += burst[: end - start]
    return noise


@dataclass(frozen=True)
class Room:
    """A far-field setting: the talker's distance and the impulse responses drawn for it."""

    distance_m: float
    responses: tuple[np.ndarray, ...] = field(repr=False)

    def drr_db(self) -> float:
        """Mean direct-to-reverberant ratio: energy within 2.5 ms of the direct peak over the rest."""
        ratios = []
        for rir in self.responses:
            peak = int(np.argmax(np.abs(rir)))
            half = int(0.0025 * RATE)
            direct = np.sum(rir[max(0, peak - half) : peak + half] ** 2)
            rest = np.sum(rir**2) - direct
            ratios.append(10 * np.log10(direct / max(rest, 1e-20)))
        return float(np.mean(ratios))


def make_room(distance_m: float, count: int = 12, seed: int = 0) -> Room:
    """``count`` image-source rooms (pyroomacoustics): 4-9 m by 3-7 m by 2.5-3.5 m, RT60 0.4-0.8 s,
    talker and microphone at 1.2-1.7 m height, ``distance_m`` apart."""
    rng = np.random.default_rng(seed)
    responses: list[np.ndarray] = []
    while len(responses) < count:
        responses += _room_responses(rng, [distance_m]) or []
    return Room(distance_m, tuple(responses))


def shared_room(distances_m: Sequence[float], seed: int = 0) -> list[np.ndarray]:
    """One image-source room drawn as :func:`make_room` draws them, with one microphone and a talker
    at each of ``distances_m`` from it (each in a direction of its own): their impulse responses, in
    order. The parties of one recording share its room, and the farther one is heard quieter."""
    rng = np.random.default_rng(seed)
    while (responses := _room_responses(rng, distances_m)) is None:
        pass
    return responses


def _room_responses(rng: np.random.Generator, distances_m: Sequence[float]) -> list[np.ndarray] | None:
    """One draw of a room, its microphone and a talker at each distance: the first second of each
    talker's impulse response, or None when the room or a talker's place is not possible."""
    import pyroomacoustics as pra

    dims = np.array([rng.uniform(4, 9), rng.uniform(3, 7), rng.uniform(2.5, 3.5)])
    rt60 = float(rng.uniform(0.4, 0.8))
    try:
        absorption, max_order = pra.inverse_sabine(rt60, dims)
    except ValueError:
        return None
    mic = np.array([rng.uniform(1, dims[0] - 1), rng.uniform(1, dims[1] - 1), rng.uniform(1.2, 1.7)])
    sources = []
    for distance_m in distances_m:
        angle = rng.uniform(0, 2 * np.pi)
        source = mic + distance_m * np.array([np.cos(angle), np.sin(angle), 0.0])
        source[2] = rng.uniform(1.2, 1.7)
        if not (0.3 < source[0] < dims[0] - 0.3 and 0.3 < source[1] < dims[1] - 0.3):
            return None
        sources.append(source)
    room = pra.ShoeBox(dims, fs=RATE, materials=pra.Material(absorption), max_order=min(max_order, 17))
    for source in sources:
        room.add_source(source)
    room.add_microphone(mic)
    room.compute_rir()
    return [np.asarray(room.rir[0][k], dtype=np.float64)[: int(1.0 * RATE)] for k in range(len(sources))]


def far_field_transform(room: Room) -> Transform:
    def transform(wave: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        rir = room.responses[int(rng.integers(len(room.responses)))]
        wet = fftconvolve(wave, rir)[: len(wave)]
        wet *= np.sqrt(_power(wave) / _power(wet))
        # a real room is never silent: its noise floor 45 dB under the speech
        return mix_at_speech_snr(wet, _shaped(len(wet), rng, -4.0), 45.0)

    return transform


def babble_transform(pool: Sequence[np.ndarray], snr_db: float, talkers: int = 8) -> Transform:
    def transform(wave: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        babble = np.zeros(len(wave))
        for choice in rng.choice(len(pool), size=min(talkers, len(pool)), replace=False):
            voice = pool[choice]
            start = int(rng.integers(0, max(1, len(voice) - 1)))
            babble += np.resize(np.roll(voice, -start), len(wave)) / np.sqrt(speech_power(voice))
        return mix_at_speech_snr(wave, babble, snr_db)

    return transform


def noise_transform(kind: str, snr_db: float) -> Transform:
    make = tilted_noise if kind == "tilted" else nonstationary_noise
    return lambda wave, rng: mix_at_speech_snr(wave, make(len(wave), rng), snr_db)


def level_chain_transform(gain_db: float) -> Transform:
    def transform(wave: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        quiet = wave * 10 ** (gain_db / 20)
        floor = _shaped(len(wave), rng, -3.0)
        quiet = quiet + floor / np.sqrt(_power(floor)) * 10 ** (-70 / 20)
        step = 2.0 / 2**16
        return np.round(quiet / step) * step

    return transform


def room_tone_transform(seconds: float) -> Transform:
    def transform(wave: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        pad = int(seconds * RATE)
        padded = np.concatenate([np.zeros(pad), wave, np.zeros(pad)])
        tone = _shaped(len(padded), rng, -5.0)
        return padded + tone / np.sqrt(_power(tone)) * 10 ** (-60 / 20)

    return transform


def gsm_transform() -> Transform:
    band = butter(4, [300, 3400], btype="bandpass", fs=RATE, output="sos")

    def transform(wave: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        narrow = soxr.resample(sosfilt(band, wave), RATE, 8000)
        buffer = io.BytesIO()
        sf.write(buffer, np.clip(narrow, -1, 1), 8000, format="WAV", subtype="GSM610")
        buffer.seek(0)
        decoded, _ = sf.read(buffer, dtype="float32")
        return soxr.resample(decoded, 8000, RATE)[: len(wave)]

    return transform


@dataclass(frozen=True)
class HonestCondition:
    """One way of hearing the clips: a name, its family, its setting and the transform."""

    name: str
    family: str
    setting: str
    transform: Transform
    middle: bool = False  # the family's headline setting (10 dB, DRR near -5 dB, ...)

    def apply(self, wave: np.ndarray, index: int) -> np.ndarray:
        seed = int.from_bytes(hashlib.sha256(f"honest:{self.name}:{index}".encode()).digest()[:8], "little")
        out = self.transform(np.asarray(wave, dtype=np.float64), np.random.default_rng(seed))
        return np.clip(out, -1.0, 1.0).astype(np.float32)


ROOM_DISTANCES_M = (0.5, 1.5, 3.0)
MIDDLE_DISTANCE_M = 1.5


def honest_conditions(babble_pool: Sequence[np.ndarray], rooms: dict[float, Room] | None = None) -> list[HonestCondition]:
    """Every honest condition; ``babble_pool`` are the unseen voices (at least eight clips)."""
    rooms = rooms or {d: make_room(d, seed=int(d * 10)) for d in ROOM_DISTANCES_M}
    out = [HonestCondition("clean", "clean", "-", lambda wave, rng: wave, middle=True)]
    for kind in ("tilted", "nonstationary"):
        out += [
            HonestCondition(f"noise-{kind}-{snr}dB", f"noise-{kind}", f"{snr} dB speech-SNR",
                            noise_transform(kind, snr), middle=snr == 10)
            for snr in (20, 10, 5)
        ]  # fmt: skip
    for distance, room in rooms.items():
        out.append(
            HonestCondition(f"far-field-{distance:g}m", "far-field", f"{distance:g} m, DRR {room.drr_db():+.1f} dB",
                            far_field_transform(room), middle=distance == MIDDLE_DISTANCE_M)
        )  # fmt: skip
    out += [
        HonestCondition(f"babble-neutral-{snr}dB", "babble-unseen", f"8 unseen talkers, {snr} dB speech-SNR",
                        babble_transform(babble_pool, snr), middle=snr == 10)
        for snr in (20, 10, 5)
    ]  # fmt: skip
    out += [
        HonestCondition(f"level-chain{db:+d}dB", "level-chain", f"{db:+d} dB, -70 dBFS floor, 16 bit",
                        level_chain_transform(db), middle=db == -20)
        for db in (-10, -20, -30)
    ]  # fmt: skip
    out.append(HonestCondition("room-tone-2.5s", "room-tone", "2.5 s of -60 dBFS room tone each side",
                               room_tone_transform(2.5), middle=True))  # fmt: skip
    out.append(HonestCondition("gsm-phone", "gsm-phone", "300-3400 Hz, 8 kHz, GSM 06.10", gsm_transform(), middle=True))
    out.append(HonestCondition("cut-2s", "cut", "2.0 s from the speech onset", lambda wave, rng: onset_cut(wave),
                               middle=True))  # fmt: skip
    return out


def onset_cut(wave: np.ndarray, seconds: float = 2.0, before_s: float = 0.0) -> np.ndarray:
    """``seconds`` of the clip from ``before_s`` ahead of its speech onset (30 dB under its peak),
    zero-padded when shorter: the form of this EmoDB copy (cut or padded to 2.0 s)."""
    import librosa

    onset = max(0, int(librosa.effects.trim(wave, top_db=30)[1][0]) - round(before_s * RATE))
    cut = wave[onset : onset + round(seconds * RATE)]
    return np.pad(cut, (0, round(seconds * RATE) - len(cut)))
