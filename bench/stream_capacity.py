"""Live-stream capacity: N concurrent streams at 1x real time, for N on a ladder.

Each stream sends real speech (the RAVDESS clips of tests/data, looped) as s16le chunks of
``--chunk-ms`` at the pace of real time, to `emotion serve` in a process of its own on this
machine, running the bundled
model (or ``--model``) at its default settings unless ``$EMOTION_CONFIG`` or the ``EMOTION_*``
environment say otherwise (plugins as ``EMOTION_PLUGINS`` says; none by default here).
Per N it prints: streams admitted and refused, windows answered per second, windows skipped,
and the window lag, from the moment a window's last sample was sent to the moment its answer
arrived, p50 and p95. Last, the most streams admitted at once with p95 lag under the hop.
Asserts nothing.

    python bench/stream_capacity.py                          # N = 25 50 100 200 300 400, 20 s each
    python bench/stream_capacity.py --ladder 20 60 --seconds 10
    python bench/stream_capacity.py --model models/emotion-whisper-probe --ladder 10 20 30 40 50
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import numpy as np
import soundfile as sf
from _flags import at_least_one, phase_seconds, port_number, whole_number  # bench/ is on sys.path when a bench runs
from _serve import wait_serving  # bench/ is on sys.path when a bench runs

from emotion_client import AsyncEmotionClient, EmotionError, PcmFormat, RetryPolicy, WindowResult
from emotion_service.paths import BUNDLED_MODEL, REPO_ROOT
from emotion_service.server.config import Settings

RATE = 16_000


@dataclass
class Rung:
    streams: int
    admitted: int = 0
    refused: int = 0
    failed: int = 0
    windows: int = 0
    skipped: int = 0
    lags: list[float] = field(default_factory=list)
    failures: dict[str, int] = field(default_factory=dict)  # "admitted: CODE" or "at start: CODE" -> count
    details: dict[str, str] = field(default_factory=dict)  # the same keys -> the first failure's details

    def line(self, seconds: float) -> str:
        p50, p95 = (np.percentile(self.lags, [50, 95]) * 1000) if self.lags else (float("nan"), float("nan"))
        return (
            f"N={self.streams:4d}  admitted {self.admitted:4d}  refused {self.refused:4d}  failed {self.failed:3d}  "
            f"windows/s {self.windows / seconds:7.1f}  skipped {self.skipped:5d}  lag p50 {p50:7.0f} ms  p95 {p95:7.0f} ms"
            + (f"  failures {self.failures}" if self.failures else "")
            + "".join(f"\n    {key}: {detail}" for key, detail in self.details.items())
        )


def speech() -> np.ndarray:
    """The test recordings back to back, as 16 kHz s16le samples."""
    waves = []
    for path in sorted((REPO_ROOT / "tests" / "data").glob("*.flac")):
        wave, rate = sf.read(path, dtype="int16", always_2d=True)
        assert rate == RATE
        waves.append(wave[:, 0])
    return np.concatenate(waves)


async def one_stream(
    client: AsyncEmotionClient, audio: np.ndarray, seconds: float, chunk_ms: int, rung: Rung, offset: int
) -> None:
    """One live stream through ``emotion_client``'s AsyncEmotionClient (as an integrator's would be):
    chunks of real speech at the pace of real time, each stamped when it is handed to the client."""
    chunk = RATE * chunk_ms // 1000
    total = int(seconds * RATE)
    sent_at: dict[int, float] = {}  # samples sent so far -> when

    async def live() -> AsyncIterator[bytes]:
        started = time.monotonic()
        for position in range(0, total, chunk):
            await asyncio.sleep(max(0.0, started + position / RATE - time.monotonic()))  # real time
            sent_at[position + chunk] = time.monotonic()
            yield np.take(audio, range(offset + position, offset + position + chunk), mode="wrap").astype("<i2").tobytes()

    admitted = False
    try:
        async for event in client.stream(live(), format=PcmFormat(RATE, "s16le"), timeout=seconds + 120):
            if not admitted:
                admitted = True
                rung.admitted += 1
            if not isinstance(event, WindowResult):
                continue
            if event.skipped:
                rung.skipped += 1
                continue
            rung.windows += 1
            end = round(event.end_s * RATE)
            last_sent = next((at for position, at in sent_at.items() if position >= end), None)
            if last_sent is not None:
                rung.lags.append(time.monotonic() - last_sent)
    except EmotionError as error:
        if not admitted and error.code == grpc.StatusCode.RESOURCE_EXHAUSTED:
            rung.refused += 1
        else:
            rung.failed += 1
            key = f"{'admitted' if admitted else 'at start'}: {error.code.name}"
            rung.failures[key] = rung.failures.get(key, 0) + 1
            rung.details.setdefault(key, error.message)


async def run_rung(port: int, audio: np.ndarray, streams: int, seconds: float, chunk_ms: int) -> Rung:
    rung = Rung(streams)
    async with AsyncEmotionClient(f"127.0.0.1:{port}", retry=RetryPolicy(max_attempts=1)) as client:
        rng = np.random.default_rng(streams)
        offsets = rng.integers(0, len(audio), streams)

        async def start(i: int) -> None:
            await asyncio.sleep(i * 0.05)  # streams join over a few seconds, as callers do
            await one_stream(client, audio, seconds, chunk_ms, rung, int(offsets[i]))

        await asyncio.gather(*(start(i) for i in range(streams)))
    return rung


def start_server(port: int, model: Path) -> subprocess.Popen[bytes]:
    """`emotion serve` on ``model`` in a process of its own, so the client's work never slows the
    server down (nor is counted as its); its settings are its defaults unless ``$EMOTION_CONFIG``
    or the ``EMOTION_*`` environment the bench runs in say otherwise."""
    env = {**os.environ, "EMOTION_PLUGINS": os.environ.get("EMOTION_PLUGINS", "none"), "EMOTION_LOG_LEVEL": "error"}
    jobs = Path(tempfile.mkdtemp(prefix="emotion-bench-")) / "jobs.db"
    env.setdefault("EMOTION_JOBS_DATABASE_URL", f"sqlite:///{jobs}")
    proc = subprocess.Popen(
        [sys.executable, "-m", "emotion_service", "serve", "--port", str(port), "--model", str(model)],
        env=env,
        stderr=subprocess.DEVNULL,
    )
    if wait_serving(port, proc):
        return proc
    proc.kill()
    raise SystemExit("error: the server did not become ready")


def chunk_ms(text: str) -> int:
    """The argparse type of ``--chunk-ms``: whole milliseconds that one stream message of s16le at
    16 kHz may carry under the server's limits (``max_stream_message_seconds`` and
    ``max_stream_message_bytes``), as the server the bench starts reads them: its defaults, then
    ``$EMOTION_CONFIG`` and the ``EMOTION_*`` environment it inherits."""
    settings = Settings.load()
    most_s = min(settings.max_stream_message_seconds, settings.max_stream_message_bytes / (2 * RATE))
    most = math.floor(most_s * 1000 + 1e-6)  # 2.01 s is 2010 ms, not 2009
    if most < 1:
        raise argparse.ArgumentTypeError(f"{text}: the server's settings let one stream message carry under 1 ms")
    return whole_number(1, most)(text)


async def main(ladder: list[int], seconds: float, chunk_ms: int, port: int, model: Path) -> None:
    settings = Settings.load()  # as the server the bench starts reads them
    proc = start_server(port, model)
    audio = speech()
    print(
        f"{model.name} at its default settings (window {settings.window_s:g} s, hop {settings.hop_s:g} s, "
        f"max_streams {settings.max_streams}, stream_admission_utilisation {settings.stream_admission_utilisation:g}), "
        f"{chunk_ms} ms chunks at 1x real time, {seconds:g} s per stream, {os.cpu_count()} CPUs, "
        "server and client in separate processes"
    )
    best = 0
    try:
        for streams in ladder:
            rung = await run_rung(port, audio, streams, seconds, chunk_ms)
            print(rung.line(seconds), flush=True)
            if rung.lags and np.percentile(rung.lags, 95) < settings.hop_s and rung.skipped == 0:
                best = max(best, rung.admitted)
            await asyncio.sleep(3)  # the admission history (last 10 s of lags) settles between rungs
    finally:
        proc.terminate()
        proc.wait(30)
    print(f"most streams admitted at once with none skipped and p95 lag under the hop ({settings.hop_s:g} s): {best}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ladder", type=at_least_one, nargs="+", default=[25, 50, 100, 200, 300, 400], help="stream counts")
    parser.add_argument("--port", type=port_number, default=50071, help="port of the server the bench starts (default 50071)")
    parser.add_argument("--seconds", type=phase_seconds, default=20.0, help="audio each stream sends (default 20)")
    parser.add_argument(
        "--chunk-ms",
        type=chunk_ms,
        default=100,
        help="audio per message in ms (default 100; at most what one message may carry, 10 000 at the server's defaults)",
    )
    parser.add_argument(
        "--model",
        type=Path,
        default=BUNDLED_MODEL,
        help=f"model folder to serve (default the bundled {BUNDLED_MODEL.name})",
    )
    arguments = parser.parse_args()
    if not (arguments.model / "config.json").is_file():
        parser.error(f"--model {arguments.model}: not a model folder (no config.json in it)")
    asyncio.run(main(arguments.ladder, arguments.seconds, arguments.chunk_ms, arguments.port, arguments.model))
