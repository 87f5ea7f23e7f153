"""The ``emotion.v1.EmotionService`` servicer: unary and streaming calls on one batcher."""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import functools
import time
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import datetime
from pathlib import Path
from typing import Any, NoReturn

import grpc
import numpy as np
import sqlalchemy.exc
import structlog
from google.protobuf.timestamp_pb2 import Timestamp

from emotion_client.results import JOB_STATES
from emotion_client.v1 import emotion_pb2 as pb
from emotion_client.v1 import emotion_pb2_grpc
from emotion_service import audio
from emotion_service.diarization import MAX_SPEAKERS, unavailable
from emotion_service.plugins.manager import PluginError, PluginHost
from emotion_service.plugins.store import StoreError
from emotion_service.plugins.store.schema import JobRow
from emotion_service.plugins.types import Alert, Result, summarise
from emotion_service.server import metrics
from emotion_service.server.auth import caller_scope
from emotion_service.server.batcher import DeadlineExpiredError, DynamicBatcher, QueueFullError, ShuttingDownError
from emotion_service.server.config import Settings
from emotion_service.server.erasure import ERASED_MESSAGE, Erasures
from emotion_service.server.job_queue import (
    ENDED,
    SUCCEEDED,
    JobNotFoundError,
    JobQueue,
    PageTokenError,
    RecordingInput,
    SessionOwnedError,
    eta_seconds,
)
from emotion_service.server.job_runner import JobRunner, job_limits, judge_speech
from emotion_service.server.live import LiveHub
from emotion_service.server.model import ModelBackend, labelled
from emotion_service.server.rpc import CANNOT_DIARIZE, JobRequestError, abort_stream
from emotion_service.server.rpc import abort as _abort
from emotion_service.speech_presence import SpeechDetector
from emotion_service.windows import Window, Windower

log = structlog.get_logger(__name__)

_ENCODINGS = {pb.PCM_ENCODING_S16LE: "s16le", pb.PCM_ENCODING_F32LE: "f32le"}
# The standard gRPC trailer telling a client's retry policy how long to wait before retrying.
RETRY_PUSHBACK_KEY = "grpc-retry-pushback-ms"
ADMISSION_RETRY_MS = 2000
# Stream admission reads the window lags of this many recent seconds, once there are this many.
LAG_HORIZON_S = 10.0
MIN_LAG_SAMPLES = 20
# How often WatchJob reads its job from the database.
JOB_WATCH_POLL_S = 0.5
_JOB_STATE_PB = {name: value for value, name in JOB_STATES.items()}


# How long the response side waits for a cancelled stream reader before it ends the call anyway.
READER_STOP_S = 1.0


@dataclasses.dataclass
class _Pending:
    """A window on its way: its scores' future, or None when it was skipped for load or holds no speech."""

    window: Window
    future: asyncio.Future[np.ndarray] | None
    ready_at: float
    voiced_fraction: float
    no_speech: bool = False


class ModelState:
    """The model, its batcher and the speech detector, once loaded; the servicer answers UNAVAILABLE before."""

    def __init__(
        self,
        backend: ModelBackend,
        batcher: DynamicBatcher,
        capacity: float = float("inf"),
        speech: SpeechDetector | None = None,
    ) -> None:
        self.backend = backend
        self.batcher = batcher
        # Seconds of audio the model scores per second, measured at load (stream admission).
        self.capacity = capacity
        # Whether audio holds speech at all: asked before the model, at every door.
        self.speech = speech if speech is not None else SpeechDetector()


class EmotionServicer(emotion_pb2_grpc.EmotionServiceServicer):
    """Decodes, preprocesses, batches, scores and runs the result plugins."""

    def __init__(self, settings: Settings, plugins: PluginHost, jobs: JobQueue | None = None) -> None:
        self.settings = settings
        self.plugins = plugins
        self.jobs = jobs
        # Sessions erased here: their streams and jobs stop before writing them again.
        self.erasures = Erasures(plugins, jobs)
        self.job_runner: JobRunner | None = None
        self.live = LiveHub()
        self.state: ModelState | None = None
        self.draining = False
        self.open_streams = 0
        # Seconds of audio per second the admitted streams ask the model to score (window_s / hop_s each).
        self.demand = 0.0
        # Calls inside a handler now, and when the last one arrived: the drain waits on both.
        self.in_flight = 0
        self.last_arrival = 0.0
        self.background: set[asyncio.Task[Any]] = set()
        self._lags: collections.deque[tuple[float, float]] = collections.deque(maxlen=1000)
        # Sessions streaming on this replica now, and where recent ones ended (a session continued
        # later numbers its windows after its earlier streams').
        self._streaming: set[str] = set()
        self._extents: collections.OrderedDict[str, tuple[int, float]] = collections.OrderedDict()
        self.limits = audio.AudioLimits(
            max_bytes=settings.max_audio_bytes,
            max_seconds=settings.max_audio_seconds,
            min_seconds=settings.min_audio_seconds,
            max_sample_rate=settings.max_sample_rate,
            max_channels=settings.max_channels,
        )
        self.jobs_limits = job_limits(settings)

    async def Classify(self, request: pb.ClassifyRequest, context: grpc.aio.ServicerContext) -> pb.ClassifyResponse:
        self.in_flight += 1
        try:
            return await self._classify(request, context)
        finally:
            self.in_flight -= 1

    async def _classify(self, request: pb.ClassifyRequest, context: grpc.aio.ServicerContext) -> pb.ClassifyResponse:
        state = await self._ready(context)
        request_id = request.request_id or uuid.uuid4().hex
        # A request id names a request, chosen by the caller and possibly reused: each call is a
        # session of its own, so two callers reusing an id never share stored results.
        session_id = uuid.uuid4().hex
        structlog.contextvars.bind_contextvars(request_id=request_id, session_id=session_id, method="Classify")
        started = time.perf_counter()
        rate = state.backend.info.sample_rate
        size = len(request.audio.content) + len(request.audio.raw.data)
        if size > self.settings.max_audio_bytes:
            # The transport admits larger messages for SubmitJob; a Classify payload keeps its own bound.
            await _abort(
                context,
                grpc.StatusCode.RESOURCE_EXHAUSTED,
                f"audio is {size} bytes; Classify accepts at most {self.settings.max_audio_bytes} "
                "(max_audio_bytes): use StreamClassify or a job (emotion-client analyze) for long recordings",
            )
        try:
            decoded = await asyncio.to_thread(self._decode, request.audio, rate)
        except audio.AudioError as exc:
            await _abort(context, grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        # The model answers something for any sound: noise, a tone or music would get an emotion.
        # So the recording as it arrived (before any preprocess plugin) is first asked whether it
        # holds speech at all; without speech the model is not called and nothing is claimed.
        presence = await asyncio.to_thread(judge_speech, state.speech, decoded.waveform, rate, "classify")
        if presence.no_speech:
            result = Result(
                session_id=session_id,
                request_id=request_id,
                kind="classify",
                label="",
                scores={},
                start_s=0.0,
                end_s=decoded.duration_s,
                model_name=state.backend.info.name,
                metadata=dict(request.metadata),
                no_speech=True,
                voiced_fraction=presence.voiced_fraction,
                audio=decoded.waveform,
                sample_rate=rate,
            )
            alerts = await self._on_result(result, session_id)
        else:
            waveform = await self._preprocess(context, decoded.waveform, rate, {"request_id": request_id})
            scores = await self._score(context, state, waveform)
            result = Result(
                session_id=session_id,
                request_id=request_id,
                kind="classify",
                **labelled(state.backend.info.labels, scores),
                start_s=0.0,
                end_s=decoded.duration_s,
                model_name=state.backend.info.name,
                metadata=dict(request.metadata),
                voiced_fraction=presence.voiced_fraction,
                audio=waveform,
                sample_rate=rate,
            )
            alerts = await self._on_result(result, session_id)
        log.info(
            "classified",
            label=result.label,
            no_speech=result.no_speech,
            voiced_fraction=round(presence.voiced_fraction, 3),
            max_speech_probability=round(presence.max_probability, 3),
            duration_s=round(decoded.duration_s, 3),
            latency_ms=round((time.perf_counter() - started) * 1000, 1),
        )
        return pb.ClassifyResponse(
            label=result.label,
            scores=_label_scores(result.scores),
            duration_s=decoded.duration_s,
            model_name=state.backend.info.name,
            model_version=state.backend.info.version,
            request_id=request_id,
            alerts=[_alert_pb(a) for a in alerts],
            session_id=session_id,
            no_speech=result.no_speech,
            voiced_fraction=presence.voiced_fraction,
        )

    async def StreamClassify(
        self, request_iterator: AsyncIterator[pb.StreamClassifyRequest], context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.StreamClassifyResponse]:
        self.in_flight += 1
        try:
            state = await self._ready(context, request_iterator)
            if self.open_streams >= self.settings.max_streams:
                await abort_stream(
                    context,
                    request_iterator,
                    grpc.StatusCode.RESOURCE_EXHAUSTED,
                    f"too many concurrent streams (max_streams={self.settings.max_streams}); retry with backoff",
                )
            self.open_streams += 1
            try:
                async for response in self._stream(state, request_iterator, context):
                    yield response
            finally:
                self.open_streams -= 1
        finally:
            self.in_flight -= 1

    async def _stream(
        self,
        state: ModelState,
        request_iterator: AsyncIterator[pb.StreamClassifyRequest],
        context: grpc.aio.ServicerContext,
    ) -> AsyncIterator[pb.StreamClassifyResponse]:
        try:
            first = await self._next_message(request_iterator)
        except TimeoutError:
            await _abort(context, grpc.StatusCode.DEADLINE_EXCEEDED, "no config within stream_idle_timeout_s")
        if first is None or first.WhichOneof("payload") != "config":
            got = "nothing" if first is None else "audio_content"
            await abort_stream(
                context,
                request_iterator,
                grpc.StatusCode.INVALID_ARGUMENT,
                f"the first StreamClassifyRequest must carry config (format, window, session id); got {got}",
            )
        config = first.config
        session_id = config.session_id or uuid.uuid4().hex
        structlog.contextvars.bind_contextvars(session_id=session_id, method="StreamClassify")
        rate = state.backend.info.sample_rate
        try:
            decoder, windower, window_s, hop_s = self._open_stream(config, rate)
        except audio.AudioError as exc:
            await abort_stream(
                context, request_iterator, grpc.StatusCode.INVALID_ARGUMENT, f"invalid stream config: {exc}"
            )
        refusal = self._admission_refusal(state, window_s / hop_s)
        if refusal is not None:
            context.set_trailing_metadata(((RETRY_PUSHBACK_KEY, str(ADMISSION_RETRY_MS)),))
            await abort_stream(context, request_iterator, grpc.StatusCode.RESOURCE_EXHAUSTED, refusal)
        if session_id in self._streaming:
            await abort_stream(
                context,
                request_iterator,
                grpc.StatusCode.ALREADY_EXISTS,
                f"session {session_id!r} is streaming already: one live stream per session; wait for it to "
                "end to continue the session, or use another session id",
            )
        name, limited_to = caller_scope()
        first_index, offset_s = 0, 0.0
        if config.session_id:
            try:
                await self._refuse_if_erased(session_id)
                if name:
                    await self._claim_session(session_id, name, limited_to is None)
                first_index, offset_s = await self._continuation(session_id)
            except JobRequestError as exc:
                await abort_stream(context, request_iterator, exc.code, str(exc))
            except DATABASE_AWAY as exc:
                await abort_stream(context, request_iterator, grpc.StatusCode.UNAVAILABLE, _database_away(exc))
        self._streaming.add(session_id)
        demand = window_s / hop_s
        self.demand += demand
        log.info("stream_opened", window_s=window_s, hop_s=hop_s, sample_rate=config.format.sample_rate)
        metadata = dict(config.metadata)
        labels = state.backend.info.labels
        self.live.publish(
            {"type": "stream_started", "session_id": session_id, "metadata": metadata, "labels": list(labels)}
        )
        # The reader feeds windows to the batcher as audio arrives, holding at most
        # stream_max_pending_windows unanswered (then it stops reading: gRPC flow control slows
        # the sender); this generator answers them in order.
        outbox: asyncio.Queue[_Pending | grpc.StatusCode | None] = asyncio.Queue()
        slots = asyncio.Semaphore(self.settings.stream_max_pending_windows)
        errors: list[str] = []
        reader = asyncio.create_task(
            self._read_stream(request_iterator, context, state, decoder, windower, session_id, outbox, errors, slots)
        )
        results: list[Result] = []
        alerts: list[Alert] = []
        end_reason = "cancelled"  # unless the loop below finishes or the server aborts the call

        async def end(code: grpc.StatusCode, message: str) -> NoReturn:
            # The reader stops first: the drain then reads the client's last messages itself (two
            # readers of one request iterator collide, and the drain would be skipped), and the
            # reader's pending read is not aborted under it (a false "stream_reader_failed"). Bounded:
            # a read that does not yield to the cancellation must not hold the call open.
            reader.cancel()
            await asyncio.wait({reader}, timeout=READER_STOP_S)
            await abort_stream(context, request_iterator, code, message)

        try:
            while (item := await outbox.get()) is not None:
                if isinstance(item, grpc.StatusCode):
                    end_reason = f"aborted: {item.name}"
                    await end(item, errors[0])
                window = item.window
                if item.no_speech:
                    slots.release()
                if item.future is None:
                    self.live.publish(
                        {
                            "type": "window",
                            "session_id": session_id,
                            "index": first_index + window.index,
                            "start_s": offset_s + window.start / rate,
                            "end_s": offset_s + window.end / rate,
                            "silent": item.no_speech,
                            "no_speech": item.no_speech,
                            "skipped": not item.no_speech,
                            "voiced_fraction": item.voiced_fraction,
                        }
                    )
                    # No emotion claim: skipped for load, or no speech (then the UI and reports say so).
                    yield pb.StreamClassifyResponse(
                        session_id=session_id,
                        window=pb.WindowResult(
                            index=first_index + window.index,
                            start_s=offset_s + window.start / rate,
                            end_s=offset_s + window.end / rate,
                            skipped=not item.no_speech,
                            silent=item.no_speech,
                            no_speech=item.no_speech,
                            voiced_fraction=item.voiced_fraction,
                        ),
                    )
                    if item.no_speech:
                        # Stored and shown as "no speech" (not a gap), counted as no emotion anywhere.
                        quiet = Result(
                            session_id=session_id,
                            request_id=session_id,
                            kind="window",
                            label="",
                            scores={},
                            start_s=offset_s + window.start / rate,
                            end_s=offset_s + window.end / rate,
                            index=first_index + window.index,
                            model_name=state.backend.info.name,
                            metadata=metadata,
                            no_speech=True,
                            voiced_fraction=item.voiced_fraction,
                            audio=window.waveform,
                            sample_rate=rate,
                        )
                        results.append(dataclasses.replace(quiet, audio=None))
                        if session_id in self.erasures:  # erased meanwhile: nothing more of it is written
                            end_reason = "erased"
                            await end(grpc.StatusCode.ABORTED, ERASED_MESSAGE)
                        await self._on_result(quiet, session_id)
                    continue
                try:
                    scores = await self._await_scores(context, item.future)
                finally:
                    slots.release()
                self._record_lag(time.monotonic() - item.ready_at)
                result = Result(
                    session_id=session_id,
                    request_id=session_id,
                    kind="window",
                    **labelled(labels, scores),
                    start_s=offset_s + window.start / rate,
                    end_s=offset_s + window.end / rate,
                    index=first_index + window.index,
                    model_name=state.backend.info.name,
                    metadata=metadata,
                    voiced_fraction=item.voiced_fraction,
                    audio=window.waveform,
                    sample_rate=rate,
                )
                # The summary needs scores, not audio: keep a long stream's memory flat.
                results.append(dataclasses.replace(result, audio=None))
                yield pb.StreamClassifyResponse(
                    session_id=session_id,
                    window=pb.WindowResult(
                        index=result.index,
                        start_s=result.start_s,
                        end_s=result.end_s,
                        label=result.label,
                        scores=_label_scores(result.scores),
                        voiced_fraction=item.voiced_fraction,
                    ),
                )
                self.live.publish(
                    {
                        "type": "window",
                        "session_id": session_id,
                        "index": result.index,
                        "start_s": result.start_s,
                        "end_s": result.end_s,
                        "label": result.label,
                        "scores": result.scores,
                        "voiced_fraction": item.voiced_fraction,
                    }
                )
                if session_id in self.erasures:  # erased while it ran: nothing more of it is written
                    end_reason = "erased"
                    await end(grpc.StatusCode.ABORTED, ERASED_MESSAGE)
                for alert in await self._on_result(result, session_id):
                    alerts.append(alert)
                    self.live.publish(
                        {"type": "alert", "session_id": session_id, "alert": dataclasses.asdict(alert)}
                    )
                    yield pb.StreamClassifyResponse(session_id=session_id, alert=_alert_pb(alert))
            end_reason = "completed"
        finally:
            reader.cancel()
            self._streaming.discard(session_id)
            self.demand -= demand
            self._extents[session_id] = (first_index + windower.count, offset_s + decoder.seconds_in)
            while len(self._extents) > MAX_REMEMBERED_SESSIONS:
                self._extents.popitem(last=False)
            self.live.publish({"type": "stream_ended", "session_id": session_id, "end_reason": end_reason})
            if end_reason == "erased":
                log.info("stream_closed", end_reason=end_reason)
            elif end_reason != "completed":
                # A stream the client cancelled or the server ended still closes its session:
                # end time and reason stored, a report of what was scored.
                end_reason = _abort_reason(context, end_reason)
                summary = summarise(session_id, results, alerts, metadata, decoder.seconds_in, end_reason)
                log.info("stream_closed", windows=summary.window_count, end_reason=end_reason)
                self._in_background(self.plugins.on_session_end, summary)
        summary = summarise(session_id, results, alerts, metadata, duration_s=decoder.seconds_in)
        log.info("stream_closed", windows=summary.window_count, dominant=summary.dominant_label, end_reason=end_reason)
        if session_id in self.erasures:
            await abort_stream(context, request_iterator, grpc.StatusCode.ABORTED, ERASED_MESSAGE)
        self._in_background(self.plugins.on_session_end, summary)
        yield pb.StreamClassifyResponse(
            session_id=session_id,
            summary=pb.StreamSummary(
                window_count=summary.window_count,
                duration_s=summary.duration_s,
                dominant_label=summary.dominant_label,
                shares=_label_scores(summary.shares, by_score=False),
                mean_scores=_label_scores(summary.mean_scores, by_score=False),
                alert_count=len(alerts),
            ),
        )

    async def GetModelInfo(self, request: pb.GetModelInfoRequest, context: grpc.aio.ServicerContext) -> pb.ModelInfo:
        state = await self._ready(context)
        info = state.backend.info
        return pb.ModelInfo(
            name=info.name,
            version=info.version,
            labels=list(info.labels),
            sample_rate=info.sample_rate,
            device=info.device,
            dtype=info.dtype,
            architecture=info.architecture,
            batching=pb.BatchingInfo(
                max_batch_size=state.batcher.max_batch_size,
                max_queue_delay_ms=state.batcher.max_queue_delay * 1000,
                max_queue_size=state.batcher.max_queue_size,
                pads_mixed_lengths=state.batcher.pad_mixed_lengths,
            ),
            max_audio_s=self.settings.max_audio_seconds,
            default_window_s=self.settings.window_s,
            default_hop_s=self.settings.hop_s,
        )

    async def DeleteSession(
        self, request: pb.DeleteSessionRequest, context: grpc.aio.ServicerContext
    ) -> pb.DeleteSessionResponse:
        """Erases a session through every plugin's ``on_erase`` (the admin scope is checked by auth)."""
        if not request.session_id:
            await _abort(context, grpc.StatusCode.INVALID_ARGUMENT, "session_id is empty: name the session to erase")
        requested_by = structlog.contextvars.get_contextvars().get("client") or _peer(context)
        structlog.contextvars.bind_contextvars(session_id=request.session_id, method="DeleteSession")
        # A stream or job of the session still running here stops writing it from now on; the hooks
        # a call or a job's end left running (its results, alerts, session's end, report) finish
        # first: run after the erasure, they would write the session back.
        self.erasures.mark(request.session_id)
        started = list(self.background) + (self.job_runner.ending() if self.job_runner is not None else [])
        if started:
            await asyncio.wait(started)
        try:
            erased = await asyncio.to_thread(self.erasures.erase, request.session_id, requested_by)
        except PluginError as exc:
            # The results database being away is worth a retry (UNAVAILABLE); anything else is a fault.
            away = isinstance(exc.cause, DATABASE_AWAY)
            code = grpc.StatusCode.UNAVAILABLE if away else grpc.StatusCode.INTERNAL
            await _abort(context, code, f"erasure incomplete: {exc}; retry it")
        if not erased:
            await _abort(
                context, grpc.StatusCode.NOT_FOUND, f"no session {request.session_id!r} in the store or the reports"
            )
        return pb.DeleteSessionResponse(session_id=request.session_id, erased=erased)

    async def SubmitJob(self, request: pb.SubmitJobRequest, context: grpc.aio.ServicerContext) -> pb.Job:
        """Checks the recordings' headers (and paths), then queues the job durably and answers at once."""
        self._jobs(context)
        channels = "separate" if request.channels == pb.CHANNEL_MODE_SEPARATE else "mix"
        name, limited_to = caller_scope()
        try:
            job = await self.submit_job(
                list(request.recordings),
                channels,
                dict(request.metadata),
                request.session_id,
                owner=name,
                may_join_any_session=limited_to is None,
                diarize=request.diarize,
                num_speakers=request.num_speakers,
            )
        except JobRequestError as exc:
            await _abort(context, exc.code, str(exc))
        return _job_pb(job, with_utterances=False)

    async def cannot_diarize(self) -> str:
        """Why this server would refuse a diarized job (a speaker encoder's wheel missing; the pip line
        that fixes it), or "" when it can diarize: looked up at each call, as each claim does."""
        return await asyncio.to_thread(unavailable)

    async def submit_job(
        self,
        recordings: list[pb.Recording],
        channels: str,
        metadata: dict[str, str],
        session_id: str = "",
        owner: str = "",
        may_join_any_session: bool = True,
        diarize: bool = False,
        num_speakers: int = 0,
    ) -> JobRow:
        """Queues a job (``SubmitJob``, and the web UI's uploads); raises :class:`JobRequestError`.

        ``owner``: the submitting key's name (token auth); a ``session_id`` another key owns is
        refused unless ``may_join_any_session`` (no token auth, or an admin key).
        """
        if self.jobs is None:
            raise JobRequestError(grpc.StatusCode.UNAVAILABLE, "this server runs no job queue")
        if not recordings:
            raise JobRequestError(grpc.StatusCode.INVALID_ARGUMENT, "a job needs at least one recording")
        if num_speakers > MAX_SPEAKERS:
            raise JobRequestError(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"num_speakers={num_speakers}: at most {MAX_SPEAKERS} speakers are told apart (0: find out how many)",
            )
        if num_speakers and channels == "separate":
            # Each channel is one speaker and no diarization runs: the count would be silently ignored.
            raise JobRequestError(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"num_speakers={num_speakers} counts the speakers of one channel, but with CHANNEL_MODE_SEPARATE each "
                "channel is one speaker: leave num_speakers 0, or send CHANNEL_MODE_MIX with diarize",
            )
        if diarize and channels == "separate":
            raise JobRequestError(
                grpc.StatusCode.INVALID_ARGUMENT,
                "diarize finds the speakers of one channel, but with CHANNEL_MODE_SEPARATE each channel is one "
                "speaker already: leave diarize off, or send CHANNEL_MODE_MIX with diarize",
            )
        if num_speakers and not diarize:
            raise JobRequestError(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"num_speakers={num_speakers} is the count of the speakers diarization finds: set diarize, or leave "
                "num_speakers 0",
            )
        if diarize and (reason := await self.cannot_diarize()):
            raise JobRequestError(grpc.StatusCode.FAILED_PRECONDITION, CANNOT_DIARIZE + reason)
        inputs = []
        total_s = 0.0  # audio to analyse, every recording and (separate) every channel together
        for number, recording in enumerate(recordings):
            name = recording.name or Path(recording.uri).name or f"recording-{number}"
            try:
                source = await asyncio.to_thread(self._job_source, recording)
                header = await asyncio.to_thread(audio.probe, source, self.jobs_limits)
            except PermissionError as exc:
                raise JobRequestError(grpc.StatusCode.PERMISSION_DENIED, f"recording {name!r}: {exc}") from None
            except (audio.AudioError, FileNotFoundError) as exc:
                raise JobRequestError(grpc.StatusCode.INVALID_ARGUMENT, f"recording {name!r}: {exc}") from None
            total_s += header.duration_s * (header.channels if channels == "separate" else 1)
            if total_s > self.settings.max_job_seconds:
                raise JobRequestError(
                    grpc.StatusCode.INVALID_ARGUMENT,
                    f"the job holds {total_s / 60:.0f} min of audio with recording {name!r}"
                    + (" (each channel counted: --channels separate)" if channels == "separate" else "")
                    + f"; a job accepts at most {self.settings.max_job_seconds / 60:g} min (max_job_seconds): "
                    "split it into several jobs",
                )
            if isinstance(source, bytes):
                inputs.append(RecordingInput(name, content=source))
            else:
                inputs.append(RecordingInput(name, path=str(source)))
        session_id = session_id or uuid.uuid4().hex
        structlog.contextvars.bind_contextvars(session_id=session_id)
        try:
            await self._refuse_if_erased(session_id)
            if owner:
                await self._claim_session(session_id, owner, may_join_any_session)
            job = await asyncio.to_thread(
                self.jobs.submit, inputs, channels, metadata, session_id, owner, diarize, num_speakers
            )
        except JobRequestError:
            raise
        except Exception as exc:
            log.exception("job_submit_failed")
            raise JobRequestError(
                grpc.StatusCode.UNAVAILABLE, f"the job queue's database is unavailable ({exc}); retry"
            ) from None
        if self.job_runner is not None:
            self.job_runner.wake()
        return job

    async def GetJob(self, request: pb.GetJobRequest, context: grpc.aio.ServicerContext) -> pb.Job:
        get = functools.partial(self._jobs(context).get, owner=caller_scope()[1])
        return _job_pb(await self._job(context, request.job_id, get), with_utterances=True)

    async def ListJobs(self, request: pb.ListJobsRequest, context: grpc.aio.ServicerContext) -> pb.ListJobsResponse:
        jobs = self._jobs(context)
        size = request.page_size or 50
        if size > 500:
            await _abort(context, grpc.StatusCode.INVALID_ARGUMENT, f"page_size={size} is over 500: ask for fewer")
        state = JOB_STATES.get(request.state) if request.state else None
        try:
            rows, token = await asyncio.to_thread(jobs.list, state, size, request.page_token, caller_scope()[1])
        except PageTokenError as exc:
            await _abort(context, grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        except DATABASE_AWAY as exc:
            await _abort(context, grpc.StatusCode.UNAVAILABLE, _database_away(exc))
        return pb.ListJobsResponse(jobs=[_job_pb(row, with_utterances=False) for row in rows], next_page_token=token)

    async def CancelJob(self, request: pb.CancelJobRequest, context: grpc.aio.ServicerContext) -> pb.Job:
        cancel = functools.partial(self._jobs(context).cancel, owner=caller_scope()[1])
        job = await self._job(context, request.job_id, cancel)
        log.info("job_cancel_requested", job_id=request.job_id, state=job.state)
        return _job_pb(job, with_utterances=True)

    async def WatchJob(
        self, request: pb.WatchJobRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.Job]:
        """The job now, then on every change, read from the database (so any replica's work is seen)."""
        get = functools.partial(self._jobs(context).get, owner=caller_scope()[1])
        seen = None
        while True:
            job = await self._job(context, request.job_id, get)
            ended = job.state in ENDED
            mark = (job.state, job.done_s, job.total_s, job.updated_at)
            if mark != seen:
                seen = mark
                yield _job_pb(job, with_utterances=ended)
            if ended or self.draining:
                return
            await asyncio.sleep(JOB_WATCH_POLL_S)

    async def _refuse_if_erased(self, session_id: str) -> None:
        """Raises :class:`JobRequestError` (FAILED_PRECONDITION) for a session erased before, here or by
        any replica or `emotion erase` (the store's erasure record): it is never written again."""
        erased = session_id in self.erasures
        if not erased and self.jobs is not None:
            erased = await asyncio.to_thread(self.jobs.store.is_erased, session_id)
        if erased:
            raise JobRequestError(
                grpc.StatusCode.FAILED_PRECONDITION,
                f"session {session_id!r} was erased, and an erased session is never written again: "
                "use a new session id",
            )

    async def _claim_session(self, session_id: str, owner: str, may_join_any: bool) -> None:
        """Makes ``owner`` the session's key if no key named it before; raises :class:`JobRequestError`
        (PERMISSION_DENIED) when another key did, unless ``may_join_any`` (an admin key)."""
        if self.jobs is None:
            return
        try:
            await asyncio.to_thread(self.jobs.claim_session, session_id, owner)
        except SessionOwnedError:
            if not may_join_any:
                raise JobRequestError(
                    grpc.StatusCode.PERMISSION_DENIED,
                    f"session {session_id!r} belongs to another client: use a session id of your own "
                    "(or leave it empty for a new one)",
                ) from None

    async def _continuation(self, session_id: str) -> tuple[int, float]:
        """Where a stream continuing ``session_id`` starts: the next window index and the seconds
        already streamed (this replica's memory first, then the stored windows)."""
        if session_id in self._extents:
            return self._extents[session_id]
        if self.jobs is None:
            return 0, 0.0
        return await asyncio.to_thread(self.jobs.stream_extent, session_id)

    def _jobs(self, context: grpc.aio.ServicerContext) -> JobQueue:
        self.last_arrival = time.monotonic()
        if self.jobs is None:
            raise RuntimeError("this servicer has no job queue")
        return self.jobs

    async def _job(self, context: grpc.aio.ServicerContext, job_id: str, read: Callable[[str], Any]) -> Any:
        if not job_id:
            await _abort(context, grpc.StatusCode.INVALID_ARGUMENT, "job_id is empty: pass the id SubmitJob returned")
        try:
            return await asyncio.to_thread(read, job_id)
        except JobNotFoundError:
            await _abort(context, grpc.StatusCode.NOT_FOUND, f"no job {job_id!r} (erased, or never submitted)")
        except DATABASE_AWAY as exc:
            await _abort(context, grpc.StatusCode.UNAVAILABLE, _database_away(exc))

    def _job_source(self, recording: pb.Recording) -> bytes | Path:
        """A recording's inline bytes, or its path once it is known to lie under ``job_input_dir``."""
        if recording.WhichOneof("source") == "content":
            return recording.content
        if recording.WhichOneof("source") != "uri":
            raise audio.AudioError("it carries no audio: set content (the file's bytes) or uri (a path)")
        if not self.settings.job_input_dir:
            raise PermissionError(
                "this server reads no paths (job_input_dir is not set): send the file's bytes as content"
            )
        root = Path(self.settings.job_input_dir).resolve()
        uri = recording.uri.removeprefix("file://")
        path = (root / uri).resolve()
        if not path.is_relative_to(root):
            raise PermissionError(f"{recording.uri} lies outside job_input_dir; only files under {root} can be read")
        if not path.is_file():
            raise FileNotFoundError(f"no file {recording.uri} under job_input_dir")
        return path

    async def _ready(self, context: grpc.aio.ServicerContext, requests: AsyncIterator[Any] | None = None) -> ModelState:
        self.last_arrival = time.monotonic()
        problem = None
        if self.draining:
            problem = "server is shutting down: retry on another replica"
        elif self.state is None:
            problem = "model is still loading: retry once health is SERVING"
        if problem is not None:
            if requests is not None:
                await abort_stream(context, requests, grpc.StatusCode.UNAVAILABLE, problem)
            await _abort(context, grpc.StatusCode.UNAVAILABLE, problem)
        assert self.state is not None
        return self.state

    def _decode(self, message: pb.Audio, rate: int) -> audio.Decoded:
        source = message.WhichOneof("source")
        if source == "content":
            return audio.decode_content(message.content, rate, self.limits)
        if source == "raw":
            fmt = message.raw.format
            return audio.decode_raw(
                message.raw.data, _encoding(fmt), fmt.sample_rate, fmt.channels or 1, rate, self.limits
            )
        raise audio.AudioError("request has no audio: set audio.content (an encoded file) or audio.raw (PCM)")

    def _open_stream(self, config: pb.StreamConfig, rate: int) -> tuple[audio.PcmStreamDecoder, Windower, float, float]:
        if not config.HasField("format"):
            raise audio.AudioError("format is missing: set encoding, sample_rate and channels of the PCM chunks")
        window_s = config.window_s or self.settings.window_s
        hop_s = config.hop_s or min(self.settings.hop_s, window_s)
        if not self.settings.min_audio_seconds <= window_s <= self.settings.max_audio_seconds:
            raise audio.AudioError(
                f"window_s={window_s:g} must lie in [{self.settings.min_audio_seconds:g}, "
                f"{self.settings.max_audio_seconds:g}] seconds"
            )
        if not 0 < hop_s <= window_s:
            raise audio.AudioError(f"hop_s={hop_s:g} must be positive and at most window_s={window_s:g}")
        fmt = config.format
        decoder = audio.PcmStreamDecoder(_encoding(fmt), fmt.sample_rate, fmt.channels or 1, rate, self.limits)
        windower = Windower(round(window_s * rate), round(hop_s * rate), round(self.settings.min_audio_seconds * rate))
        return decoder, windower, window_s, hop_s

    async def _read_stream(
        self,
        request_iterator: AsyncIterator[pb.StreamClassifyRequest],
        context: grpc.aio.ServicerContext,
        state: ModelState,
        decoder: audio.PcmStreamDecoder,
        windower: Windower,
        session_id: str,
        outbox: asyncio.Queue[Any],
        errors: list[str],
        slots: asyncio.Semaphore,
    ) -> None:
        def fail(code: grpc.StatusCode, message: str) -> None:
            errors.append(message)
            outbox.put_nowait(code)

        try:
            while (message := await self._next_message(request_iterator)) is not None:
                if message.WhichOneof("payload") != "audio_content":
                    fail(grpc.StatusCode.INVALID_ARGUMENT, "config was sent twice: only the first message carries it")
                    return
                refusal = self._message_refusal(decoder, len(message.audio_content))
                if refusal is not None:
                    fail(*refusal)
                    return
                windows = windower.push(decoder.feed(message.audio_content))
                if not await self._submit_windows(context, state, windows, session_id, outbox, fail, slots):
                    return
            windower.push(decoder.finish())
            tail = windower.flush()
            if await self._submit_windows(context, state, tail, session_id, outbox, fail, slots):
                outbox.put_nowait(None)
        except audio.AudioError as exc:
            fail(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        except TimeoutError:
            fail(
                grpc.StatusCode.DEADLINE_EXCEEDED,
                f"stream idle for {self.settings.stream_idle_timeout_s:g} s (stream_idle_timeout_s): "
                "send audio or close the stream",
            )
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # whatever breaks, the response side gets a status, never silence
            log.exception("stream_reader_failed")
            fail(grpc.StatusCode.INTERNAL, f"stream reader failed: {type(exc).__name__}: {exc}")

    def _message_refusal(self, decoder: audio.PcmStreamDecoder, size: int) -> tuple[grpc.StatusCode, str] | None:
        """Why a stream message must not be decoded, or None: its bytes and its audio are judged by
        its size and the stream's format before a sample is decoded, so memory stays bounded."""
        settings = self.settings
        if size > settings.max_stream_message_bytes:
            return grpc.StatusCode.INVALID_ARGUMENT, (
                f"a stream message carries {size / 2**20:.1f} MiB; at most {settings.max_stream_message_bytes} "
                "bytes are accepted (max_stream_message_bytes): send the audio in smaller chunks, e.g. 100 ms each"
            )
        seconds = decoder.seconds_of(size)
        if seconds > settings.max_stream_message_seconds:
            return grpc.StatusCode.INVALID_ARGUMENT, (
                f"a stream message carries {seconds:.1f} s of audio at the declared {decoder.source_rate} Hz; "
                f"at most {settings.max_stream_message_seconds:g} s are accepted (max_stream_message_seconds): "
                "send shorter chunks, and check the format's sample rate"
            )
        if decoder.seconds_in + seconds > settings.max_stream_seconds:
            return grpc.StatusCode.RESOURCE_EXHAUSTED, (
                f"stream exceeded {settings.max_stream_seconds:g} s of audio (max_stream_seconds): start a new stream"
            )
        return None

    async def _next_message(
        self, request_iterator: AsyncIterator[pb.StreamClassifyRequest]
    ) -> pb.StreamClassifyRequest | None:
        """The next request, None at the end; TimeoutError when the client goes quiet."""
        return await asyncio.wait_for(anext(request_iterator, None), self.settings.stream_idle_timeout_s)

    async def _submit_windows(
        self,
        context: grpc.aio.ServicerContext,
        state: ModelState,
        windows: list[Window],
        session_id: str,
        outbox: asyncio.Queue[Any],
        fail: Callable[[grpc.StatusCode, str], None],
        slots: asyncio.Semaphore,
    ) -> bool:
        """Judges, preprocesses and queues windows; False (after ``fail``) when the stream must end.

        Each window is first asked whether it holds speech, by the detector Classify uses, on the
        window as a whole from a fresh state: the same audio gets the same answer at every door.
        Carrying the detector's state from window to window would judge only each hop's new audio,
        but the windows overlap and a window's verdict would then depend on where the stream
        began; at about 3 ms per second of audio, judging every window afresh (twice the audio at
        the default 3 s windows 1.5 s apart) costs less than that is worth.

        Load never ends a stream: a window that finds no free slot within
        ``stream_backpressure_s``, or a full batcher queue, is answered as skipped.
        """
        rate = state.backend.info.sample_rate
        for window in windows:
            ready_at = time.monotonic()
            presence = await asyncio.to_thread(judge_speech, state.speech, window.waveform, rate, "window")
            voiced = presence.voiced_fraction
            if presence.no_speech:
                log.info(
                    "stream_window_no_speech",
                    index=window.index,
                    voiced_fraction=round(voiced, 3),
                    max_speech_probability=round(presence.max_probability, 3),
                )
                metrics.WINDOWS_SILENT.inc()
                # A window without speech needs no model, but it waits to be answered like any other: it
                # holds a slot, so a client that sends silence and reads nothing is slowed, not buffered.
                await slots.acquire()
                outbox.put_nowait(_Pending(window, None, ready_at, voiced, no_speech=True))
                continue
            try:
                await asyncio.wait_for(slots.acquire(), self.settings.stream_backpressure_s)
            except TimeoutError:
                self._skip(outbox, window, ready_at, voiced, "no free slot: the sender is faster than the model")
                continue
            try:
                waveform = await asyncio.to_thread(
                    self.plugins.preprocess, window.waveform, rate, {"session_id": session_id, "stage": "serve"}
                )
                future = state.batcher.submit(waveform, self._deadline(context))
            except QueueFullError:
                slots.release()
                self._skip(outbox, window, ready_at, voiced, "the inference queue is full")
                continue
            except PluginError as exc:
                slots.release()
                fail(grpc.StatusCode.INTERNAL, str(exc))
                return False
            except ShuttingDownError as exc:
                slots.release()
                fail(grpc.StatusCode.UNAVAILABLE, str(exc))
                return False
            outbox.put_nowait(_Pending(window, future, ready_at, voiced))
        return True

    def _skip(self, outbox: asyncio.Queue[Any], window: Window, ready_at: float, voiced: float, why: str) -> None:
        log.info("stream_window_skipped", index=window.index, reason=why)
        metrics.WINDOWS_SKIPPED.inc()
        outbox.put_nowait(_Pending(window, None, ready_at, voiced))

    def _record_lag(self, lag_s: float) -> None:
        """Remembers how long after its last sample a window was answered (admission reads it)."""
        self._lags.append((time.monotonic(), lag_s))
        metrics.WINDOW_LAG.observe(lag_s)

    def _admission_refusal(self, state: ModelState, demand: float) -> str | None:
        """Why a new stream must wait, or None.

        First by what the open streams ask for, so a fast ramp is refused before any window is
        late: each stream needs ``window_s / hop_s`` seconds of audio scored per second, and
        together they may ask at most ``stream_admission_utilisation`` of the model's measured
        capacity. Then by what is seen: a deep queue, or recent windows answered late.
        """
        budget = self.settings.stream_admission_utilisation * state.capacity
        if self.demand + demand > budget:
            return (
                f"server busy: its {self.open_streams - 1} open streams ask for {self.demand:.0f} s of audio scored "
                f"per second of the {state.capacity:.0f} it can score (stream_admission_utilisation="
                f"{self.settings.stream_admission_utilisation:g}); retry in {ADMISSION_RETRY_MS / 1000:g} s or on "
                "another replica"
            )
        depth = state.batcher.queue_depth
        if depth >= self.settings.stream_admission_queue_depth:
            return (
                f"server busy: {depth} clips or windows are waiting for the model "
                f"(stream_admission_queue_depth={self.settings.stream_admission_queue_depth}); "
                f"retry in {ADMISSION_RETRY_MS / 1000:g} s or on another replica"
            )
        horizon = time.monotonic() - LAG_HORIZON_S
        recent = sorted(lag for at, lag in self._lags if at >= horizon)
        if len(recent) >= MIN_LAG_SAMPLES:
            p95 = recent[min(len(recent) - 1, int(0.95 * len(recent)))]
            if p95 > self.settings.stream_admission_lag_s:
                return (
                    f"server busy: stream windows are answered {p95:.2f} s after their audio (p95 of the last "
                    f"{LAG_HORIZON_S:g} s; stream_admission_lag_s={self.settings.stream_admission_lag_s:g}); "
                    f"retry in {ADMISSION_RETRY_MS / 1000:g} s or on another replica"
                )
        return None

    async def _preprocess(
        self, context: grpc.aio.ServicerContext, waveform: np.ndarray, rate: int, ids: dict[str, str]
    ) -> np.ndarray:
        try:
            return await asyncio.to_thread(self.plugins.preprocess, waveform, rate, {**ids, "stage": "serve"})
        except PluginError as exc:
            await _abort(context, grpc.StatusCode.INTERNAL, str(exc))

    async def _score(self, context: grpc.aio.ServicerContext, state: ModelState, waveform: np.ndarray) -> np.ndarray:
        try:
            future = state.batcher.submit(waveform, self._deadline(context))
        except QueueFullError as exc:
            await _abort(context, grpc.StatusCode.RESOURCE_EXHAUSTED, str(exc))
        except ShuttingDownError as exc:
            await _abort(context, grpc.StatusCode.UNAVAILABLE, str(exc))
        return await self._await_scores(context, future)

    async def _await_scores(self, context: grpc.aio.ServicerContext, future: asyncio.Future[np.ndarray]) -> np.ndarray:
        try:
            return await future
        except DeadlineExpiredError as exc:
            await _abort(context, grpc.StatusCode.DEADLINE_EXCEEDED, str(exc))
        except Exception as exc:
            await _abort(context, grpc.StatusCode.INTERNAL, f"inference failed: {type(exc).__name__}: {exc}")

    async def _on_result(self, result: Result, session_id: str) -> list[Alert]:
        # Tracked with the background hooks, so that an erasure waits for it.
        task = asyncio.ensure_future(asyncio.to_thread(self.plugins.on_result, result))
        self.background.add(task)
        task.add_done_callback(self.background.discard)
        alerts = await asyncio.shield(task)
        if result.no_speech and alerts:
            # No speech, no emotion: an alert about one would be about the model's answer to noise.
            log.warning("no_speech_alerts_dropped", sources=sorted({a.source for a in alerts}), count=len(alerts))
            alerts = []
        for alert in alerts:
            log.info("alert", kind=alert.kind, label=alert.label, source=alert.source)
            self._in_background(self.plugins.on_alert, alert, session_id)
        return alerts

    def _deadline(self, context: grpc.aio.ServicerContext) -> float:
        """When queued work for this call stops being worth running."""
        remaining = context.time_remaining()
        return time.monotonic() + (self.settings.default_deadline_s if remaining is None else remaining)

    def _in_background(self, fn: Any, *args: Any) -> None:
        """Runs slow sinks (webhooks, reports) off the request path; shutdown waits for them."""
        task = asyncio.create_task(asyncio.to_thread(fn, *args))
        self.background.add(task)
        task.add_done_callback(self.background.discard)


def _timestamp(moment: datetime | None) -> Timestamp | None:
    if moment is None:
        return None
    stamp = Timestamp()
    stamp.FromDatetime(moment)
    return stamp


def _job_pb(job: JobRow, with_utterances: bool) -> pb.Job:
    """The API's view of a job row; the estimate comes from the current attempt's pace."""
    eta_s = eta_seconds(job)
    utterances = (job.utterances or {}).get("utterances", []) if with_utterances else []
    parties = (job.utterances or {}).get("parties", []) if with_utterances else []
    return pb.Job(
        job_id=job.id,
        session_id=job.session_id,
        state=_JOB_STATE_PB[job.state],
        progress=min(1.0, job.done_s / job.total_s) if job.total_s > 0 else float(job.state == SUCCEEDED),
        audio_s=job.total_s,
        created_at=_timestamp(job.created_at),
        updated_at=_timestamp(job.updated_at),
        eta_s=eta_s,
        error=job.error or "",
        utterances=[
            pb.Utterance(
                recording=u["recording"],
                channel=u["channel"],
                start_s=u["start_s"],
                end_s=u["end_s"],
                label=u["label"],
                scores=_label_scores(u["scores"]),
                window_count=u["window_count"],
                speaker=u.get("speaker", ""),
                # A job that ended before the speech detector: its utterances held speech, how much is unknown.
                no_speech=u.get("no_speech", False),
                voiced_fraction=u.get("voiced_fraction") or 0.0,
            )
            for u in utterances
        ],
        channels=pb.CHANNEL_MODE_SEPARATE if job.channels == "separate" else pb.CHANNEL_MODE_MIX,
        metadata=dict(job.job_metadata),
        recordings=[r["name"] for r in job.request["recordings"]],
        attempts=job.attempts,
        parties=[
            pb.PartySummary(
                party=p["party"],
                count=p["count"],
                seconds=p["seconds"],
                time_share=p["time_share"],
                dominant_label=p["dominant_label"],
                shares=_label_scores(p["shares"]),
                mean_scores=_label_scores(p["mean_scores"]),
                alert_count=p["alert_count"],
            )
            for p in parties
        ],
    )


# Where recent sessions' streams ended, remembered for this many sessions (then read from the store).
MAX_REMEMBERED_SESSIONS = 10_000
# The job queue's database is away (or refuses connections): the call can be retried.
DATABASE_AWAY = (StoreError, sqlalchemy.exc.OperationalError, sqlalchemy.exc.InterfaceError, sqlalchemy.exc.TimeoutError)


def _database_away(exc: BaseException) -> str:
    return f"the job queue's database is unavailable ({str(exc).splitlines()[0]}); retry"


def _peer(context: grpc.aio.ServicerContext) -> str:
    """Who called, when token auth is off: the peer address."""
    return f"peer {context.peer()}"


def _abort_reason(context: grpc.aio.ServicerContext, default: str) -> str:
    """``aborted: <STATUS>`` when the call is ending with an error status, else ``default``."""
    code = context.code() if hasattr(context, "code") else None
    if isinstance(code, grpc.StatusCode) and code != grpc.StatusCode.OK:
        return f"aborted: {code.name}"
    return default


def _encoding(fmt: pb.PcmFormat) -> str:
    if fmt.encoding not in _ENCODINGS:
        raise audio.AudioError("PCM encoding is unspecified: set format.encoding to PCM_ENCODING_S16LE or _F32LE")
    return _ENCODINGS[fmt.encoding]


def _label_scores(scores: dict[str, float], by_score: bool = True) -> list[pb.LabelScore]:
    items = sorted(scores.items(), key=lambda kv: -kv[1]) if by_score else scores.items()
    return [pb.LabelScore(label=label, score=score) for label, score in items]


def _alert_pb(alert: Alert) -> pb.Alert:
    return pb.Alert(
        kind=alert.kind,
        label=alert.label,
        severity=alert.severity,
        message=alert.message,
        value=alert.value,
        time_s=alert.time_s,
        source=alert.source,
        details=alert.details,
        speaker=alert.speaker,
    )
