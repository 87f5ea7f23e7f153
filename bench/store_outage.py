"""Classify latency while the results database hangs, against the same server without plugins.

Three phases in one process, on the bundled model, with N concurrent callers each:
(a) no plugins; (b) the ``store`` plugin on a SQLite file, database responsive; (c) the same
while another connection holds the database's write lock for the whole phase (a database that
hangs: every write waits). Prints p50/p95 per phase and the ratios (b)/(a) and (c)/(a); the
target is (c)/(a) <= 1.5 (no answer waits on the database). Asserts nothing.

    python bench/store_outage.py                 # 10 s phases, 4 callers
    python bench/store_outage.py --seconds 3     # a quick run
"""

from __future__ import annotations

import argparse
import asyncio
import sqlite3
import tempfile
import time
from pathlib import Path

import grpc
import numpy as np
from _flags import at_least_one, phase_seconds  # bench/ is on sys.path when a bench runs

from emotion_client.v1 import emotion_pb2 as pb
from emotion_client.v1 import emotion_pb2_grpc
from emotion_service.logging import configure_logging
from emotion_service.paths import BUNDLED_MODEL, REPO_ROOT
from emotion_service.plugins.builtin.store import ResultsStore, StoreConfig
from emotion_service.plugins.manager import PluginHost, build_host
from emotion_service.server.app import EmotionServer
from emotion_service.server.config import Settings

CLIP = REPO_ROOT / "tests" / "data" / "03-01-05-01-01-01-21.flac"


async def phase(plugins: PluginHost, seconds: float, callers: int) -> list[float]:
    server = EmotionServer(Settings(port=0, model=str(BUNDLED_MODEL), torch_threads=1), plugins=plugins)
    await server.start()
    await server.load_model()
    request = pb.ClassifyRequest(audio=pb.Audio(content=CLIP.read_bytes()))
    latencies: list[float] = []
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        stub = emotion_pb2_grpc.EmotionServiceStub(channel)
        await stub.Classify(request)
        stop_at = time.monotonic() + seconds

        async def caller() -> None:
            while time.monotonic() < stop_at:
                started = time.perf_counter()
                await stub.Classify(request, timeout=60)
                latencies.append(time.perf_counter() - started)

        await asyncio.gather(*(caller() for _ in range(callers)))
    await server.stop(grace=30)
    return latencies


def line(name: str, latencies: list[float]) -> str:
    p50, p95 = np.percentile(latencies, [50, 95]) * 1000
    return f"{name:<44} {len(latencies):5d} calls   p50 {p50:6.1f} ms   p95 {p95:6.1f} ms"


async def main(seconds: float, callers: int) -> None:
    configure_logging("error", "console")
    with tempfile.TemporaryDirectory() as tmp:
        database = Path(tmp) / "results.db"
        url = f"sqlite:///{database}"

        def store() -> ResultsStore:
            return ResultsStore(StoreConfig(database_url=url, spool_dir=str(Path(tmp) / "spool")))

        plain = await phase(build_host({}), seconds, callers)
        print(line("(a) no plugins", plain))
        healthy = await phase(build_host({"store": store()}), seconds, callers)
        print(line("(b) store, database responsive", healthy))
        lock = sqlite3.connect(database, isolation_level=None)
        lock.execute("BEGIN EXCLUSIVE")  # every other writer now waits: the database hangs
        hanging_store = store()
        hanging = await phase(build_host({"store": hanging_store}), seconds, callers)
        print(line(f"(c) store, database hung for {seconds:g} s", hanging))
        lock.execute("ROLLBACK")
        lock.close()
        spooled = hanging_store.spool.count()
    p95 = {name: float(np.percentile(values, 95)) for name, values in (("a", plain), ("b", healthy), ("c", hanging))}
    print(
        f"(b)/(a) p95: {p95['b'] / p95['a']:.2f}x   (c)/(a) p95: {p95['c'] / p95['a']:.2f}x   (target (c)/(a) <= 1.5)"
    )
    print(f"writes left in the spool after the hang, replayed on the next start: {spooled}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=phase_seconds, default=10.0, help="length of each phase (default 10)")
    parser.add_argument("--callers", type=at_least_one, default=4, help="concurrent Classify callers (default 4)")
    arguments = parser.parse_args()
    asyncio.run(main(arguments.seconds, arguments.callers))
