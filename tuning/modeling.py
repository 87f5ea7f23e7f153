"""Built-in configurations for training an audio classifier from scratch.

Each is an architecture ``AutoModelForAudioClassification`` loads from its folder (stock
``transformers`` ones, and :mod:`server.architectures`' log-mel CNN, which the server registers
with the Auto classes), so the server serves it as it serves any fine-tuned checkpoint.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from transformers import (
    HubertConfig,
    HubertForSequenceClassification,
    PreTrainedModel,
    SeamlessM4TFeatureExtractor,
    Wav2Vec2BertConfig,
    Wav2Vec2BertForSequenceClassification,
    Wav2Vec2FeatureExtractor,
)

from emotion_service.architectures import LogMelCNNConfig, LogMelCNNForAudioClassification, LogMelFeatureExtractor

SAMPLE_RATE = 16000

# A conformer over log-mel filterbanks (the Wav2Vec2-BERT architecture, without its pretrained
# weights). On a thousand clips a spectral front end learns what a raw-waveform conv stack
# cannot, and the conformer's depthwise convolutions give it a CNN's locality. Four stacked
# 10 ms frames (40 ms steps) keep sequences short enough to train on two CPU cores.
CONFORMER_SMALL: dict[str, Any] = {
    "hidden_size": 144,
    "num_hidden_layers": 4,
    "num_attention_heads": 4,
    "intermediate_size": 576,
    "conv_depthwise_kernel_size": 15,
    "position_embeddings_type": "rotary",
    "hidden_dropout": 0.1,
    "activation_dropout": 0.1,
    "attention_dropout": 0.1,
    "feat_proj_dropout": 0.1,
    "final_dropout": 0.1,
    "layerdrop": 0.0,
    # SpecAugment-style time masks on the projected frames, applied by the model in training only.
    "mask_time_prob": 0.1,
    "mask_time_length": 5,
    "mask_feature_prob": 0.0,
    "classifier_proj_size": 128,
}
CONFORMER_FRAME_STACK = 4

# The conv front end (32-192 channels, total stride 640 = 40 ms frames) rectifies early and pools
# later, so it can follow energy and pitch; conv biases give its layer norms a fixed reference,
# so frame loudness survives normalisation. Three 192-wide transformer layers on top.
HUBERT_SMALL: dict[str, Any] = {
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
    # Layer norm in the conv front end (not group norm) keeps each clip's features independent
    # of the others in a padded batch, which the server's batcher relies on.
    "feat_extract_norm": "layer",
    "do_stable_layer_norm": True,
    "use_weighted_layer_sum": False,
    "layerdrop": 0.0,
    "mask_time_prob": 0.05,
    "mask_time_length": 5,
}


def label_fields(labels: Sequence[str]) -> dict[str, Any]:
    """The config fields that give a classifier its labels: ``num_labels``, ``id2label``, ``label2id``."""
    return {
        "num_labels": len(labels),
        "id2label": dict(enumerate(labels)),
        "label2id": {label: i for i, label in enumerate(labels)},
    }


def build_conformer_small(
    labels: Sequence[str], **overrides: Any
) -> tuple[Wav2Vec2BertForSequenceClassification, SeamlessM4TFeatureExtractor]:
    """A randomly initialised log-mel conformer classifier over `labels`, and its feature extractor.

    The feature extractor computes 80 Kaldi-style mel filterbanks per 10 ms, normalises each
    mel bin over the clip (padding excluded) and stacks ``CONFORMER_FRAME_STACK`` frames.
    """
    settings = {**CONFORMER_SMALL, **overrides}
    config = Wav2Vec2BertConfig(
        feature_projection_input_dim=80 * CONFORMER_FRAME_STACK, **label_fields(labels), **settings
    )
    feature_extractor = SeamlessM4TFeatureExtractor(
        feature_size=80, num_mel_bins=80, sampling_rate=SAMPLE_RATE, stride=CONFORMER_FRAME_STACK
    )
    return Wav2Vec2BertForSequenceClassification(config), feature_extractor


def build_logmel_cnn(
    labels: Sequence[str], **overrides: Any
) -> tuple[LogMelCNNForAudioClassification, LogMelFeatureExtractor]:
    """A randomly initialised four-block log-mel CNN classifier over `labels`, and its feature extractor.

    The feature extractor computes 80 Kaldi-style log-mel filterbanks per 10 ms, leaves them
    unnormalised (the model's input batch norm normalises over the training set) and stacks two
    frames per vector, which the model unstacks.
    """
    config = LogMelCNNConfig(**label_fields(labels), **overrides)
    feature_extractor = LogMelFeatureExtractor(
        feature_size=config.num_mel_bins,
        num_mel_bins=config.num_mel_bins,
        sampling_rate=SAMPLE_RATE,
        stride=config.frame_stack,
    )
    return LogMelCNNForAudioClassification(config), feature_extractor


def build_hubert_small(
    labels: Sequence[str], **overrides: Any
) -> tuple[HubertForSequenceClassification, Wav2Vec2FeatureExtractor]:
    """A randomly initialised small HuBERT classifier over `labels`, and its feature extractor.

    The feature extractor normalises each clip to zero mean and unit variance and pads batches
    with zeros plus an attention mask.
    """
    config = HubertConfig(**label_fields(labels), **{**HUBERT_SMALL, **overrides})
    feature_extractor = Wav2Vec2FeatureExtractor(
        feature_size=1, sampling_rate=SAMPLE_RATE, padding_value=0.0, do_normalize=True, return_attention_mask=True
    )
    return HubertForSequenceClassification(config), feature_extractor


SCRATCH_ARCHITECTURES: dict[str, Callable[..., tuple[PreTrainedModel, Any]]] = {
    "logmel-cnn": build_logmel_cnn,
    "conformer-small": build_conformer_small,
    "hubert-small": build_hubert_small,
}


def build_from_scratch(architecture: str, labels: Sequence[str], **overrides: Any) -> tuple[PreTrainedModel, Any]:
    """A randomly initialised built-in `architecture` over `labels`; `overrides` replace config fields."""
    try:
        build = SCRATCH_ARCHITECTURES[architecture]
    except KeyError:
        known = ", ".join(SCRATCH_ARCHITECTURES)
        raise ValueError(f"--architecture {architecture!r} is not a built-in one ({known})") from None
    return build(labels, **overrides)
