"""A plain PyTorch training loop for the small from-scratch HuBERT classifier."""

from __future__ import annotations

import copy
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import soxr
import structlog
import torch
from transformers import HubertForSequenceClassification, Wav2Vec2FeatureExtractor

from tuning.metrics import compute_metrics
from tuning.modeling import SAMPLE_RATE, build_small_hubert

log = structlog.get_logger(__name__)


@dataclass
class TrainSettings:
    """Hyper-parameters of one training run (defaults are those of the bundled model)."""

    epochs: int = 45
    batch_size: int = 16
    # From scratch, peaks of 1e-3 and above leave the model stuck predicting the class prior.
    learning_rate: float = 5e-4
    weight_decay: float = 0.01
    warmup_fraction: float = 0.1
    label_smoothing: float = 0.1
    # RAVDESS clips open and close with silence: short crops often miss the speech entirely.
    crop_seconds: tuple[float, float] = (2.0, 3.0)
    speed_range: tuple[float, float] = (0.9, 1.1)
    noise_probability: float = 0.2
    noise_snr_db: tuple[float, float] = (10.0, 40.0)
    seed: int = 0
    # SpecAugment-style masks, applied by HuBERT itself in training mode only.
    model_overrides: dict[str, Any] = field(
        default_factory=lambda: {
            "mask_time_prob": 0.05,
            "mask_time_length": 5,
            "mask_feature_prob": 0.0,
        }
    )


@dataclass
class TrainResult:
    """The selected model, its feature extractor and how training went."""

    model: HubertForSequenceClassification
    feature_extractor: Wav2Vec2FeatureExtractor
    best_epoch: int
    history: list[dict[str, float]]
    seconds: float


def seed_everything(seed: int) -> None:
    """Seed every generator training touches (HF SpecAugment masks draw from numpy's global one)."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def augment(wave: np.ndarray, rng: np.random.Generator, settings: TrainSettings) -> np.ndarray:
    """Speed perturbation, a random crop and additive noise for one training clip.

    No gain change: the feature extractor normalises every clip to unit variance, so only
    the signal-to-noise ratio matters.
    """
    speed = rng.uniform(*settings.speed_range)
    # Resampling by 1/speed and playing at the model's rate shifts tempo and pitch together.
    wave = soxr.resample(wave, SAMPLE_RATE, SAMPLE_RATE / speed)
    length = min(len(wave), int(rng.uniform(*settings.crop_seconds) * SAMPLE_RATE))
    start = int(rng.integers(0, len(wave) - length + 1))
    wave = wave[start : start + length]
    if rng.random() < settings.noise_probability:
        snr_db = rng.uniform(*settings.noise_snr_db)
        power = float(np.mean(wave**2)) + 1e-10
        wave = wave + rng.normal(0.0, np.sqrt(power / 10 ** (snr_db / 10)), len(wave)).astype(np.float32)
    return wave.astype(np.float32)


@torch.inference_mode()
def predict(
    model: HubertForSequenceClassification,
    feature_extractor: Wav2Vec2FeatureExtractor,
    waves: Sequence[np.ndarray],
) -> list[str]:
    """Labels for whole clips, each run on its own exactly as the server prepares a request."""
    model.eval()
    predictions = []
    for wave in waves:
        inputs = feature_extractor(wave, sampling_rate=SAMPLE_RATE, return_tensors="pt", return_attention_mask=True)
        logits = model(**inputs).logits
        predictions.append(model.config.id2label[int(logits.argmax(-1))])
    return predictions


def train(
    labels: Sequence[str],
    train_waves: Sequence[np.ndarray],
    train_labels: Sequence[str],
    val_waves: Sequence[np.ndarray],
    val_labels: Sequence[str],
    settings: TrainSettings,
) -> TrainResult:
    """Train from scratch; keep the epoch with the best validation UAR (ties go to the later one)."""
    seed_everything(settings.seed)
    rng = np.random.default_rng(settings.seed)
    model, feature_extractor = build_small_hubert(labels, **settings.model_overrides)
    label_ids = torch.tensor([list(labels).index(label) for label in train_labels])

    optimizer = torch.optim.AdamW(model.parameters(), lr=settings.learning_rate, weight_decay=settings.weight_decay)
    steps_per_epoch = -(-len(train_waves) // settings.batch_size)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(
        optimizer,
        max_lr=settings.learning_rate,
        total_steps=settings.epochs * steps_per_epoch,
        pct_start=settings.warmup_fraction,
    )
    loss_fn = torch.nn.CrossEntropyLoss(label_smoothing=settings.label_smoothing)

    best_uar, best_epoch, best_state = -1.0, 0, copy.deepcopy(model.state_dict())
    history: list[dict[str, float]] = []
    started = time.perf_counter()
    for epoch in range(1, settings.epochs + 1):
        model.train()
        order = rng.permutation(len(train_waves))
        total_loss = 0.0
        for first in range(0, len(order), settings.batch_size):
            batch = order[first : first + settings.batch_size]
            crops = [augment(train_waves[i], rng, settings) for i in batch]
            inputs = feature_extractor(
                crops, sampling_rate=SAMPLE_RATE, padding=True, return_tensors="pt", return_attention_mask=True
            )
            logits = model(**inputs).logits
            loss = loss_fn(logits, label_ids[batch])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            scheduler.step()
            total_loss += loss.item() * len(batch)

        val = compute_metrics(val_labels, predict(model, feature_extractor, val_waves), labels)
        record = {
            "epoch": epoch,
            "train_loss": total_loss / len(order),
            "val_accuracy": val["accuracy"],
            "val_uar": val["uar"],
            "seconds": time.perf_counter() - started,
        }
        history.append(record)
        log.info("epoch", **{k: round(v, 4) for k, v in record.items()})
        if val["uar"] >= best_uar:
            best_uar, best_epoch, best_state = val["uar"], epoch, copy.deepcopy(model.state_dict())

    model.load_state_dict(best_state)
    model.eval()
    return TrainResult(model, feature_extractor, best_epoch, history, time.perf_counter() - started)
