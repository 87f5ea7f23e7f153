"""Classify latency on an idle server vs. the same server under a full job load, in one process.

Jobs run at low priority (their windows go to the batcher as background work, at most
``background_max_batch_size`` per forward pass, only while no call waits): the issue's target
is a Classify p95 under job load within 1.5x of the idle server's. Prints p50/p95 of
sequential Classify calls on a 3 s clip, idle and while jobs of two-channel 60 s recordings
keep the job workers busy, their ratio, and how fast the jobs went meanwhile. Bundled model,
CPU, default settings. Asserts nothing.

    python bench/job_priority.py
    python bench/job_priority.py --calls 100 --jobs 4
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path

import grpc
import numpy as np
import soundfile as sf
from _flags import at_least_one, phase_seconds  # bench/ is on sys.path when a bench runs

from emotion_client.v1 import emotion_pb2 as pb
from emotion_client.v1 import emotion_pb2_grpc
from emotion_service.audio import load_audio
from emotion_service.logging import configure_logging
from emotion_service.paths import BUNDLED_MODEL, REPO_ROOT
from emotion_service.plugins.manager import load_plugins
from emotion_service.server.app import EmotionServer
from emotion_service.server.config import Settings

DATA = REPO_ROOT / "tests" / "data"
RATE = 16_000


def interview(path: Path, seconds: float, seed: int) -> None:
    """Two parties, one per channel, taking turns with 1-2 s pauses (clips of tests/data)."""
    rng = np.random.default_rng(seed)
    clips = [load_audio(p, RATE) for p in sorted(DATA.glob("*.flac"))]
    audio = np.zeros((int(seconds * RATE), 2), np.float32)
    at = 0
    turn = 0
    while True:
        clip = clips[int(rng.integers(len(clips)))]
        if at + len(clip) > len(audio):
            break
        audio[at : at + len(clip), turn % 2] = clip
        at += len(clip) + int(rng.uniform(1.0, 2.0) * RATE)
        turn += 1
    sf.write(path, audio, RATE, subtype="PCM_16")


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.array(values) * 1000, q))


async def classify_latencies(stub: emotion_pb2_grpc.EmotionServiceStub, content: bytes, calls: int) -> list[float]:
    latencies = []
    for _ in range(calls):
        started = time.perf_counter()
        await stub.Classify(pb.ClassifyRequest(audio=pb.Audio(content=content)), timeout=30)
        latencies.append(time.perf_counter() - started)
    return latencies


async def main(args: argparse.Namespace) -> None:
    configure_logging("warning", "console")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        settings = Settings(port=0, model=str(BUNDLED_MODEL), jobs_database_url=f"sqlite:///{folder / 'jobs.db'}")
        server = EmotionServer(settings, plugins=load_plugins("none"))
        await server.start()
        await server.load_model()
        recordings = []
        for number in range(args.jobs):
            path = folder / f"interview-{number}.wav"
            interview(path, args.job_seconds, number)
            recordings.append(path.read_bytes())
        clip = (DATA / "03-01-05-01-01-01-21.flac").read_bytes()
        async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            stub = emotion_pb2_grpc.EmotionServiceStub(channel)
            await classify_latencies(stub, clip, 20)  # warm-up
            idle = await classify_latencies(stub, clip, args.calls)

            jobs = [
                await stub.SubmitJob(
                    pb.SubmitJobRequest(
                        recordings=[pb.Recording(name=f"interview-{n}", content=content)],
                        channels=pb.CHANNEL_MODE_SEPARATE,
                    )
                )
                for n, content in enumerate(recordings)
            ]
            while (await stub.GetJob(pb.GetJobRequest(job_id=jobs[0].job_id))).state != pb.JOB_STATE_RUNNING:
                await asyncio.sleep(0.01)
            started = time.perf_counter()
            loaded = await classify_latencies(stub, clip, args.calls)
            elapsed = time.perf_counter() - started
            states = [await stub.GetJob(pb.GetJobRequest(job_id=job.job_id)) for job in jobs]
            analysed_s = sum(job.progress * job.audio_s for job in states)
            still_running = sum(job.state in (pb.JOB_STATE_RUNNING, pb.JOB_STATE_QUEUED) for job in states)
            for job in jobs:
                await stub.CancelJob(pb.CancelJobRequest(job_id=job.job_id))
        await server.stop(grace=1)

    print(f"Classify of a 3 s clip, {args.calls} sequential calls, bundled model, CPU, default settings")
    print(f"  idle server:        p50 {percentile(idle, 50):6.1f} ms   p95 {percentile(idle, 95):6.1f} ms")
    print(f"  under a job load:   p50 {percentile(loaded, 50):6.1f} ms   p95 {percentile(loaded, 95):6.1f} ms")
    print(f"  p95 ratio (loaded / idle): {percentile(loaded, 95) / percentile(idle, 95):.2f}x (target <= 1.5x)")
    print(
        f"  meanwhile the jobs analysed {analysed_s:.0f} s of two-channel audio in {elapsed:.1f} s "
        f"({analysed_s / elapsed:.1f}x real time); {still_running} of {len(jobs)} jobs still queued or running"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=at_least_one, default=200, help="Classify calls per phase (default 200)")
    parser.add_argument("--jobs", type=at_least_one, default=4, help="jobs queued for the loaded phase (default 4)")
    parser.add_argument("--job-seconds", type=phase_seconds, default=120.0, help="length of each job's recording (default 120)")
    asyncio.run(main(parser.parse_args()))
