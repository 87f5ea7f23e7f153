"""`emotion serve` as users run it: a separate process, signals, one-line errors."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
from pathlib import Path

import grpc

from emotion_client.v1 import emotion_pb2 as pb
from emotion_client.v1 import emotion_pb2_grpc
from emotion_service.server.config import SETTING_NAMES
from tests.conftest import LABELS, recordings
from tests.server_process import EMOTION, run_env, serving


def test_help_explains_every_flag() -> None:
    out = subprocess.run([*EMOTION, "serve", "--help"], capture_output=True, text=True, check=True).stdout
    for name in SETTING_NAMES:
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
    with serving(tiny_model) as (port, proc, log):
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = emotion_pb2_grpc.EmotionServiceStub(channel)
            reply = stub.Classify(pb.ClassifyRequest(audio=pb.Audio(content=recordings()[3].read_bytes())), timeout=30)
            assert reply.label in LABELS
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
        events = [json.loads(line)["event"] for line in log.read_text().splitlines() if line.startswith("{")]
    assert {"listening", "ready", "classified", "draining", "stopped"} <= set(events)


def test_a_taken_web_ui_port_is_named_and_nothing_is_left_listening(tiny_model: Path) -> None:
    """The web UI's port taken: exit 2 with a sentence naming the port and the flag, not a traceback."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        proc = subprocess.run(
            [*EMOTION, "serve", "--port", "0", "--http-port", str(port), "--model", str(tiny_model)],
            env=run_env(),
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert proc.returncode == 2
    assert f"cannot listen on 127.0.0.1:{port}" in proc.stderr and "--http-port" in proc.stderr
    assert "Traceback" not in proc.stderr
