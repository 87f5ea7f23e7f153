"""Serving throughput: the raw model vs. the service as users run it, in one process.

Prints clips/s for (a) the bare forward pass in float32 at batch 1 and at the batcher's batch
size, (a') the same at the dtype ``--dtype auto`` picks on this machine, (b) the gRPC service
at its default settings with the default plugins on, under N concurrent callers, (c) the same
service with batching off, and (d) the bundled model served the same way; with p50/p95 latency
and the ratios (b)/(a'), (b)/(c) and (d)/(a). When CUDA is there, a GPU section times the raw
forward pass of HuBERT-base and HuBERT-large shapes in float32, float16 and bfloat16. Asserts
nothing. Random weights: timing only.

    python bench/serve_throughput.py                 # HuBERT-base, 3 s clips
    python bench/serve_throughput.py --size tiny     # a quick smoke run
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import grpc
import numpy as np
import torch
from _flags import at_least_one, clip_seconds, phase_seconds  # bench/ is on sys.path when a bench runs
from transformers import HubertConfig, HubertForSequenceClassification, Wav2Vec2FeatureExtractor

from emotion_client.v1 import emotion_pb2 as pb
from emotion_client.v1 import emotion_pb2_grpc
from emotion_service.logging import configure_logging
from emotion_service.paths import BUNDLED_MODEL
from emotion_service.plugins.manager import load_plugins
from emotion_service.server.app import EmotionServer
from emotion_service.server.config import Settings
from emotion_service.server.model import ModelBackend

LABELS = ("ANG", "DIS", "FEA", "HAP", "NEU", "SAD")
SIZES = {
    "base": {},  # HubertConfig's defaults are hubert-base's shape (95 M parameters)
    "tiny": dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=2, intermediate_size=128, conv_dim=(32,) * 7),
    # hubert-large's shape (316 M parameters): only timed in the GPU section
    "large": dict(hidden_size=1024, num_hidden_layers=24, num_attention_heads=16, intermediate_size=4096),
}


@dataclass
class Phase:
    name: str
    clips: int
    seconds: float
    latencies: list[float]

    @property
    def rate(self) -> float:
        return self.clips / self.seconds

    def line(self) -> str:
        text = f"{self.name:<44} {self.rate:8.2f} clips/s"
        if self.latencies:
            p50, p95 = np.percentile(self.latencies, [50, 95]) * 1000
            text += f"   p50 {p50:7.0f} ms   p95 {p95:7.0f} ms"
        return text


def save_model(size: str, folder: Path) -> Path:
    torch.manual_seed(0)
    config = HubertConfig(
        num_labels=len(LABELS),
        id2label=dict(enumerate(LABELS)),
        label2id={l: i for i, l in enumerate(LABELS)},
        **SIZES[size],
    )
    HubertForSequenceClassification(config).save_pretrained(folder)
    Wav2Vec2FeatureExtractor(return_attention_mask=False, do_normalize=True).save_pretrained(folder)
    return folder


def time_forward(backend: ModelBackend, clips: list[np.ndarray], batch: int, budget_s: float, name: str) -> Phase:
    backend.predict(clips[:batch])  # warm
    done, started = 0, time.perf_counter()
    while time.perf_counter() - started < budget_s or done == 0:
        backend.predict(clips[:batch])
        done += batch
    return Phase(f"{name} forward pass, batch {batch}, {backend.info.dtype}", done, time.perf_counter() - started, [])


async def time_service(
    model: Path, settings: dict, clips: list[np.ndarray], callers: int, budget_s: float, name: str, plugins: str
) -> Phase:
    server = EmotionServer(
        Settings(host="127.0.0.1", port=0, model=str(model), **settings), plugins=load_plugins(plugins)
    )
    await server.start()
    await server.load_model()
    fmt = pb.PcmFormat(encoding=pb.PCM_ENCODING_F32LE, sample_rate=16000, channels=1)
    requests = [pb.ClassifyRequest(audio=pb.Audio(raw=pb.RawAudio(data=c.tobytes(), format=fmt))) for c in clips]
    latencies: list[float] = []
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        stub = emotion_pb2_grpc.EmotionServiceStub(channel)
        await stub.Classify(requests[0])  # warm
        stop_at = time.perf_counter() + budget_s

        async def caller(i: int) -> None:
            while time.perf_counter() < stop_at:
                t0 = time.perf_counter()
                await stub.Classify(requests[i % len(requests)])
                latencies.append(time.perf_counter() - t0)

        started = time.perf_counter()
        await asyncio.gather(*(caller(i) for i in range(callers)))
        elapsed = time.perf_counter() - started
    await server.stop(grace=1)
    return Phase(name, len(latencies), elapsed, latencies)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", choices=sorted(SIZES), default="base", help="model shape")
    parser.add_argument("--callers", type=at_least_one, default=16, help="concurrent Classify callers")
    parser.add_argument("--clip-seconds", type=clip_seconds, default=3.0, help="length of every clip")
    parser.add_argument("--seconds", type=phase_seconds, default=20.0, help="measuring time per phase")
    parser.add_argument("--plugins", default="all", help="plugins of the served phases (default: all, as users run it)")
    args = parser.parse_args()
    configure_logging("warning")
    defaults = Settings()
    batch = defaults.max_batch_size
    rng = np.random.default_rng(0)
    clips = [(rng.standard_normal(int(16000 * args.clip_seconds)) * 0.1).astype(np.float32) for _ in range(batch)]
    with tempfile.TemporaryDirectory() as tmp, tempfile.TemporaryDirectory() as work:
        os.chdir(work)  # the default store writes its SQLite file and spool here, not in the checkout
        model = save_model(args.size, Path(tmp))
        fp32 = ModelBackend.load(str(model), dtype="float32")
        print(
            f"model: HuBERT-{args.size} ({sum(p.numel() for p in fp32.model.parameters()) / 1e6:.1f} M params), "
            f"{args.clip_seconds:g} s clips, device {fp32.info.device}, torch threads {torch.get_num_threads()}, "
            f"{os.cpu_count()} CPUs ({platform.processor() or platform.machine()})"
        )
        single = time_forward(fp32, clips, 1, args.seconds, "(a)")
        batched = time_forward(fp32, clips, batch, args.seconds, "(a)")
        del fp32
        auto = ModelBackend.load(str(model), dtype="auto")
        fastest = time_forward(auto, clips, batch, args.seconds, "(a')")
        del auto
        served = await time_service(
            model, {}, clips, args.callers, args.seconds, f"(b) service, defaults, plugins {args.plugins}", args.plugins
        )
        unbatched = await time_service(
            model, {"max_batch_size": 1}, clips, args.callers, args.seconds, "(c) service, batching off", args.plugins
        )
        bundled = await time_service(
            BUNDLED_MODEL, {}, clips, args.callers, args.seconds, "(d) bundled model served, defaults", args.plugins
        )
    for phase in (single, batched, fastest, served, unbatched, bundled):
        print(phase.line())
    print(f"(b)/(a'): {served.rate / fastest.rate:.2f}x   (target >= 0.9)")
    print(f"(b)/(c):  {served.rate / unbatched.rate:.2f}x")
    print(f"(d)/(a) at batch {batch}: {bundled.rate / batched.rate:.1f}x   (target >= 25)")
    print(f"(a) batch {batch} / batch 1: {batched.rate / single.rate:.2f}x")
    if torch.cuda.is_available():
        gpu_section(clips, args.seconds)


def gpu_section(clips: list[np.ndarray], seconds: float) -> None:
    """Raw forward passes on the GPU: HuBERT-base and -large shapes, float32, float16 and bfloat16."""
    print(f"GPU: {torch.cuda.get_device_name(0)}")
    with tempfile.TemporaryDirectory() as tmp:
        for size in ("base", "large"):
            model = save_model(size, Path(tmp) / size)
            for dtype in ("float32", "float16", "bfloat16"):
                backend = ModelBackend.load(str(model), device="cuda", dtype=dtype)
                print(time_forward(backend, clips, len(clips), seconds, f"[gpu] HuBERT-{size}").line())
                del backend
                torch.cuda.empty_cache()


if __name__ == "__main__":
    asyncio.run(main())
