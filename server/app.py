"""Builds, starts and stops the gRPC server (health, reflection, the servicer)."""

from __future__ import annotations

import asyncio
import signal
import time
from pathlib import Path

import grpc
import structlog
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from emotion_client import SERVICE_NAME
from emotion_client.v1 import emotion_pb2, emotion_pb2_grpc
from emotion_service.plugins.manager import PluginHost, load_plugins
from emotion_service.server import metrics
from emotion_service.server.auth import AuthInterceptor, load_keys
from emotion_service.server.batcher import DynamicBatcher
from emotion_service.server.config import ConfigError, Settings, results_database_url, store_database_url
from emotion_service.server.job_queue import JobQueue
from emotion_service.server.job_runner import JobRunner
from emotion_service.server.live import PostgresRelay
from emotion_service.server.model import ModelBackend, audio_capacity
from emotion_service.server.retention import Retention
from emotion_service.server.service import EmotionServicer, ModelState
from emotion_service.server.web_process import WebUIError, WebUIProcess
from emotion_service.speech_presence import SpeechDetector

log = structlog.get_logger(__name__)

# Headroom over the audio limit for the rest of the message (metadata, ids).
MESSAGE_OVERHEAD_BYTES = 64 * 1024
# A drain ends once no call is running and none has arrived for this long. gRPC core answers
# calls that reach a stopping server before a handler takes them with CANCELLED
# (grpc/grpc#41785), so the server keeps its port open until callers have had their
# UNAVAILABLE ("shutting down: retry on another replica") and gone quiet.
DRAIN_QUIET_S = 0.25


class EmotionServer:
    """A running server. ``port`` is known after :meth:`start`; ``ready`` after the model loaded."""

    def __init__(self, settings: Settings, plugins: PluginHost | None = None) -> None:
        self.settings = settings
        plugins = plugins or load_plugins()
        self.jobs = JobQueue(results_database_url(settings))
        self.servicer = EmotionServicer(settings, plugins, self.jobs)
        self.job_runner = JobRunner(
            settings, plugins, self.jobs, lambda: self.servicer.state, erasures=self.servicer.erasures
        )
        self.servicer.job_runner = self.job_runner
        self.health = health.aio.HealthServicer()
        # One limit for every call: a job's inline recording may be larger than a Classify payload
        # (which Classify then refuses by its own max_audio_bytes).
        limit = max(settings.max_audio_bytes, settings.max_job_bytes) + MESSAGE_OVERHEAD_BYTES
        # Metrics outermost, so refused calls are counted too.
        interceptors: list[grpc.aio.ServerInterceptor] = [metrics.MetricsInterceptor(SERVICE_NAME)]
        keys = load_keys(Path(settings.auth_tokens_file)) if settings.auth_tokens_file else None
        if keys is not None:
            interceptors.append(AuthInterceptor(keys))
        store_url = store_database_url()
        self.retention = Retention(settings, plugins, store_url, erasures=self.servicer.erasures)
        # The web UI runs in a process of its own: its pages never hold this process's interpreter.
        self.web = (
            WebUIProcess(settings, self.servicer, store_url, results_database_url(settings), keys)
            if settings.http_port
            else None
        )
        # Live events reach every replica's UI through the shared PostgreSQL database.
        self.live_relay = PostgresRelay(store_url, self.servicer.live) if PostgresRelay.applies(store_url) else None
        self.grpc = grpc.aio.server(
            interceptors=interceptors,
            options=[("grpc.max_receive_message_length", limit), ("grpc.max_send_message_length", limit)]
        )
        emotion_pb2_grpc.add_EmotionServiceServicer_to_server(self.servicer, self.grpc)
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self.grpc)
        reflection.enable_server_reflection(
            (emotion_pb2.DESCRIPTOR.services_by_name["EmotionService"].full_name, health.SERVICE_NAME, reflection.SERVICE_NAME),
            self.grpc,
        )
        self.port = 0
        self.ready = asyncio.Event()

    async def start(self) -> None:
        """Listens (health NOT_SERVING) before the model loads, so probes see progress."""
        await self._set_health(health_pb2.HealthCheckResponse.NOT_SERVING)
        address = f"{self.settings.host}:{self.settings.port}"
        if self.settings.tls:
            self.port = self.grpc.add_secure_port(address, _server_credentials(self.settings))
        else:
            self.port = self.grpc.add_insecure_port(address)
        await self.grpc.start()
        log.info(
            "listening",
            address=f"{self.settings.host}:{self.port}",
            tls=self.settings.tls,
            mtls=bool(self.settings.tls_client_ca_file),
            auth=bool(self.settings.auth_tokens_file),
        )
        if self.live_relay is not None:
            self.live_relay.start()
        if self.web is not None:
            try:
                await self.web.start()
            except (OSError, WebUIError):
                await self.grpc.stop(0)  # nothing was served yet: the caller reports the port (or the UI's failure)
                if self.live_relay is not None:
                    await self.live_relay.stop()
                raise
        if self.settings.metrics_port:
            metrics.start_metrics_server(self.settings.metrics_port, self.settings.host)
            log.info("metrics_listening", address=f"{self.settings.host}:{self.settings.metrics_port}")

    async def load_model(self, backend: ModelBackend | None = None) -> None:
        """Loads and warms the model off the event loop, then turns health SERVING."""
        s = self.settings
        if backend is None:
            backend = await asyncio.to_thread(ModelBackend.load, s.model, s.device, s.dtype, s.torch_threads, s.quantize)
        await asyncio.to_thread(backend.warm_up)
        capacity = await asyncio.to_thread(audio_capacity, backend, s.window_s, s.max_batch_size)
        log.info("model_capacity_measured", audio_seconds_per_second=round(capacity, 1), window_s=s.window_s)
        speech = await asyncio.to_thread(SpeechDetector, s.speech_threshold)
        folder = str(Path(s.model).resolve()) if Path(s.model).is_dir() else ""
        await asyncio.to_thread(
            self.servicer.plugins.on_model_loaded, backend.info.name, folder, list(backend.info.labels)
        )
        batcher = DynamicBatcher(
            backend.forward,
            prepare=backend.features,
            max_batch_size=s.max_batch_size,
            max_queue_delay_ms=s.max_queue_delay_ms,
            max_queue_size=s.max_queue_size,
            pad_mixed_lengths=backend.pads_mixed_lengths,
            background_max_batch_size=min(s.background_max_batch_size, s.max_batch_size),
        )
        batcher.start()
        self.servicer.state = ModelState(backend, batcher, capacity, speech)
        self.job_runner.start()
        self.retention.start()
        metrics.MODEL.info({k: str(v) for k, v in vars(backend.info).items()})
        await self._set_health(health_pb2.HealthCheckResponse.SERVING)
        self.ready.set()
        log.info("ready", model=backend.info.name, device=backend.info.device)

    async def stop(self, grace: float | None = None) -> None:
        """Drains: health NOT_SERVING, new calls refused, in-flight calls finish within ``grace``."""
        grace = self.settings.grace_period_s if grace is None else grace
        deadline = time.monotonic() + grace
        log.info("draining", grace_s=grace)
        self.servicer.draining = True
        await self._set_health(health_pb2.HealthCheckResponse.NOT_SERVING)
        await self._quiesce(deadline)
        await self.grpc.stop(max(0.0, deadline - time.monotonic()))
        if self.web is not None:
            await self.web.stop()
        if self.live_relay is not None:
            await self.live_relay.stop()
        # Jobs in progress go back to the queue (their finished parts kept) for the next replica.
        await self.job_runner.stop()
        await self.retention.stop()
        if self.servicer.state is not None:
            await self.servicer.state.batcher.close()
        if self.servicer.background:
            await asyncio.wait(self.servicer.background, timeout=max(grace, 0.001))
        await asyncio.to_thread(self.servicer.plugins.on_shutdown)
        await asyncio.to_thread(self.jobs.close)
        log.info("stopped")

    async def _quiesce(self, deadline: float) -> None:
        """Refuses new calls with UNAVAILABLE until the running ones are done and callers are quiet."""
        servicer = self.servicer
        while True:
            now = time.monotonic()
            quiet_s = now - servicer.last_arrival
            if servicer.in_flight == 0 and quiet_s >= DRAIN_QUIET_S:
                return
            if now >= deadline:
                if servicer.in_flight:
                    log.warning("drain_timed_out", in_flight=servicer.in_flight)
                return
            await asyncio.sleep(min(0.05, deadline - now))

    async def _set_health(self, status: health_pb2.HealthCheckResponse.ServingStatus.ValueType) -> None:
        for service in ("", SERVICE_NAME):
            await self.health.set(service, status)


def _server_credentials(settings: Settings) -> grpc.ServerCredentials:
    def read(name: str) -> bytes:
        path = Path(getattr(settings, name))
        try:
            return path.read_bytes()
        except OSError as exc:
            raise ConfigError(f"{name}: cannot read {path}: {exc.strerror}") from None

    client_ca = read("tls_client_ca_file") if settings.tls_client_ca_file else None
    return grpc.ssl_server_credentials(
        [(read("tls_key_file"), read("tls_cert_file"))],
        root_certificates=client_ca,
        require_client_auth=client_ca is not None,
    )


async def serve(settings: Settings) -> None:
    """Runs until SIGTERM or SIGINT, then drains and returns. Raises :class:`WebUIError` when the web
    UI's process cannot start at all; one that keeps dying later is given up while the API serves on."""
    server = EmotionServer(settings)
    await server.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    loading = asyncio.create_task(server.load_model())
    stopping = asyncio.create_task(stop.wait())
    await asyncio.wait({loading, stopping}, return_when=asyncio.FIRST_COMPLETED)
    if loading.done() and loading.exception() is not None:
        await server.stop(grace=0)
        raise loading.exception()  # type: ignore[misc]
    await stopping
    loading.cancel()
    await server.stop()
