"""Construction of the small HuBERT classifier that the server can serve as it is."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from transformers import HubertConfig, HubertForSequenceClassification, Wav2Vec2FeatureExtractor

SAMPLE_RATE = 16000

# A small from-scratch model: a 64-128 channel conv front end (stride 320 = 20 ms frames,
# like HuBERT) and a 4-layer, 192-wide transformer. Trains in minutes on two CPU cores.
SMALL_SIZES: dict[str, Any] = {
    "hidden_size": 192,
    "num_hidden_layers": 4,
    "num_attention_heads": 4,
    "intermediate_size": 768,
    "conv_dim": (64, 64, 128, 128, 128, 128, 128),
    "conv_kernel": (10, 3, 3, 3, 3, 2, 2),
    "conv_stride": (5, 2, 2, 2, 2, 2, 2),
    "num_conv_pos_embeddings": 32,
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
