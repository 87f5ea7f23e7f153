"""Training throughput: samples/s of a HuBERT-base-sized classifier on 3 s clips.

Times full training steps (forward, backward, AdamW step) at batch 8 on the CPU, and on
CUDA with bf16/fp16 autocast (AMP) when a GPU is present. Random weights (HubertConfig's
defaults are hubert-base's shape, 95 M parameters): timing only. Prints figures, asserts nothing.

    python bench/train_throughput.py                 # HuBERT-base, batch 8, 3 s clips
    python bench/train_throughput.py --size tiny     # a quick smoke run
"""

from __future__ import annotations

import argparse
import platform
import time

import torch
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", choices=SIZES, default="base", help="model size [default: base]")
    parser.add_argument("--batch-size", type=int, default=8, help="clips per step [default: 8]")
    parser.add_argument("--seconds", type=float, default=3.0, help="clip length [default: 3]")
    parser.add_argument("--steps", type=int, default=5, help="timed steps [default: 5]")
    parser.add_argument("--warmup", type=int, default=1, help="untimed steps first [default: 1]")
    args = parser.parse_args()

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
