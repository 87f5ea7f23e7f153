"""The client distribution installs, with its dependencies, into a fresh venv without torch, and works."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from emotion_service.server.app import EmotionServer
from tests.conftest import recordings

CLIENT = Path(__file__).resolve().parent.parent / "clients" / "python"


def run(*argv: str | Path, timeout: float = 120) -> str:
    done = subprocess.run([str(a) for a in argv], capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"{argv} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout


@pytest.mark.slow
async def test_client_installs_without_torch(tmp_path: Path, server: EmotionServer) -> None:
    # Build from a copy, so that the build leaves nothing in the source tree.
    source = tmp_path / "emotion-client"
    shutil.copytree(CLIENT, source, ignore=shutil.ignore_patterns("*.egg-info", "build", "__pycache__"))
    venv = tmp_path / "venv"
    await asyncio.to_thread(run, sys.executable, "-m", "venv", venv)
    python = venv / "bin" / "python"
    await asyncio.to_thread(run, python, "-m", "pip", "install", "--quiet", source, timeout=240)

    installed = {p["name"].lower() for p in json.loads(run(python, "-m", "pip", "list", "--format=json"))}
    assert {"emotion-client", "grpcio", "protobuf"} <= installed
    assert not installed & {"torch", "numpy", "soundfile", "transformers", "emotion-service"}
    run(
        python,
        "-c",
        "import sys, emotion_client, emotion_client.interview, emotion_client.cli; "
        "assert not {'torch', 'numpy'} & set(sys.modules), sorted(sys.modules)",
    )

    cli = venv / "bin" / "emotion-client"
    target = f"127.0.0.1:{server.port}"
    health = await asyncio.to_thread(run, cli, "health", "--target", target, "--json")
    assert json.loads(health)["status"] == "SERVING"
    # FLAC goes to Classify as it is: no decoder needed on the client.
    rows = json.loads(await asyncio.to_thread(run, cli, "classify", recordings()[0], "--target", target, "--json"))
    assert rows[0]["label"]
    # Streaming FLAC needs the audio extra, and says so.
    done = await asyncio.to_thread(
        subprocess.run, [str(cli), "stream", str(recordings()[0]), "--target", target], capture_output=True, text=True
    )
    assert done.returncode == 1 and "emotion-client[audio]" in done.stderr
