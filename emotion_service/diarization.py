"""Speaker diarization of one-channel recordings: who speaks in each utterance ("S1", "S2", ...).

Built on what the job already has, the voice-activity segments (:mod:`emotion_service.segmentation`):

1. **Embeddings.** Every segment is cut into sub-windows of ``window_s`` (1.6 s: one 160-frame
   partial of the encoder), ``hop_s`` apart; each is embedded by the pretrained GE2E speaker
   encoder that the ``resemblyzer`` wheel ships (loaded as :class:`emotion_service.tuning.teacher.
   SpeakerEncoder` does, without importing resemblyzer). A segment shorter than a window is one window.
2. **Speaker changes** inside a segment (two parties with a short pause between them are one VAD
   segment): where the cosine similarity of consecutive sub-windows drops below
   ``change_threshold``, the segment is cut, at the quietest 10 ms within the two windows' overlap.
3. **Clustering** of the pieces (each the normalised mean of its sub-windows' embeddings) by
   scikit-learn's k-means, weighted by duration: into ``num_speakers`` when given; otherwise into
   the most clusters (up to ``max_speakers``) whose centroids all stay less similar than
   ``same_speaker_similarity``, one speaker when two clusters already are. (The silhouette over
   k = 1..6 was tried first: on actors 01-18 one speaker alone scored as high as two, so it could not
   tell them apart.)

Speakers are named in order of first appearance: the first to speak is "S1". Labels are per
recording (each recording of a job is diarized on its own). The thresholds were tuned on RAVDESS
training actors 01-18 only (``bench/diarization.py --tune``); its test actors 19-24 only measure.

:func:`diarization_error_rate` scores a hypothesis against a reference (missed speech, false alarm
and speaker confusion over the reference's speech, with a collar around its boundaries).
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np
import soxr

from emotion_service.segmentation import Segment

ENCODER_RATE = 16_000
MAX_SPEAKERS = 6  # the most speakers told apart in one recording


@dataclass(frozen=True)
class DiarizationSettings:
    """How speakers are found; the thresholds were tuned on RAVDESS actors 01-18."""

    # The pause the segments were cut at (:meth:`Segmenter.segments` ``min_silence_s``): shorter than
    # the job's, so that one party handing over to the other after a short pause makes two segments.
    min_silence_s: float = 0.15
    # Sub-windows for change detection inside long segments: one 160-frame encoder partial each.
    window_s: float = 1.6
    hop_s: float = 0.4
    # Adjacent (non-overlapping) sub-windows less similar than this mark a speaker change.
    change_threshold: float = 0.6
    max_speakers: int = MAX_SPEAKERS
    # Without a given count: the most clusters whose centroids all stay less similar than this (cosine);
    # one speaker when two already are more similar. Tuned on actors 01-18: k=2 centroids of a man and
    # a woman 0.65-0.68, of one speaker alone 0.72-0.81 (same-gender pairs overlap the latter: give the count).
    same_speaker_similarity: float = 0.70
    # A third and further speaker needs centroids further apart (one actor's emotions alone split
    # below 0.70). Not tuned on data with three or more speakers: give the count when it is known.
    more_speakers_similarity: float = 0.55


@dataclass(frozen=True)
class Turn:
    """A stretch of one speaker's speech, in seconds (a reference or a hypothesis for scoring)."""

    start_s: float
    end_s: float
    speaker: str


@dataclass
class Embedded:
    """A track's segments with the embeddings of their sub-windows (:meth:`Diarizer.embed`)."""

    segments: tuple[Segment, ...]
    windows: list[list[tuple[int, int]]]  # per segment: its sub-windows (long segments only), encoder samples
    embeddings: list[np.ndarray]  # per segment: (windows, 256)
    track: np.ndarray
    scale: float
    pieces: dict[tuple[int, int], np.ndarray]  # embeddings of whole pieces, by span in encoder samples


class Diarizer:
    """Labels the voice-activity segments of one mono track with speakers; safe to share between threads."""

    def __init__(self, settings: DiarizationSettings | None = None) -> None:
        from emotion_service.speaker_encoder import SpeakerEncoder

        self.settings = settings or DiarizationSettings()
        self._encoder = SpeakerEncoder.from_wheel()
        self._lock = threading.Lock()

    def diarize(
        self,
        waveform: np.ndarray,
        sample_rate: int,
        segments: Sequence[Segment],
        num_speakers: int = 0,
        join_gap_s: float = 0.0,
        max_utterance_s: float = float("inf"),
    ) -> list[Segment]:
        """Speech segments (cut at pauses of ``settings.min_silence_s``) as utterances with their
        ``speaker`` ("S1", ...), in order: cut where the speaker changes, clustered into speakers, and
        consecutive segments of one speaker less than ``join_gap_s`` apart joined again (up to
        ``max_utterance_s``). ``num_speakers``: how many speakers there are; 0 finds out (1 to ``max_speakers``).
        """
        labelled = self.label(self.embed(waveform, sample_rate, segments), num_speakers)
        return join(labelled, round(join_gap_s * sample_rate), round(max_utterance_s * sample_rate))

    def embed(self, waveform: np.ndarray, sample_rate: int, segments: Sequence[Segment]) -> Embedded:
        """Step 1: the sub-window embeddings of the segments long enough to hold a change."""
        s = self.settings
        segments = sorted(segments, key=lambda seg: seg.start)
        track = waveform if sample_rate == ENCODER_RATE else soxr.resample(waveform, sample_rate, ENCODER_RATE)
        scale = ENCODER_RATE / sample_rate
        window, hop = round(s.window_s * ENCODER_RATE), round(s.hop_s * ENCODER_RATE)
        spans: list[list[tuple[int, int]]] = []
        for segment in segments:
            start, end = round(segment.start * scale), round(segment.end * scale)
            long = end - start >= 2 * window
            spans.append([(a, a + window) for a in range(start, end - window + 1, hop)] if long else [])
        flat = [track[a:b] for windows in spans for a, b in windows]
        vectors = self._embed(flat, track) if flat else np.zeros((0, 256), np.float32)
        per_segment, at = [], 0
        for windows in spans:
            per_segment.append(vectors[at : at + len(windows)])
            at += len(windows)
        return Embedded(tuple(segments), spans, per_segment, track, scale, {})

    def label(self, embedded: Embedded, num_speakers: int = 0) -> list[Segment]:
        """Steps 2 and 3: cuts at speaker changes, then clusters the pieces into speakers."""
        if num_speakers < 0:
            raise ValueError(f"num_speakers={num_speakers}: give a count, or 0 to find out how many")
        pieces: list[Segment] = []
        for segment, windows, vectors in zip(embedded.segments, embedded.windows, embedded.embeddings, strict=True):
            pieces.extend(self._split(segment, windows, vectors, embedded.scale))
        spans = [(round(p.start * embedded.scale), round(p.end * embedded.scale)) for p in pieces]
        missing = [span for span in spans if span not in embedded.pieces]
        if missing:
            found = self._embed([embedded.track[a:b] for a, b in missing], embedded.track)
            embedded.pieces.update(zip(missing, found, strict=True))
        labels = cluster(
            [embedded.pieces[span] for span in spans], [b - a for a, b in spans], num_speakers, self.settings
        )
        return [replace(piece, speaker=name) for piece, name in zip(pieces, labels, strict=True)]

    def _embed(self, clips: list[np.ndarray], track: np.ndarray) -> np.ndarray:
        with self._lock:
            return self._encoder.embed(clips)

    def _split(
        self, segment: Segment, windows: list[tuple[int, int]], vectors: np.ndarray, scale: float
    ) -> list[Segment]:
        """The segment cut where adjacent, non-overlapping sub-windows differ most (below the threshold)."""
        s = self.settings
        apart = round(s.window_s / s.hop_s)  # window j - apart ends where window j starts
        scores = {
            windows[j][0]: float(vectors[j - apart] @ vectors[j]) for j in range(apart, len(windows))
        }  # boundary (encoder samples) -> similarity of the windows either side
        cuts: list[int] = []
        for boundary, score in sorted(scores.items(), key=lambda item: item[1]):
            if score >= s.change_threshold:
                break
            if all(abs(boundary - c) >= round(s.window_s * ENCODER_RATE) for c in cuts):
                cuts.append(boundary)
        bounds = [segment.start, *sorted(min(segment.end, round(c / scale)) for c in cuts), segment.end]
        return [replace(segment, start=a, end=b) for a, b in zip(bounds, bounds[1:], strict=False)]


def join(segments: Sequence[Segment], gap: int, longest: int) -> list[Segment]:
    """Consecutive segments of one speaker less than ``gap`` samples apart as one (up to ``longest``)."""
    joined: list[Segment] = []
    for segment in segments:
        last = joined[-1] if joined else None
        if (
            last is not None
            and last.speaker == segment.speaker
            and last.channel == segment.channel
            and segment.start - last.end < gap
            and segment.end - last.start <= longest
        ):
            joined[-1] = replace(last, end=segment.end)
        else:
            joined.append(segment)
    return joined


def cluster(
    embeddings: Sequence[np.ndarray],
    weights: Sequence[float],
    num_speakers: int,
    settings: DiarizationSettings | None = None,
) -> list[str]:
    """Speaker labels ("S1" first to appear) of unit-norm embeddings, by k-means weighted by ``weights``.

    ``num_speakers`` 0: the count is chosen by centroid similarity (see :class:`DiarizationSettings`).
    """
    from sklearn.cluster import KMeans

    s = settings or DiarizationSettings()
    points = np.asarray(embeddings, dtype=np.float64)
    weight = np.asarray(weights, dtype=np.float64)
    if len(points) == 0:
        return []

    def fit(k: int) -> tuple[np.ndarray, float]:
        """Assignment into k clusters and the highest cosine similarity between two of their centroids."""
        km = KMeans(n_clusters=k, n_init=10, random_state=0).fit(points, sample_weight=weight)
        centres = km.cluster_centers_ / np.maximum(np.linalg.norm(km.cluster_centers_, axis=1, keepdims=True), 1e-9)
        return km.labels_, float((centres @ centres.T)[np.triu_indices(k, 1)].max())

    distinct = len(np.unique(points.round(6), axis=0))
    assignment = np.zeros(len(points), int)
    if num_speakers > 0:
        if distinct > 1 and num_speakers > 1:
            assignment = fit(min(num_speakers, distinct))[0]
    else:
        for k in range(2, min(s.max_speakers, distinct) + 1):
            candidate, closest = fit(k)
            if closest >= (s.same_speaker_similarity if k == 2 else s.more_speakers_similarity):
                break
            assignment = candidate
    names: dict[int, str] = {}
    for label in assignment:
        names.setdefault(int(label), f"S{len(names) + 1}")
    return [names[int(label)] for label in assignment]


def diarization_error_rate(
    reference: Sequence[Turn], hypothesis: Sequence[Turn], collar_s: float = 0.25, step_s: float = 0.01
) -> dict[str, float]:
    """The diarization error rate of ``hypothesis`` against ``reference`` and its parts.

    Frames of ``step_s``; frames within ``collar_s`` of a reference turn's start or end are not
    scored. Per frame, with N_ref and N_hyp speakers talking and N_correct of them matched by the
    one-to-one speaker mapping that maximises the matched time: missed max(0, N_ref - N_hyp), false
    alarm max(0, N_hyp - N_ref), confusion min(N_ref, N_hyp) - N_correct. Each is returned as a
    share of the scored reference speech (``der`` their sum), with ``speech_s`` that speech.
    """
    from scipy.optimize import linear_sum_assignment

    end = max([t.end_s for t in (*reference, *hypothesis)], default=0.0)
    frames = int(np.ceil(end / step_s)) + 1
    scored = np.ones(frames, bool)
    for turn in reference:
        for edge in (turn.start_s, turn.end_s):
            scored[max(0, int((edge - collar_s) / step_s)) : int(np.ceil((edge + collar_s) / step_s))] = False

    def activity(turns: Sequence[Turn]) -> tuple[list[str], np.ndarray]:
        names = sorted({t.speaker for t in turns})
        active = np.zeros((len(names), frames), bool)
        for t in turns:
            active[names.index(t.speaker), int(round(t.start_s / step_s)) : int(round(t.end_s / step_s))] = True
        return names, active[:, scored]

    _, ref = activity(reference)
    _, hyp = activity(hypothesis)
    n_ref, n_hyp = ref.sum(axis=0), hyp.sum(axis=0)
    overlap = ref.astype(np.int64) @ hyp.T.astype(np.int64)  # frames each (ref, hyp) pair shares
    rows, cols = linear_sum_assignment(-overlap) if overlap.size else ([], [])
    correct = int(overlap[rows, cols].sum()) if len(rows) else 0
    total = max(int(n_ref.sum()), 1)
    missed = int(np.maximum(0, n_ref - n_hyp).sum())
    false_alarm = int(np.maximum(0, n_hyp - n_ref).sum())
    confusion = int(np.minimum(n_ref, n_hyp).sum()) - correct
    return {
        "der": (missed + false_alarm + confusion) / total,
        "missed": missed / total,
        "false_alarm": false_alarm / total,
        "confusion": confusion / total,
        "speech_s": n_ref.sum() * step_s,
    }
