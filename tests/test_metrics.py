"""Prometheus metrics on the side port, scraped over HTTP."""

from __future__ import annotations

import urllib.request
from pathlib import Path

import grpc
import pytest

from emotion_client.v1 import emotion_pb2 as pb
from emotion_client.v1 import emotion_pb2_grpc
from tests.conftest import make_settings, recordings, start_server
from tests.server_process import free_port


async def test_metrics_are_scraped(tiny_model: Path) -> None:
    port = free_port()
    srv = await start_server(make_settings(tiny_model, metrics_port=port))
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{srv.port}") as channel:
            stub = emotion_pb2_grpc.EmotionServiceStub(channel)
            await stub.Classify(pb.ClassifyRequest(audio=pb.Audio(content=recordings()[0].read_bytes())))
            with pytest.raises(grpc.aio.AioRpcError):
                await stub.Classify(pb.ClassifyRequest(audio=pb.Audio(content=b"junk")))
        text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    finally:
        await srv.stop(grace=1)
    assert 'emotion_requests_total{code="OK",method="Classify"}' in text
    assert 'emotion_requests_total{code="INVALID_ARGUMENT",method="Classify"}' in text
    for name in ("emotion_request_latency_seconds_bucket", "emotion_queue_wait_seconds_count",
                 "emotion_inference_seconds_count", "emotion_batch_size_bucket", "emotion_queue_depth",
                 'emotion_model_info{architecture="HubertForSequenceClassification"'):
        assert name in text
