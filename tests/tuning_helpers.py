"""Shared pieces of the tuning tests: a CSV manifest of the tests/data clips and a tiny model config."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from tests.conftest import recordings

RAVDESS_CODES = {"01": "NEU", "03": "HAP", "04": "SAD", "05": "ANG", "06": "FEA", "07": "DIS"}

# The size of conftest's save_tiny_hubert (`--architecture hubert-small`): an epoch on a dozen clips takes a second.
TINY_HUBERT = json.dumps(
    {
        "hidden_size": 32,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
        "intermediate_size": 64,
        "conv_dim": [16, 16, 16],
        "conv_kernel": [10, 4, 4],
        "conv_stride": [5, 4, 4],
        "num_conv_pos_embeddings": 16,
        "num_conv_pos_embedding_groups": 4,
        "classifier_proj_size": 16,
    }
)

# `--architecture conformer-small`, shrunk alike.
TINY_CONFORMER = json.dumps(
    {
        "hidden_size": 32,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
        "intermediate_size": 64,
        "conv_depthwise_kernel_size": 5,
        "classifier_proj_size": 16,
    }
)

# The bundled model's architecture (the default `--architecture logmel-cnn`) with two narrow blocks.
TINY_CNN = json.dumps({"channels": [8, 16]})


def write_manifest(folder: Path) -> Path:
    """manifest.csv of the RAVDESS test clips, labelled from their names, spread over 4 pseudo-speakers."""
    path = folder / "manifest.csv"
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["path", "label", "speaker"])
        for i, clip in enumerate(recordings()):
            writer.writerow([clip.resolve(), RAVDESS_CODES[clip.stem.split("-")[2]], f"s{i % 4}"])
    return path
