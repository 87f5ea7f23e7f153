"""`emotion serve` in a child process, as users run it."""

from __future__ import annotations

import itertools
import os
import random
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

EMOTION = [sys.executable, "-m", "emotion_service"]


def free_port() -> int:
    """A loopback port nobody listens on right now, and one no other pytest-xdist worker of this run
    is given. The port is free only until someone binds it (a server this test starts seconds later,
    once torch is imported), so each worker hands out ports of its own share of 20000-31999, in
    turn: below Linux's ephemeral range (32768-60999), where the kernel picks the ports of servers
    bound to port 0, and above Ray's worker ports (10002-19999)."""
    workers = max(1, int(os.environ.get("PYTEST_XDIST_WORKER_COUNT") or 1))
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw")
    share = PORTS // workers
    low = FIRST_PORT + (int(worker) % workers if worker.isdigit() else 0) * share
    for _ in range(share):
        port = low + next(_TURN) % share
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:  # in use, or lingering after a test's server closed
                continue
            return port
    raise RuntimeError(f"no free loopback port in {low}-{low + share - 1}")


FIRST_PORT, PORTS = 20_000, 12_000
_TURN = itertools.count(random.randrange(PORTS))  # where this process starts handing out ports


def run_env(**extra: str) -> dict[str, str]:
    """The environment without the caller's EMOTION_* settings, plugins off, one torch thread."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("EMOTION_")}
    # The job queue gets a database of its own, not emotion-results.db in the working directory.
    jobs_db = Path(tempfile.mkdtemp(prefix="emotion-jobs-")) / "jobs.db"
    return {
        **env,
        "EMOTION_PLUGINS": "none",
        "EMOTION_TORCH_THREADS": "1",
        "EMOTION_JOBS_DATABASE_URL": f"sqlite:///{jobs_db}",
        **extra,
    }


def wait_serving(port: int, proc: subprocess.Popen[str], timeout: float = 60) -> None:
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        health = health_pb2_grpc.HealthStub(channel)
        deadline = time.monotonic() + timeout
        while True:
            try:
                if health.Check(health_pb2.HealthCheckRequest(), timeout=1).status == health_pb2.HealthCheckResponse.SERVING:
                    return
            except grpc.RpcError:
                pass
            if time.monotonic() > deadline or proc.poll() is not None:
                raise RuntimeError(f"server did not become ready (exit code {proc.poll()})")
            time.sleep(0.2)


@contextmanager
def serving(
    model: Path, *flags: str, env: dict[str, str] | None = None, port: int = 0, cwd: Path | None = None
) -> Iterator[tuple[int, subprocess.Popen[str], Path]]:
    """Starts `emotion serve` on a free port (or ``port``), waits for SERVING, kills it on exit if still running.

    ``env`` adds to (or overrides) :func:`run_env`; ``cwd`` is its working folder (default: the caller's). Yields the port, the process and the file
    its log lines go to (a file, not a pipe: an undrained pipe fills up and blocks the server's logging).
    """
    port = port or free_port()
    with tempfile.TemporaryDirectory() as tmp:
        log = Path(tmp) / "server.log"
        with log.open("w") as sink:
            proc = subprocess.Popen(
                [*EMOTION, "serve", "--port", str(port), "--model", str(model), *flags],
                stderr=sink,
                text=True,
                env=run_env(**(env or {})),
                cwd=cwd,
            )
        try:
            wait_serving(port, proc)
            yield port, proc, log
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


def child_pids(pid: int) -> list[int]:
    """The ids of a process's children (Linux)."""
    return [int(child) for task in Path(f"/proc/{pid}/task").iterdir() for child in (task / "children").read_text().split()]


def web_ui_pids(pid: int) -> list[int]:
    """The ids of the web UI processes a server runs (its multiprocessing children, not the
    resource tracker multiprocessing starts beside them)."""
    return [child for child in child_pids(pid) if b"spawn_main" in Path(f"/proc/{child}/cmdline").read_bytes()]


def rss_mb(pid: int) -> float:
    """Resident memory of a process in MiB (Linux)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def peak_rss_mb(pid: int) -> float:
    """Peak resident memory of a process in MiB (Linux)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM")
