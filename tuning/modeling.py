"""Construction of the small HuBERT classifier that the server can serve as it is."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from transformers import HubertConfig, HubertForSequenceClassification, Wav2Vec2FeatureExtractor

SAMPLE_RATE = 16000

# A small from-scratch model. The conv front end (32-192 channels, total stride 640 = 40 ms
# frames) rectifies early and pools later, so it can follow energy and pitch; conv biases give its
# layer norms a fixed reference, so frame loudness survives normalisation. Three 192-wide
# transformer layers on top. Trains in 15-25 minutes on two CPU cores.
SMALL_SIZES: dict[str, Any] = {
    "hidden_size": 192,
    "num_hidden_layers": 3,
    "num_attention_heads": 4,
    "intermediate_size": 768,
    "conv_dim": (32, 64, 128, 128, 192),
    "conv_kernel": (10, 8, 4, 4, 2),
    "conv_stride": (5, 4, 4, 4, 2),
    "conv_bias": True,
    "num_conv_pos_embeddings": 16,
    "num_conv_pos_embedding_groups": 16,
    "classifier_proj_size": 128,
}


def build_feature_extractor() -> Wav2Vec2FeatureExtractor:
    """The input pipeline the server runs: per-clip zero-mean/unit-variance, zero padding, a mask."""
    return Wav2Vec2FeatureExtractor(
        feature_size=1,
        sampling_rate=SAMPLE_RATE,
        padding_value=0.0,
        do_normalize=True,
        return_attention_mask=True,
    )


def build_small_hubert(
    labels: Sequence[str], **overrides: Any
) -> tuple[HubertForSequenceClassification, Wav2Vec2FeatureExtractor]:
    """A randomly initialised HuBERT classifier over `labels`, and its feature extractor.

    `overrides` replace any HubertConfig field (sizes, dropout, SpecAugment masking).
    Layer norm in the conv front end (not group norm) keeps each clip's features independent
    of the others in a padded batch, which the server's batcher relies on.
    """
    settings: dict[str, Any] = {
        **SMALL_SIZES,
        "feat_extract_norm": "layer",
        "do_stable_layer_norm": True,
        "use_weighted_layer_sum": False,
        "layerdrop": 0.0,
        **overrides,
    }
    config = HubertConfig(
        id2label=dict(enumerate(labels)),
        label2id={label: i for i, label in enumerate(labels)},
        **settings,
    )
    return HubertForSequenceClassification(config), build_feature_extractor()
