"""Training throughput: samples/s of one process, and of `emotion train --num_workers N` on Ray.

Single process: times full training steps (forward, backward, AdamW step) of a HuBERT-base-sized
classifier at batch 8 on the CPU, and on CUDA with bf16/fp16 autocast (AMP) when a GPU is
present. Random weights (HubertConfig's defaults are hubert-base's shape, 95 M parameters).

Data-parallel (``--workers 1,2``): runs the real `emotion train --num_workers N` (Ray Train, gloo
on CPUs, NCCL with ``--use-gpu``) on a local Ray with N CPUs, the bundled model's architecture on
synthetic 3 s clips, once for 1 epoch and once for 1 + ``--epochs`` epochs; the difference is the
time of those epochs without Ray's start-up, and samples/s = clips x epochs / that time. Each
worker keeps the per-device batch, so N workers step through N times the clips per step.
Prints figures, asserts nothing.

    python bench/train_throughput.py                 # HuBERT-base, batch 8, 3 s clips
    python bench/train_throughput.py --size tiny     # a quick smoke run
    python bench/train_throughput.py --workers 1,2   # emotion train on 1 and 2 Ray workers
"""

from __future__ import annotations

import argparse
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
from _flags import at_least_one, clip_seconds, whole_numbers, zero_or_more  # bench/ is on sys.path when a bench runs
from transformers import HubertConfig, HubertForSequenceClassification

SAMPLE_RATE = 16000
SIZES = {
    "base": {},
    "tiny": dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=2, intermediate_size=128, conv_dim=(32,) * 7),
}


def build(size: str) -> HubertForSequenceClassification:
    """A randomly initialised classifier over 6 emotions, feature encoder frozen as when fine-tuning."""
    config = HubertConfig(num_labels=6, **SIZES[size])
    model = HubertForSequenceClassification(config)
    model.freeze_feature_encoder()
    return model


def samples_per_second(
    model: torch.nn.Module, device: str, batch: int, seconds: float, steps: int, warmup: int, amp: bool
) -> float:
    """Mean samples/s over `steps` timed training steps after `warmup` untimed ones."""
    model.to(device).train()
    optimizer = torch.optim.AdamW((p for p in model.parameters() if p.requires_grad), lr=1e-5)
    inputs = torch.randn(batch, int(seconds * SAMPLE_RATE), device=device)
    labels = torch.randint(0, 6, (batch,), device=device)
    dtype = torch.bfloat16 if device == "cuda" and torch.cuda.is_bf16_supported() else torch.float16
    scaler = torch.amp.GradScaler(enabled=amp and dtype == torch.float16)

    def step() -> None:
        with torch.autocast(device_type=device, dtype=dtype, enabled=amp):
            loss = model(input_values=inputs, labels=labels).loss
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()

    for _ in range(warmup):
        step()
    if device == "cuda":
        torch.cuda.synchronize()
    started = time.perf_counter()
    for _ in range(steps):
        step()
    if device == "cuda":
        torch.cuda.synchronize()
    return batch * steps / (time.perf_counter() - started)


def synthetic_corpus(folder: Path, clips: int, seconds: float) -> Path:
    """``clips`` WAVs of shaped noise with labels and speakers, and their CSV manifest."""
    rng = np.random.default_rng(0)
    rows = ["path,label,speaker"]
    for i in range(clips):
        wave = rng.standard_normal(int(seconds * SAMPLE_RATE)) * np.abs(
            np.sin(np.linspace(0, 9, int(seconds * SAMPLE_RATE)))
        )
        sf.write(folder / f"clip{i}.wav", (0.1 * wave).astype(np.float32), SAMPLE_RATE)
        rows.append(f"clip{i}.wav,{('ANG', 'DIS', 'FEA', 'HAP', 'NEU', 'SAD')[i % 6]},s{i % 4}")
    (folder / "manifest.csv").write_text("\n".join(rows) + "\n")
    return folder / "manifest.csv"


def distributed_rate(workers: int, epochs: int, clips: int, batch: int, use_gpu: bool) -> float:
    """samples/s of `emotion train --num_workers workers` over ``epochs`` epochs, Ray's start-up excluded."""
    emotion = str(Path(sys.executable).with_name("emotion"))
    with tempfile.TemporaryDirectory() as tmp:
        manifest = synthetic_corpus(Path(tmp), clips, 3.0)

        def run(n_epochs: int) -> float:
            argv = [
                emotion, "train", "--data", str(manifest), "--dataset", "csv", "--from_scratch",
                "--output_dir", f"{tmp}/model-{n_epochs}", "--num_train_epochs", str(n_epochs),
                "--val_fraction", "0", "--per_device_train_batch_size", str(batch), "--max_seconds", "3.0",
                "--augment_probability", "0", "--report_to", "none", "--disable_tqdm", "true",
                "--num_workers", str(workers), *(["--use_gpu", "true"] if use_gpu else []),
            ]  # fmt: skip
            started = time.perf_counter()
            subprocess.run(argv, check=True, capture_output=True)
            return time.perf_counter() - started

        first, more = run(1), run(1 + epochs)
    return clips * epochs / max(more - first, 1e-9)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", choices=SIZES, default="base", help="model size [default: base]")
    parser.add_argument("--batch-size", type=at_least_one, default=8, help="clips per step [default: 8]")
    parser.add_argument("--seconds", type=clip_seconds, default=3.0, help="clip length [default: 3]")
    parser.add_argument("--steps", type=at_least_one, default=5, help="timed steps [default: 5]")
    parser.add_argument("--warmup", type=zero_or_more, default=1, help="untimed steps first [default: 1]")
    parser.add_argument("--workers", type=whole_numbers(1), help="e.g. 1,2: time `emotion train --num_workers N` on Ray instead")
    parser.add_argument("--epochs", type=at_least_one, default=3, help="with --workers: timed epochs [default: 3]")
    parser.add_argument("--clips", type=at_least_one, default=64, help="with --workers: synthetic 3 s clips [default: 64]")
    parser.add_argument("--use-gpu", action="store_true", help="with --workers: one GPU per worker")
    args = parser.parse_args()
    if args.workers:
        counts = list(args.workers)
        print(f"emotion train --num_workers N: logmel-cnn, {args.clips} synthetic 3 s clips, per-device batch "
              f"{args.batch_size}, {args.epochs} timed epochs (Ray start-up excluded), {platform.machine()}")  # fmt: skip
        rates = {n: distributed_rate(n, args.epochs, args.clips, args.batch_size, args.use_gpu) for n in counts}
        for n, rate in rates.items():
            print(f"{n} worker(s): {rate:8.2f} samples/s  ({rate / rates[counts[0]]:.2f}x {counts[0]} worker(s))")
        return

    model = build(args.size)
    parameters = sum(p.numel() for p in model.parameters())
    print(f"model: HuBERT {args.size}, {parameters / 1e6:.1f} M parameters (feature encoder frozen)")
    print(f"batch {args.batch_size} x {args.seconds:g} s clips, {args.steps} timed steps after {args.warmup} warm-up")
    print(
        f"torch {torch.__version__}, {platform.processor() or platform.machine()}, {torch.get_num_threads()} CPU threads"
    )
    runs = [("cpu fp32", "cpu", False)]
    if torch.cuda.is_available():
        runs += [(f"cuda fp32 ({torch.cuda.get_device_name()})", "cuda", False), ("cuda AMP", "cuda", True)]
    for name, device, amp in runs:
        rate = samples_per_second(model, device, args.batch_size, args.seconds, args.steps, args.warmup, amp)
        print(f"{name:<40} {rate:8.2f} samples/s  ({rate * args.seconds:8.1f} audio-s/s)")


if __name__ == "__main__":
    main()
