"""Each client's data is its own: with token auth, jobs and session ids belong to the key that made
them; one live stream per session; a session continued later keeps its windows in order."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import numpy as np
import pytest

from emotion_client.v1 import emotion_pb2 as pb
from emotion_client.v1 import emotion_pb2_grpc
from emotion_service.server.app import EmotionServer
from emotion_service.server.auth import hash_token
from tests.conftest import load_mono, make_settings, recordings, start_server
from tests.test_service import aiter_of, stream_requests

TOKENS = {"alice": "emo_alice", "bob": "emo_bob", "ops": "emo_ops"}


def bearer(name: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {TOKENS[name]}"),)


@pytest.fixture
async def secured(tiny_model: Path, tmp_path: Path) -> AsyncIterator[emotion_pb2_grpc.EmotionServiceStub]:
    tokens = tmp_path / "tokens.toml"
    tokens.write_text(
        "".join(
            f'[[keys]]\nname = "{name}"\nsha256 = "{hash_token(token)}"\nscopes = ["{"admin" if name == "ops" else "classify"}"]\n'
            for name, token in TOKENS.items()
        )
    )
    srv = await start_server(make_settings(tiny_model, auth_tokens_file=str(tokens), job_workers=0))
    async with grpc.aio.insecure_channel(f"127.0.0.1:{srv.port}") as channel:
        yield emotion_pb2_grpc.EmotionServiceStub(channel)
    await srv.stop(grace=0)


async def test_a_key_sees_lists_and_cancels_only_its_own_jobs(secured) -> None:
    stub = secured
    content = recordings()[0].read_bytes()
    job = await stub.SubmitJob(
        pb.SubmitJobRequest(
            recordings=[pb.Recording(name="jane.flac", content=content)],
            metadata={"candidate": "Jane Doe"},
            session_id="alice-interview",
        ),
        metadata=bearer("alice"),
    )
    mine = await stub.SubmitJob(pb.SubmitJobRequest(recordings=[pb.Recording(content=content)]), metadata=bearer("bob"))

    listed = await stub.ListJobs(pb.ListJobsRequest(), metadata=bearer("bob"))
    assert [j.job_id for j in listed.jobs] == [mine.job_id], "bob lists his job only"
    for call in (stub.GetJob(pb.GetJobRequest(job_id=job.job_id), metadata=bearer("bob")),
                 stub.CancelJob(pb.CancelJobRequest(job_id=job.job_id), metadata=bearer("bob"))):
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await call
        assert err.value.code() == grpc.StatusCode.NOT_FOUND  # not told apart from a job that does not exist
        assert "Jane" not in err.value.details()
    with pytest.raises(grpc.aio.AioRpcError) as err:
        async for _ in stub.WatchJob(pb.WatchJobRequest(job_id=job.job_id), metadata=bearer("bob")):
            pass
    assert err.value.code() == grpc.StatusCode.NOT_FOUND

    assert (await stub.GetJob(pb.GetJobRequest(job_id=job.job_id), metadata=bearer("alice"))).state == pb.JOB_STATE_QUEUED
    everything = await stub.ListJobs(pb.ListJobsRequest(), metadata=bearer("ops"))
    assert {j.job_id for j in everything.jobs} == {job.job_id, mine.job_id}, "admin sees all"
    cancelled = await stub.CancelJob(pb.CancelJobRequest(job_id=job.job_id), metadata=bearer("alice"))
    assert cancelled.state == pb.JOB_STATE_CANCELLED


async def test_a_key_cannot_stream_or_submit_into_a_session_another_key_owns(secured) -> None:
    stub = secured
    wave = load_mono(recordings()[0])[:32000]
    replies = [r async for r in stub.StreamClassify(
        aiter_of(stream_requests(wave, 16000, session_id="alice-call")), metadata=bearer("alice"))]
    assert replies[-1].HasField("summary")
    with pytest.raises(grpc.aio.AioRpcError) as err:
        async for _ in stub.StreamClassify(
            aiter_of(stream_requests(wave, 16000, session_id="alice-call")), metadata=bearer("bob")
        ):
            pass
    assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED and "another client" in err.value.details()
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.SubmitJob(
            pb.SubmitJobRequest(recordings=[pb.Recording(content=recordings()[0].read_bytes())], session_id="alice-call"),
            metadata=bearer("bob"),
        )
    assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
    # Its owner continues it.
    again = [r async for r in stub.StreamClassify(
        aiter_of(stream_requests(wave, 16000, session_id="alice-call")), metadata=bearer("alice"))]
    assert again[-1].HasField("summary")


async def test_one_live_stream_per_session_and_a_continued_session_keeps_its_windows_in_order(tiny_model: Path) -> None:
    srv: EmotionServer = await start_server(make_settings(tiny_model))
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{srv.port}") as channel:
            stub = emotion_pb2_grpc.EmotionServiceStub(channel)
            wave = np.concatenate([load_mono(p) for p in recordings()[:2]])[: 6 * 16000]
            release = asyncio.Event()

            async def held_open() -> AsyncIterator[pb.StreamClassifyRequest]:
                requests = stream_requests(wave, 16000, session_id="shared", window_s=2.0, hop_s=2.0)
                for request in requests[:3]:
                    yield request
                await release.wait()
                for request in requests[3:]:
                    yield request

            first = asyncio.ensure_future(_collect(stub.StreamClassify(held_open())))
            await asyncio.sleep(0.5)
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await _collect(stub.StreamClassify(aiter_of(stream_requests(wave, 16000, session_id="shared"))))
            assert err.value.code() == grpc.StatusCode.ALREADY_EXISTS
            release.set()
            earlier = [r.window for r in await first if r.HasField("window")]
            later = [r.window for r in await _collect(stub.StreamClassify(aiter_of(
                stream_requests(wave, 16000, session_id="shared", window_s=2.0, hop_s=2.0))))
                if r.HasField("window")]
            assert [w.index for w in earlier + later] == list(range(len(earlier) + len(later)))
            assert later[0].start_s == pytest.approx(6.0) and later[-1].end_s == pytest.approx(12.0)
    finally:
        await srv.stop(grace=0)


async def _collect(call: grpc.aio.StreamStreamCall) -> list[pb.StreamClassifyResponse]:
    return [response async for response in call]
