"""Helpers of the plugin tests: a server with chosen plugins, real RAVDESS streams, a test PostgreSQL."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import NoReturn
from uuid import uuid4

import grpc
import numpy as np
import pytest
import structlog
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError

from emotion_client.v1 import emotion_pb2 as pb
from emotion_client.v1 import emotion_pb2_grpc
from emotion_service.cli import main
from emotion_service.plugins.manager import PluginHost
from emotion_service.server.app import EmotionServer
from tests.conftest import load_mono, make_settings, recordings

POSTGRES_ENV = "EMOTION_TEST_POSTGRES_URL"
START_POSTGRES = 'start one with `eval "$(bash .ci/postgres start)"` (what .ci/run does)'
# RAVDESS emotion codes, one clip each: neutral, happy, sad, angry, fearful, disgust.
INTERVIEW_EMOTIONS = ("01", "03", "04", "05", "06", "07")


def ravdess_interview() -> np.ndarray:
    """One 16 kHz recording made of six RAVDESS clips of different emotions, back to back."""
    chosen = []
    for code in INTERVIEW_EMOTIONS:
        chosen.append(next(p for p in recordings() if p.name.split("-")[2] == code))
    return np.concatenate([load_mono(path) for path in chosen])


def stream_requests(
    wave: np.ndarray, session_id: str, metadata: dict[str, str] | None = None, rate: int = 16000
) -> list[pb.StreamClassifyRequest]:
    """A config message, then the audio as s16le chunks of half a second."""
    pcm = (np.clip(wave, -1, 1) * 32767).astype("<i2").tobytes()
    fmt = pb.PcmFormat(encoding=pb.PCM_ENCODING_S16LE, sample_rate=rate, channels=1)
    config = pb.StreamConfig(format=fmt, session_id=session_id, metadata=metadata or {})
    chunk = rate  # bytes: half a second of 16-bit samples
    return [pb.StreamClassifyRequest(config=config)] + [
        pb.StreamClassifyRequest(audio_content=pcm[i : i + chunk]) for i in range(0, len(pcm), chunk)
    ]


async def run_stream(
    stub: emotion_pb2_grpc.EmotionServiceStub, requests: Sequence[pb.StreamClassifyRequest]
) -> list[pb.StreamClassifyResponse]:
    """Sends a whole stream; returns every response."""

    async def messages() -> AsyncIterator[pb.StreamClassifyRequest]:
        for request in requests:
            yield request

    return [response async for response in stub.StreamClassify(messages(), timeout=120)]


@asynccontextmanager
async def serving(
    model: Path, plugins: PluginHost, **settings: object
) -> AsyncIterator[tuple[EmotionServer, emotion_pb2_grpc.EmotionServiceStub]]:
    """A real server on loopback running ``plugins`` (and any ``settings``), and a stub to call it."""
    server = EmotionServer(make_settings(model, **settings), plugins=plugins)
    await server.start()
    await server.load_model()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            yield server, emotion_pb2_grpc.EmotionServiceStub(channel)
    finally:
        await server.stop(grace=5)


async def settle(server: EmotionServer) -> None:
    """Waits for the background hooks (on_alert, on_session_end) started so far, and the sinks' queues."""
    while server.servicer.background:
        await asyncio.gather(*server.servicer.background)
    assert await asyncio.to_thread(server.servicer.plugins.flush), "a sink did not empty its queue in time"


@contextmanager
def fresh_postgres_database() -> Iterator[str]:
    """A new, empty database on the test PostgreSQL server (dropped afterwards); its URL."""
    base = os.environ.get(POSTGRES_ENV)
    if not base:
        _unavailable(f"{POSTGRES_ENV} is not set")
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    name = f"emotion_test_{uuid4().hex[:12]}"
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    except OperationalError as exc:
        admin.dispose()
        _unavailable(f"PostgreSQL at {make_url(base).render_as_string()} is unreachable ({exc.orig})")
    try:
        yield make_url(base).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def _unavailable(reason: str) -> NoReturn:
    if os.environ.get("CI"):
        pytest.fail(f"{reason}: CI must test the store on PostgreSQL; .ci/run starts it")
    pytest.skip(f"{reason}: {START_POSTGRES}")


def emotion(*argv: str) -> int:
    """Runs the ``emotion`` CLI in-process, then undoes its logging set-up (it binds the current stderr)."""
    saved = structlog.get_config()
    try:
        return main(list(argv))
    finally:
        structlog.configure(**saved)
