"""Serving throughput: the raw model vs. the service with and without batching.

Prints clips/s for (a) the bare forward pass at batch 1 and at the batcher's
batch size, (b) the gRPC service under N concurrent callers, (c) the same
service with batching off, plus p50/p95 latency and the ratios (b)/(a) and
(b)/(c). Asserts nothing. Random HuBERT-base-sized weights: timing only.

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
from transformers import HubertConfig, HubertForSequenceClassification, Wav2Vec2FeatureExtractor

from emotion_client.v1 import emotion_pb2 as pb
from emotion_client.v1 import emotion_pb2_grpc
from emotion_service.logging import configure_logging
from emotion_service.plugins.manager import load_plugins
from emotion_service.server.app import EmotionServer
from emotion_service.server.config import Settings
from emotion_service.server.model import ModelBackend

LABELS = ("ANG", "DIS", "FEA", "HAP", "NEU", "SAD")
SIZES = {
    "base": {},  # HubertConfig's defaults are hubert-base's shape (95 M parameters)
    "tiny": dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=2, intermediate_size=128, conv_dim=(32,) * 7),
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
        num_labels=len(LABELS), id2label=dict(enumerate(LABELS)), label2id={l: i for i, l in enumerate(LABELS)}, **SIZES[size]
    )
    HubertForSequenceClassification(config).save_pretrained(folder)
    Wav2Vec2FeatureExtractor(return_attention_mask=False, do_normalize=True).save_pretrained(folder)
    return folder


def time_forward(backend: ModelBackend, clips: list[np.ndarray], batch: int, budget_s: float) -> Phase:
    backend.predict(clips[:batch])  # warm
    done, started = 0, time.perf_counter()
    while time.perf_counter() - started < budget_s or done == 0:
        backend.predict(clips[:batch])
        done += batch
    return Phase(f"(a) forward pass, batch {batch}", done, time.perf_counter() - started, [])


async def time_service(model: Path, settings: dict, clips: list[np.ndarray], callers: int, budget_s: float, name: str) -> Phase:
    server = EmotionServer(Settings(host="127.0.0.1", port=0, model=str(model), **settings), plugins=load_plugins("none"))
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
    parser.add_argument("--batch-size", type=int, default=8, help="the batcher's max_batch_size")
    parser.add_argument("--callers", type=int, default=16, help="concurrent Classify callers")
    parser.add_argument("--clip-seconds", type=float, default=3.0, help="length of every clip")
    parser.add_argument("--seconds", type=float, default=20.0, help="measuring time per phase")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    args = parser.parse_args()
    configure_logging("warning")
    if args.threads:
        torch.set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    clips = [(rng.standard_normal(int(16000 * args.clip_seconds)) * 0.1).astype(np.float32) for _ in range(args.batch_size)]
    with tempfile.TemporaryDirectory() as tmp:
        model = save_model(args.size, Path(tmp))
        backend = ModelBackend.load(str(model), torch_threads=args.threads)
        print(f"model: HuBERT-{args.size} ({sum(p.numel() for p in backend.model.parameters()) / 1e6:.1f} M params), "
              f"{args.clip_seconds:g} s clips, device {backend.info.device} {backend.info.dtype}, "
              f"torch threads {torch.get_num_threads()}, {os.cpu_count()} CPUs ({platform.processor() or platform.machine()})")
        single = time_forward(backend, clips, 1, args.seconds)
        batched = time_forward(backend, clips, args.batch_size, args.seconds)
        del backend
        common = dict(max_queue_delay_ms=5.0, torch_threads=args.threads)
        served = await time_service(
            model, {**common, "max_batch_size": args.batch_size}, clips, args.callers, args.seconds,
            f"(b) service, {args.callers} callers, batch {args.batch_size}",
        )
        unbatched = await time_service(
            model, {**common, "max_batch_size": 1}, clips, args.callers, args.seconds,
            f"(c) service, {args.callers} callers, batching off",
        )
    for phase in (single, batched, served, unbatched):
        print(phase.line())
    print(f"(b)/(a) at batch {args.batch_size}: {served.rate / batched.rate:.2f}x   (target >= 0.9)")
    print(f"(b)/(c):            {served.rate / unbatched.rate:.2f}x   (target >= 1.3)")
    print(f"(a) batch {args.batch_size} / batch 1: {batched.rate / single.rate:.2f}x")


if __name__ == "__main__":
    asyncio.run(main())
