"""Speaker-level k-fold cross-validation of a training recipe on RAVDESS actors 01-18 only.

``python -m emotion_service.tuning.crossval --cv 3 --seeds 0,1`` trains the bundled model's
recipe once per fold and seed, each time holding one fold of speakers out, and scores the
held-out speakers through the server's own backend, clean and under the headline recording
conditions. It prints each figure as mean and standard deviation over folds and seeds.

Recipes are compared this way, never on the test actors 19-24, which stay excluded from every
fold (they are scored once, by ``make model``, for the README). Flags after ``--`` are appended
to the recipe's ``emotion train`` flags, so an alternative is one command:
``python -m emotion_service.tuning.crossval --cv 3 -- --augment_probability 0``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path
from typing import Any

from emotion_service.tuning.bundled import DEFAULT_DATA, EPOCHS, TEST_SPEAKERS, _relative, train_flags
from emotion_service.tuning.datasets import load_ravdess, parse_speakers, speaker_ids, split_by_speaker

# The conditions of the headline table, besides clean audio (babble needs a pool; see conditions.py).
CONDITIONS = "clean,noise-white-10dB,level-20dB,silence-around-2.5s,telephone-8k"
TRAINING_SPEAKERS = speaker_ids(1, 18)


def folds(k: int) -> list[list[str]]:
    """Actors 01-18 dealt into ``k`` folds in turn: with RAVDESS's odd male and even female actors and
    an odd ``k`` every fold holds men and women (``k`` = 3: three of each)."""
    if not 2 <= k <= len(TRAINING_SPEAKERS):
        raise ValueError(f"--cv must lie between 2 and {len(TRAINING_SPEAKERS)}, not {k}")
    return [TRAINING_SPEAKERS[i::k] for i in range(k)]


def run_fold(data: Path, output: Path, fold: list[str], seed: int, epochs: int, extra: list[str]) -> dict[str, Any]:
    """Trains on the other training speakers, scores ``fold``; reuses a finished model folder."""
    import torch

    from emotion_service.tuning.conditions import select
    from emotion_service.tuning.evaluate import evaluate_conditions
    from emotion_service.tuning.finetune import command_line, parse_args, run_training

    # One thread per run, so --jobs runs share the cores instead of fighting over them.
    torch.set_num_threads(1)
    flags = train_flags(data, output, epochs, seed) + extra
    flags[flags.index("--exclude_speakers") + 1] = f"{TEST_SPEAKERS},{','.join(fold)}"
    if not (output / "model.safetensors").is_file():
        run_training(parse_args(flags), command_line(flags))
    held_out, _ = split_by_speaker(load_ravdess(data), fold)
    rows = evaluate_conditions(str(output), held_out, output / "evaluation", select(CONDITIONS), torch_threads=1)
    return {"fold": fold, "seed": seed, "command": command_line(flags), "conditions": rows}


def summarise(runs: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """Mean and standard deviation of each condition's accuracy and UAR over every fold and seed."""
    summary: dict[str, dict[str, float]] = {}
    for name in CONDITIONS.split(","):
        for metric in ("accuracy", "uar"):
            values = [row[metric] for run in runs for row in run["conditions"] if row["condition"] == name]
            spread = statistics.stdev(values) if len(values) > 1 else 0.0
            summary.setdefault(name, {}).update({metric: statistics.mean(values), f"{metric}_std": spread})
    return summary


def parse(argv: list[str]) -> tuple[argparse.Namespace, list[str]]:
    parser = argparse.ArgumentParser(
        prog="python -m emotion_service.tuning.crossval",
        description=__doc__.splitlines()[0],
        epilog="Flags after -- go to emotion train, after the recipe's own (the later flag wins).",
    )
    parser.add_argument("--cv", type=int, default=3, help="number of speaker folds [default: 3]")
    parser.add_argument("--seeds", default="0", help="comma-separated seeds; each fold trains once per seed")
    parser.add_argument("--epochs", type=int, default=EPOCHS, help=f"training epochs per run [default: {EPOCHS}]")
    parser.add_argument("--jobs", type=int, default=1, help="runs trained at once, one torch thread each")
    parser.add_argument("--data", type=Path, default=_relative(DEFAULT_DATA), help="RAVDESS folder")
    parser.add_argument("--output", type=Path, default=Path("build/cv"), help="folder of the fold models")
    if "--" in argv:
        at = argv.index("--")
        return parser.parse_args(argv[:at]), argv[at + 1 :]
    return parser.parse_args(argv), []


def main(argv: list[str] | None = None) -> None:
    args, extra = parse(sys.argv[1:] if argv is None else argv)
    if not (args.data / "manifest.csv").is_file():
        sys.exit(f"error: RAVDESS not found: {args.data}/manifest.csv is missing (pass --data)")
    try:
        speaker_folds = folds(args.cv)
        seeds = [int(seed) for seed in args.seeds.split(",")]
    except ValueError as exc:
        sys.exit(f"error: {exc}")
    leaked = set(parse_speakers(TEST_SPEAKERS)) & {s for fold in speaker_folds for s in fold}
    assert not leaked, f"test speakers {leaked} in a fold"
    jobs = [
        (args.data, args.output / f"fold{index}-seed{seed}", fold, seed, args.epochs, extra)
        for seed in seeds
        for index, fold in enumerate(speaker_folds)
    ]
    with ProcessPoolExecutor(max_workers=args.jobs, mp_context=get_context("spawn")) as pool:
        runs = list(pool.map(run_fold, *zip(*jobs)))
    summary = summarise(runs)
    args.output.mkdir(parents=True, exist_ok=True)
    result = {"cv": args.cv, "seeds": seeds, "extra_flags": extra, "summary": summary, "runs": runs}
    (args.output / "crossval.json").write_text(json.dumps(result, indent=2) + "\n")
    print(f"{args.cv}-fold speaker cross-validation on actors 01-18, seeds {args.seeds}, {len(runs)} runs:")
    print("| condition | accuracy | UAR |\n| --- | --- | --- |")
    for name, m in summary.items():
        print(f"| {name} | {m['accuracy']:.1%} ± {m['accuracy_std']:.1%} | {m['uar']:.1%} ± {m['uar_std']:.1%} |")
    print(f"wrote {args.output / 'crossval.json'}")


if __name__ == "__main__":
    main()
