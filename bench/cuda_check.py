"""The bundled log-mel CNN on a CUDA GPU: the same answers as on the CPU, and how fast; asserts nothing.

Needs a CUDA GPU (the CPU machines CI runs on have none). On the clips of tests/data:

1. the model backend on ``cuda`` at each dtype (``auto``, float32, float16, bfloat16) against
   float32 on the CPU: the largest difference in any probability and how many top labels agree;
   the features are computed in torch on the GPU (the extractor's ``torch_features``);
2. a real gRPC server on loopback serving it with ``device="cuda"`` (dtype auto): Classify for
   each clip, its label against the CPU's;
3. the service's throughput (16 callers, 3 s clips, plugins off) with ``device="cuda"`` and with
   ``device="cpu"``, measured in the same process, and their ratio.

    python bench/cuda_check.py
    python bench/cuda_check.py --seconds 5 --callers 32
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile

import grpc
import numpy as np
import torch
from _flags import at_least_one, phase_seconds  # bench/ is on sys.path when a bench runs
from serve_throughput import time_service  # bench/ is on sys.path when a bench runs

from emotion_client.v1 import emotion_pb2 as pb
from emotion_client.v1 import emotion_pb2_grpc
from emotion_service.audio import load_audio
from emotion_service.logging import configure_logging
from emotion_service.paths import LOGMEL_CNN_MODEL, REPO_ROOT
from emotion_service.plugins.manager import load_plugins
from emotion_service.server.app import EmotionServer
from emotion_service.server.config import Settings
from emotion_service.server.model import ModelBackend

RATE = 16_000


def test_clips() -> list[np.ndarray]:
    return [load_audio(path, RATE) for path in sorted((REPO_ROOT / "tests" / "data").glob("*.flac"))]


def backends(clips: list[np.ndarray]) -> list[str]:
    """Prints each CUDA dtype's agreement with float32 on the CPU; returns the CPU's top labels."""
    cpu = ModelBackend.load(str(LOGMEL_CNN_MODEL), device="cpu", dtype="float32")
    reference = cpu.predict(clips)
    for dtype in ("auto", "float32", "float16", "bfloat16"):
        backend = ModelBackend.load(str(LOGMEL_CNN_MODEL), device="cuda", dtype=dtype)
        scores = backend.predict(clips)
        agree = int((scores.argmax(1) == reference.argmax(1)).sum())
        print(
            f"backend cuda dtype {dtype:<8} -> {backend.info.dtype:<8} on {backend.info.device}: "
            f"max |p - p_cpu_fp32| {np.abs(scores - reference).max():.4f}, top label agrees on {agree}/{len(clips)}"
        )
    return [cpu.info.labels[int(i)] for i in reference.argmax(1)]


async def served_labels(clips: list[np.ndarray]) -> tuple[list[str], str]:
    """Each clip's label from a gRPC server on loopback serving on CUDA, and the dtype it chose."""
    server = EmotionServer(
        Settings(host="127.0.0.1", port=0, model=str(LOGMEL_CNN_MODEL), device="cuda"), plugins=load_plugins("none")
    )
    await server.start()
    await server.load_model()
    fmt = pb.PcmFormat(encoding=pb.PCM_ENCODING_F32LE, sample_rate=RATE, channels=1)
    labels = []
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            stub = emotion_pb2_grpc.EmotionServiceStub(channel)
            for clip in clips:
                raw = pb.RawAudio(data=clip.astype("<f4").tobytes(), format=fmt)
                labels.append((await stub.Classify(pb.ClassifyRequest(audio=pb.Audio(raw=raw)))).label)
            info = await stub.GetModelInfo(pb.GetModelInfoRequest())
    finally:
        await server.stop(grace=1)
    return labels, f"{info.device} {info.dtype}"


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=phase_seconds, default=10.0, help="measuring time per device (default 10)")
    parser.add_argument("--callers", type=at_least_one, default=16, help="concurrent Classify callers (default 16)")
    args = parser.parse_args()
    if not torch.cuda.is_available():
        parser.error("no CUDA device: this check needs a GPU")
    configure_logging("error")
    print(f"torch {torch.__version__}, {torch.cuda.get_device_name(0)}, {os.cpu_count()} CPUs")
    clips = test_clips()
    expected = backends(clips)
    with tempfile.TemporaryDirectory() as work:
        os.chdir(work)  # the server's default files land here, not in the checkout
        labels, chosen = await served_labels(clips)
        agree = sum(a == b for a, b in zip(labels, expected, strict=True))
        print(f"served with device=cuda ({chosen}): Classify labels agree with the CPU's on {agree}/{len(clips)} clips")
        threes = [np.resize(c, 3 * RATE).astype(np.float32) for c in clips]
        rates = {}
        for device in ("cuda", "cpu"):
            phase = await time_service(
                LOGMEL_CNN_MODEL, {"device": device}, threes, args.callers, args.seconds, f"served on {device}", "none"
            )
            rates[device] = phase.rate
            print(phase.line(), flush=True)
    print(f"cuda / cpu throughput: {rates['cuda'] / rates['cpu']:.2f}x")


if __name__ == "__main__":
    asyncio.run(main())
