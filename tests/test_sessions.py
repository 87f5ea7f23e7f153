"""Sessions: a request id never merges callers; cancelled and aborted streams close their session."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest

from emotion_client.v1 import emotion_pb2 as pb
from emotion_service.plugins.builtin.reports import Reports, ReportsConfig
from emotion_service.plugins.builtin.store import ResultsStore, StoreConfig
from emotion_service.plugins.manager import build_host
from emotion_service.plugins.reports import write_session_report
from emotion_service.plugins.types import SessionRecord, SessionSummary
from tests.conftest import recordings
from tests.plugin_helpers import ravdess_interview, serving, settle, stream_requests


def store_and_reports(tmp_path: Path) -> tuple[ResultsStore, Path]:
    store = ResultsStore(StoreConfig(database_url=f"sqlite:///{tmp_path / 'r.db'}", spool_dir=str(tmp_path / "spool")))
    return store, tmp_path / "reports"


async def test_a_reused_request_id_never_merges_two_callers(tiny_model: Path, tmp_path: Path) -> None:
    store, _ = store_and_reports(tmp_path)
    first, second = recordings()[0], recordings()[5]
    async with serving(tiny_model, build_host({"store": store})) as (server, stub):
        replies = [
            await stub.Classify(pb.ClassifyRequest(audio=pb.Audio(content=path.read_bytes()), request_id="same-id"))
            for path in (first, second)
        ]
        await settle(server)
    assert [r.request_id for r in replies] == ["same-id", "same-id"]
    assert replies[0].session_id != replies[1].session_id and all(r.session_id for r in replies)
    for reply in replies:
        record = store.store.session(reply.session_id)
        assert record is not None and record.summary.window_count == 1
        assert record.summary.results[0].request_id == "same-id"


async def stream_then(stub, requests, then: str) -> list[pb.StreamClassifyResponse]:  # type: ignore[no-untyped-def]
    """Sends the requests, then either cancels ("cancel") or sends the config again ("abort")."""
    got: list[pb.StreamClassifyResponse] = []
    sent_all = asyncio.Event()

    async def messages() -> AsyncIterator[pb.StreamClassifyRequest]:
        for request in requests:
            yield request
        sent_all.set()
        if then == "abort":
            yield requests[0]
        else:
            await asyncio.sleep(30)

    call = stub.StreamClassify(messages(), timeout=60)
    try:
        async for response in call:
            got.append(response)
            if then == "cancel" and sent_all.is_set() and len([r for r in got if r.HasField("window")]) >= 2:
                call.cancel()
    except (grpc.aio.AioRpcError, asyncio.CancelledError):
        pass
    return got


@pytest.mark.parametrize(("then", "reason"), [("cancel", "cancelled"), ("abort", "aborted: INVALID_ARGUMENT")])
async def test_cancelled_and_aborted_streams_close_their_session(
    tiny_model: Path, tmp_path: Path, then: str, reason: str
) -> None:
    store, reports = store_and_reports(tmp_path)
    plugins = build_host({"store": store, "reports": Reports(ReportsConfig(output_dir=str(reports), html=False))})
    session = f"ended-{then}"
    async with serving(tiny_model, plugins) as (server, stub):
        got = await stream_then(stub, stream_requests(ravdess_interview()[: 16000 * 8], session), then)
        assert any(r.HasField("window") for r in got)
        for _ in range(100):  # the server notices the cancellation asynchronously
            await settle(server)
            record = store.store.session(session)
            if record is not None and record.summary.end_reason != "completed":
                break
            await asyncio.sleep(0.1)
    assert record is not None and record.summary.end_reason == reason
    assert record.summary.window_count >= 1
    report = reports / f"session-{session}.json"
    assert report.exists(), "a report of what was scored is written"
    with store.store.engine.connect() as conn:
        ended = conn.exec_driver_sql("SELECT ended_at, end_reason FROM sessions WHERE id = ?", (session,)).one()
    assert ended[0] is not None and ended[1] == reason


def test_report_names_of_distinct_ids_never_collide(tmp_path: Path) -> None:
    names = set()
    for session_id in ("a/b", "a_b", "a?b", "..", "ünïcode"):
        summary = SessionSummary(session_id, 0, 0.0, "", {}, {}, (), ())
        (json_path,) = write_session_report(SessionRecord.from_summary(summary), tmp_path, html=False)
        names.add(json_path.name)
        assert json_path.parent == tmp_path
    assert len(names) == 5
    assert (tmp_path / "session-a_b.json").exists(), "an id that is already safe keeps its own name"


async def test_zero_grace_period_means_no_grace(tiny_model: Path) -> None:
    class SlowSink:
        from emotion_service.plugins import hookimpl

        @hookimpl
        def on_session_end(self, summary: SessionSummary) -> None:
            import time

            time.sleep(5)

    async with serving(tiny_model, build_host({"slow": SlowSink()}), grace_period_s=0.0) as (server, stub):
        requests = stream_requests(ravdess_interview()[: 16000 * 4], "graceless")

        async def messages() -> AsyncIterator[pb.StreamClassifyRequest]:
            for request in requests:
                yield request

        [r async for r in stub.StreamClassify(messages(), timeout=60)]
        started = asyncio.get_running_loop().time()
        await server.stop()
        assert asyncio.get_running_loop().time() - started < 2.0, "grace 0 waited for a background sink"
