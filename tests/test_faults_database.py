"""Fault: the results database goes away and comes back while the server answers."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, func, select

from emotion_client.v1 import emotion_pb2 as pb
from emotion_service.plugins.builtin.store import ResultsStore, StoreConfig
from emotion_service.plugins.manager import build_host
from emotion_service.plugins.store.schema import ResultRow
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


def _result_counts(url: str) -> dict[str, int]:
    """Stored results per session id."""
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(select(ResultRow.session_id, func.count()).group_by(ResultRow.session_id)).all()
            return {session_id: count for session_id, count in rows}
    finally:
        engine.dispose()


def _postgres_pids(folder: Path) -> list[int]:
    """The postmaster and its children (backends, writers) of a cluster."""
    postmaster = int((folder / "postmaster.pid").read_text().split()[0])
    children = []
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            fields = dict(line.split(":\t", 1) for line in status.read_text().splitlines() if ":\t" in line)
        except OSError:
            continue
        if fields.get("PPid", "").strip() == str(postmaster):
            children.append(int(status.parent.name))
    return [postmaster, *children]


async def _load(stub, request: pb.ClassifyRequest, seconds: float, callers: int = 4) -> list[pb.ClassifyResponse]:  # type: ignore[no-untyped-def]
    """``callers`` loops of Classify for ``seconds``; every reply (all must be OK)."""
    replies: list[pb.ClassifyResponse] = []
    stop_at = asyncio.get_running_loop().time() + seconds

    async def caller() -> None:
        while asyncio.get_running_loop().time() < stop_at:
            replies.append(await stub.Classify(request, timeout=5))

    await asyncio.gather(*(caller() for _ in range(callers)))
    return replies


async def test_database_outage_under_load_loses_no_result_and_duplicates_none(
    tiny_model: Path, own_postgres, tmp_path: Path
) -> None:
    url, port, folder = own_postgres
    request = pb.ClassifyRequest(audio=pb.Audio(content=recordings()[0].read_bytes()))
    store = ResultsStore(StoreConfig(database_url=url, spool_dir=str(tmp_path / "spool"), retry_s=0.2))
    async with serving(tiny_model, build_host({"store": store})) as (server, stub):
        load = asyncio.create_task(_load(stub, request, seconds=6.0))
        await asyncio.sleep(1.5)
        await asyncio.to_thread(_postgres, "halt", port, folder)
        await asyncio.sleep(2.0)
        spooled_during_outage = store.spool.has_pending()
        await asyncio.to_thread(_postgres, "start", port, folder)
        replies = await load
        await settle(server)
        for _ in range(100):  # the writer replays the spool within a few retries
            if not store.spool.has_pending():
                break
            await asyncio.sleep(0.1)
    assert spooled_during_outage, "the outage did not reach the store: the test proved nothing"
    assert len(replies) >= 20
    answered = {reply.session_id for reply in replies}
    assert len(answered) == len(replies), "each Classify call is a session of its own"
    counts = _result_counts(url)
    print(f"\noutage: {len(replies)} answered, {sum(counts.values())} stored")
    assert {session_id: counts.get(session_id, 0) for session_id in answered} == dict.fromkeys(answered, 1)
    assert set(counts) == answered


async def test_a_hanging_database_never_holds_up_an_answer(tiny_model: Path, own_postgres, tmp_path: Path) -> None:
    url, _, folder = own_postgres
    request = pb.ClassifyRequest(audio=pb.Audio(content=recordings()[0].read_bytes()))
    store = ResultsStore(StoreConfig(database_url=url, spool_dir=str(tmp_path / "spool"), queue_size=8))
    async with serving(tiny_model, build_host({"store": store})) as (server, stub):
        await stub.Classify(request)
        await settle(server)
        pids = _postgres_pids(folder)
        for pid in pids:
            os.kill(pid, signal.SIGSTOP)  # the database accepts connections and answers nothing
        try:
            replies = await _load(stub, request, seconds=4.0)  # each call has a 5 s deadline
        finally:
            for pid in pids:
                os.kill(pid, signal.SIGCONT)
        await settle(server)
        for _ in range(100):
            if not store.spool.has_pending():
                break
            await asyncio.sleep(0.1)
    assert len(replies) >= 20 and all(reply.label for reply in replies)
    counts = _result_counts(url)
    assert all(counts.get(reply.session_id) == 1 for reply in replies), "a result was lost or doubled"
