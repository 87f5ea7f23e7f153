"""No speech, no emotion: noise, tones, music and near-silence get `no_speech` at every door, on a
real server on loopback with a real (tiny) HuBERT; speech, quiet speech included, is still scored.

Every door asks one detector (Silero VAD, `emotion_service.speech_presence`). A plugin here raises
an alert for every result, so a result without speech that reached the alert path would show.
"""

from __future__ import annotations

import asyncio
import threading
from dataclasses import replace
from pathlib import Path
from typing import Any

import librosa
import numpy as np
import pytest

from emotion_client.v1 import emotion_pb2 as pb
from emotion_service.degradations import coloured_noise
from emotion_service.plugins import Alert, Result, hookimpl
from emotion_service.plugins.builtin.threshold_alerts import ThresholdAlerts, ThresholdAlertsConfig
from emotion_service.plugins.manager import build_host
from emotion_service.plugins.types import SessionSummary
from emotion_service.segmentation import Segment
from emotion_service.speech_presence import SpeechDetector
from tests.conftest import LABELS, load_mono, recordings
from tests.plugin_helpers import run_stream, serving, settle, stream_requests
from tests.test_jobs_api import wav_bytes

RATE = 16_000
# The test-actor clip Silero hears worst once quiet (tests/data/README.md).
QUIET = Path(__file__).parent / "data" / "quiet" / "03-01-06-02-02-02-20.flac"
pytestmark = pytest.mark.timeout(300)


def at_dbfs(wave: np.ndarray, dbfs: float) -> np.ndarray:
    """``wave`` scaled to an RMS of ``dbfs`` (0 dBFS: RMS 1)."""
    wave = np.asarray(wave, np.float64)
    return (wave * 10 ** (dbfs / 20) / np.sqrt(np.mean(wave**2))).astype(np.float32)


def chord_sequence(seconds: float = 3.0) -> np.ndarray:
    """C, G, Am, F major triads of 0.75 s each, faded in and out over 20 ms, as a keyboard plays them."""
    chords = [(261.63, 329.63, 392.0), (196.0, 246.94, 293.66), (220.0, 261.63, 329.63), (174.61, 220.0, 261.63)]
    t = np.arange(int(0.75 * RATE)) / RATE
    fade = np.minimum(1.0, np.minimum(t, t[::-1]) / 0.02)
    played = [sum(np.sin(2 * np.pi * f * t) for f in chords[i % 4]) * fade for i in range(int(seconds / 0.75) + 1)]
    return np.concatenate(played)[: int(seconds * RATE)]


def not_speech(seconds: float = 3.0, seed: int = 0) -> dict[str, np.ndarray]:
    """Sounds that are no speech, at unit level: noise of three colours, a tone, an AM tone, chords."""
    rng = np.random.default_rng(seed)
    n, t = int(seconds * RATE), np.arange(int(seconds * RATE)) / RATE
    return {
        "white": coloured_noise(n, "white", rng),
        "pink": coloured_noise(n, "pink", rng),
        "brown": coloured_noise(n, "brown", rng),
        "tone-440": np.sin(2 * np.pi * 440 * t),
        "am-1k": np.sin(2 * np.pi * 1000 * t) * (1 + np.sin(2 * np.pi * 4 * t)) / 2,  # 4 Hz, a syllable rate
        "chords": chord_sequence(seconds),
    }


def raw(wave: np.ndarray) -> pb.ClassifyRequest:
    fmt = pb.PcmFormat(encoding=pb.PCM_ENCODING_F32LE, sample_rate=RATE, channels=1)
    return pb.ClassifyRequest(audio=pb.Audio(raw=pb.RawAudio(data=wave.astype("<f4").tobytes(), format=fmt)))


def speech_only(path: Path) -> np.ndarray:
    """A clip without its lead-in and tail of silence."""
    trimmed, _ = librosa.effects.trim(load_mono(path), top_db=30)
    return trimmed


def level_dbfs(wave: np.ndarray) -> float:
    return float(10 * np.log10(np.mean(np.square(wave, dtype=np.float64))))


class Shouter:
    """Raises an alert for every result, whatever it holds; records what the hooks saw."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.results: list[Result] = []
        self.alerts: list[Alert] = []
        self.summaries: list[SessionSummary] = []

    @hookimpl
    def on_result(self, result: Result) -> list[Alert]:
        with self.lock:
            self.results.append(replace(result, audio=None))
        return [Alert(kind="shout", message="every result", time_s=result.end_s, source="shouter")]

    @hookimpl
    def on_alert(self, alert: Alert, session_id: str) -> None:
        with self.lock:
            self.alerts.append(alert)

    @hookimpl
    def on_session_end(self, summary: SessionSummary) -> None:
        with self.lock:
            self.summaries.append(summary)


def host(shouter: Shouter) -> Any:
    """The shouter, and threshold alerts that fire for any scored result (each score is over 0.01)."""
    everything = ThresholdAlertsConfig(thresholds=dict.fromkeys(LABELS, 0.01), hysteresis=0.0, smoothing_windows=1)
    return build_host({"threshold_alerts": ThresholdAlerts(everything), "shouter": shouter})


class CountingSubmits:
    """Counts what reaches the model's batcher."""

    def __init__(self, submit: Any) -> None:
        self.submit, self.calls = submit, 0

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        self.calls += 1
        return self.submit(*args, **kwargs)


async def test_classify_claims_no_emotion_for_noise_tones_music_and_near_silence(tiny_model: Path) -> None:
    shouter = Shouter()
    cases = {f"{name} {db} dBFS": at_dbfs(wave, db) for name, wave in not_speech().items() for db in (-20, -40)}
    cases["near-silence 1e-4 RMS"] = at_dbfs(coloured_noise(3 * RATE, "white", np.random.default_rng(1)), -80)
    async with serving(tiny_model, host(shouter)) as (server, stub):
        state = server.servicer.state
        assert state is not None
        counting = CountingSubmits(state.batcher.submit)
        state.batcher.submit = counting  # type: ignore[method-assign]
        for name, wave in cases.items():
            reply = await stub.Classify(raw(wave), timeout=30)
            assert reply.no_speech, f"{name}: answered {reply.label} as if it were speech"
            assert reply.label == "" and not reply.scores and not reply.alerts, name
            assert 0.0 <= reply.voiced_fraction < 0.1 and reply.duration_s == pytest.approx(3.0), name
        await settle(server)
    assert counting.calls == 0, "the model was asked about audio without speech"
    assert len(shouter.results) == len(cases) and all(r.no_speech and r.label == "" for r in shouter.results)
    assert all(r.scores == {} and r.voiced_fraction is not None for r in shouter.results)
    assert shouter.alerts == [], "an alert fired for a recording without speech"


async def test_speech_is_scored_with_its_voiced_fraction_also_at_minus_50_dbfs(tiny_model: Path) -> None:
    shouter = Shouter()
    clip, hard = load_mono(recordings()[0]), load_mono(QUIET)
    async with serving(tiny_model, host(shouter)) as (server, stub):
        for wave in (clip, at_dbfs(clip, -50.0), hard, at_dbfs(hard, -50.0)):
            reply = await stub.Classify(raw(wave), timeout=30)
            assert not reply.no_speech, f"speech at {level_dbfs(wave):.0f} dBFS was taken for no speech"
            assert reply.label in LABELS and len(reply.scores) == len(LABELS)
            assert 0.0 < reply.voiced_fraction < 1.0, "the clips have pauses before and after their sentence"
            assert {a.source for a in reply.alerts} == {"threshold_alerts", "shouter"}, "speech still raises alerts"
        await settle(server)
    assert [r.no_speech for r in shouter.results] == [False] * 4


async def test_a_streams_noise_only_windows_are_no_speech(tiny_model: Path) -> None:
    shouter = Shouter()
    clips = [speech_only(path) for path in recordings()[:4]]
    first, second = np.concatenate(clips[:2]), np.concatenate(clips[2:])  # four sentences, two each side
    noise = at_dbfs(coloured_noise(6 * RATE, "pink", np.random.default_rng(2)), level_dbfs(first))  # as loud as the speech
    wave = np.concatenate([first, noise, second])
    noise_from, noise_to = len(first) / RATE, (len(first) + len(noise)) / RATE
    async with serving(tiny_model, host(shouter), window_s=2.0, hop_s=1.0) as (server, stub):
        responses = await run_stream(stub, stream_requests(wave, "noisy-line"))
        await settle(server)
    windows = [r.window for r in responses if r.HasField("window")]
    inside = [w for w in windows if w.start_s >= noise_from and w.end_s <= noise_to]
    assert len(inside) >= 3, "windows lie wholly inside the noise"
    for w in inside:
        assert w.no_speech and w.silent and not w.skipped, f"window {w.index} of noise answered {w.label}"
        assert w.label == "" and not w.scores and w.voiced_fraction < 0.1
    spoken = [w for w in windows if w.end_s <= noise_from or w.start_s >= noise_to]
    assert spoken and all(not w.no_speech and not w.silent and w.label in LABELS for w in spoken)
    assert all(w.silent == w.no_speech for w in windows), "silent and no_speech always agree"
    quiet_ends = {round(w.end_s, 3) for w in windows if w.no_speech}
    alerts = [r.alert for r in responses if r.HasField("alert")]
    assert alerts and not [a for a in alerts if round(a.time_s, 3) in quiet_ends], "an alert for a window without speech"
    assert not [a for a in shouter.alerts if round(a.time_s, 3) in quiet_ends], "on_alert heard of a window without speech"
    summary = responses[-1].summary
    assert summary.window_count == sum(not w.no_speech for w in windows), "the summary counts windows with speech"
    assert sum(s.score for s in summary.shares) == pytest.approx(1.0)
    # The plugins see every window, those without speech marked, and the session's summary counts only speech.
    assert sorted(r.index for r in shouter.results if r.no_speech) == sorted(w.index for w in windows if w.no_speech)
    (ended,) = shouter.summaries
    assert len(ended.results) == len(windows) and ended.window_count == summary.window_count


def noisy_interview() -> tuple[np.ndarray, float, float]:
    """1 s of pause, a sentence, 3 s of white noise as loud as it, another sentence, 1 s of pause;
    with where the noise lies (seconds)."""
    first, second = speech_only(recordings()[0]), speech_only(recordings()[3])
    pause = np.zeros(RATE, np.float32)
    noise = at_dbfs(coloured_noise(3 * RATE, "white", np.random.default_rng(3)), level_dbfs(first))
    start = (len(pause) + len(first)) / RATE
    return np.concatenate([pause, first, noise, second, pause]), start, start + len(noise) / RATE


async def run_job(stub: Any, wave: np.ndarray) -> pb.Job:
    job = await stub.SubmitJob(pb.SubmitJobRequest(recordings=[pb.Recording(name="noisy.wav", content=wav_bytes(wave))]))
    *_, final = [update async for update in stub.WatchJob(pb.WatchJobRequest(job_id=job.job_id), timeout=120)]
    assert final.state == pb.JOB_STATE_SUCCEEDED, final.error
    return final


async def test_a_job_claims_no_emotion_for_a_noise_only_stretch(tiny_model: Path) -> None:
    wave, noise_from, noise_to = noisy_interview()
    async with serving(tiny_model, build_host({})) as (_, stub):
        job = await run_job(stub, wave)
    assert len(job.utterances) >= 2, "one utterance at least for each sentence"
    for u in job.utterances:
        overlap = min(u.end_s, noise_to) - max(u.start_s, noise_from)
        assert overlap < 0.5, f"an utterance {u.start_s}-{u.end_s} s covers the noise ({u.label})"
        assert not u.no_speech and u.label in LABELS and len(u.scores) == len(LABELS) and u.window_count >= 1
        assert 0.0 < u.voiced_fraction <= 1.0


async def test_a_job_that_hears_no_speech_ends_a_jobs_session(tiny_model: Path) -> None:
    """Five seconds of silence: no utterance to tell the session by, and its end still says it was a
    job's (the store lists it under jobs, not streams)."""
    shouter = Shouter()
    async with serving(tiny_model, build_host({"shouter": shouter})) as (_, stub):
        job = await run_job(stub, np.zeros(5 * RATE, np.float32))
        deadline = asyncio.get_running_loop().time() + 10
        while not shouter.summaries and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.05)
    assert list(job.utterances) == []
    assert [(s.session_id, s.kind) for s in shouter.summaries] == [(job.session_id, "job")]


class NoiseToo:
    """The real segmenter's utterances plus one over the noise, as an energy-based segmenter (or a
    more permissive threshold) would cut it."""

    def __init__(self, segmenter: Any, start_s: float, end_s: float) -> None:
        self.segmenter, self.start_s, self.end_s = segmenter, start_s, end_s

    def segments(self, waveform: np.ndarray, sample_rate: int, channel: int = 0, **options: Any) -> list[Segment]:
        found = self.segmenter.segments(waveform, sample_rate, channel, **options)
        noise = Segment(channel, round(self.start_s * sample_rate), round(self.end_s * sample_rate))
        return sorted([*found, noise], key=lambda s: s.start)


async def test_a_job_utterance_without_speech_is_kept_without_an_emotion(tiny_model: Path) -> None:
    shouter = Shouter()
    wave, noise_from, noise_to = noisy_interview()
    async with serving(tiny_model, host(shouter)) as (server, stub):
        runner = server.job_runner
        runner._segmenter = NoiseToo(runner.segmenter, noise_from + 0.2, noise_to - 0.2)  # type: ignore[assignment]
        job = await run_job(stub, wave)
        await settle(server)
    quiet = [u for u in job.utterances if u.no_speech]
    assert len(quiet) == 1, [(u.start_s, u.end_s, u.label) for u in job.utterances]
    (u,) = quiet
    assert u.start_s == pytest.approx(noise_from + 0.2, abs=0.01) and u.end_s == pytest.approx(noise_to - 0.2, abs=0.01)
    assert u.label == "" and not u.scores and u.window_count == 0 and u.voiced_fraction < 0.1
    assert all(v.label in LABELS and v.voiced_fraction > 0 for v in job.utterances if not v.no_speech)
    stored = [r for r in shouter.results if r.no_speech]
    assert [(r.kind, r.label, r.scores) for r in stored] == [("utterance", "", {})]
    assert not [a for a in shouter.alerts if a.time_s == pytest.approx(stored[0].end_s)], "an alert for noise"
    (ended,) = shouter.summaries
    assert ended.window_count == len(job.utterances) - 1, "the session's summary counts utterances with speech"


def test_the_detector_is_level_invariant_and_safe_to_share_between_threads() -> None:
    detector = SpeechDetector()
    clip = load_mono(recordings()[0])
    verdicts = [detector.presence(at_dbfs(clip, db), RATE) for db in (-10, -30, -50, -60)]
    assert all(not v.no_speech for v in verdicts)
    assert max(v.voiced_fraction for v in verdicts) - min(v.voiced_fraction for v in verdicts) < 0.05
    assert detector.presence(np.zeros(3 * RATE, np.float32), RATE).no_speech, "digital silence"
    assert detector.presence(np.zeros(0, np.float32), RATE).no_speech
    # Each call starts from a fresh state: answers do not depend on what ran before or beside it.
    noise = at_dbfs(coloured_noise(3 * RATE, "pink", np.random.default_rng(4)), -30)
    alone = [detector.presence(x, RATE) for x in (clip, noise)]

    async def together() -> list[Any]:
        return await asyncio.gather(*(asyncio.to_thread(detector.presence, x, RATE) for x in [clip, noise] * 4))

    assert asyncio.run(together()) == alone * 4


def test_job_segmentation_finds_quiet_speech_as_it_finds_loud_speech() -> None:
    # A job's recording made quiet (a far party, a low recording level): the segmenter levels the
    # track before Silero hears it, so the speech it finds is the loud recording's.
    from emotion_service.segmentation import Segmenter

    clips = sorted((Path(__file__).parent / "data").glob("*.flac"))[:6]
    pause = np.zeros(RATE // 2, np.float32)
    wave = np.concatenate([part for clip in clips for part in (load_mono(clip), pause)])
    segmenter = Segmenter()

    def found_s(track: np.ndarray) -> float:
        return sum(s.end - s.start for s in segmenter.segments(track, RATE)) / RATE

    loud = found_s(at_dbfs(wave, -20))
    for dbfs in (-50, -60):
        assert abs(found_s(at_dbfs(wave, dbfs)) - loud) < 0.3, dbfs
