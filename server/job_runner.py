"""Runs jobs: whole recordings segmented into utterances and scored at low priority.

Each of ``job_workers`` workers takes a job from the durable queue, decodes its recordings
(one track, or one per channel), finds the utterances by voice activity, asks the speech
detector Classify uses whether each holds speech (one that does not is kept with ``no_speech``
and no emotion, the model not asked), and scores the others through the same ``preprocess``
hooks and batcher as calls, as background work: job windows run only while no call waits. Utterances longer than ``window_s`` are scored window by
window (``hop_s`` apart) and their scores averaged. Every utterance goes through the
``on_result`` hooks (kind ``"utterance"``, stored under the job's session). The alerts they
raise, the session's end (``on_session_end``) and the job's (``on_job_end``) are handed to the
plugins once per job, after the job's end is written, and only by the worker whose write of it
succeeded: a part run again after a takeover, or a worker that lost its job, fires none of them
again. The alerts of every finished part are kept with the part, so a resumed job fires them too.
The end is written with what the plugins are to be handed; should its replica die before it has
handed it on, another replica's idle worker hands it on once that lease runs out (the store keeps
each alert once by its id; a webhook may then deliver an event a second time).

Progress is written at least every third of the lease (renewing it) and after every
finished (recording, channel) part, whose utterances are kept in the job: a job resumed
after a restart, or taken over from a dead replica, skips its finished parts. Stored
results are keyed by their position in the session, so a part run again stores nothing twice.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import os
import socket
import threading
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import structlog

from emotion_service import audio
from emotion_service.diarization import DiarizationUnavailable, Diarizer, unavailable
from emotion_service.plugins.manager import PluginHost
from emotion_service.plugins.types import Alert, JobSummary, Result, summarise, summarise_parties
from emotion_service.segmentation import Segment, Segmenter, SegmenterSettings
from emotion_service.server import metrics
from emotion_service.server.config import Settings
from emotion_service.server.erasure import Erasures
from emotion_service.server.job_queue import FAILED, SUCCEEDED, Claim, JobQueue, PendingHandOver
from emotion_service.server.model import labelled
from emotion_service.speech_presence import Presence, SpeechDetector

log = structlog.get_logger(__name__)
T = TypeVar("T")

# How often a running job's progress is saved (it is also the lease's renewal): a page polling the
# job sees it move every second, for one small write per second per running job.
PROGRESS_S = 1.0
# The fields of a job's results that are alike in every one: written once in a pending hand-over.
_SHARED = ("session_id", "request_id", "model_name", "metadata")
# The share of a part's progress that finding its speech (and speakers) stands for; the scoring of
# its utterances is the rest. On 2 cores the speech detector is about half of a job's time (787 s
# of speech and pauses: 4.7 s; a whole 10-minute job: 7.7 s).
FINDING_SHARE = 0.5


def judge_speech(speech: SpeechDetector, waveform: np.ndarray, rate: int, door: str) -> Presence:
    """Whether ``waveform`` holds speech, counted in the metrics under ``door`` (classify, window,
    utterance). Blocking (about 3 ms per second of audio): callers run it in a worker thread."""
    started = time.perf_counter()
    presence = speech.presence(waveform, rate)
    metrics.SPEECH_DETECTION.observe(time.perf_counter() - started)
    if presence.no_speech:
        metrics.NO_SPEECH.labels(door).inc()
    return presence


def job_limits(settings: Settings) -> audio.AudioLimits:
    """Bounds on one recording of a job (per channel)."""
    return audio.AudioLimits(
        max_bytes=settings.max_job_bytes,
        max_seconds=settings.max_job_seconds,
        min_seconds=settings.min_audio_seconds,
        max_sample_rate=settings.max_sample_rate,
        max_channels=settings.max_channels,
        seconds_setting="max_job_seconds",
        bytes_setting="max_job_bytes",
        advice="a job accepts at most {limit}: split the recording",
    )


class LostJobError(RuntimeError):
    """The worker no longer holds its job (cancelled, erased, or taken over after its lease expired)."""


@dataclass(frozen=True)
class ScoredUtterance:
    """One utterance of a job, as the API returns it."""

    recording: int
    channel: int
    start_s: float
    end_s: float
    label: str
    scores: dict[str, float]
    window_count: int
    speaker: str = ""  # "S1", ... diarized or per channel; empty for a mix not diarized
    # No speech heard in it (label and scores empty, window_count 0); share of its frames heard as speech.
    no_speech: bool = False
    voiced_fraction: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return dict(vars(self))


class JobRunner:
    """The job workers of one replica; ``state`` gives the loaded model (None while it loads)."""

    def __init__(
        self,
        settings: Settings,
        plugins: PluginHost,
        queue: JobQueue,
        state: Callable[[], Any | None],
        erasures: Erasures | None = None,
    ) -> None:
        self.settings = settings
        self.plugins = plugins
        self.queue = queue
        # Sessions erased while this process runs: their jobs stop before writing anything more.
        self.erasures = erasures if erasures is not None else Erasures(plugins)
        self._state = state
        self.owner = f"{socket.gethostname()}:{os.getpid()}"
        self.limits = job_limits(settings)
        self._segmenter: Segmenter | None = None
        self._diarizer: Diarizer | None = None
        # Workers' threads may ask for the segmenter or the diarizer at once: each is built once, under its
        # own lock, and read without one once built (the event loop reads the segmenter for bleed).
        self._segmenter_lock, self._diarizer_lock = threading.Lock(), threading.Lock()
        self._wake = asyncio.Event()
        self._workers: list[asyncio.Task[None]] = []
        self._held: dict[str, Claim] = {}
        self._ending: set[asyncio.Future[None]] = set()  # jobs' ends being written and handed to the plugins
        # Claims running on a thread whose worker was cancelled meanwhile: stop() gives back what they took.
        self._claiming: set[asyncio.Future[Any]] = set()
        self._orphans_looked = 0.0  # time.monotonic() of the last look for ends left unhanded
        self._stopping = False

    @property
    def segmenter(self) -> Segmenter:
        """The voice-activity segmenter, loaded with the first job (a server that runs none never loads it)."""
        if self._segmenter is None:
            with self._segmenter_lock:
                if self._segmenter is None:
                    self._segmenter = Segmenter(
                        SegmenterSettings(
                            min_silence_s=self.settings.job_min_silence_s,
                            max_utterance_s=self.settings.job_max_utterance_s,
                        )
                    )
        return self._segmenter

    @property
    def diarizer(self) -> Diarizer:
        """The speaker diarizer, loaded with the first job that asks for it.

        :raises DiarizationUnavailable: a speaker encoder's wheel is missing (the job fails saying so)."""
        if self._diarizer is None:
            with self._diarizer_lock:
                if self._diarizer is None:
                    self._diarizer = Diarizer()
        return self._diarizer

    def _speakers(
        self,
        claim: Claim,
        track: np.ndarray,
        rate: int,
        channel: int,
        separate: bool,
        progress: Callable[[float], None] | None = None,
    ) -> list[Segment]:
        """The part's utterances with their speaker: one per channel when separate, found when diarized.
        ``progress``: called with the share of the track the speech detector has heard (0 to 1)."""
        if separate:
            found = self.segmenter.segments(track, rate, channel, progress=progress)
            return [replace(s, speaker=f"S{channel + 1}") for s in found]
        if not claim.diarize:
            return self.segmenter.segments(track, rate, channel, progress=progress)
        return self.diarizer.find(
            self.segmenter,
            track,
            rate,
            channel,
            claim.num_speakers,
            self.settings.job_min_silence_s,
            self.settings.job_max_utterance_s,
            progress,
        )

    def start(self) -> None:
        """Starts the workers on the running loop (warning once when this installation cannot diarize)."""
        if reason := unavailable():
            log.warning("diarization_unavailable", reason=reason)
        self._workers = [
            asyncio.create_task(self._work(), name=f"job-worker-{n}") for n in range(self.settings.job_workers)
        ]

    def ending(self) -> list[asyncio.Future[None]]:
        """The jobs' ends being written and handed to the plugins now (an erasure waits for them)."""
        return list(self._ending)

    def wake(self) -> None:
        """A job was submitted here: look now rather than at the next poll."""
        self._wake.set()

    async def stop(self) -> None:
        """Stops the workers and puts the jobs they held back in the queue, for this or another replica.

        Waits up to a lease (``job_lease_s``) for the jobs' ends being written and handed on (a hung
        database must not hold the shutdown): an end not written by then is written by the replica
        that takes the job again, and one written but not handed on is handed on by an idle worker of
        any replica, once the lease runs out.
        """
        self._stopping = True
        deadline = time.monotonic() + self.settings.job_lease_s
        # Taken before the workers are cancelled: a cancelled worker lets go of its claim as it ends.
        held: list[Claim | PendingHandOver] = list(self._held.values())
        for worker in self._workers:
            worker.cancel()
        await asyncio.gather(*self._workers, return_exceptions=True)
        # A claim that lands after its worker was cancelled is given back with the others.
        for landed in await self._within(deadline, self._claiming, "job_claims_unfinished_at_stop"):
            if isinstance(landed.result(), Claim | PendingHandOver):
                held.append(landed.result())
        await self._within(deadline, self._ending, "job_ends_unfinished_at_stop")
        for claim in held:
            # A job whose end was written meanwhile is no longer held by this claim: left as it is.
            give_back = (
                functools.partial(self.queue.release, claim)
                if isinstance(claim, Claim)
                else functools.partial(self.queue.hold_hand_over, claim.job_id, claim.token, 0.0)
            )
            released = asyncio.ensure_future(asyncio.to_thread(give_back))
            if await self._within(deadline, {released}, "job_not_released") and released.result():
                log.info("job_released", job_id=claim.job_id)

    @staticmethod
    async def _within(deadline: float, pending: set[asyncio.Future[Any]], event: str) -> set[asyncio.Future[Any]]:
        """The futures of ``pending`` that ended well by ``deadline`` (time.monotonic()); those that did
        not (still running on a hung database, or raised) are logged as ``event`` and left to the lease."""
        if not pending:
            return set()
        done, unfinished = await asyncio.wait(pending, timeout=max(0.0, deadline - time.monotonic()))
        failed = {future for future in done if future.cancelled() or future.exception() is not None}
        if unfinished or failed:
            reasons = [f"{type(f.exception()).__name__}: {f.exception()}" for f in failed if not f.cancelled()]
            log.warning(event, unfinished=len(unfinished), failed=reasons, retry="lease expiry")
        return done - failed

    async def _work(self) -> None:
        while not self._stopping:
            state = self._state()
            claim = None
            if state is not None:
                try:
                    claim = await self._claim()
                except Exception as exc:  # the database is away: try again at the next poll
                    log.warning("job_claim_failed", reason=f"{type(exc).__name__}: {exc}")
            if claim is None:
                if await self._hand_on_orphan():
                    continue
                self._wake.clear()
                try:
                    await asyncio.wait_for(self._wake.wait(), self.settings.job_poll_s)
                except TimeoutError:
                    pass
                continue
            self._held[claim.job_id] = claim
            try:
                with structlog.contextvars.bound_contextvars(job_id=claim.job_id, session_id=claim.session_id):
                    await self._run(state, claim)
            except Exception as exc:
                # The database away as the job's end is written: the job stays held until its lease
                # runs out and is then taken again (its finished parts kept); this worker goes on.
                log.warning(
                    "job_end_not_written",
                    job_id=claim.job_id,
                    reason=f"{type(exc).__name__}: {exc}",
                    retry="lease expiry",
                )
            finally:
                self._held.pop(claim.job_id, None)

    async def _claim(self) -> Claim | None:
        """Takes a job from the queue (see :meth:`_on_thread`); one that diarizes only when this
        installation can (:func:`unavailable`, looked up again at each claim: about a millisecond)."""
        return await self._on_thread(self._claim_now)

    def _claim_now(self) -> Claim | None:
        return self.queue.claim(self.owner, self.settings.job_lease_s, diarize=not unavailable())

    async def _on_thread(self, take: Callable[..., T], *args: Any) -> T:
        """``take(*args)`` (a claim of a job or of an orphaned end) on a thread, which a cancelled
        worker cannot stop: should the worker be cancelled first, stop() gives back what it took."""
        claiming = asyncio.ensure_future(asyncio.to_thread(take, *args))
        self._claiming.add(claiming)
        try:
            claim = await asyncio.shield(claiming)
        except asyncio.CancelledError:
            raise  # left in _claiming: its claim may land after the cancel, and stop() gives it back
        except Exception:
            self._claiming.discard(claiming)
            raise
        self._claiming.discard(claiming)
        return claim

    async def _run(self, state: Any, claim: Claim) -> None:
        progress = _Progress(self, claim)
        if claim.attempts > self.settings.job_max_attempts:
            # Every attempt before ended without a result: taken again, it would most likely end so
            # again (a recording that kills its server, an end that cannot be written), forever.
            error = (
                f"given up after {claim.attempts - 1} attempts that each ended without a result (the server "
                "running it stopped, was killed or could not write its end); see the servers' logs for this "
                "job_id, then submit it again"
            )
            log.error("job_given_up", attempts=claim.attempts - 1)
            # The alerts its finished parts raised are handed on, as any failed job's are.
            raised = [Alert(**a) for key, part in claim.parts.items() if key.startswith(_alerts_key("")) for a in part]
            await self._end(claim, FAILED, [], error, 0.0, alerts=raised)
            return
        try:
            sources = [self._source(claim, position, recording) for position, recording in enumerate(claim.recordings)]
            durations = [await asyncio.to_thread(_duration, source, self.limits) for source in sources]
            progress.audio_s = sum(durations)
            await progress.save(force=True)
            utterances, results = await self._analyse(state, claim, sources, durations, progress)
        except LostJobError:
            log.info("job_lost", reason="cancelled, erased or taken over by another replica")
            return
        except (audio.AudioError, JobInputError, DiarizationUnavailable) as exc:
            await self._end(claim, FAILED, [], str(exc), progress.audio_s, alerts=progress.alerts)
            return
        except Exception as exc:
            log.exception("job_failed")
            error = f"internal error: {type(exc).__name__}: {exc}"
            await self._end(claim, FAILED, [], error, progress.audio_s, alerts=progress.alerts)
            return
        await self._end(claim, SUCCEEDED, utterances, "", progress.audio_s, results, progress.alerts)

    async def _end(
        self,
        claim: Claim,
        state: str,
        utterances: list[ScoredUtterance],
        error: str,
        audio_s: float,
        results: list[Result] | None = None,
        alerts: list[Alert] | None = None,
    ) -> None:
        """Writes the job's end; then, only when that write was this worker's, hands its alerts,
        its session's end and its own end to the plugins: once per job, whoever ran which part."""
        rows = [u.to_dict() for u in utterances]
        parties = [dataclasses.asdict(p) for p in summarise_parties(results or (), alerts or ())]
        if claim.session_id in self.erasures:
            log.info("job_lost", reason="its session was erased")
            return
        job = JobSummary(
            job_id=claim.job_id,
            session_id=claim.session_id,
            state=state,
            recordings=tuple(r["name"] for r in claim.recordings),
            audio_s=audio_s,
            utterances=tuple(results or ()),
            error=error,
            metadata=claim.metadata,
        )
        # The write and the hand-over are one task, which a stopping server waits for and does not
        # cancel: a client that saw the end written may stop the server at once, before this worker
        # resumes, and a worker cancelled between the two would leave an end written but never handed on.
        await asyncio.shield(self._as_ending(self._finish(claim, rows, parties, job, list(alerts or ()))))

    def _as_ending(self, work: Coroutine[Any, Any, None]) -> asyncio.Future[None]:
        """``work`` (writing or handing on a job's end) as a task that stop() and erasures wait for."""
        ending = asyncio.ensure_future(work)
        self._ending.add(ending)
        ending.add_done_callback(self._ending.discard)
        return ending

    async def _finish(
        self,
        claim: Claim,
        rows: list[dict[str, Any]],
        parties: list[dict[str, Any]],
        job: JobSummary,
        alerts: list[Alert],
    ) -> None:
        """Writes the job's end (its state and error as ``job`` holds them); then, only when that write
        landed, hands it to the plugins."""
        pending = hand_over_payload(job, alerts)
        hold_s = self.settings.job_lease_s
        if not await asyncio.to_thread(self.queue.finish, claim, job.state, rows, job.error, parties, pending, hold_s):
            log.info("job_lost", reason="cancelled, erased or taken over as it ended")
            return
        await self._hand_on(claim.job_id, claim.token, job, alerts)

    async def _hand_on(self, job_id: str, token: str, job: JobSummary, alerts: list[Alert]) -> None:
        """Hands a written end to the plugins, then records that it was (a database away then: the
        lease runs out and a replica hands it on again, which the store's alert ids make harmless)."""
        handing = asyncio.ensure_future(asyncio.to_thread(self._hand_over, job, alerts))
        lease_s = self.settings.job_lease_s
        # Renewed as a job's progress is, so that no replica takes over a long hand-over (a long report).
        while not (await asyncio.wait({handing}, timeout=lease_s / 3))[0]:
            try:
                await asyncio.to_thread(self.queue.hold_hand_over, job_id, token, lease_s)
            except Exception as exc:  # a blip: renewed at the next third of the lease
                log.warning("job_hand_over_not_renewed", job_id=job_id, reason=f"{type(exc).__name__}: {exc}")
        await handing
        try:
            await asyncio.to_thread(self.queue.handed_on, job_id, token)
        except Exception as exc:
            log.warning("job_hand_over_not_recorded", job_id=job_id, reason=f"{type(exc).__name__}: {exc}")

    async def _hand_on_orphan(self) -> bool:
        """Hands on one job's end that a replica wrote and died before handing on (its lease run out);
        True when there was one. Tracked with the ends being handed on, which stop() and erasures wait for."""
        # An end is left unhanded only once its lease runs out, so looking once a lease is enough (and
        # spares the database a scan of the ended jobs at every poll).
        if time.monotonic() < self._orphans_looked + self.settings.job_lease_s:
            return False
        self._orphans_looked = time.monotonic()
        try:
            orphan = await self._on_thread(self.queue.claim_hand_over, self.owner, self.settings.job_lease_s)
        except Exception as exc:  # the database is away: looked for again a lease later
            log.warning("job_hand_over_claim_failed", reason=f"{type(exc).__name__}: {exc}")
            return False
        if orphan is None:
            return False
        self._orphans_looked = 0.0  # there may be more: look again at the next poll
        try:
            await asyncio.shield(self._as_ending(self._hand_on_taken(orphan)))
        except Exception as exc:  # this worker goes on; the lease runs out and the end is tried again
            log.warning("job_hand_over_failed", job_id=orphan.job_id, reason=f"{type(exc).__name__}: {exc}")
        return True

    async def _hand_on_taken(self, orphan: PendingHandOver) -> None:
        with structlog.contextvars.bound_contextvars(job_id=orphan.job_id, session_id=orphan.session_id):
            if orphan.session_id in self.erasures:
                log.info("job_lost", reason="its session was erased")
                return
            try:
                job, alerts = from_hand_over_payload(orphan.payload)
            except (KeyError, TypeError, ValueError) as exc:
                # Written by another version (replicas being upgraded): left for one that reads it.
                log.error("job_hand_over_unreadable", reason=f"{type(exc).__name__}: {exc}", retry="lease expiry")
                return
            log.info("job_end_handed_on_by_another_replica", state=job.state, alerts=len(alerts))
            await self._hand_on(orphan.job_id, orphan.token, job, alerts)

    def _hand_over(self, job: JobSummary, alerts: list[Alert]) -> None:
        """The plugins' part of a job's end: its alerts, its session's end (succeeded), its own end."""
        for alert in alerts:
            self.plugins.on_alert(alert, job.session_id)
        if job.state == SUCCEEDED:
            self.plugins.on_session_end(
                replace(
                    summarise(job.session_id, list(job.utterances), alerts, job.metadata, duration_s=job.audio_s),
                    kind="job",
                )
            )
        self.plugins.on_job_end(job)

    async def _analyse(
        self, state: Any, claim: Claim, sources: list[bytes | Path], durations: list[float], progress: _Progress
    ) -> tuple[list[ScoredUtterance], list[Result]]:
        rate = state.backend.info.sample_rate
        utterances: list[ScoredUtterance] = []
        results: list[Result] = []
        offset_s = 0.0  # where each recording starts in the session's timeline
        for number, source in enumerate(sources):
            separate = claim.channels == "separate"
            # One channel's audio at a time: with --channels separate the channels are compared by
            # their power per 10 ms (for bleed), each decoded alone; the mix is decoded to mono.
            power, frame_rate = (
                await progress.saving_while(asyncio.to_thread(audio.channel_power, source, self.limits))
                if separate
                else (None, 0.0)
            )
            channels = len(power) if power is not None else 1
            for channel in range(channels):
                key = f"{number}:{channel}"
                part_s = durations[number] / channels
                if key in progress.parts:
                    done = [ScoredUtterance(**u) for u in progress.parts[key]]
                    progress.alerts.extend(Alert(**a) for a in progress.parts.get(_alerts_key(key), []))
                else:
                    part_alerts: list[Alert] = []
                    track = await progress.saving_while(
                        asyncio.to_thread(self._decode, source, channel if separate else None, rate)
                    )

                    def heard(share: float, part_s: float = part_s) -> None:
                        progress.advance(FINDING_SHARE * share * part_s)

                    mine = await progress.saving_while(
                        asyncio.to_thread(self._speakers, claim, track, rate, channel, separate, heard)
                    )
                    if power is not None and channels > 1:
                        mine = [s for s in mine if not self.segmenter.is_bleed(s, power, frame_rate, rate)]
                    done = await self._score_part(
                        state, claim, number, track, mine, progress, part_s, len(results), offset_s, part_alerts
                    )
                    del track  # before the next channel is decoded
                    progress.parts[key] = [u.to_dict() for u in done]
                    progress.parts[_alerts_key(key)] = [dataclasses.asdict(a) for a in part_alerts]
                    progress.alerts.extend(part_alerts)
                progress.finish_part(part_s, skipped=key in claim.parts)
                await progress.save(force=True)
                for utterance in done:
                    results.append(self._result(state, claim, utterance, len(results), offset_s))
                utterances.extend(done)
            offset_s += durations[number]
        return utterances, results

    async def _score_part(
        self,
        state: Any,
        claim: Claim,
        number: int,
        track: np.ndarray,
        segments: list[Segment],
        progress: _Progress,
        part_s: float,
        first_position: int,
        offset_s: float,
        alerts: list[Alert],
    ) -> list[ScoredUtterance]:
        """Scores one channel's utterances; each goes through ``on_result`` as it is scored, and the
        alerts they raise are added to ``alerts`` (handed on once the job's end is written)."""
        rate = state.backend.info.sample_rate
        scored: list[ScoredUtterance] = []
        for segment in segments:
            waveform = track[segment.start : segment.end]
            if len(waveform) < self.settings.min_audio_seconds * rate:
                continue
            # Cut where the segmenter heard speech, an utterance is still judged as a whole by the
            # detector every door asks, so that no door claims an emotion for audio another calls noise.
            presence = await asyncio.to_thread(judge_speech, state.speech, waveform, rate, "utterance")
            where = dict(
                recording=number,
                channel=segment.channel,
                start_s=round(segment.start / rate, 3),
                end_s=round(segment.end / rate, 3),
                speaker=segment.speaker,
                voiced_fraction=round(presence.voiced_fraction, 4),
            )
            if presence.no_speech:
                log.info("job_utterance_no_speech", **where, max_speech_probability=round(presence.max_probability, 3))
                utterance = ScoredUtterance(**where, label="", scores={}, window_count=0, no_speech=True)
            else:
                rows = await self._score_windows(state, claim, waveform, rate)
                utterance = ScoredUtterance(
                    **where, **labelled(state.backend.info.labels, np.mean(rows, axis=0)), window_count=len(rows)
                )
            scored.append(utterance)
            result = self._result(state, claim, utterance, first_position + len(scored) - 1, offset_s)
            if claim.session_id in self.erasures:
                raise LostJobError(claim.job_id)  # erased on this replica: write nothing more of it
            raised = await asyncio.to_thread(self.plugins.on_result, replace(result, audio=waveform, sample_rate=rate))
            if utterance.no_speech and raised:
                # No speech, no emotion: an alert about one would be about the model's answer to noise.
                log.warning("no_speech_alerts_dropped", sources=sorted({a.source for a in raised}), count=len(raised))
                raised = []
            alerts.extend(raised)
            progress.advance((FINDING_SHARE + (1 - FINDING_SHARE) * segment.end / max(1, len(track))) * part_s)
            await progress.save()
        return scored

    async def _score_windows(self, state: Any, claim: Claim, waveform: np.ndarray, rate: int) -> list[np.ndarray]:
        """The score rows of an utterance's windows (one window when it is short), at background priority."""
        window = round(self.settings.window_s * rate)
        hop = round(self.settings.hop_s * rate)
        if len(waveform) <= window:
            starts = [0]
        else:
            starts = list(range(0, len(waveform) - window, hop)) + [len(waveform) - window]
        rows: list[np.ndarray] = []
        for first in range(0, len(starts), self.settings.job_max_in_flight):
            futures = []
            for start in starts[first : first + self.settings.job_max_in_flight]:
                piece = await asyncio.to_thread(
                    self.plugins.preprocess,
                    waveform[start : start + window],
                    rate,
                    {"session_id": claim.session_id, "job_id": claim.job_id, "stage": "serve"},
                )
                futures.append(state.batcher.submit(piece, background=True))
            rows.extend(await asyncio.gather(*futures))
        return rows

    def _result(self, state: Any, claim: Claim, u: ScoredUtterance, position: int, offset_s: float) -> Result:
        return Result(
            session_id=claim.session_id,
            request_id=claim.job_id,
            kind="utterance",
            label=u.label,
            scores=u.scores,
            start_s=offset_s + u.start_s,
            end_s=offset_s + u.end_s,
            index=position,
            model_name=state.backend.info.name,
            metadata=claim.metadata,
            channel=u.channel,
            speaker=u.speaker,
            no_speech=u.no_speech,
            voiced_fraction=u.voiced_fraction,
        )

    def _source(self, claim: Claim, position: int, recording: dict[str, Any]) -> bytes | Path:
        if recording.get("path"):
            return Path(recording["path"])
        content = self.queue.content(claim.job_id, position)
        if content is None:
            raise JobInputError(f"recording {position} ({recording['name']!r}) is missing from the job queue")
        return content

    def _decode(self, source: bytes | Path, channel: int | None, rate: int) -> np.ndarray:
        """One channel of the recording (``channel``), or all of them mixed to mono (None)."""
        if channel is not None:
            return audio.decode_channel(source, rate, self.limits, channel).waveform
        if isinstance(source, bytes):
            return audio.decode_content(source, rate, self.limits).waveform
        return audio.decode_file(source, rate, self.limits).waveform


class JobInputError(ValueError):
    """A job's recording cannot be read; the message says which and why."""


class _Progress:
    """A running job's progress, saved (renewing the lease) at most every :data:`PROGRESS_S` (and every
    third of the lease) unless forced."""

    def __init__(self, runner: JobRunner, claim: Claim) -> None:
        self.runner = runner
        self.claim = claim
        self.audio_s = 0.0
        self.parts: dict[str, Any] = dict(claim.parts)
        self.alerts: list[Alert] = []  # raised so far (finished parts' included), handed on at the end
        self._finished_s = 0.0  # seconds in finished parts
        self._skipped_s = 0.0  # of which finished by an earlier attempt
        self._current_s = 0.0  # seconds done of the part in progress
        self._saved_at = 0.0

    @property
    def done_s(self) -> float:
        return self._finished_s + self._current_s

    def advance(self, part_done_s: float) -> None:
        self._current_s = part_done_s

    def finish_part(self, part_s: float, skipped: bool) -> None:
        self._finished_s += part_s
        self._skipped_s += part_s if skipped else 0.0
        self._current_s = 0.0

    async def save(self, force: bool = False) -> None:
        """Writes progress; raises :class:`LostJobError` when the job is no longer this worker's."""
        lease_s = self.runner.settings.job_lease_s
        if not force and time.monotonic() - self._saved_at < min(PROGRESS_S, lease_s / 3):
            return
        try:
            held = await asyncio.to_thread(
                self.runner.queue.progress,
                self.claim,
                lease_s,
                self.done_s,
                self.done_s - self._skipped_s,
                self.audio_s,
                self.parts,
            )
        except Exception as exc:
            # A database blip: saved every second, a write that fails is tried again at the next one
            # while the lease surely holds (its last renewal less than a third of it ago).
            if force or time.monotonic() - self._saved_at >= lease_s / 3:
                raise
            log.warning("job_progress_not_saved", error=str(exc), retry_in_s=PROGRESS_S)
            return
        if not held:
            raise LostJobError(self.claim.job_id)
        self._saved_at = time.monotonic()

    async def saving_while(self, work: Awaitable[T]) -> T:
        """``work``'s result (a step run on a thread: finding speech, speakers), saving progress every
        :data:`PROGRESS_S` meanwhile, so that the page moves and the lease is renewed however long it takes."""
        task = asyncio.ensure_future(work)
        try:
            while not (await asyncio.wait({task}, timeout=PROGRESS_S))[0]:
                await self.save()
        except BaseException:
            # A thread cannot be stopped: the worker waits for the step to end before it moves on (to
            # another job, whose step would queue behind this one and hold two tracks at once).
            await asyncio.wait({task})
            task.add_done_callback(lambda t: t.cancelled() or t.exception())  # its outcome: nobody's now
            raise
        return task.result()


def _alerts_key(part: str) -> str:
    """Where a finished part's alerts are kept in the job's ``parts``, next to its utterances."""
    return f"alerts/{part}"


def _duration(source: bytes | Path, limits: audio.AudioLimits) -> float:
    """A recording's length from its header, before it is decoded (0 when the header does not say)."""
    try:
        return audio.probe(source, limits).duration_s
    except OSError as exc:
        raise JobInputError(f"cannot read {source}: {exc.strerror}") from None


def hand_over_payload(job: JobSummary, alerts: list[Alert]) -> dict[str, Any]:
    """A job's end as JSON, written with the end (:meth:`JobQueue.finish`) until it is handed on. The
    fields every utterance shares (its session, job, model and the job's metadata) are written once."""
    summary = {f.name: getattr(job, f.name) for f in dataclasses.fields(job) if f.name != "utterances"}
    kept = [f.name for f in dataclasses.fields(Result) if f.name not in ("audio", "sample_rate")]
    rows = [{name: getattr(result, name) for name in kept} for result in job.utterances]
    shared = {name: rows[0][name] for name in _SHARED if rows and all(row[name] == rows[0][name] for row in rows)}
    return {
        "job": {**summary, "recordings": list(job.recordings), "metadata": dict(job.metadata)},
        "shared": shared,
        "utterances": [{k: v for k, v in row.items() if k not in shared} for row in rows],
        "alerts": [dataclasses.asdict(alert) for alert in alerts],
    }


def from_hand_over_payload(payload: dict[str, Any]) -> tuple[JobSummary, list[Alert]]:
    """The job's end and alerts back from :func:`hand_over_payload`'s JSON."""
    job = dict(payload["job"])
    job["recordings"] = tuple(job["recordings"])
    shared = payload.get("shared", {})
    utterances = tuple(Result(**{**shared, **u}) for u in payload["utterances"])
    return JobSummary(**job, utterances=utterances), [Alert(**a) for a in payload["alerts"]]
