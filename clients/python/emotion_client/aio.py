"""The asyncio client: :class:`AsyncEmotionClient`, the twin of :class:`~emotion_client.EmotionClient`."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping, Sequence
from typing import Any, TypeVar

import grpc

from emotion_client import _health
from emotion_client.audio import Pacer, PcmFormat
from emotion_client.connection import DEFAULT_TARGET, Connection, Deadline, PemSource, RetryPolicy, is_retryable
from emotion_client.errors import EmotionError, from_rpc_error
from emotion_client.messages import (
    AudioInput,
    StreamInput,
    StreamSource,
    announces_ending,
    classify_request,
    stream_config,
    stream_source,
)
from emotion_client.results import Classification, HealthStatus, ModelInfo, StreamEvent, stream_event
from emotion_client.v1 import emotion_pb2 as pb
from emotion_client.v1 import emotion_pb2_grpc

T = TypeVar("T")


class AsyncEmotionClient:
    """An asyncio client of ``emotion.v1.EmotionService`` over one reused ``grpc.aio`` channel.

    ::

        async with AsyncEmotionClient("localhost:50051") as client:
            async for event in client.stream("interview.wav", realtime=True):
                print(event)

    Methods, arguments, retries and errors are those of
    :class:`~emotion_client.EmotionClient`; ``stream`` also takes an async
    iterable of raw PCM chunks.
    """

    def __init__(
        self,
        target: str = DEFAULT_TARGET,
        *,
        tls: bool = False,
        ca_cert: PemSource | None = None,
        client_cert: PemSource | None = None,
        client_key: PemSource | None = None,
        server_name: str | None = None,
        token: str | None = None,
        timeout: float | None = 30.0,
        retry: RetryPolicy = RetryPolicy(),
        options: Sequence[tuple[str, Any]] = (),
    ) -> None:
        self.connection = Connection(target, tls, ca_cert, client_cert, client_key, server_name, token, options)
        self.timeout = timeout
        self.retry = retry
        conn = self.connection
        if conn.secure:
            self._channel = grpc.aio.secure_channel(target, conn.credentials(), conn.channel_options())
        else:
            self._channel = grpc.aio.insecure_channel(target, conn.channel_options())
        self._stub = emotion_pb2_grpc.EmotionServiceStub(self._channel)
        self._health_check = self._channel.unary_unary(
            _health.CHECK_METHOD,
            request_serializer=_health.HealthCheckRequest.SerializeToString,
            response_deserializer=_health.HealthCheckResponse.FromString,
        )

    async def classify(
        self,
        audio: AudioInput,
        *,
        sample_rate: int | None = None,
        format: PcmFormat | None = None,
        request_id: str = "",
        metadata: Mapping[str, str] | None = None,
        timeout: float | None = None,
    ) -> Classification:
        """Classifies one recording as a whole; see :meth:`EmotionClient.classify`."""
        request = classify_request(audio, sample_rate, format, request_id, metadata)
        return Classification.from_pb(await self._unary(self._stub.Classify, request, timeout))

    def stream(
        self,
        source: StreamInput,
        *,
        sample_rate: int | None = None,
        format: PcmFormat | None = None,
        window_s: float = 0.0,
        hop_s: float = 0.0,
        session_id: str = "",
        metadata: Mapping[str, str] | None = None,
        realtime: bool = False,
        chunk_s: float = 0.1,
        timeout: float | None = None,
    ) -> AsyncIterator[StreamEvent]:
        """Streams audio, yielding windows and alerts as they come, then the summary.

        See :meth:`EmotionClient.stream`; ``source`` may also be an async
        iterable of raw PCM chunks (with ``format``). Use it with ``async for``
        (it is not awaited); bad input raises here, before any call. Leaving
        the loop early cancels the call once the iterator is closed: at once
        under ``contextlib.aclosing``, else when it is garbage-collected.
        """
        src = stream_source(source, sample_rate, format, chunk_s)
        config = stream_config(src.format, window_s, hop_s, session_id, metadata)
        return self._stream_events(src, config, realtime, Deadline(timeout))

    async def model_info(self, *, timeout: float | None = None) -> ModelInfo:
        """The served model: labels, sample rate, device, batching and stream defaults."""
        return ModelInfo.from_pb(await self._unary(self._stub.GetModelInfo, pb.GetModelInfoRequest(), timeout))

    async def delete_session(self, session_id: str, *, timeout: float | None = None) -> list[str]:
        """Erases a session everywhere the service wrote it (``admin`` scope); see :meth:`EmotionClient.delete_session`."""
        reply = await self._unary(self._stub.DeleteSession, pb.DeleteSessionRequest(session_id=session_id), timeout)
        return list(reply.erased)

    async def health(self, service: str = "", *, timeout: float | None = None) -> HealthStatus:
        """The standard gRPC health status of ``service`` ("" for the whole server)."""
        try:
            reply = await self._unary(self._health_check, _health.HealthCheckRequest(service=service), timeout)
        except EmotionError as exc:
            if exc.code is grpc.StatusCode.NOT_FOUND:  # how Check answers a service it does not know
                return HealthStatus.SERVICE_UNKNOWN
            raise
        return HealthStatus(reply.status)

    async def close(self) -> None:
        """Closes the channel; calls in flight are cancelled."""
        await self._channel.close(None)

    async def __aenter__(self) -> AsyncEmotionClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def _stream_events(
        self, src: StreamSource, config: pb.StreamClassifyRequest, realtime: bool, deadline: Deadline
    ) -> AsyncIterator[StreamEvent]:
        attempt = 0
        while True:
            attempt += 1
            call = self._stub.StreamClassify(timeout=deadline.remaining_s(), metadata=self.connection.metadata())
            ending = asyncio.Event()
            writer = asyncio.create_task(
                _write(call, config, src.open(), Pacer(src.format) if realtime else None, ending)
            )
            heeder = asyncio.create_task(_heed_ending(call, ending))
            answered = False
            try:
                while (message := await _read(call, writer)) is not grpc.aio.EOF:  # type: ignore[attr-defined]
                    answered = True
                    yield stream_event(message)
                return
            except grpc.aio.AioRpcError as exc:
                if answered or not src.replayable or not await self._should_retry(exc, attempt, deadline):
                    raise from_rpc_error(exc) from None
            finally:
                writer.cancel()
                heeder.cancel()
                call.cancel()

    async def _unary(self, method: Callable[..., Awaitable[T]], request: Any, timeout: float | None) -> T:
        deadline = Deadline(self.timeout if timeout is None else timeout)
        attempt = 0
        while True:
            attempt += 1
            try:
                return await method(request, timeout=deadline.remaining_s(), metadata=self.connection.metadata())
            except grpc.aio.AioRpcError as exc:
                if not await self._should_retry(exc, attempt, deadline):
                    raise from_rpc_error(exc) from None

    async def _should_retry(self, error: grpc.RpcError, attempt: int, deadline: Deadline) -> bool:
        """Waits out the backoff and returns True when the failed attempt may be retried."""
        if not is_retryable(error) or attempt >= self.retry.max_attempts:
            return False
        wait = self.retry.backoff_s(attempt)
        if not deadline.allows_wait(wait):
            return False
        await asyncio.sleep(wait)
        return True


class _Ending(Exception):
    """The server's headers said it is ending the stream: send nothing more."""


async def _heed_ending(call: grpc.aio.StreamStreamCall, ending: asyncio.Event) -> None:
    """Sets ``ending`` when the server's headers announce a refusal (:data:`~emotion_client.messages.STREAM_ENDING_METADATA`).

    The server then waits for the half-close before it sends its status: a write that fails as the
    call ends would turn that status into INTERNAL "Internal error from Core" (grpc/grpc#36066)."""
    try:
        metadata = await call.initial_metadata()
    except grpc.aio.AioRpcError:
        return
    if announces_ending(metadata):
        ending.set()


async def _write(
    call: grpc.aio.StreamStreamCall,
    config: pb.StreamClassifyRequest,
    chunks: Iterator[bytes] | AsyncIterator[bytes],
    pacer: Pacer | None,
    ending: asyncio.Event,
) -> None:
    """Sends the config and every chunk, then half-closes (at once when the server says the stream is
    ending). A failing source cancels the call and is re-raised by :func:`_read`; a failed call is
    reported by the reading side."""
    try:
        await call.write(config)
        try:
            if isinstance(chunks, AsyncIterator):
                while (chunk := await _until_ending(anext(chunks, None), ending)) is not None:
                    await _send(call, chunk, pacer, ending)
            else:
                for chunk in chunks:
                    await _send(call, chunk, pacer, ending)
        except _Ending:
            pass
        await call.done_writing()
    except (grpc.aio.AioRpcError, asyncio.InvalidStateError):
        return
    except Exception:
        call.cancel()
        raise


async def _until_ending(step: Awaitable[T], ending: asyncio.Event) -> T:
    """``step``'s result, unless the server announces the end first (then ``_Ending``, the step
    cancelled): a source that waits between chunks, or the pacer's sleep, does not hold the half-close."""
    if ending.is_set():
        raise _Ending
    task, announced = asyncio.ensure_future(step), asyncio.ensure_future(ending.wait())
    finished = False
    try:
        await asyncio.wait({task, announced}, return_when=asyncio.FIRST_COMPLETED)
        finished = task.done()
    finally:  # announced, or the writer itself cancelled: neither waiter outlives this call
        announced.cancel()
        if not task.done():
            task.cancel()
    if not finished:
        raise _Ending
    return task.result()


async def _send(call: grpc.aio.StreamStreamCall, chunk: bytes, pacer: Pacer | None, ending: asyncio.Event) -> None:
    if pacer is not None:
        await _until_ending(asyncio.sleep(pacer.wait_s(len(chunk))), ending)
    if ending.is_set():
        raise _Ending
    await call.write(pb.StreamClassifyRequest(audio_content=chunk))


async def _read(call: grpc.aio.StreamStreamCall, writer: asyncio.Task[None]) -> Any:
    """The next response, or the chunk source's own error when it failed and cancelled the call."""
    try:
        return await call.read()
    except asyncio.CancelledError:
        if writer.done() and not writer.cancelled() and writer.exception() is not None:
            raise writer.exception() from None  # type: ignore[misc]
        raise
