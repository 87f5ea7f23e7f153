"""The model backend: any audio-classification checkpoint behind one ``predict``."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import structlog
import torch
from transformers import AutoConfig, AutoFeatureExtractor, AutoModelForAudioClassification
from transformers.utils import logging as hf_logging

import emotion_service.architectures  # noqa: F401  (registers the project's architectures with the Auto classes)

log = structlog.get_logger(__name__)

_DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}
# Two clips of different lengths, scored alone and together, must agree this closely
# (relative to the logits' scale) for the batcher to pad mixed lengths into one batch.
BATCH_INVARIANCE_TOLERANCE = 1e-4


class ModelNotFoundError(RuntimeError):
    """The model is neither a folder nor obtainable from the hub; the message says how to fix it."""


@dataclass(frozen=True)
class ModelInfo:
    """What the service reports about its model."""

    name: str
    version: str
    labels: tuple[str, ...]
    sample_rate: int
    device: str
    dtype: str
    architecture: str


def labelled(labels: tuple[str, ...], scores: np.ndarray) -> dict[str, Any]:
    """The winning label and the score of every label, from one row of model output."""
    return {"label": labels[int(np.argmax(scores))], "scores": dict(zip(labels, map(float, scores)))}


class ModelBackend:
    """Scores batches of mono waveforms with a Hugging Face audio classifier.

    Not thread-safe: the batcher calls :meth:`predict` from one worker thread.
    """

    def __init__(self, model: torch.nn.Module, feature_extractor: Any, info: ModelInfo) -> None:
        self.model = model
        self.feature_extractor = feature_extractor
        self.info = info
        self.pads_mixed_lengths = False
        self._device = torch.device(info.device)
        self._dtype = _DTYPES[info.dtype]

    @classmethod
    def load(
        cls,
        name_or_path: str,
        device: str = "auto",
        dtype: str = "auto",
        torch_threads: int = 0,
        quantize: str = "none",
    ) -> ModelBackend:
        """Loads a folder or hub id with ``from_pretrained``; raises :class:`ModelNotFoundError`.

        ``dtype="auto"`` picks the fastest type the hardware runs well (:func:`auto_dtype`) and
        keeps it only if the model's scores on a few clips stay within :data:`DTYPE_TOLERANCE`
        of float32's; otherwise it falls back to float32 (logged as ``dtype_fallback``).
        ``quantize="int8"`` (CPU) quantises the linear layers dynamically, an opt-in.
        """
        if torch_threads > 0:
            torch.set_num_threads(torch_threads)
        resolved_device = _resolve_device(device)
        resolved_dtype = auto_dtype(resolved_device) if dtype == "auto" else dtype
        if quantize not in ("none", "int8"):
            raise ModelNotFoundError(f"quantize={quantize!r} is not supported: use none or int8")
        if quantize == "int8" and resolved_device.type != "cpu":
            raise ModelNotFoundError("quantize=int8 runs on the CPU only: use --device cpu, or --quantize none")
        _check_exists(name_or_path)
        hf_logging.disable_progress_bar()  # keep the server's stderr to JSON log lines
        try:
            config = AutoConfig.from_pretrained(name_or_path)
            feature_extractor = AutoFeatureExtractor.from_pretrained(name_or_path)
            model = AutoModelForAudioClassification.from_pretrained(name_or_path, dtype=torch.float32)
        except OSError as exc:
            raise ModelNotFoundError(_not_found(name_or_path, str(exc).splitlines()[0])) from None
        model.to(resolved_device).eval()
        labels = tuple(config.id2label[i] for i in range(config.num_labels))
        info = ModelInfo(
            name=Path(name_or_path).name if Path(name_or_path).is_dir() else name_or_path,
            version=model_version(name_or_path, config),
            labels=labels,
            sample_rate=int(feature_extractor.sampling_rate),
            device=str(resolved_device),
            dtype="float32",
            architecture=type(model).__name__,
        )
        backend = cls(model, feature_extractor, info)
        if resolved_dtype != "float32":
            backend._convert(resolved_dtype, check=dtype == "auto")
        if quantize == "int8":
            backend._quantize_int8()
        log.info(
            "model_loaded", model=name_or_path, **{k: v for k, v in backend.info.__dict__.items() if k != "labels"}
        )
        return backend

    def _convert(self, dtype: str, check: bool) -> None:
        """Moves the weights to ``dtype``; with ``check``, back to float32 when scores drift too far."""
        clips = _check_clips(self.info.sample_rate)
        reference = self.predict(clips) if check else None
        # Casting back would keep the rounding: a fallback restores the float32 weights themselves.
        weights = {k: v.detach().clone() for k, v in self.model.state_dict().items()} if check else None
        self.model.to(_DTYPES[dtype])
        self._dtype = _DTYPES[dtype]
        self.info = dataclasses.replace(self.info, dtype=dtype)
        if reference is None:
            return
        drift = float(np.abs(self.predict(clips) - reference).max())
        if drift > DTYPE_TOLERANCE:
            log.warning("dtype_fallback", tried=dtype, drift=drift, tolerance=DTYPE_TOLERANCE, using="float32")
            self.model.to(torch.float32)
            self.model.load_state_dict(weights)
            self._dtype = torch.float32
            self.info = dataclasses.replace(self.info, dtype="float32")
        else:
            log.info("dtype_checked", dtype=dtype, drift=drift, tolerance=DTYPE_TOLERANCE)

    def _quantize_int8(self) -> None:
        """Dynamic int8 quantisation of the linear layers (weights int8, activations quantised per batch)."""
        clips = _check_clips(self.info.sample_rate)
        reference = self.predict(clips)
        self.model = torch.ao.quantization.quantize_dynamic(self.model, {torch.nn.Linear}, dtype=torch.qint8)
        self.info = dataclasses.replace(self.info, dtype=f"{self.info.dtype}+int8-linear")
        drift = float(np.abs(self.predict(clips) - reference).max())
        log.info("model_quantized", scheme="dynamic int8, linear layers", drift=drift)

    def predict(self, waveforms: Sequence[np.ndarray]) -> np.ndarray:
        """Returns a (batch, labels) float32 array of probabilities."""
        return self.forward(self.features(waveforms))

    def features(self, waveforms: Sequence[np.ndarray]) -> dict[str, torch.Tensor]:
        """The model's inputs for a batch: padded features and attention mask, on the model's device.

        Separate from :meth:`forward` so the batcher can prepare the next batch while the
        current one runs. An extractor that can compute the whole padded batch in torch, on
        the model's device (the project's log-mel extractor), does so.
        """
        if getattr(self.feature_extractor, "batches_in_torch", False):
            inputs = self.feature_extractor.torch_features(waveforms, self._device)
            return {key: value.to(self._dtype) if value.is_floating_point() else value for key, value in inputs.items()}
        inputs = self.feature_extractor(
            list(waveforms),
            sampling_rate=self.info.sample_rate,
            padding=True,
            return_tensors="pt",
            return_attention_mask=True,
        )
        return {
            key: value.to(self._device, self._dtype if value.is_floating_point() else None)
            for key, value in inputs.items()
        }

    def forward(self, inputs: dict[str, torch.Tensor]) -> np.ndarray:
        """Probabilities, (batch, labels) float32, for inputs made by :meth:`features`."""
        logits = self._forward_logits(inputs)
        shifted = np.exp(logits - logits.max(axis=-1, keepdims=True))
        return shifted / shifted.sum(axis=-1, keepdims=True)

    @torch.inference_mode()
    def _forward_logits(self, inputs: dict[str, torch.Tensor]) -> np.ndarray:
        return self.model(**inputs).logits.float().cpu().numpy()

    def _logits(self, waveforms: Sequence[np.ndarray]) -> np.ndarray:
        return self._forward_logits(self.features(waveforms))

    def warm_up(self) -> None:
        """Runs the first forward passes and decides whether mixed lengths may share a batch.

        Checkpoints without an attention mask (hubert-base, wav2vec2-base) normalise over
        the padded input, so zero padding changes their answers: for them the batcher only
        groups clips of equal length.
        """
        rng = np.random.default_rng(0)
        short = (rng.standard_normal(self.info.sample_rate) * 0.1).astype(np.float32)
        long = (rng.standard_normal(int(self.info.sample_rate * 1.7)) * 0.1).astype(np.float32)
        # Logits, not probabilities: an untrained model's near-uniform softmax hides the gap.
        alone = np.stack([self._logits([short])[0], self._logits([long])[0]])
        together = self._logits([short, long])
        gap = float(np.abs(alone - together).max() / (1.0 + np.abs(alone).max()))
        self.pads_mixed_lengths = gap < BATCH_INVARIANCE_TOLERANCE
        log.info("model_warmed_up", pads_mixed_lengths=self.pads_mixed_lengths, padding_gap=gap)


def audio_capacity(backend: ModelBackend, window_s: float, batch_size: int, repeats: int = 3) -> float:
    """Seconds of audio the model scores per second of wall time, in full batches of ``window_s``
    clips: features and forward pass of one batch timed end to end (the fastest of ``repeats``).

    Stream admission compares what open streams ask for (``window_s / hop_s`` each) with this.
    Conservative: the batcher overlaps features with the forward pass, which this does not count.
    """
    rng = np.random.default_rng(2)
    clips = [(rng.standard_normal(int(window_s * backend.info.sample_rate)) * 0.1).astype(np.float32)] * batch_size
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        backend.predict(clips)
        best = min(best, time.perf_counter() - started)
    return batch_size * window_s / best


# The largest change of any probability on the check clips that a faster dtype may cause before
# dtype=auto falls back to float32 (bf16 keeps about 3 significant digits).
DTYPE_TOLERANCE = 0.01
_CPU_BF16_FLAGS = ("amx_bf16", "avx512_bf16")


def cpu_flags() -> set[str]:
    """The CPU's feature flags (Linux ``/proc/cpuinfo``; empty elsewhere)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return set()
    for line in text.splitlines():
        if line.startswith("flags"):
            return set(line.split(":", 1)[1].split())
    return set()


# Tests and CI set this to 1 (or 0) to make dtype=auto behave as on a CPU with (or without)
# AMX / AVX-512 BF16, so both paths run on any machine (torch runs bfloat16 everywhere, slowly
# where the instructions are missing). Unset: the CPU's own flags decide.
ASSUME_CPU_BF16_ENV = "EMOTION_ASSUME_CPU_BF16"


def cpu_runs_bf16() -> bool:
    """Whether this CPU runs bfloat16 well (AMX or AVX-512 BF16), or what
    ``EMOTION_ASSUME_CPU_BF16`` (1 or 0) says it does."""
    assumed = os.environ.get(ASSUME_CPU_BF16_ENV, "").strip()
    if assumed:
        if assumed not in ("0", "1"):
            raise ValueError(f"{ASSUME_CPU_BF16_ENV}={assumed!r}: use 1 (as on a bf16 CPU), 0 (as without), or unset it")
        return assumed == "1"
    return bool(cpu_flags() & set(_CPU_BF16_FLAGS))


def auto_dtype(device: torch.device) -> str:
    """The fastest dtype the hardware runs well: bf16 on CUDA that supports it (else fp16), bf16 on
    CPUs with AMX or AVX-512 BF16 instructions (:func:`cpu_runs_bf16`), float32 elsewhere."""
    if device.type == "cuda":
        return "bfloat16" if torch.cuda.is_bf16_supported() else "float16"
    return "bfloat16" if cpu_runs_bf16() else "float32"


def _check_clips(rate: int) -> list[np.ndarray]:
    """Three seeded clips of shaped noise, 1-2 s, for comparing dtypes."""
    rng = np.random.default_rng(1)
    clips = []
    for seconds in (1.0, 1.5, 2.0):
        noise = rng.standard_normal(int(rate * seconds)).astype(np.float32)
        envelope = np.abs(np.sin(np.linspace(0, 6 * np.pi, len(noise)))).astype(np.float32)
        clips.append(0.1 * noise * envelope)
    return clips


def _resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda:0" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ModelNotFoundError(f"device {device!r} asked for, but torch sees no CUDA GPU: use --device cpu or auto")
    return torch.device(device)


def _check_exists(name_or_path: str) -> None:
    path = Path(name_or_path).expanduser()
    looks_local = name_or_path.startswith((".", "/", "~")) or path.exists() or name_or_path.count("/") > 1
    if looks_local and not (path / "config.json").is_file():
        problem = "folder does not exist" if not path.exists() else "folder has no config.json"
        raise ModelNotFoundError(_not_found(name_or_path, problem))


def _not_found(name_or_path: str, problem: str) -> str:
    return (
        f"model {name_or_path!r} not found ({problem}). Fix: pass --model (or EMOTION_MODEL) a model folder "
        "saved with save_pretrained, a hub id reachable from this machine, or run `make model` "
        "to rebuild the bundled models/emotion-logmel-cnn and models/emotion-whisper-probe"
    )


# Config keys that say where or with what a model was saved, not what it is.
_CONFIG_KEYS_NOT_HASHED = ("_name_or_path", "transformers_version", "_commit_hash")
# Files of a model folder that change answers: weights, the JSON settings every loader reads
# (config.json, preprocessor_config.json, a sharded checkpoint's index, label maps), text label
# or vocabulary files, a SentencePiece model and remote code.
_VERSIONED_SUFFIXES = (".safetensors", ".bin", ".json", ".txt", ".model", ".py")
# ... and files beside them that no loader reads: what training and evaluation wrote there.
_NOT_VERSIONED = frozenset(
    {
        "metrics.json",
        "conditions.json",
        "trainer_state.json",
        "all_results.json",
        "train_results.json",
        "eval_results.json",
        "training_args.bin",
        "train_seconds.txt",
        # A cache of weight hashes the service used to write beside the model.
        ".emotion-weights.sha256.json",
    }
)


def model_version(name_or_path: str, config: Any) -> str:
    """A short content hash of what the model computes: every file of its folder that changes answers.

    For a folder: the bytes of its weights and of every settings file a loader reads
    (``config.json``, ``preprocessor_config.json``, label, vocabulary and index files;
    see :data:`_VERSIONED_SUFFIXES`), each under its name. JSON files are hashed as their
    parsed content with sorted keys, without the keys that only say where or with which
    ``transformers`` it was saved, so re-saving the same model gives the same version. What
    training and evaluation leave beside a model (``metrics.json``, ``README.md``,
    ``evaluation/``; :data:`_NOT_VERSIONED`) is not hashed. The same files in two folders give
    one version; any changed weight or setting gives another, even at the same file size.

    The bytes are hashed at every load, with no cache (a cache keyed by size and modification
    time would trust a file rewritten within the same timestamp): about 2 ms for the bundled
    0.9 MB model, a few seconds per GB for a large checkpoint, once at start-up. A hub id is
    hashed by its config and the hub commit it resolved to.
    """
    settings = {k: v for k, v in config.to_dict().items() if k not in _CONFIG_KEYS_NOT_HASHED}
    digest = hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode())
    path = Path(name_or_path)
    if path.is_dir():
        for name, file_hash in _file_hashes(path):
            digest.update(f"{name}:{file_hash}\n".encode())
    else:
        digest.update(str(getattr(config, "_commit_hash", "") or "").encode())
    return digest.hexdigest()[:12]


def _file_hashes(folder: Path) -> list[tuple[str, str]]:
    """(name, sha256) of each file of ``folder`` that changes the model's answers, by name."""
    hashes = []
    for file in sorted(folder.iterdir()):
        if file.is_file() and file.suffix in _VERSIONED_SUFFIXES and file.name not in _NOT_VERSIONED:
            hashes.append((file.name, _json_sha256(file) if file.suffix == ".json" else _sha256_file(file)))
    return hashes


def _json_sha256(path: Path) -> str:
    """The hash of a JSON file's content (keys sorted, save-time keys dropped); of its bytes if it is not JSON."""
    try:
        content = json.loads(path.read_bytes())
    except (ValueError, UnicodeDecodeError):
        return _sha256_file(path)
    if isinstance(content, dict):
        content = {k: v for k, v in content.items() if k not in _CONFIG_KEYS_NOT_HASHED}
    return hashlib.sha256(json.dumps(content, sort_keys=True).encode()).hexdigest()


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
