"""Reproduce the bundled default model: `python -m tuning.bundled`.

Trains the small HuBERT from scratch on RAVDESS actors 01-16, picks the epoch on actors 17-18,
evaluates on the held-out actors 19-24 (and on EmoDB, cross-corpus, when it is there) and
writes a model folder the server loads as it is, with a model card and metrics.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any

import structlog
import torch

from tuning.datasets import LABELS6, Example, load_emodb, load_ravdess, load_waves, speaker_ids, split_by_speaker
from tuning.metrics import compute_metrics
from tuning.training import TrainResult, TrainSettings, predict, train

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO_ROOT.parent / "shared" / "data" / "ravdess"
DEFAULT_EMODB = REPO_ROOT.parent / "shared" / "data" / "emodb"
DEFAULT_OUTPUT = REPO_ROOT / "models" / "emotion-hubert-small"
TRAIN_SPEAKERS = speaker_ids(1, 16)
VALIDATION_SPEAKERS = speaker_ids(17, 18)
TEST_SPEAKERS = speaker_ids(19, 24)
# Two threads: the budget the bundled model was made with, and what keeps runs reproducible.
THREADS = 2

log = structlog.get_logger(__name__)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m tuning.bundled", description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA,
                        help="RAVDESS folder with manifest.csv (default: ../shared/data/ravdess from the repo root)")
    parser.add_argument("--emodb", type=Path, default=DEFAULT_EMODB,
                        help="EmoDB folder for cross-corpus evaluation only; skipped when missing")
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT, help="model folder to write")
    parser.add_argument("--epochs", type=int, default=TrainSettings.epochs, help="training epochs")
    parser.add_argument("--seed", type=int, default=TrainSettings.seed, help="seed for init, shuffling and augmentation")
    return parser.parse_args(argv)


def folder_size(folder: Path) -> int:
    return sum(path.stat().st_size for path in folder.rglob("*") if path.is_file())


def cpu_name() -> str:
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def model_card(summary: dict[str, Any]) -> str:
    """The README.md of the model folder: provenance, results and the licence it inherits."""

    def row(name: str, metrics: dict[str, Any]) -> str:
        return (f"| {name} | {metrics['n']} | {metrics['accuracy']:.1%} | {metrics['uar']:.1%} "
                f"| {metrics['macro_f1']:.1%} |")

    rows = [row("RAVDESS actors 19-24 (held-out speakers)", summary["test"])]
    if summary.get("emodb"):
        rows.append(row("EmoDB, German, 2.0 s clips (cross-corpus)", summary["emodb"]))
    per_class = "\n".join(
        f"| {label} | {m['precision']:.2f} | {m['recall']:.2f} | {m['f1']:.2f} | {m['support']} |"
        for label, m in summary["test"]["per_class"].items()
    )
    config = summary["config"]
    settings = summary["settings"]
    return f"""---
license: cc-by-nc-sa-4.0
library_name: transformers
pipeline_tag: audio-classification
tags: [speech-emotion-recognition, hubert]
---

# emotion-hubert-small

The small default model the emotion service starts with when no other model is given: a
`HubertForSequenceClassification` (HuBERT architecture) **trained from scratch** (no pretrained
weights) on RAVDESS speech, 6 classes: {", ".join(LABELS6)}. It is a demo-grade default that runs
fast on a CPU; for real use, serve a fine-tuned pretrained HuBERT.

## Results

Whole clips, one at a time, prepared by the bundled feature extractor as the server does.

| evaluation set | clips | accuracy | UAR | macro-F1 |
| --- | --- | --- | --- | --- |
{chr(10).join(rows)}

Chance is 16.7 % UAR; always answering the largest class gives 18 % accuracy on RAVDESS 19-24
and 28 % (ANG) on EmoDB. EmoDB is cross-corpus and cross-language (German, other speakers, clips
cut to 2.0 s): the model never heard it, and its figures are reported separately.

Per class on RAVDESS actors 19-24:

| class | precision | recall | F1 | clips |
| --- | --- | --- | --- | --- |
{per_class}

## How it was made

```
{summary["command"]}
```

- Data: RAVDESS audio-only speech (16 kHz FLAC), the 6-class subset (`label6` of the manifest;
  calm and surprised left out). Training: actors 01-16. Epoch selection (best validation UAR):
  actors 17-18, best epoch {summary["best_epoch"]} of {settings["epochs"]}. Test: actors 19-24, never
  used for training or selection. EmoDB: evaluation only.
- Training: AdamW, one-cycle learning rate (peak {settings["learning_rate"]}), batch
  {settings["batch_size"]}, label smoothing {settings["label_smoothing"]}, random crops of
  {settings["crop_seconds"][0]}-{settings["crop_seconds"][1]} s, speed perturbation
  {settings["speed_range"][0]}-{settings["speed_range"][1]}, white noise at
  {settings["noise_snr_db"][0]:.0f}-{settings["noise_snr_db"][1]:.0f} dB SNR on
  {settings["noise_probability"]:.0%} of clips, SpecAugment time masks; seed
  {settings["seed"]}. Full settings and the per-epoch history are in `metrics.json`.
- Architecture: conv front end of {config["conv_dim"]} channels, kernels {config["conv_kernel"]},
  strides {config["conv_stride"]}, layer norm; {config["num_hidden_layers"]} transformer layers of
  width {config["hidden_size"]} ({config["num_attention_heads"]} heads); mean pooling over the
  attention mask; {summary["parameters"]:,} parameters; {summary["size_bytes"] / 1e6:.1f} MB on disk.
- Training time: {summary["train_seconds"] / 60:.1f} min on {summary["hardware"]}.

## Input

16 kHz mono float audio, any length; `preprocessor_config.json` (a `Wav2Vec2FeatureExtractor`)
normalises each clip to zero mean and unit variance and pads batches with zeros plus an attention mask.

## Licence

RAVDESS (Livingstone & Russo 2018, "The Ryerson Audio-Visual Database of Emotional Speech and Song
(RAVDESS)", PLoS ONE 13(5): e0196391) is licensed CC BY-NC-SA 4.0. This model is trained on it and
carries the same terms: **CC BY-NC-SA 4.0, non-commercial use only, with attribution to Livingstone &
Russo (2018)**, and derivatives must be shared alike. The code that trains it is separate from this
licence.
"""


def summarise(result: TrainResult, test: dict[str, Any], emodb: dict[str, Any] | None,
              settings: TrainSettings, argv: list[str]) -> dict[str, Any]:
    return {
        "command": shlex.join(["python", "-m", "tuning.bundled", *argv]),
        "test": test,
        "emodb": emodb,
        "best_epoch": result.best_epoch,
        "history": result.history,
        "settings": asdict(settings),
        "config": result.model.config.to_diff_dict(),
        "parameters": sum(p.numel() for p in result.model.parameters()),
        "train_seconds": result.seconds,
        "hardware": f"{THREADS} threads of a {cpu_name()} ({os.cpu_count()} cores, no GPU), "
                    f"torch {torch.__version__}",
        "splits": {"train": TRAIN_SPEAKERS, "validation": VALIDATION_SPEAKERS, "test": TEST_SPEAKERS},
    }


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    if not (args.data / "manifest.csv").is_file():
        sys.exit(f"error: RAVDESS not found: {args.data}/manifest.csv is missing (pass --data)")
    torch.set_num_threads(THREADS)
    settings = TrainSettings(epochs=args.epochs, seed=args.seed)

    examples = load_ravdess(args.data)
    test, rest = split_by_speaker(examples, TEST_SPEAKERS)
    validation, training = split_by_speaker(rest, VALIDATION_SPEAKERS)
    log.info("decoding audio", train=len(training), validation=len(validation), test=len(test))
    result = train(
        LABELS6,
        load_waves(training), [e.label for e in training],
        load_waves(validation), [e.label for e in validation],
        settings,
    )

    def evaluate(items: list[Example]) -> dict[str, Any]:
        return compute_metrics([e.label for e in items], predict(result.model, result.feature_extractor,
                                                                   load_waves(items)), LABELS6)

    test_metrics = evaluate(test)
    emodb_metrics = evaluate(load_emodb(args.emodb)) if (args.emodb / "manifest.csv").is_file() else None

    args.output.mkdir(parents=True, exist_ok=True)
    result.model.save_pretrained(args.output)
    result.feature_extractor.save_pretrained(args.output)
    summary = summarise(result, test_metrics, emodb_metrics, settings, argv)
    (args.output / "metrics.json").write_text(json.dumps(summary, indent=2) + "\n")
    # The card quotes the folder's size, so measure it with a first draft of the card in place.
    (args.output / "README.md").write_text(model_card({**summary, "size_bytes": 0}))
    (args.output / "README.md").write_text(model_card({**summary, "size_bytes": folder_size(args.output)}))

    print(f"RAVDESS actors 19-24: accuracy {test_metrics['accuracy']:.3f}  UAR {test_metrics['uar']:.3f}  "
          f"macro-F1 {test_metrics['macro_f1']:.3f}")
    if emodb_metrics:
        print(f"EmoDB (cross-corpus): accuracy {emodb_metrics['accuracy']:.3f}  UAR {emodb_metrics['uar']:.3f}  "
              f"macro-F1 {emodb_metrics['macro_f1']:.3f}")
    print(f"best epoch {result.best_epoch}/{settings.epochs}, trained in {result.seconds / 60:.1f} min, "
          f"wrote {args.output}")


if __name__ == "__main__":
    main()
