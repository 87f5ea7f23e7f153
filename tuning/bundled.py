"""Reproduce the bundled default model: `python -m tuning.bundled` (what `make model` runs).

The recipe is one `emotion train` run on every RAVDESS actor 01-18 (the test actors 19-24
excluded; no validation split, the last of 40 epochs exported: the recipe itself was chosen on a
14 / 4 speaker split of those actors) followed by `emotion evaluate` on actors 19-24 and,
cross-corpus, on EmoDB. The test figures are added to the model card and to metrics.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file

from emotion_service.paths import BUNDLED_MODEL, REPO_ROOT
from emotion_service.tuning.datasets import load_emodb, load_ravdess, parse_speakers, split_by_speaker
from emotion_service.tuning.evaluate import evaluate
from emotion_service.tuning.finetune import command_line, parse_args, run_training

DEFAULT_DATA = REPO_ROOT.parent / "shared" / "data" / "ravdess"
DEFAULT_EMODB = REPO_ROOT.parent / "shared" / "data" / "emodb"
TEST_SPEAKERS = "19-24"
# One thread, as the bundled model was made: CPU kernels sum in an order that depends on the
# thread count, so only the same count reproduces its weights bit for bit (OMP_NUM_THREADS=1
# does the same for a plain `emotion train`).
THREADS = 1


# The robust front end, saved in the model's preprocessor_config.json so serving computes it too:
# silence trimmed by voice activity, level and per-bin statistics taken on voiced frames, and a
# floor 50 dB under the voiced level so the noise floor of near-silent frames does not count.
FRONT_END = {"voiced_threshold_db": 35, "trim_margin_s": 0.15, "normalize_level": True,
             "energy_floor_db": 50, "normalize_per_clip": True}  # fmt: skip


def train_flags(data: Path, output: Path, epochs: int, seed: int) -> list[str]:
    """The `emotion train` flags of the bundled model."""
    return [
        "--from_scratch", "--architecture", "logmel-cnn",
        "--data", str(data), "--exclude_speakers", TEST_SPEAKERS, "--val_fraction", "0",
        "--num_train_epochs", str(epochs), "--seed", str(seed),
        "--learning_rate", "2e-3", "--lr_scheduler_type", "cosine", "--warmup_steps", "0.1",
        "--weight_decay", "0.01", "--label_smoothing_factor", "0.1",
        "--per_device_train_batch_size", "16", "--per_device_eval_batch_size", "16",
        "--max_seconds", "3.0",
        "--save_total_limit", "1", "--disable_tqdm", "true", "--report_to", "none",
        # The augmentation plugin's recording conditions (noise, babble, rooms, phone lines,
        # codecs, silence, gain) on 4 clips in 5; SpecAugment masks in the model on all.
        "--augment_probability", "0.8",
        "--config_overrides", '{"channels": [24, 48, 96, 192]}',
        "--feature_overrides", json.dumps(FRONT_END),
        "--output_dir", str(output),
    ]  # fmt: skip


def _relative(path: Path) -> Path:
    """`path` relative to the working directory, so the recorded commands read as typed from the repo root."""
    return Path(os.path.relpath(path))


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m tuning.bundled", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--data",
        type=Path,
        default=_relative(DEFAULT_DATA),
        help="RAVDESS folder with manifest.csv [default: ../shared/data/ravdess beside the repo]",
    )
    parser.add_argument(
        "--emodb",
        type=Path,
        default=_relative(DEFAULT_EMODB),
        help="EmoDB folder, for cross-corpus evaluation only; skipped when missing",
    )
    parser.add_argument("--output", type=Path, default=_relative(BUNDLED_MODEL), help="model folder to write")
    parser.add_argument("--epochs", type=int, default=30, help="training epochs [default: 30]")
    parser.add_argument("--seed", type=int, default=0, help="seed of initialisation, order and augmentation")
    return parser.parse_args(argv)  # fmt: skip


def hardware() -> str:
    name = platform.machine()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        name = next(
            (
                line.split(":", 1)[1].strip()
                for line in cpuinfo.read_text().splitlines()
                if line.startswith("model name")
            ),
            name,
        )
    return f"{THREADS} torch thread(s) of a {name} ({os.cpu_count()} cores, no GPU), torch {torch.__version__}"


def results_section(results: dict[str, Any]) -> str:
    """The model card's test figures: RAVDESS held-out speakers and EmoDB."""

    def row(name: str, m: dict[str, Any]) -> str:
        return f"| {name} | {m['n']} | {m['accuracy']:.1%} | {m['uar']:.1%} | {m['macro_f1']:.1%} |"

    rows = [row("RAVDESS actors 19-24 (held-out speakers)", results["test"])]
    if results.get("emodb"):
        rows.append(row("EmoDB, German, 2.0 s clips (cross-corpus)", results["emodb"]))
    per_class = "\n".join(
        f"| {label} | {m['precision']:.2f} | {m['recall']:.2f} | {m['f1']:.2f} | {m['support']} |"
        for label, m in results["test"]["per_class"].items()
    )
    return f"""
## Test results

Scored by `emotion evaluate` (whole clips, one request each, as the server scores them):

| evaluation set | clips | accuracy | UAR | macro-F1 |
| --- | --- | --- | --- | --- |
{chr(10).join(rows)}

Per class on RAVDESS actors 19-24:

| class | precision | recall | F1 | clips |
| --- | --- | --- | --- | --- |
{per_class}

Chance is 16.7 % UAR. EmoDB is cross-corpus and cross-language (German, other speakers, clips cut
to 2.0 s): the model never heard it, and its figures are reported separately.

## How it was made

```
{results["command"]}
```

Training took {results["train_seconds"] / 60:.1f} min on {results["hardware"]};
{results["parameters"]:,} parameters. `metrics.json` has every figure; the evaluation folders hold
the confusion matrices and ROC curves.

## Licence

RAVDESS (Livingstone & Russo 2018, "The Ryerson Audio-Visual Database of Emotional Speech and Song
(RAVDESS)", PLoS ONE 13(5): e0196391) is licensed CC BY-NC-SA 4.0. This model is trained on it and
carries the same terms: **CC BY-NC-SA 4.0, non-commercial use only, with attribution to Livingstone &
Russo (2018)**, and derivatives must be shared alike. The code that trains it is separate from this
licence.
"""


def main(argv: list[str] | None = None) -> None:
    args = parse(sys.argv[1:] if argv is None else argv)
    if not (args.data / "manifest.csv").is_file():
        sys.exit(f"error: RAVDESS not found: {args.data}/manifest.csv is missing (pass --data)")
    torch.set_num_threads(THREADS)
    flags = train_flags(args.data, args.output, args.epochs, args.seed)
    started = time.perf_counter()
    run_training(parse_args(flags), command_line(flags))
    train_seconds = time.perf_counter() - started

    model = str(args.output)
    test, _ = split_by_speaker(load_ravdess(args.data), parse_speakers(TEST_SPEAKERS))
    evaluate_commands = [f"emotion evaluate {model} {args.data} --speakers {TEST_SPEAKERS} "
                         f"--output {args.output / 'evaluation' / 'ravdess-19-24'}"]  # fmt: skip
    results: dict[str, Any] = {"test": evaluate(model, test, args.output / "evaluation" / "ravdess-19-24")}
    if (args.emodb / "manifest.csv").is_file():
        emodb_output = args.output / "evaluation" / "emodb"
        results["emodb"] = evaluate(model, load_emodb(args.emodb), emodb_output)
        evaluate_commands.append(f"emotion evaluate {model} {args.emodb} --dataset emodb --output {emodb_output}")
    results |= {
        "command": "\n".join([command_line(flags), *evaluate_commands]),
        "train_seconds": train_seconds,
        "hardware": hardware(),
        "parameters": sum(tensor.numel() for tensor in load_file(args.output / "model.safetensors").values()),
    }
    (args.output / "metrics.json").write_text(json.dumps(results, indent=2) + "\n")
    card = args.output / "README.md"
    card.write_text(card.read_text() + results_section(results))
    for name in ("test", "emodb"):
        if name in results:
            m = results[name]
            print(f"{name}: accuracy {m['accuracy']:.3f}  UAR {m['uar']:.3f}  macro-F1 {m['macro_f1']:.3f}")
    print(f"trained in {train_seconds / 60:.1f} min; wrote {args.output}")


if __name__ == "__main__":
    main()
