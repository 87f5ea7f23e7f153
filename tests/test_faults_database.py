"""Fault: the results database goes away and comes back while the server answers."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, func, select

from emotion_client.v1 import emotion_pb2 as pb
from emotion_service.plugins.builtin.store import ResultsStore, StoreConfig
from emotion_service.plugins.manager import build_host
from emotion_service.plugins.store.schema import SessionRow
from tests.conftest import recordings
from tests.plugin_helpers import serving, settle
from tests.server_process import free_port

SCRIPT = Path(__file__).resolve().parent.parent / ".ci" / "postgres"


def _postgres(action: str, port: int, folder: Path) -> str:
    env = {**os.environ, "EMOTION_TEST_POSTGRES_PORT": str(port), "EMOTION_TEST_POSTGRES_DIR": str(folder)}
    return subprocess.run(["bash", str(SCRIPT), action], env=env, capture_output=True, text=True, check=True).stdout


@pytest.fixture
def own_postgres(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, int, Path]]:
    """A PostgreSQL cluster of this test's own, so stopping it disturbs no other test."""
    installed = shutil.which("pg_ctl") or list(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"))
    if not installed and not os.environ.get("CI"):
        pytest.skip("no PostgreSQL server binaries: install Debian's postgresql (.ci/run does)")
    port, folder = free_port(), Path(f"/tmp/emotion-fault-pg-{os.getpid()}")
    out = _postgres("start", port, folder)
    url = out.strip().split("=", 1)[1]
    try:
        yield url, port, folder
    finally:
        _postgres("stop", port, folder)


def _sessions(url: str) -> int:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return conn.execute(select(func.count()).select_from(SessionRow)).scalar_one()
    finally:
        engine.dispose()


async def test_database_outage_loses_no_answer_and_writes_resume(tiny_model: Path, own_postgres) -> None:
    url, port, folder = own_postgres
    request = pb.ClassifyRequest(audio=pb.Audio(content=recordings()[0].read_bytes()))
    plugins = build_host({"store": ResultsStore(StoreConfig(database_url=url))})
    async with serving(tiny_model, plugins) as (server, stub):
        assert (await stub.Classify(request)).label
        await settle(server)
        assert _sessions(url) == 1

        _postgres("halt", port, folder)
        during = [await stub.Classify(request) for _ in range(3)]
        assert all(reply.label for reply in during), "answers must not depend on the store"

        _postgres("start", port, folder)
        assert (await stub.Classify(request)).label
        await settle(server)
    # The outage's three results are lost (logged as plugin_failed); writing resumes after it.
    assert _sessions(url) == 2
