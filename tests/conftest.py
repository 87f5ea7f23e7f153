"""Shared fixtures: tiny real checkpoints, a real gRPC server on loopback, real recordings."""

from __future__ import annotations

import importlib.machinery
import importlib.metadata
import importlib.util
import os
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import grpc
import numpy as np
import pytest
import soundfile as sf
import torch
from transformers import HubertConfig, HubertForSequenceClassification, Wav2Vec2FeatureExtractor

from emotion_client.v1 import emotion_pb2_grpc
from emotion_service.server.app import EmotionServer
from emotion_service.server.config import Settings

os.environ.setdefault("EMOTION_PLUGINS", "none")
torch.set_num_threads(1)

DATA = Path(__file__).parent / "data"
LABELS = ("ANG", "DIS", "FEA", "HAP", "NEU", "SAD")


def recordings() -> list[Path]:
    """The RAVDESS clips copied into tests/data."""
    return sorted(DATA.glob("*.flac"))


def save_tiny_hubert(folder: Path, feat_extract_norm: str = "layer", seed: int = 0, sharpen: float = 1.0) -> Path:
    """A real HuBERT classifier, small enough for CPU tests, saved with save_pretrained.

    Untrained, its answers hardly differ between recordings; ``sharpen`` scales the classifier's
    weights so that they do, for tests that must tell one caller's answer from another's.
    """
    torch.manual_seed(seed)
    config = HubertConfig(
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        conv_dim=(16, 16, 16),
        conv_kernel=(10, 4, 4),
        conv_stride=(5, 4, 4),
        num_conv_pos_embeddings=16,
        num_conv_pos_embedding_groups=4,
        feat_extract_norm=feat_extract_norm,
        num_labels=len(LABELS),
        id2label=dict(enumerate(LABELS)),
        label2id={label: i for i, label in enumerate(LABELS)},
        classifier_proj_size=16,
    )
    model = HubertForSequenceClassification(config)
    with torch.no_grad():
        model.classifier.weight.mul_(sharpen)
    model.save_pretrained(folder)
    Wav2Vec2FeatureExtractor(
        feature_size=1,
        sampling_rate=16000,
        padding_value=0.0,
        do_normalize=True,
        return_attention_mask=feat_extract_norm == "layer",
    ).save_pretrained(folder)
    return folder


# What the plugins write in the working directory when not told where.
WORKING_DIRECTORY_DEFAULTS = ("emotion-results.db*", "emotion-spool", "emotion-reports", "emotion-csv")


def _working_directory_defaults() -> set[Path]:
    return {path for pattern in WORKING_DIRECTORY_DEFAULTS for path in Path.cwd().glob(pattern)}


@pytest.fixture(scope="session", autouse=True)
def _working_directory_untouched() -> Iterator[None]:
    """Fails the run when a test wrote a plugin's default file or folder in the working directory: a
    test keeps its databases, spools, reports and exports under its tmp_path, where two pytest-xdist
    workers cannot share (and empty, or lock) each other's. What was there before the run (a
    developer's own server's) is not watched, so that server may keep working while tests run; CI's
    fresh clone has none. Under xdist the worker that notices may not be the one whose test wrote."""
    before = _working_directory_defaults()
    yield
    written = sorted(str(path.name) for path in _working_directory_defaults() - before)
    assert not written, f"a test wrote {written} in the working directory {Path.cwd()}: give it a tmp_path"


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_tiny_hubert(tmp_path_factory.mktemp("tiny-hubert"))


@pytest.fixture(scope="session")
def tiny_model_groupnorm(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Like hubert-base: group norm and no attention mask, so padding changes answers."""
    return save_tiny_hubert(tmp_path_factory.mktemp("tiny-hubert-gn"), feat_extract_norm="group", sharpen=1000.0)


def make_settings(model: Path, **overrides: object) -> Settings:
    """Settings for a server on a free loopback port."""
    # The job queue gets a database of its own, not emotion-results.db in the working directory.
    jobs_db = Path(tempfile.mkdtemp(prefix="emotion-jobs-")) / "jobs.db"
    values = dict(
        host="127.0.0.1",
        port=0,
        model=str(model),
        torch_threads=1,
        max_queue_delay_ms=20.0,
        jobs_database_url=f"sqlite:///{jobs_db}",
    )
    values.update(overrides)
    return Settings(**values)  # type: ignore[arg-type]


async def start_server(settings: Settings) -> EmotionServer:
    """A real grpc.aio server with its model loaded."""
    server = EmotionServer(settings)
    await server.start()
    await server.load_model()
    return server


@pytest.fixture(scope="session")
async def server(tiny_model: Path) -> AsyncIterator[EmotionServer]:
    srv = await start_server(make_settings(tiny_model))
    yield srv
    await srv.stop(grace=1)


@pytest.fixture(scope="session")
async def channel(server: EmotionServer) -> AsyncIterator[grpc.aio.Channel]:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as ch:
        yield ch


@pytest.fixture(scope="session")
def stub(channel: grpc.aio.Channel) -> emotion_pb2_grpc.EmotionServiceStub:
    return emotion_pb2_grpc.EmotionServiceStub(channel)


@pytest.fixture(scope="session")
def speech() -> tuple[np.ndarray, int]:
    """One real 16 kHz recording as float32."""
    wave, rate = sf.read(recordings()[0], dtype="float32")
    return wave, rate


def lose_wheel(monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    """From now on the installed distribution ``name`` is not there, to both ways a pinned wheel is
    looked up (its metadata, and its package's import spec)."""
    real_distribution, real_find_spec = importlib.metadata.distribution, importlib.util.find_spec

    def distribution(wanted: str) -> importlib.metadata.Distribution:
        if wanted == name:
            raise importlib.metadata.PackageNotFoundError(wanted)
        return real_distribution(wanted)

    def find_spec(wanted: str, package: str | None = None) -> importlib.machinery.ModuleSpec | None:
        return None if wanted == name else real_find_spec(wanted, package)

    monkeypatch.setattr(importlib.metadata, "distribution", distribution)
    monkeypatch.setattr(importlib.util, "find_spec", find_spec)


def load_mono(path: Path) -> np.ndarray:
    """A recording as mono float32 (one corpus clip is stereo)."""
    wave, _ = sf.read(path, dtype="float32", always_2d=True)
    return wave.mean(axis=1)


# Modules whose servers or backends load with dtype=auto, or compare answers closely: `make
# test-dtype` (run by .ci/run) runs them again with EMOTION_ASSUME_CPU_BF16=1 and =0, so both
# paths of dtype=auto pass on any CPU, whichever one this machine takes natively.
DTYPE_SENSITIVE = {
    "test_batching_equivalence",
    "test_client",
    "test_dtype",
    "test_ensemble",
    "test_features",
    "test_service",
    "test_sessions",
    "test_stream_overload",
    "test_tuning_evaluate",
}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        module = getattr(item, "module", None)
        if module is not None and module.__name__.rsplit(".", 1)[-1] in DTYPE_SENSITIVE:
            item.add_marker(pytest.mark.dtype_sensitive)
