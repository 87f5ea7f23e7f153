"""Erasure: DeleteSession (admin scope) and `emotion erase` leave no row naming the session and no report."""

from __future__ import annotations

from pathlib import Path

import grpc
import pytest
from sqlalchemy import text

from emotion_client import AsyncEmotionClient, EmotionError
from emotion_client.v1 import emotion_pb2 as pb
from emotion_client.v1 import emotion_pb2_grpc
from emotion_service.plugins.builtin.reports import Reports, ReportsConfig
from emotion_service.plugins.builtin.store import ResultsStore, StoreConfig
from emotion_service.plugins.builtin.threshold_alerts import ThresholdAlerts, ThresholdAlertsConfig
from emotion_service.plugins.manager import build_host
from emotion_service.server.app import EmotionServer
from emotion_service.server.auth import hash_token
from tests.conftest import make_settings
from tests.plugin_helpers import emotion, ravdess_interview, run_stream, settle, stream_requests

ADMIN, CLASSIFY = "emo_admin-erase", "emo_classify-erase"


def alerting() -> ThresholdAlerts:
    """Alerts an untrained model's near-uniform scores set off, so that the session has alerts to erase."""
    return ThresholdAlerts(ThresholdAlertsConfig(thresholds={"ANG": 0.1, "FEA": 0.1}, hysteresis=0.05))


def rows_naming(store: ResultsStore, session_id: str) -> dict[str, int]:
    counts = {}
    with store.store.engine.connect() as conn:
        for table, column in (("sessions", "id"), ("results", "session_id"), ("alerts", "session_id"),
                              ("session_metadata", "session_id")):  # fmt: skip
            counts[table] = conn.execute(
                text(f"SELECT count(*) FROM {table} WHERE {column} = :s"), {"s": session_id}
            ).scalar()
    return counts


async def test_delete_session_needs_admin_and_erases_rows_and_reports(tiny_model: Path, tmp_path: Path) -> None:
    tokens = tmp_path / "tokens.toml"
    tokens.write_text(
        f'[[keys]]\nname = "platform"\nsha256 = "{hash_token(CLASSIFY)}"\nscopes = ["classify"]\n'
        f'[[keys]]\nname = "dpo"\nsha256 = "{hash_token(ADMIN)}"\nscopes = ["admin"]\n'
    )
    store = ResultsStore(StoreConfig(database_url=f"sqlite:///{tmp_path / 'r.db'}", spool_dir=str(tmp_path / "spool")))
    reports = tmp_path / "reports"
    plugins = build_host(
        {"threshold_alerts": alerting(), "store": store, "reports": Reports(ReportsConfig(output_dir=str(reports)))}
    )
    server = EmotionServer(make_settings(tiny_model, auth_tokens_file=str(tokens)), plugins=plugins)
    await server.start()
    await server.load_model()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            stub = emotion_pb2_grpc.EmotionServiceStub(channel)
            as_platform = (("authorization", f"Bearer {CLASSIFY}"),)
            as_admin = (("authorization", f"Bearer {ADMIN}"),)
            metadata = {"candidate": "c-1"}
            requests = stream_requests(ravdess_interview()[: 16000 * 6], "to-erase", metadata)

            async def messages():  # type: ignore[no-untyped-def]
                for request in requests:
                    yield request

            [r async for r in stub.StreamClassify(messages(), metadata=as_platform, timeout=60)]
            await settle(server)
            before = rows_naming(store, "to-erase")
            assert before["results"] >= 2 and before["alerts"] == 2 and before["session_metadata"] == 1
            assert sorted(p.name for p in reports.iterdir()) == ["session-to-erase.html", "session-to-erase.json"]

            with pytest.raises(grpc.aio.AioRpcError) as denied:
                await stub.DeleteSession(pb.DeleteSessionRequest(session_id="to-erase"), metadata=as_platform)
            assert denied.value.code() == grpc.StatusCode.PERMISSION_DENIED
            assert rows_naming(store, "to-erase")["sessions"] == 1, "a refused erasure erases nothing"

            reply = await stub.DeleteSession(pb.DeleteSessionRequest(session_id="to-erase"), metadata=as_admin)
            assert reply.session_id == "to-erase"
            assert any(line.startswith("store: ") for line in reply.erased)
            assert "reports: 2 files" in reply.erased

            with pytest.raises(grpc.aio.AioRpcError) as again:
                await stub.DeleteSession(pb.DeleteSessionRequest(session_id="to-erase"), metadata=as_admin)
            assert again.value.code() == grpc.StatusCode.NOT_FOUND
            async with AsyncEmotionClient(f"127.0.0.1:{server.port}", token=ADMIN) as client:
                with pytest.raises(EmotionError) as missing:
                    await client.delete_session("to-erase")
                assert missing.value.code is grpc.StatusCode.NOT_FOUND
    finally:
        await server.stop(grace=1)
    assert rows_naming(store, "to-erase") == dict.fromkeys(("sessions", "results", "alerts", "session_metadata"), 0)
    assert list(reports.iterdir()) == []
    with store.store.engine.connect() as conn:
        record = conn.execute(text("SELECT session_id, requested_by, rows_deleted FROM erasures")).one()
    assert record[0] == "to-erase" and record[1] == "dpo" and record[2] >= 4


async def test_emotion_erase_on_the_command_line(
    tiny_model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    database, reports = tmp_path / "r.db", tmp_path / "reports"
    monkeypatch.setenv("EMOTION_DATABASE_URL", f"sqlite:///{database}")
    monkeypatch.setenv("EMOTION_STORE_SPOOL_DIR", str(tmp_path / "spool"))
    monkeypatch.setenv("EMOTION_REPORTS_OUTPUT_DIR", str(reports))
    store = ResultsStore()
    plugins = build_host({"threshold_alerts": alerting(), "store": store, "reports": Reports()})
    server = EmotionServer(make_settings(tiny_model), plugins=plugins)
    await server.start()
    await server.load_model()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            stub = emotion_pb2_grpc.EmotionServiceStub(channel)
            await run_stream(stub, stream_requests(ravdess_interview()[: 16000 * 4], "cli-erase"))
            await settle(server)
    finally:
        await server.stop(grace=1)
    before = rows_naming(store, "cli-erase")
    assert before["sessions"] == 1 and before["results"] >= 2 and before["alerts"] == 2
    assert emotion("erase", "--session", "cli-erase", "--select", "store,reports") == 0
    assert rows_naming(store, "cli-erase") == dict.fromkeys(("sessions", "results", "alerts", "session_metadata"), 0)
    assert not any(reports.glob("session-cli-erase*"))
    assert emotion("erase", "--session", "cli-erase", "--select", "store,reports") == 1


async def test_a_session_erased_the_moment_its_stream_ends_stays_erased(tiny_model: Path, tmp_path: Path) -> None:
    """The stream's last hooks (its alerts, its end, its report) still run when the client, told the
    summary, erases the session at once: none of them may write the session back afterwards."""
    store = ResultsStore(StoreConfig(database_url=f"sqlite:///{tmp_path / 'r.db'}", spool_dir=str(tmp_path / "spool")))
    reports = tmp_path / "reports"
    plugins = build_host(
        {"threshold_alerts": alerting(), "store": store, "reports": Reports(ReportsConfig(output_dir=str(reports)))}
    )
    server = EmotionServer(make_settings(tiny_model), plugins=plugins)
    await server.start()
    await server.load_model()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            stub = emotion_pb2_grpc.EmotionServiceStub(channel)
            responses = await run_stream(stub, stream_requests(ravdess_interview()[: 16000 * 6], "at-once", {"c": "1"}))
            assert responses[-1].HasField("summary") and any(r.HasField("alert") for r in responses)
            reply = await stub.DeleteSession(pb.DeleteSessionRequest(session_id="at-once"))
            assert any(line.startswith("store: ") for line in reply.erased) and "reports: 2 files" in reply.erased
            await settle(server)  # whatever was still running has run
    finally:
        await server.stop(grace=1)
    assert rows_naming(store, "at-once") == dict.fromkeys(("sessions", "results", "alerts", "session_metadata"), 0)
    assert not reports.exists() or list(reports.iterdir()) == [], "a report written after the erasure"
