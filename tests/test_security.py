"""TLS, mTLS, bearer tokens with scopes, and stream limits, on real servers."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import numpy as np
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from emotion_client.v1 import emotion_pb2 as pb
from emotion_client.v1 import emotion_pb2_grpc
from emotion_service.server.auth import hash_token
from emotion_service.server.config import ConfigError, Settings
from tests.certs import make_certs
from tests.conftest import make_settings, recordings, start_server
from tests.test_service import aiter_of, stream_requests

CLASSIFY_TOKEN = "emo_classify-token"
ADMIN_TOKEN = "emo_admin-token"


def request() -> pb.ClassifyRequest:
    return pb.ClassifyRequest(audio=pb.Audio(content=recordings()[0].read_bytes()))


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory):
    return make_certs(tmp_path_factory.mktemp("certs"))


async def test_tls_serves_only_tls_clients(tiny_model: Path, certs) -> None:
    srv = await start_server(make_settings(tiny_model, tls_cert_file=str(certs.server_cert), tls_key_file=str(certs.server_key)))
    try:
        creds = grpc.ssl_channel_credentials(root_certificates=certs.ca.read_bytes())
        async with grpc.aio.secure_channel(f"localhost:{srv.port}", creds) as channel:
            reply = await emotion_pb2_grpc.EmotionServiceStub(channel).Classify(request())
            assert reply.label
        async with grpc.aio.insecure_channel(f"127.0.0.1:{srv.port}") as channel:
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await emotion_pb2_grpc.EmotionServiceStub(channel).Classify(request(), timeout=3)
            assert err.value.code() == grpc.StatusCode.UNAVAILABLE
    finally:
        await srv.stop(grace=0)


async def test_mtls_requires_a_client_certificate(tiny_model: Path, certs) -> None:
    settings = make_settings(
        tiny_model,
        tls_cert_file=str(certs.server_cert),
        tls_key_file=str(certs.server_key),
        tls_client_ca_file=str(certs.ca),
    )
    srv = await start_server(settings)
    try:
        with_cert = grpc.ssl_channel_credentials(
            certs.ca.read_bytes(), certs.client_key.read_bytes(), certs.client_cert.read_bytes()
        )
        async with grpc.aio.secure_channel(f"localhost:{srv.port}", with_cert) as channel:
            assert (await emotion_pb2_grpc.EmotionServiceStub(channel).Classify(request())).label
        without = grpc.ssl_channel_credentials(certs.ca.read_bytes())
        async with grpc.aio.secure_channel(f"localhost:{srv.port}", without) as channel:
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await emotion_pb2_grpc.EmotionServiceStub(channel).Classify(request(), timeout=3)
            assert err.value.code() == grpc.StatusCode.UNAVAILABLE
    finally:
        await srv.stop(grace=0)


def test_plaintext_on_a_public_host_needs_consent() -> None:
    with pytest.raises(ConfigError, match="refusing plaintext"):
        Settings(host="0.0.0.0")
    assert Settings(host="0.0.0.0", insecure=True).host == "0.0.0.0"
    with pytest.raises(ConfigError, match="tls_key_file"):
        Settings(tls_cert_file="cert.pem")


@pytest.fixture(scope="module")
def tokens_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("auth") / "tokens.toml"
    path.write_text(
        f'[[keys]]\nname = "platform"\nsha256 = "{hash_token(CLASSIFY_TOKEN)}"\nscopes = ["classify"]\n'
        f'[[keys]]\nname = "ops"\nsha256 = "{hash_token(ADMIN_TOKEN)}"\nscopes = ["admin"]\n'
    )
    return path


async def test_tokens_and_scopes(tiny_model: Path, tokens_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    srv = await start_server(make_settings(tiny_model, auth_tokens_file=str(tokens_file)))
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{srv.port}") as channel:
            stub = emotion_pb2_grpc.EmotionServiceStub(channel)
            for metadata, code in [
                ((), grpc.StatusCode.UNAUTHENTICATED),
                ((("authorization", "Bearer wrong"),), grpc.StatusCode.UNAUTHENTICATED),
                ((("authorization", f"Basic {CLASSIFY_TOKEN}"),), grpc.StatusCode.UNAUTHENTICATED),
            ]:
                with pytest.raises(grpc.aio.AioRpcError) as err:
                    await stub.Classify(request(), metadata=metadata)
                assert err.value.code() == code
                assert "Bearer" in err.value.details()
            for token in (CLASSIFY_TOKEN, ADMIN_TOKEN):
                reply = await stub.Classify(request(), metadata=(("authorization", f"Bearer {token}"),))
                assert reply.label
            windows = [
                r async for r in stub.StreamClassify(
                    aiter_of(stream_requests(np.zeros(16000, np.float32), 16000)),
                    metadata=(("authorization", f"Bearer {CLASSIFY_TOKEN}"),),
                )
            ]
            assert windows[-1].WhichOneof("event") == "summary"
            with pytest.raises(grpc.aio.AioRpcError) as err:
                async for _ in stub.StreamClassify(aiter_of(stream_requests(np.zeros(16000, np.float32), 16000))):
                    pass
            assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
            health = health_pb2_grpc.HealthStub(channel)
            status = await health.Check(health_pb2.HealthCheckRequest())
            assert status.status == health_pb2.HealthCheckResponse.SERVING
    finally:
        await srv.stop(grace=0)
    logs = capsys.readouterr()
    text = logs.out + logs.err
    assert "platform" in text and CLASSIFY_TOKEN not in text and ADMIN_TOKEN not in text


async def test_wrong_scope_is_permission_denied(tiny_model: Path, tmp_path: Path) -> None:
    path = tmp_path / "tokens.toml"
    path.write_text(f'[[keys]]\nname = "reader"\nsha256 = "{hash_token("t")}"\nscopes = ["admin"]\n'
                    f'[[keys]]\nname = "other"\nsha256 = "{hash_token("u")}"\nscopes = []\n')
    srv = await start_server(make_settings(tiny_model, auth_tokens_file=str(path)))
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{srv.port}") as channel:
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await emotion_pb2_grpc.EmotionServiceStub(channel).Classify(request(), metadata=(("authorization", "Bearer u"),))
            assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
            assert "'other' lacks scope 'classify'" in err.value.details()
    finally:
        await srv.stop(grace=0)


@pytest.mark.parametrize(
    ("content", "message"),
    [("", "defines no"), ('[[keys]]\nsha256 = "abc"\n', "64 hex digits"), (f'[[keys]]\nsha256 = "{"a" * 64}"\nscopes = ["root"]\n', "unknown scope")],
)
def test_bad_tokens_file_is_named(tmp_path: Path, content: str, message: str) -> None:
    from emotion_service.server.auth import load_keys

    path = tmp_path / "tokens.toml"
    path.write_text(content)
    with pytest.raises(ConfigError, match=message):
        load_keys(path)


async def test_stream_limits_say_which_limit(tiny_model: Path) -> None:
    srv = await start_server(make_settings(tiny_model, max_streams=1, max_stream_seconds=2.0, stream_idle_timeout_s=0.5))
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{srv.port}") as channel:
            stub = emotion_pb2_grpc.EmotionServiceStub(channel)
            long = stream_requests(np.zeros(16000 * 3, np.float32), 16000, chunk=16000)
            with pytest.raises(grpc.aio.AioRpcError) as err:
                async for _ in stub.StreamClassify(aiter_of(long)):
                    pass
            assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED and "max_stream_seconds" in err.value.details()

            async def quiet():
                yield stream_requests(np.zeros(1, np.float32), 16000)[0]
                await asyncio.sleep(5)

            with pytest.raises(grpc.aio.AioRpcError) as err:
                async for _ in stub.StreamClassify(quiet()):
                    pass
            assert err.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED and "stream_idle_timeout_s" in err.value.details()

            gate = asyncio.Event()

            async def held():
                yield stream_requests(np.zeros(1, np.float32), 16000)[0]
                for _ in range(20):
                    if gate.is_set():
                        return
                    yield pb.StreamClassifyRequest(audio_content=b"\x00\x00" * 160)
                    await asyncio.sleep(0.1)

            first = stub.StreamClassify(held())
            reading = asyncio.ensure_future(first.read())
            await asyncio.sleep(0.3)
            with pytest.raises(grpc.aio.AioRpcError) as err:
                async for _ in stub.StreamClassify(aiter_of(stream_requests(np.zeros(16000, np.float32), 16000))):
                    pass
            assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED and "max_streams=1" in err.value.details()
            gate.set()
            await reading
            first.cancel()
    finally:
        await srv.stop(grace=0)


async def test_an_unauthenticated_stream_is_refused_at_once(tiny_model: Path, tokens_file: Path) -> None:
    """A client without a token that keeps writing gets UNAUTHENTICATED within a second; what it
    sent meanwhile is dropped unparsed, not read for as long as a served stream's refusal."""
    srv = await start_server(make_settings(tiny_model, auth_tokens_file=str(tokens_file)))
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{srv.port}") as channel:
            stub = emotion_pb2_grpc.EmotionServiceStub(channel)

            async def endless() -> AsyncIterator[pb.StreamClassifyRequest]:
                fmt = pb.PcmFormat(encoding=pb.PCM_ENCODING_S16LE, sample_rate=16000, channels=1)
                yield pb.StreamClassifyRequest(config=pb.StreamConfig(format=fmt))
                for _ in range(1000):
                    yield pb.StreamClassifyRequest(audio_content=bytes(32000))
                    await asyncio.sleep(0.01)

            started = time.monotonic()
            with pytest.raises(grpc.aio.AioRpcError) as err:
                async for _ in stub.StreamClassify(endless()):
                    pass
            assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
            assert time.monotonic() - started < 1.5
    finally:
        await srv.stop(grace=0)
