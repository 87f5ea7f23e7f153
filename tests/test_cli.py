"""`emotion serve` as users run it: a separate process, signals, one-line errors."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import grpc
from emotion_client.v1 import emotion_pb2 as pb
from emotion_client.v1 import emotion_pb2_grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from server.config import _FIELDS
from tests.conftest import LABELS, recordings

EMOTION = [sys.executable, "-m", "server.cli"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("EMOTION_")}
    return {**env, "EMOTION_PLUGINS": "none", "EMOTION_TORCH_THREADS": "1", **extra}


def test_help_explains_every_flag() -> None:
    out = subprocess.run([*EMOTION, "serve", "--help"], capture_output=True, text=True, check=True).stdout
    for name in _FIELDS:
        assert f"--{name.replace('_', '-')}" in out
        assert f"EMOTION_{name.upper()}" in out


def test_missing_model_is_one_clear_line(tmp_path: Path) -> None:
    proc = subprocess.run(
        [*EMOTION, "serve", "--port", "0", "--model", str(tmp_path / "nope")],
        capture_output=True,
        text=True,
        env=run_env(),
        timeout=60,
    )
    assert proc.returncode == 2
    error_lines = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(error_lines) == 1 and "Traceback" not in proc.stderr
    assert "not found" in error_lines[0] and "--model" in error_lines[0]


def test_bad_flag_value_fails_early_naming_it() -> None:
    proc = subprocess.run([*EMOTION, "serve", "--max-batch-size", "0"], capture_output=True, text=True, env=run_env())
    assert proc.returncode == 2 and "max_batch_size" in proc.stderr


def test_serve_answers_another_process_and_drains_on_sigterm(tiny_model: Path) -> None:
    port = free_port()
    proc = subprocess.Popen(
        [*EMOTION, "serve", "--port", str(port), "--model", str(tiny_model)],
        stderr=subprocess.PIPE,
        text=True,
        env=run_env(),
    )
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            health = health_pb2_grpc.HealthStub(channel)
            deadline = time.monotonic() + 60
            while True:
                try:
                    status = health.Check(health_pb2.HealthCheckRequest(), timeout=1).status
                    if status == health_pb2.HealthCheckResponse.SERVING:
                        break
                except grpc.RpcError:
                    pass
                assert time.monotonic() < deadline and proc.poll() is None, "server did not become ready"
                time.sleep(0.2)
            stub = emotion_pb2_grpc.EmotionServiceStub(channel)
            reply = stub.Classify(pb.ClassifyRequest(audio=pb.Audio(content=recordings()[3].read_bytes())), timeout=30)
            assert reply.label in LABELS
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    events = [json.loads(line)["event"] for line in proc.stderr.read().splitlines() if line.startswith("{")]
    assert {"listening", "ready", "classified", "draining", "stopped"} <= set(events)
