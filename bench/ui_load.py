"""Classify latency with the web UI idle and under a heavy UI load, in one run: the API must not be
stalled by the UI (pages and exports are rendered in the UI's own process, at a lower scheduling
priority, and every query is bounded).

Starts ``emotion serve --http-port`` on the bundled model (models/emotion-logmel-cnn) with the
``store`` plugin on a SQLite file in a temporary folder, stored first with sessions spread over
three years and a few long ones (so pages have data). Then one caller sends Classify calls back
to back: for ``--seconds`` with the UI idle, then for as long while ``--browsers`` clients (in a
process of their own) load the widest /trends (2000 to today per day, which the UI counts per month),
three years per week, the long sessions' pages and their JSON, CSV and HTML exports, the sessions
list, and /trends?since=1900-01-01&until=2100-12-31 (a 400). Prints p50/p95 of each phase and the
ratio of the p95s (target: at most 1.5), and the UI requests served. Asserts nothing.

    python bench/ui_load.py                 # 20 s phases, 3 browsers
    python bench/ui_load.py --seconds 5     # a quick run
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import random
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path

import grpc
import numpy as np
from _flags import at_least_one, phase_seconds  # bench/ is on sys.path when a bench runs
from _serve import wait_serving  # bench/ is on sys.path when a bench runs

from emotion_client.v1 import emotion_pb2 as pb
from emotion_client.v1 import emotion_pb2_grpc
from emotion_service.paths import BUNDLED_MODEL, REPO_ROOT
from emotion_service.plugins.store import ResultStore
from emotion_service.plugins.types import Alert, Result, summarise

CLIP = REPO_ROOT / "tests" / "data" / "03-01-05-01-01-01-21.flac"
LABELS = ("angry", "calm", "disgust", "fearful", "happy", "neutral", "sad", "surprised")


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def seed(url: str, db_file: Path, sessions: int, windows: int, long_sessions: int, long_windows: int) -> None:
    """``sessions`` sessions of ``windows`` windows spread over three years, and ``long_sessions`` of ``long_windows``."""
    store = ResultStore(url)
    rng = random.Random(0)
    plan = [(f"s-{i}", windows) for i in range(sessions)] + [(f"long-{i}", long_windows) for i in range(long_sessions)]
    for session_id, count in plan:
        results = []
        for i in range(count):
            raw = [rng.random() for _ in LABELS]
            scores = {label: v / sum(raw) for label, v in zip(LABELS, raw, strict=True)}
            label = max(scores, key=scores.__getitem__)
            results.append(
                Result(
                    session_id,
                    f"{session_id}-{i}",
                    "window",
                    label,
                    scores,
                    i * 1.5,
                    i * 1.5 + 3.0,
                    i,
                    "emotion-logmel-cnn",
                    {},
                )
            )
        alerts = (
            [Alert("sustained", "sad for 30 s", "sad", "warning", 0.8, 30.0, "threshold_alerts", {})]
            if rng.random() < 0.2
            else []
        )
        entries = [store.result_entry(r) for r in results] + [store.alert_entry(session_id, a) for a in alerts]
        entries.append(store.session_end_entry(summarise(session_id, results, alerts, {}, count * 1.5)))
        store.write(entries)
    store.close()
    now = datetime.now(UTC).replace(tzinfo=None)
    with sqlite3.connect(db_file) as db:  # spread the sessions over three years
        for session_id, _ in plan:
            started = now - timedelta(days=rng.uniform(0, 3 * 365))
            db.execute("UPDATE sessions SET started_at = ? WHERE id = ?", (started.isoformat(sep=" "), session_id))


def browse(base: str, browsers: int, stop_at: float, counts: multiprocessing.Queue[tuple[int, int, float]]) -> None:
    """``browsers`` clients requesting the heavy pages until ``stop_at``; puts (served, refused, seconds)."""
    today = datetime.now(UTC).date()
    pages = [
        f"/trends?since=2000-01-01&until={today}&by=day",
        f"/trends?since={today - timedelta(days=3 * 365)}&until={today}&by=week",
        "/sessions/long-0",
        "/downloads/long-1.json",
        "/downloads/long-2.csv",
        "/reports/long-0",
        "/",
        "/trends?since=1900-01-01&until=2100-12-31",
    ]
    served = refused = 0
    spent = 0.0
    lock = threading.Lock()

    def client(offset: int) -> None:
        nonlocal served, refused, spent
        i = offset
        while time.time() < stop_at:
            started = time.perf_counter()
            try:
                with urllib.request.urlopen(base + pages[i % len(pages)], timeout=120) as response:
                    response.read()
                ok = True
            except urllib.error.HTTPError as error:
                error.read()
                ok = False
            with lock:
                served += ok
                refused += not ok
                spent += time.perf_counter() - started
            i += 1

    threads = [threading.Thread(target=client, args=(n,)) for n in range(browsers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    counts.put((served, refused, spent))


def classify_for(stub: emotion_pb2_grpc.EmotionServiceStub, seconds: float) -> list[float]:
    request = pb.ClassifyRequest(audio=pb.Audio(content=CLIP.read_bytes()))
    latencies = []
    stop_at = time.monotonic() + seconds
    while time.monotonic() < stop_at:
        started = time.perf_counter()
        stub.Classify(request, timeout=60)
        latencies.append(time.perf_counter() - started)
    return latencies


def line(name: str, latencies: list[float]) -> str:
    p50, p95 = np.percentile(latencies, [50, 95]) * 1000
    return f"{name:<28} calls {len(latencies):>5}  p50 {p50:7.1f} ms  p95 {p95:7.1f} ms"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=phase_seconds, default=20.0, help="length of each phase")
    parser.add_argument("--browsers", type=at_least_one, default=3, help="concurrent UI clients in the loaded phase")
    parser.add_argument("--sessions", type=at_least_one, default=1500)
    parser.add_argument("--long-windows", type=at_least_one, default=9600, help="windows of each of the 3 long sessions (4 h)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="ui-load-") as tmp:
        db_file = Path(tmp) / "results.db"
        url = f"sqlite:///{db_file}"
        started = time.monotonic()
        seed(url, db_file, args.sessions, 40, 3, args.long_windows)
        print(
            f"stored {args.sessions} sessions of 40 windows and 3 of {args.long_windows} in {time.monotonic() - started:.0f} s"
        )
        port, http_port = free_port(), free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("EMOTION_")}
        env |= {
            "EMOTION_PLUGINS": "store",
            "EMOTION_DATABASE_URL": url,
            "EMOTION_JOBS_DATABASE_URL": f"sqlite:///{Path(tmp) / 'jobs.db'}",
            "EMOTION_STORE_SPOOL_DIR": str(Path(tmp) / "spool"),
            "EMOTION_TORCH_THREADS": "1",
        }
        command = [sys.executable, "-m", "emotion_service", "serve", "--model", str(BUNDLED_MODEL)]
        command += ["--port", str(port), "--http-port", str(http_port)]
        with (Path(tmp) / "server.log").open("w") as log:
            server = subprocess.Popen(command, env=env, stdout=log, stderr=log)
        try:
            with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
                if not wait_serving(port, server):
                    raise SystemExit(f"the server did not start: see {tmp}/server.log")
                stub = emotion_pb2_grpc.EmotionServiceStub(channel)
                classify_for(stub, 2.0)  # warm
                idle = classify_for(stub, args.seconds)
                counts: multiprocessing.Queue[tuple[int, int, float]] = multiprocessing.Queue()
                stop_at = time.time() + args.seconds + 1.0
                load = multiprocessing.Process(
                    target=browse, args=(f"http://127.0.0.1:{http_port}", args.browsers, stop_at, counts)
                )
                load.start()
                time.sleep(1.0)  # the browsers are at work
                loaded = classify_for(stub, args.seconds)
                served, refused, spent = counts.get(timeout=300)
                load.join()
        finally:
            server.terminate()
            server.wait(timeout=60)
    ratio = float(np.percentile(loaded, 95) / np.percentile(idle, 95))
    print(line("Classify, UI idle", idle))
    print(line(f"Classify, {args.browsers} UI clients", loaded))
    print(f"UI requests: {served} pages/exports served, {refused} refused (the far-date 400s), "
          f"{spent / max(1, served + refused):.2f} s each on average")  # fmt: skip
    print(f"p95 ratio loaded/idle: {ratio:.2f} (target <= 1.5)")


if __name__ == "__main__":
    main()
