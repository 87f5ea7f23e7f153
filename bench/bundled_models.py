"""The bundled models served: clips/s and latency of 3 s speech clips through the running service.

Serves each model folder in ``models/`` (the log-mel CNN and the whisper-probe) with the service's
default settings and plugins, and drives it with N concurrent Classify callers sending 3 s cuts of
the real speech clips in tests/data (real speech: a noise clip would be answered ``no_speech``
without a forward pass). Prints clips/s, p50/p95 latency, and each model's rate as a ratio of the
log-mel CNN's, measured in the same process. Target: the default model >= 60 clips/s on a 2-core
machine, or the trade stated with both models offered.

    python bench/bundled_models.py
    python bench/bundled_models.py --seconds 10 --callers 8
    python bench/bundled_models.py --accuracy   # also: RAVDESS actors 19-24 clean, through the service
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import tempfile
from pathlib import Path

import grpc
import numpy as np
import torch
from _flags import at_least_one, clip_seconds, phase_seconds  # bench/ is on sys.path when a bench runs
from serve_throughput import time_service

from emotion_client.v1 import emotion_pb2 as pb
from emotion_client.v1 import emotion_pb2_grpc
from emotion_service.audio import load_audio
from emotion_service.logging import configure_logging
from emotion_service.paths import LOGMEL_CNN_MODEL, REPO_ROOT, WHISPER_PROBE_MODEL
from emotion_service.server.app import EmotionServer
from emotion_service.server.config import Settings

MODELS = {"log-mel CNN": LOGMEL_CNN_MODEL, "whisper-probe": WHISPER_PROBE_MODEL}


def speech_clips(seconds: float) -> list[np.ndarray]:
    """3 s (``seconds``) of each tests/data clip, looped when shorter."""
    length = int(16_000 * seconds)
    return [np.resize(load_audio(p, 16_000), length).astype(np.float32) for p in sorted((REPO_ROOT / "tests" / "data").glob("*.flac"))]


async def served_accuracy(folder: Path, data: Path) -> tuple[int, int]:
    """(correct, clips) of the clean test-actor clips sent one by one to a served model (float32)."""
    from emotion_service.tuning.datasets import load_ravdess, speaker_ids, split_by_speaker

    test, _ = split_by_speaker(load_ravdess(data), speaker_ids(19, 24))
    server = EmotionServer(Settings(host="127.0.0.1", port=0, model=str(folder), dtype="float32"))
    await server.start()
    await server.load_model()
    fmt = pb.PcmFormat(encoding=pb.PCM_ENCODING_F32LE, sample_rate=16_000, channels=1)
    correct = 0
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            stub = emotion_pb2_grpc.EmotionServiceStub(channel)
            for example in test:
                raw = pb.RawAudio(data=load_audio(example.path, 16_000).astype("<f4").tobytes(), format=fmt)
                reply = await stub.Classify(pb.ClassifyRequest(audio=pb.Audio(raw=raw)))
                correct += reply.label == example.label
    finally:
        await server.stop(grace=1)
    return correct, len(test)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--callers", type=at_least_one, default=16, help="concurrent Classify callers")
    parser.add_argument("--clip-seconds", type=clip_seconds, default=3.0, help="length of every clip")
    parser.add_argument("--seconds", type=phase_seconds, default=20.0, help="measuring time per model")
    parser.add_argument("--plugins", default="all", help="plugins of the served phases (default: all, as users run it)")
    parser.add_argument("--accuracy", action="store_true",
                        help="also send the clean test clips (RAVDESS actors 19-24, ../shared/data) through each served model")  # fmt: skip
    parser.add_argument("--data", type=Path, default=REPO_ROOT.parent / "shared" / "data" / "ravdess", help="RAVDESS folder")
    args = parser.parse_args()
    configure_logging("error")  # the alert plugins log every alert the speech clips raise as a warning
    clips = speech_clips(args.clip_seconds)
    print(f"{args.clip_seconds:g} s speech clips, {args.callers} callers, torch threads {torch.get_num_threads()}, "
          f"{os.cpu_count()} CPUs ({platform.processor() or platform.machine()})")  # fmt: skip
    phases = {}
    with tempfile.TemporaryDirectory() as work:
        os.chdir(work)  # the default store writes its SQLite file and spool here, not in the checkout
        for name, folder in MODELS.items():
            if not folder.exists():
                print(f"{name}: {folder} missing, skipped")
                continue
            phases[name] = await time_service(folder, {}, clips, args.callers, args.seconds, f"{name} served", args.plugins)
            print(phases[name].line(), flush=True)
            if args.accuracy:
                correct, total = await served_accuracy(folder, args.data)
                print(f"{name}: RAVDESS 19-24 clean through the service: {100 * correct / total:.1f} % of {total} clips")
    baseline = phases.get("log-mel CNN")
    for name, phase in phases.items():
        ratio = f"{phase.rate / baseline.rate:.2f}x the CNN" if baseline else ""
        print(f"{name:<16} {phase.rate:7.1f} clips/s  {ratio}   (target >= 60 clips/s)")


if __name__ == "__main__":
    asyncio.run(main())
