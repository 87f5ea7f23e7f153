"""The log-mel filterbank in torch, for a whole batch, equals SeamlessM4T's numpy extractor; training's path equals serving's."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from transformers import AutoFeatureExtractor

from emotion_service.architectures import LogMelFeatureExtractor
from emotion_service.paths import LOGMEL_CNN_MODEL
from emotion_service.server.model import ModelBackend
from tests.conftest import load_mono, recordings

# Log-mel values lie between about -16 and 25; float32 against numpy's float64 moves them by < 5e-3.
FEATURE_TOLERANCE = 5e-3


@pytest.fixture(scope="module")
def extractor():  # type: ignore[no-untyped-def]
    # The plain Kaldi-style front end (no voice activity, no level normalisation): SeamlessM4T's own.
    return LogMelFeatureExtractor(feature_size=80, num_mel_bins=80, sampling_rate=16_000, stride=2)


def mixed_clips() -> list[np.ndarray]:
    """Real speech of many lengths: odd and even frame counts, one clip near the shortest allowed."""
    waves = [load_mono(path) for path in recordings()[:6]]
    lengths = [48_000, 47_123, 31_999, 16_160, 1_600, 40_401]
    return [wave[:n] for wave, n in zip(waves, lengths, strict=True)]


def test_torch_batch_features_equal_the_numpy_extractor(extractor) -> None:  # type: ignore[no-untyped-def]
    clips = mixed_clips()
    reference = extractor(clips, sampling_rate=16_000, padding=True, return_tensors="pt", return_attention_mask=True)
    batched = extractor.torch_features(clips, torch.device("cpu"))
    assert batched["input_features"].shape == reference["input_features"].shape
    assert torch.equal(batched["attention_mask"], reference["attention_mask"].to(torch.int32))
    difference = (batched["input_features"] - reference["input_features"]).abs().max().item()
    assert difference < FEATURE_TOLERANCE


def test_a_clip_alone_and_in_a_batch_get_the_same_features(extractor) -> None:  # type: ignore[no-untyped-def]
    clips = mixed_clips()
    batched = extractor.torch_features(clips, torch.device("cpu"))
    for row, clip in enumerate(clips):
        alone = extractor.torch_features([clip], torch.device("cpu"))
        frames = alone["input_features"].shape[1]
        torch.testing.assert_close(batched["input_features"][row, :frames], alone["input_features"][0])
        assert not batched["input_features"][row, frames:].any(), "padding frames are zero"


def test_the_served_model_scores_as_with_the_training_features() -> None:
    clips = mixed_clips()
    backend = ModelBackend.load(str(LOGMEL_CNN_MODEL), dtype="float32", torch_threads=1)
    served = backend.predict(clips)  # the batcher's path: torch features of the whole batch
    training = AutoFeatureExtractor.from_pretrained(LOGMEL_CNN_MODEL)  # the collator's path: __call__
    inputs = training(clips, sampling_rate=16_000, padding=True, return_tensors="pt", return_attention_mask=True)
    trained = backend.forward(dict(inputs))
    assert np.abs(served - trained).max() < 1e-5
