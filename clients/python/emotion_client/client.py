"""The synchronous client: :class:`EmotionClient`."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, TypeVar, cast

import grpc

from emotion_client import _health
from emotion_client.audio import Pacer, PcmFormat
from emotion_client.connection import DEFAULT_TARGET, Connection, Deadline, PemSource, RetryPolicy, is_retryable
from emotion_client.errors import DeadlineExceededError, EmotionError, from_rpc_error
from emotion_client.messages import (
    AudioInput,
    StreamInput,
    StreamSource,
    announces_ending,
    classify_request,
    job_request,
    stream_config,
    stream_source,
)
from emotion_client.results import (
    JOB_STATES,
    Classification,
    HealthStatus,
    Job,
    ModelInfo,
    StreamEvent,
    stream_event,
)
from emotion_client.v1 import emotion_pb2 as pb
from emotion_client.v1 import emotion_pb2_grpc

T = TypeVar("T")


class EmotionClient:
    """A blocking client of ``emotion.v1.EmotionService`` over one reused channel.

    ::

        with EmotionClient("localhost:50051") as client:
            result = client.classify("answer.wav")
            print(result.label, result.confidence)

    ``timeout`` is the default deadline of the unary calls (``classify``,
    ``model_info``, ``health``), retries included; streams have none unless
    given one. Calls failing with UNAVAILABLE are retried per ``retry``; every
    failure raises an :class:`~emotion_client.errors.EmotionError`. See
    :class:`~emotion_client.connection.Connection` for the TLS and token options.
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
            self._channel = grpc.secure_channel(target, conn.credentials(), conn.channel_options())
        else:
            self._channel = grpc.insecure_channel(target, conn.channel_options())
        self._stub = emotion_pb2_grpc.EmotionServiceStub(self._channel)
        self._health_check = self._channel.unary_unary(
            _health.CHECK_METHOD,
            request_serializer=_health.HealthCheckRequest.SerializeToString,
            response_deserializer=_health.HealthCheckResponse.FromString,
        )

    def classify(
        self,
        audio: AudioInput,
        *,
        sample_rate: int | None = None,
        format: PcmFormat | None = None,
        request_id: str = "",
        metadata: Mapping[str, str] | None = None,
        timeout: float | None = None,
    ) -> Classification:
        """Classifies one recording as a whole.

        :param audio: a file path or an encoded file's bytes (WAV, FLAC, OGG, MP3;
            sent as they are), raw PCM bytes with ``format``, a
            :class:`~emotion_client.audio.RawAudio`, or a NumPy array
            ``(frames,)`` / ``(frames, channels)`` with ``sample_rate``.
        :param request_id: echoed back and logged by the server (generated when empty).
        :param metadata: free-form strings stored with the result.
        :param timeout: deadline in seconds, retries included (default: the client's).
        """
        request = classify_request(audio, sample_rate, format, request_id, metadata)
        reply = self._unary(self._stub.Classify, request, timeout)
        return Classification.from_pb(reply)

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
    ) -> Iterator[StreamEvent]:
        """Streams audio and yields :class:`WindowResult` and :class:`Alert` events as they come, then one
        :class:`StreamSummary`.

        :param source: a file (path, or encoded bytes; decoded here: WAV always,
            other formats with the ``audio`` extra), raw PCM bytes with
            ``format``, an array with ``sample_rate``, or an iterable of raw PCM
            chunks with ``format``.
        :param window_s: window length (0: the server's default); ``hop_s`` the step between windows.
        :param realtime: send no faster than the audio plays, as a live source would.
        :param chunk_s: seconds of audio per message when the client cuts the audio.
        :param timeout: deadline of the whole stream (default none).

        Sources the client can re-read (files, bytes, arrays) are retried on
        UNAVAILABLE while nothing has been yielded; iterables are not.
        Leaving the loop early cancels the call. Bad input (a missing or
        undecodable file, a missing format) raises here, before any call.
        """
        src = stream_source(source, sample_rate, format, chunk_s)
        config = stream_config(src.format, window_s, hop_s, session_id, metadata)
        return self._stream_events(src, config, realtime, Deadline(timeout))

    def model_info(self, *, timeout: float | None = None) -> ModelInfo:
        """The served model: labels, sample rate, device, batching and stream defaults."""
        return ModelInfo.from_pb(self._unary(self._stub.GetModelInfo, pb.GetModelInfoRequest(), timeout))

    def delete_session(self, session_id: str, *, timeout: float | None = None) -> list[str]:
        """Erases a session everywhere the service wrote it (needs a token with the ``admin`` scope).

        Returns what was removed where (``"store: 14 rows"``); raises :class:`EmotionError`
        (``NOT_FOUND`` when nothing of the session was found).
        """
        reply = self._unary(self._stub.DeleteSession, pb.DeleteSessionRequest(session_id=session_id), timeout)
        return list(reply.erased)

    def submit_job(
        self,
        recordings: Sequence[str | os.PathLike[str] | bytes],
        *,
        channels: str = "mix",
        uris: Sequence[str] = (),
        metadata: Mapping[str, str] | None = None,
        session_id: str = "",
        diarize: bool = False,
        num_speakers: int = 0,
        timeout: float | None = None,
    ) -> Job:
        """Queues whole recordings (an interview of an hour) as one job and returns it at once, queued.

        :param recordings: files (paths, sent as their bytes) or encoded files' bytes.
        :param channels: ``"mix"`` (one track) or ``"separate"`` (each channel one party).
        :param uris: paths under the server's ``job_input_dir``, read by the server itself
            (for recordings larger than its ``max_job_bytes``).
        :param metadata: free-form strings stored with the session.
        :param session_id: the session to store results under (default: a new one).
        :param diarize: find who speaks in mixed recordings: each utterance gets a ``speaker``
            ("S1", "S2", ...); ``num_speakers`` when known (0: the server finds out).
        """
        request = job_request(recordings, channels, uris, metadata, session_id, diarize, num_speakers)
        return Job.from_pb(self._unary(self._stub.SubmitJob, request, timeout))

    def get_job(self, job_id: str, *, timeout: float | None = None) -> Job:
        """A job's state and progress, with its utterances once it succeeded."""
        return Job.from_pb(self._unary(self._stub.GetJob, pb.GetJobRequest(job_id=job_id), timeout))

    def list_jobs(self, *, state: str = "", page_size: int = 50, timeout: float | None = None) -> list[Job]:
        """Jobs, newest first (every page), optionally only those in ``state`` (queued, running, ...)."""
        wanted = {name: value for value, name in JOB_STATES.items()}
        if state and state not in wanted:
            raise ValueError(f"unknown job state {state!r}: use one of {', '.join(wanted)}")
        jobs: list[Job] = []
        token = ""
        while True:
            request = pb.ListJobsRequest(state=wanted.get(state, 0), page_size=page_size, page_token=token)
            reply = self._unary(self._stub.ListJobs, request, timeout)
            jobs.extend(Job.from_pb(job) for job in reply.jobs)
            token = reply.next_page_token
            if not token:
                return jobs

    def cancel_job(self, job_id: str, *, timeout: float | None = None) -> Job:
        """Cancels a queued or running job; a job that already ended is returned unchanged."""
        return Job.from_pb(self._unary(self._stub.CancelJob, pb.CancelJobRequest(job_id=job_id), timeout))

    def watch_job(self, job_id: str, *, timeout: float | None = None) -> Iterator[Job]:
        """The job now, then each time its progress or state changes; ends after it ended (with its utterances)."""
        call = self._stub.WatchJob(
            pb.WatchJobRequest(job_id=job_id), timeout=timeout, metadata=self.connection.metadata()
        )
        try:
            for message in call:
                yield Job.from_pb(message)
        except grpc.RpcError as exc:
            raise from_rpc_error(exc) from None
        finally:
            call.cancel()

    def wait_job(
        self,
        job_id: str,
        *,
        timeout: float | None = None,
        poll_s: float = 1.0,
        on_update: Callable[[Job], None] | None = None,
    ) -> Job:
        """Waits until a job ended and returns it, calling ``on_update`` with each change on the way.

        A server restarting meanwhile (UNAVAILABLE) is waited for, and the job followed again.
        """
        deadline = Deadline(timeout)
        while True:
            try:
                for job in self.watch_job(job_id, timeout=deadline.remaining_s()):
                    if on_update is not None:
                        on_update(job)
                    if job.ended:
                        return job
            except EmotionError as exc:
                if exc.code is not grpc.StatusCode.UNAVAILABLE or not deadline.allows_wait(poll_s):
                    raise
            if not deadline.allows_wait(poll_s):
                raise DeadlineExceededError(grpc.StatusCode.DEADLINE_EXCEEDED, f"job {job_id} did not end in time")
            time.sleep(poll_s)

    def health(self, service: str = "", *, timeout: float | None = None) -> HealthStatus:
        """The standard gRPC health status of ``service`` ("" for the whole server).

        The server reports NOT_SERVING while its model loads and while it drains;
        a service it does not know is SERVICE_UNKNOWN.
        """
        try:
            reply = self._unary(self._health_check, _health.HealthCheckRequest(service=service), timeout)
        except EmotionError as exc:
            if exc.code is grpc.StatusCode.NOT_FOUND:  # how Check answers a service it does not know
                return HealthStatus.SERVICE_UNKNOWN
            raise
        return HealthStatus(reply.status)

    def close(self) -> None:
        """Closes the channel; calls in flight are cancelled."""
        self._channel.close()

    def __enter__(self) -> EmotionClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _stream_events(
        self, src: StreamSource, config: pb.StreamClassifyRequest, realtime: bool, deadline: Deadline
    ) -> Iterator[StreamEvent]:
        attempt = 0
        while True:
            attempt += 1
            chunks = cast(Iterator[bytes], src.open())
            feed = _Feed(config, chunks, Pacer(src.format) if realtime else None)
            call = self._stub.StreamClassify(
                iter(feed), timeout=deadline.remaining_s(), metadata=self.connection.metadata()
            )
            feed.attach(call)
            answered = False
            try:
                threading.Thread(target=feed.heed, args=(call,), name="stream-ending", daemon=True).start()
                for message in call:
                    answered = True
                    yield stream_event(message)
                return
            except grpc.RpcError as exc:
                if feed.error is not None:
                    raise feed.error from None
                if answered or not src.replayable or not self._should_retry(exc, attempt, deadline):
                    raise from_rpc_error(exc) from None
            finally:
                feed.stop()  # a feed in a pacing sleep ends now, not when its next chunk is due
                call.cancel()

    def _unary(self, method: Callable[..., T], request: Any, timeout: float | None) -> T:
        deadline = Deadline(self.timeout if timeout is None else timeout)
        attempt = 0
        while True:
            attempt += 1
            try:
                return method(request, timeout=deadline.remaining_s(), metadata=self.connection.metadata())
            except grpc.RpcError as exc:
                if not self._should_retry(exc, attempt, deadline):
                    raise from_rpc_error(exc) from None

    def _should_retry(self, error: grpc.RpcError, attempt: int, deadline: Deadline) -> bool:
        """Waits out the backoff and returns True when the failed attempt may be retried."""
        if not is_retryable(error) or attempt >= self.retry.max_attempts:
            return False
        wait = self.retry.backoff_s(attempt)
        if not deadline.allows_wait(wait):
            return False
        time.sleep(wait)
        return True


class _Feed:
    """The request iterator of a stream: config, then paced chunks.

    A failing chunk source cancels the call instead of raising into grpc's
    thread; the client then raises the source's error. When the server's headers
    announce that it is ending the stream (a refusal), the feed stops at once,
    also in the middle of a pacing sleep, so the call half-closes and the
    refusal arrives without waiting out the server's drain.
    """

    def __init__(self, config: pb.StreamClassifyRequest, chunks: Iterator[bytes], pacer: Pacer | None) -> None:
        self.config = config
        self.chunks = chunks
        self.pacer = pacer
        self.error: BaseException | None = None
        self._call: grpc.Future | None = None
        self._attached = threading.Event()
        self._ending = threading.Event()

    def attach(self, call: grpc.Future) -> None:
        """Lets the feed cancel ``call`` if its source fails."""
        self._call = call
        self._attached.set()

    def heed(self, call: grpc.Call) -> None:
        """Waits for the stream's response headers (or its end) and stops the feed if they announce
        a refusal (:data:`~emotion_client.messages.STREAM_ENDING_METADATA`); run on its own thread."""
        if announces_ending(call.initial_metadata()):
            self.stop()

    def stop(self) -> None:
        """Sends nothing more: the feed returns at its next chunk or from its pacing sleep."""
        self._ending.set()

    def __iter__(self) -> Iterator[pb.StreamClassifyRequest]:
        yield self.config
        try:
            for chunk in self.chunks:
                # Event.wait returns at once when the ending is announced, else after the pacing wait.
                if self._ending.wait(self.pacer.wait_s(len(chunk)) if self.pacer is not None else 0):
                    return
                yield pb.StreamClassifyRequest(audio_content=chunk)
        except Exception as exc:
            self.error = exc
            self._attached.wait()
            self._call.cancel()  # type: ignore[union-attr]
