"""Prometheus metrics, served on a side port (``--metrics-port``)."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc
from prometheus_client import Counter, Gauge, Histogram, Info, start_http_server

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)

REQUESTS = Counter("emotion_requests_total", "RPCs answered, by method and status code.", ["method", "code"])
REQUEST_LATENCY = Histogram(
    "emotion_request_latency_seconds",
    "Whole-RPC latency (streams: their whole life).",
    ["method"],
    buckets=LATENCY_BUCKETS,
)
QUEUE_WAIT = Histogram(
    "emotion_queue_wait_seconds", "Time a clip or window waited for its batch.", buckets=LATENCY_BUCKETS
)
INFERENCE = Histogram("emotion_inference_seconds", "Time of one batched forward pass.", buckets=LATENCY_BUCKETS)
BATCH_SIZE = Histogram("emotion_batch_size", "Clips or windows per forward pass.", buckets=(1, 2, 4, 8, 16, 32, 64))
QUEUE_DEPTH = Gauge("emotion_queue_depth", "Clips or windows waiting for the model.")
WINDOW_LAG = Histogram(
    "emotion_stream_window_lag_seconds",
    "Time from a stream window's last sample arriving to its answer.",
    buckets=LATENCY_BUCKETS,
)
WINDOWS_SKIPPED = Counter("emotion_stream_windows_skipped_total", "Stream windows answered as skipped because of load.")
WINDOWS_SILENT = Counter(
    "emotion_stream_windows_silent_total",
    "Stream windows answered as silent (no speech heard): no emotion claimed.",
)
NO_SPEECH = Counter(
    "emotion_no_speech_total",
    "Classify recordings, stream windows and job utterances answered no_speech (no emotion claimed), by door.",
    ["door"],
)
SPEECH_DETECTION = Histogram(
    "emotion_speech_detection_seconds",
    "Time the speech detector (Silero VAD) took on one recording, stream window or job utterance.",
    buckets=LATENCY_BUCKETS,
)
MODEL = Info("emotion_model", "The served model.")


def start_metrics_server(port: int, host: str = "0.0.0.0") -> None:
    """Serves ``/metrics`` over HTTP on ``port`` in a daemon thread."""
    start_http_server(port, addr=host)


class MetricsInterceptor(grpc.aio.ServerInterceptor):
    """Counts every RPC of the service by status code and times it."""

    def __init__(self, service_prefix: str) -> None:
        self.prefix = f"/{service_prefix}/"

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(details)
        if handler is None or not details.method.startswith(self.prefix):
            return handler
        method = details.method[len(self.prefix) :]
        if handler.unary_unary is not None:
            inner = handler.unary_unary

            async def unary(request: Any, context: grpc.aio.ServicerContext) -> Any:
                started = time.perf_counter()
                try:
                    return await inner(request, context)
                finally:
                    _record(method, context, started)

            return grpc.unary_unary_rpc_method_handler(
                unary,
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        if handler.stream_stream is not None:
            inner_stream = handler.stream_stream

            async def stream(requests: AsyncIterator[Any], context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
                started = time.perf_counter()
                try:
                    async for response in inner_stream(requests, context):
                        yield response
                finally:
                    _record(method, context, started)

            return grpc.stream_stream_rpc_method_handler(
                stream,
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        return handler


def _record(method: str, context: grpc.aio.ServicerContext, started: float) -> None:
    code = context.code()
    if context.cancelled():
        name = "CANCELLED"
    elif code is None:
        name = "OK"
    else:
        name = code.name if isinstance(code, grpc.StatusCode) else str(code)
    REQUESTS.labels(method, name).inc()
    REQUEST_LATENCY.labels(method).observe(time.perf_counter() - started)
