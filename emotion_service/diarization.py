"""Speaker diarization of one-channel recordings: who speaks in each utterance ("S1", "S2", ...).

Built on what the job already has, the voice-activity segments (:mod:`emotion_service.segmentation`):

1. **Pieces.** Every segment long enough to hold two windows is cut into sub-windows of ``window_s``
   (1.6 s: one 160-frame partial of the encoder), ``hop_s`` apart; each is embedded by the pretrained
   GE2E speaker encoder that the ``resemblyzer`` wheel ships (:class:`emotion_service.speaker_encoder.
   SpeakerEncoder`). Where the cosine similarity of adjacent, non-overlapping sub-windows drops below
   ``change_threshold`` the segment is cut (two parties with a short pause between them are one VAD
   segment). Each piece is then embedded whole (a piece shorter than a window is repeated to fill one).
2. **A speaker model (PLDA).** Each 256-d embedding is projected by a two-covariance PLDA model
   (:class:`Plda`): 50 dimensions in which the spread of one speaker's pieces (emotions, intensity,
   sentences, noise) is the identity and the spread between speakers is ``diag(psi)``. It was fitted
   on the VAD pieces of conversations of RAVDESS training actors 01-18, clean and with white noise at
   10 dB (``bench/diarization.py --tune --seeds 6 --write-backend``), and ships at the end of this module.
3. **Clustering** by agglomeration on the PLDA likelihood: every piece starts as its own cluster, and
   the two clusters whose merge gains the most log-likelihood (same speaker against two) are merged,
   while that gain stays above ``-merge_threshold`` (down to ``num_speakers`` clusters when the count is
   given, and never more than ``max_speakers``). The clusters are then refined (each piece moved to the
   cluster under which it is most likely, as k-means does), and merged again where the refined
   clusters no longer hold two speakers. When the count is not given, a speaker heard for less than
   ``min_speaker_share`` of the speech is folded into the speaker it is most like.

Speakers are named in order of first appearance: the first to speak is "S1". Labels are per
recording (each recording of a job is diarized on its own). Everything tuned was tuned on RAVDESS
training actors 01-18 only (``bench/diarization.py --tune``); its test actors 19-24 only measure.

Why a speaker model: on RAVDESS one actor's emotions move the GE2E embedding as far as the step from
one speaker to another of the same gender. On actors 01-18 (88 conversations, pieces = VAD segments,
true count given), k-means on the embeddings split two women by loudness (vocal effort) rather than by
speaker: 20 % of their speech confused clean, 42 % at 10 dB, against 1 % and 10 % for the nearest
true centroid; and no statistic of the cosine geometry (centroid similarity, silhouette, BIC in a PCA
subspace, eigengaps) told one speaker alone from two of one gender: the best 2-split of one actor's
emotions lay further apart than two women. What was tried on actors 01-18 (speech given to the wrong
speaker in two-party conversations, the count given; clean / 10 dB):

=======================================================  =========  =========  =========  ============
method                                                   man+woman  two men    two women  counts? (*)
=======================================================  =========  =========  =========  ============
k-means on the piece embeddings (the previous method)    1 / 17 %   8 / 31 %   20 / 42 %  no
spectral clustering (scikit-learn, cosine affinity)      2 / 26 %   10 / 34 %  24 / 43 %  no (eigengap)
agglomerative, average cosine linkage                    13 / 22 %  23 / 37 %  35 / 42 %  --
Gaussian mixture in a 2-d PCA subspace                   1 / 18 %   12 / 27 %  18 / 39 %  no (BIC)
nuisance projection (10 within-speaker directions out)   0 / 20 %   5 / 30 %   5 / 42 %   no
noise spectrum subtracted before the encoder             1 / 17 %   12 / 18 %  27 / 40 %  --
PLDA agglomeration + refinement (this module)            0 / 7 %    6 / 25 %   14 / 32 %  mostly
=======================================================  =========  =========  =========  ============

(*) whether a threshold on the method's own score told one speaker alone from two. The PLDA rows:
264 conversations, each scored with a model fitted without its own actors. Further PLDA variants:
20 dimensions confused two men (20 %), 70 or 100 dimensions counted one speaker alone as two more
often; the within-speaker spread taken per conversation rather than per speaker, or the model fitted
on whole clips rather than on VAD pieces, was worse; subtracting the noise spectrum gave nothing once
the model had seen noisy pieces. With eigengap counts (spectral clustering with p-pruned affinities,
as NME-SC) the counts scattered over 1-6.

``bench/diarization.py --tune --seeds 3`` (actors 01-18, leave-the-conversation's-actors-out models;
diarization error rate with missed speech, clean / 10 dB; the VAD at 0.35 on level-normalised audio)
chose ``merge_threshold`` 15 and ``min_speaker_share`` 0.2 by the mean over the eight cells: a man
and a woman 6.9 / 27.2 %, two men 21.1 / 39.2 %, two women 13.8 / 43.4 %, one speaker alone 7.1 /
15.3 % (mean 21.8 %; without the minimum share, at 12 as before: 22.6 %); the count wrong in 25 of
132 conversations (33 before). The share is capped at 1/(K+1) with K speakers found, so that
several parties who speak alike stay apart (six of a sixth each); on these conversations the cap
changed nothing, where a cap at half of 1/K lost most of the gain (22.2 %). A share of 0.3 scored
lower (21.6 %, 20.8 % at ``merge_threshold`` 12) on conversations where both parties take turns
alike; it is not taken, because an interviewer asking short questions may well speak a quarter of
the time. The VAD threshold and levelling were compared the same way (merge 15, share 0.2; missed
speech at 10 dB, man+woman): 0.5 unlevelled 24.1 %, 0.35 unlevelled 20.8 %, 0.25 unlevelled 18.0 %
(false alarm 0.8 %), 0.35 levelled 17.6 % (0.1 %); mean DER 23.0 / 23.4 / 21.9 / 21.8 %. A lower
exit probability for Silero's hysteresis (0.1 where its default is 0.15 under the threshold) missed
less speech (at 10 dB 14.6 % against 16.8 %, clean 3.7 % against 4.9 %) but let pauses and noise
into pieces: mean DER 21.8 % either way (clean pairs better, noisy pairs worse), so it is not taken. Most of
what is left at 10 dB is missed speech and same-gender pairs counted as one.

Also compared on actors 01-18 and not taken (with six three-party conversations added to the fitting
data; mean over the eight cells above, 21.1 % as shipped): deciding "one speaker or two" on refined
clusters (agglomeration stopped at three, a second speaker kept above a log-likelihood ratio of 8,
a third above 15) gave 19.9 % (two men clean 20.8 to 13.6 %) but split one speaker alone into two in
6 of 36 conversations against 3, and finding one speaker alone is a target; crediting a cluster with
at most a few pieces' evidence (one speaker's pieces are not independent) overcounted everywhere
(39 %); a shared "register" term in the model (a share of the within-speaker spread common to a
cluster's pieces) told one speaker from two worse (at most 106 of 132 right, against 117). At 10 dB, 12 % of
the speech lies in utterances Silero does not detect at all, heard at a median -14 dB SNR (the loud
utterances set the conversation's 10 dB), and even with the count given a man and a woman are
confused over 6 % of the speech there (``bench/diarization.py --count-given``, test actors): both
need a stronger detector and speaker encoder than the wheels here ship.

Long recordings: on 4-minute conversations of actors 01-18 (60 turns; the tune's are about 80 s)
the count not given went wrong in most (mean DER 38 % against 18 % with the count given): with
60 pieces a voice's registers separate by a log-likelihood ratio of 60-160 (about 15 on 12 pieces),
as far as two speakers do on 24, and neither a threshold scaled with the number of pieces nor one
on a ratio computed with each cluster's evidence capped at 6 to 25 pieces told one speaker from two
across both lengths (at best 151 of 176 right). Hence the advice to give the count, which holds
at every length. Whisper-base encoder layers (0-4, mean and spread over time, the whisper-probe's
weights) as the pieces' vectors, with the count given: worse than GE2E alone with 18 training
speakers to fit on (mean 21-23 % against 18.3 %); each in its own PLDA, the two fused: 17.8 %
(clean same-gender pairs better, 10 dB worse), not enough for the encoder's cost.

:func:`diarization_error_rate` scores a hypothesis against a reference (missed speech, false alarm
and speaker confusion over the reference's speech, with a collar around its boundaries).
"""

from __future__ import annotations

import base64
import functools
import threading
import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace

import numpy as np
import soxr

from emotion_service.segmentation import Segment, Segmenter

ENCODER_RATE = 16_000
MAX_SPEAKERS = 6  # the most speakers told apart in one recording


@dataclass(frozen=True)
class DiarizationSettings:
    """How speakers are found; tuned on RAVDESS actors 01-18 (``bench/diarization.py --tune``)."""

    # The pause the segments were cut at (:meth:`Segmenter.segments` ``min_silence_s``): shorter than
    # the job's, so that one party handing over to the other after a short pause makes two segments.
    min_silence_s: float = 0.15
    # Silero's speech probability for those segments (the job's plain segmentation keeps 0.5): speech
    # the detector misses is missed for both parties, and a noise frame let through is one piece
    # among many; on actors 01-18, 0.35 (level-normalised) missed 13.5 % of the speech at 10 dB
    # white noise against 15.9 % at 0.5, with 0.1 % false alarm.
    vad_threshold: float = 0.35
    # Sub-windows for change detection inside long segments: one 160-frame encoder partial each.
    window_s: float = 1.6
    hop_s: float = 0.4
    # Adjacent (non-overlapping) sub-windows less similar than this mark a speaker change.
    change_threshold: float = 0.6
    max_speakers: int = MAX_SPEAKERS
    # Without a given count: two clusters are kept apart when the PLDA log-likelihood ratio of "two
    # speakers" against "one" exceeds this (natural log).
    merge_threshold: float = 15.0
    # Without a given count: a speaker found with less than this share of the recording's speech
    # (at most 1/(K+1) with K speakers found) is merged into the speaker under whom its pieces
    # are most likely. A party of an interview speaks
    # for more than a few seconds; a cluster of two or three pieces is one voice heard in another
    # register (shouting, a whisper) far more often than a third party.
    min_speaker_share: float = 0.2


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


@dataclass(frozen=True)
class Plda:
    """A two-covariance PLDA model of speaker embeddings, in the space where it is diagonal.

    ``(x - mean) @ transform`` makes one speaker's spread (within) the identity and the spread of
    speakers' means (between) ``diag(psi)``; a speaker's pieces are then independent given the speaker.
    """

    mean: np.ndarray  # (256,)
    transform: np.ndarray  # (256, dim)
    psi: np.ndarray  # (dim,)

    def project(self, embeddings: np.ndarray) -> np.ndarray:
        return (np.asarray(embeddings, np.float64) - self.mean) @ self.transform

    def loglik(self, count: np.ndarray | float, total: np.ndarray) -> np.ndarray:
        """Log-likelihood that ``count`` projected pieces summing to ``total`` come from one speaker
        (up to terms that every partition of the same pieces shares)."""
        r = np.asarray(count, np.float64)[..., None] * self.psi
        return np.sum(0.5 * self.psi * total * total / (1 + r) - 0.5 * np.log1p(r), axis=-1)

    @classmethod
    def fit(cls, speakers: Mapping[str, Sequence[np.ndarray]], dim: int = 50, between_floor: float = 0.1) -> Plda:
        """Fitted on ``speakers``: each speaker's embeddings (arrays of them, e.g. one per recording).

        A PCA to ``dim`` dimensions first; the within-speaker scatter is taken about each speaker's mean
        over all its recordings; ``between_floor`` (a share of the mean between-speaker variance) is
        added to every direction, since a few dozen speakers do not span all the ways speakers differ.
        """
        from scipy.linalg import eigh

        everything = np.concatenate([np.concatenate(v) for v in speakers.values()]).astype(np.float64)
        mean = everything.mean(0)
        basis = np.linalg.svd(everything - mean, full_matrices=False)[2][:dim].T
        within, count, centres = np.zeros((dim, dim)), 0, []
        for recordings in speakers.values():
            points = (np.concatenate(recordings).astype(np.float64) - mean) @ basis
            centres.append(points.mean(0))
            within += (points - centres[-1]).T @ (points - centres[-1])
            count += len(points)
        within /= count
        spread = np.asarray(centres) - np.mean(centres, axis=0)
        between = spread.T @ spread / len(spread)
        between += between_floor * np.trace(between) / dim * np.eye(dim)
        psi, vectors = eigh(between, within)  # vectors.T @ within @ vectors = I
        return cls(mean, basis @ vectors, psi)

    def encode(self) -> str:
        """The model as text (base64 of zlib): float32 mean and psi, the transform in int8 per column."""
        scale = np.maximum(np.abs(self.transform).max(0), 1e-12) / 127
        header = np.array(self.transform.shape, np.uint32).tobytes()
        body = [self.mean.astype(np.float32), self.psi.astype(np.float32), scale.astype(np.float32)]
        quantised = np.round(self.transform / scale).astype(np.int8)
        return base64.b64encode(
            zlib.compress(header + b"".join(a.tobytes() for a in body) + quantised.tobytes(), 9)
        ).decode()

    @classmethod
    def decode(cls, text: str) -> Plda:
        raw = zlib.decompress(base64.b64decode("".join(text.split())))
        rows, dim = (int(v) for v in np.frombuffer(raw[:8], np.uint32))
        floats = np.frombuffer(raw[8 : 8 + 4 * (rows + 2 * dim)], np.float32).astype(np.float64)
        mean, psi, scale = floats[:rows], floats[rows : rows + dim], floats[rows + dim :]
        quantised = np.frombuffer(raw[8 + 4 * (rows + 2 * dim) :], np.int8).reshape(rows, dim)
        return cls(mean, quantised * scale, psi)

    @staticmethod
    @functools.cache
    def bundled() -> Plda:
        """The model fitted on RAVDESS actors 01-18 that ships with this module (:data:`BACKEND`)."""
        return Plda.decode(BACKEND)


class Diarizer:
    """Labels the voice-activity segments of one mono track with speakers; safe to share between threads."""

    def __init__(self, settings: DiarizationSettings | None = None, backend: Plda | None = None) -> None:
        from emotion_service.speaker_encoder import SpeakerEncoder

        self.settings = settings or DiarizationSettings()
        self.backend = backend  # None: the bundled model (Plda.bundled), read when first needed
        self._encoder = SpeakerEncoder.from_wheel()
        self._lock = threading.Lock()

    def speech(
        self,
        segmenter: Segmenter,
        waveform: np.ndarray,
        sample_rate: int,
        channel: int = 0,
        progress: Callable[[float], None] | None = None,
    ) -> list[Segment]:
        """The track's speech segments as diarization wants them (:class:`DiarizationSettings`: shorter
        pauses, a keener detector than a plain job's segmentation), for :meth:`diarize`; ``progress``
        as :meth:`Segmenter.segments` takes it."""
        s = self.settings
        return segmenter.segments(
            waveform, sample_rate, channel, min_silence_s=s.min_silence_s, threshold=s.vad_threshold, progress=progress
        )

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
        vectors = self._embed(flat) if flat else np.zeros((0, 256), np.float32)
        per_segment, at = [], 0
        for windows in spans:
            per_segment.append(vectors[at : at + len(windows)])
            at += len(windows)
        return Embedded(tuple(segments), spans, per_segment, track, scale, {})

    def pieces(self, embedded: Embedded) -> tuple[list[Segment], np.ndarray]:
        """The segments cut at speaker changes, and each piece's embedding (computed once, then kept)."""
        pieces: list[Segment] = []
        for segment, windows, vectors in zip(embedded.segments, embedded.windows, embedded.embeddings, strict=True):
            pieces.extend(self._split(segment, windows, vectors, embedded.scale))
        spans = [(round(p.start * embedded.scale), round(p.end * embedded.scale)) for p in pieces]
        missing = [span for span in spans if span not in embedded.pieces]
        if missing:
            window = round(self.settings.window_s * ENCODER_RATE)
            found = self._embed([filled(embedded.track[a:b], window) for a, b in missing])
            embedded.pieces.update(zip(missing, found, strict=True))
        vectors = np.array([embedded.pieces[span] for span in spans]).reshape(len(spans), -1)
        return pieces, vectors

    def label(self, embedded: Embedded, num_speakers: int = 0) -> list[Segment]:
        """Steps 2 and 3: cuts at speaker changes, then clusters the pieces into speakers."""
        if num_speakers < 0:
            raise ValueError(f"num_speakers={num_speakers}: give a count, or 0 to find out how many")
        if not embedded.segments:  # no speech in the track: nobody to tell apart
            return []
        pieces, vectors = self.pieces(embedded)
        labels = cluster(vectors, [p.end - p.start for p in pieces], num_speakers, self.settings, self.backend)
        return [replace(piece, speaker=name) for piece, name in zip(pieces, labels, strict=True)]

    def _embed(self, clips: list[np.ndarray]) -> np.ndarray:
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


def filled(clip: np.ndarray, length: int) -> np.ndarray:
    """The clip repeated to at least ``length`` samples (the encoder's partial), as it is when longer.

    The encoder pads a short clip with silence, which its LSTM then hears last; repeating the speech
    keeps the embedding about the voice."""
    if len(clip) == 0 or len(clip) >= length:
        return clip
    return np.tile(clip, -(-length // len(clip)))[:length]


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
    embeddings: Sequence[np.ndarray] | np.ndarray,
    weights: Sequence[float],
    num_speakers: int,
    settings: DiarizationSettings | None = None,
    backend: Plda | None = None,
) -> list[str]:
    """Speaker labels ("S1" first to appear) of speaker embeddings, one per piece, in order.

    ``num_speakers`` 0: the count is found (see :class:`DiarizationSettings` ``merge_threshold`` and
    ``min_speaker_share``). ``weights``: the pieces' durations (the PLDA model weighs every piece
    alike; the durations decide which speakers are too short to be a party).
    """
    s = settings or DiarizationSettings()
    model = backend or Plda.bundled()
    if len(weights) == 0:
        return []
    vectors = np.asarray(embeddings, dtype=np.float64).reshape(len(weights), -1)
    points = model.project(vectors)
    if num_speakers == 1 or len(points) == 1:
        assignment = np.zeros(len(points), int)
    else:
        most = num_speakers or s.max_speakers
        assignment = agglomerate(model, points, num_speakers, s.merge_threshold, most)
        for _ in range(len(points)):
            assignment = refine(model, points, assignment)
            if num_speakers:
                break
            gain, a, b = best_merge(model, points, assignment)
            if gain < -s.merge_threshold and len(np.unique(assignment)) <= most:
                break
            assignment[assignment == b] = a
        if not num_speakers:
            assignment = absorb_minor(model, points, assignment, np.asarray(weights, np.float64), s.min_speaker_share)
    names: dict[int, str] = {}
    for label in assignment:
        names.setdefault(int(label), f"S{len(names) + 1}")
    return [names[int(label)] for label in assignment]


def agglomerate(model: Plda, points: np.ndarray, count: int, threshold: float, most: int) -> np.ndarray:
    """Cluster labels by agglomeration: merge the two clusters whose merge gains the most PLDA
    log-likelihood, down to ``count`` clusters if given, else while the gain is at least ``-threshold``
    (and always down to ``most``)."""
    n_points = len(points)
    sizes, totals = np.ones(n_points), points.copy()
    own = model.loglik(sizes, totals)
    gain = np.full((n_points, n_points), -np.inf)
    for i in range(n_points - 1):
        gain[i, i + 1 :] = model.loglik(1 + sizes[i + 1 :], totals[i] + totals[i + 1 :]) - own[i] - own[i + 1 :]
    gain = np.maximum(gain, gain.T)
    alive = np.ones(n_points, bool)
    members = [[i] for i in range(n_points)]
    clusters = n_points
    while clusters > max(count, 1):
        a, b = divmod(int(np.argmax(gain)), n_points)
        if not count and gain[a, b] < -threshold and clusters <= most:
            break
        a, b = min(a, b), max(a, b)
        sizes[a] += sizes[b]
        totals[a] += totals[b]
        own[a] = model.loglik(sizes[a], totals[a])
        members[a] += members[b]
        alive[b] = False
        gain[b, :] = gain[:, b] = -np.inf
        row = model.loglik(sizes[a] + sizes, totals[a] + totals) - own[a] - own
        row[~alive] = -np.inf
        row[a] = -np.inf
        gain[a, :] = gain[:, a] = row
        clusters -= 1
    labels = np.zeros(n_points, int)
    for number, first in enumerate(np.flatnonzero(alive)):
        labels[members[first]] = number
    return labels


def refine(model: Plda, points: np.ndarray, labels: np.ndarray, iterations: int = 10) -> np.ndarray:
    """Each piece moved to the cluster under which it is most likely (its own counted without it),
    all at once, until nothing moves; no cluster is emptied."""
    labels = labels.copy()
    for _ in range(iterations):
        ids = np.unique(labels)
        member = labels[:, None] == ids[None, :]
        sizes = member.sum(0).astype(np.float64)
        totals = member.T.astype(np.float64) @ points
        sizes_without = sizes[None, :] - member
        totals_without = totals[None, :, :] - member[:, :, None] * points[:, None, :]
        score = model.loglik(sizes_without + 1, totals_without + points[:, None, :]) - model.loglik(
            sizes_without, totals_without
        )
        score[(sizes_without == 0) & member] = np.inf  # the only piece of its cluster stays
        moved = ids[np.argmax(score, axis=1)]
        if np.array_equal(moved, labels):
            break
        labels = moved
    return labels


def absorb_minor(
    model: Plda, points: np.ndarray, labels: np.ndarray, durations: np.ndarray, share: float
) -> np.ndarray:
    """Labels with every cluster under ``share`` of the total duration merged, smallest first, into
    the cluster whose merge with it gains the most PLDA log-likelihood; then refined. With K clusters
    the share asked is at most 1/(K+1), so that K parties who speak alike are all kept (six speakers
    of a sixth each are six)."""
    labels = labels.copy()
    total = float(durations.sum())
    if not total > 0:
        return labels
    while len(ids := np.unique(labels)) > 1:
        spoken = np.array([durations[labels == i].sum() for i in ids]) / total
        smallest = int(np.argmin(spoken))
        if spoken.min() >= min(share, 1 / (len(ids) + 1)):
            break
        _, sizes, totals, own = _clusters(model, points, labels)
        others = np.array([j for j in range(len(ids)) if j != smallest])
        gains = model.loglik(sizes[others] + sizes[smallest], totals[others] + totals[smallest]) - own[others]
        labels[labels == ids[smallest]] = ids[others[int(np.argmax(gains))]]
        labels = refine(model, points, labels)
    return labels


def best_merge(model: Plda, points: np.ndarray, labels: np.ndarray) -> tuple[float, int, int]:
    """The two clusters whose merge gains the most log-likelihood: (gain, label kept, label merged)."""
    ids, sizes, totals, own = _clusters(model, points, labels)
    best = (-np.inf, int(ids[0]), int(ids[0]))
    for x in range(len(ids)):
        for y in range(x + 1, len(ids)):
            gain = float(model.loglik(sizes[x] + sizes[y], totals[x] + totals[y]) - own[x] - own[y])
            if gain > best[0]:
                best = (gain, int(ids[x]), int(ids[y]))
    return best


def _clusters(model: Plda, points: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, ...]:
    """Each cluster's label, its number of pieces, their summed projection and its log-likelihood."""
    ids = np.unique(labels)
    sizes = np.array([(labels == i).sum() for i in ids], np.float64)
    totals = np.array([points[labels == i].sum(0) for i in ids])
    return ids, sizes, totals, model.loglik(sizes, totals)


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


# The PLDA model fitted on RAVDESS actors 01-18 (written by `bench/diarization.py --tune --write-backend`).
# BACKEND START
BACKEND = """
eNqdund0W9eVLn57Q++dINg7qU6RuKLkKtmy49hOLCdx4vTudM9MpugxmZlMmuMkk+I4jltsR+69qVmWREkUu9g7CKJ3XOBe3P4D
ld+bzJu13h9+l1iLIM/B2Tjn7P3t79vnACAAbAcA4LNffy24Nvivwdzrdf3VPwH1k0b6y4d/HSysXBP8WNZNn9jxCfpZPUr/rH6Y
dv+vs/Tl33+dziml4MPxt4I1ia/QT/7TI3Tw0A+CJ/ffEQw8+bP+eN96P/KlW+nrssrerfGWHvpD39vcr4IfubIa3Dn8L/0jj5WD
P9zr6as88xN6e+8f6Sfx7wVdY0p/+OO54La7bqUHj3vph15z0689eDJ43z//c/DzymDfvXv44MtLL9B/+v5++sEaG/3jx4L0h4Oj
wR/8tIs+OO+jD74O0Fu2Bm276Wvu2n7Vbrp5sS9ibaAfYBf7v/Hrc72Xhh8NuhGk/6GFSPBnB14IPjR2W/AB9WiwdN8X6O986lP9
937kP+g7PV+4Ok7jucm+K6cX9z60/BT9l9ef7v/xma/RK9fq6RnP+eBW+8ZTLcGf/cDRv7bnLrr71Of6Rx8d7G//4Qn6jaMP0D/4
4mhfTfC+YO7bn6O/0f11+qx0X1D36wZ69Lan6Tt6ftj7WsdBujz6yl4n9dTV9aZfcl+1uT/75NWxv/esJeit+0Jv8uS7dG9yB/2f
PRT9rdP/SP/2IT0de+o1Gv/h9/r/qTZPL3zie/0vZT5Ev4lk+p89bdj37Hd/c/Xzb07+in762h8GP7p8Ivjzf+X2LvW/QZfjrfTw
TTcFp+8/TCc6I8FHdeg+9T6Epr76M3qh/HWa2Lixz/PZ+SDx5XJw5ODjwX/gf04XHn2atp95mv782B/pY/230u4xF/2LxCNXbdzS
9x991/zLT+nCZwD67zVv0JzjK0HdT26kJ085gnfsfYwu3X03/bUvrgXzD54N+tt76J3PEcF7rtHRJvQ5evHaXwT/TlNPD/z0a/Sj
P3yMXnrovuBvf/KD4Mt1FvqN+y8HX1yoDW7cb6Nzb2to5xM99MkzIVp58R3av+EIPvT0/+o/GL+3/x+MFvrvP/aJ3rs6DtN/Hvx0
8MnYPfRlZiV4nfxM8O6Zx+j136SCxZ8+HJQ+ZqIf+PkdV9e38PS7e/9u+QgdyR/rb7zjYvCFgcHg7z7zMB1+4fu942/+/Gqf6/0P
BVtOPxnsZl+k29hO+sht6/QZ8R46INxAH6bag+Nv3Hq13xDYSPNfd9NNjj/SmntqaAfzcPDze0J9hVse6BfDb9Cvrj9D//bvv9Qv
Th2/ul5fOSEF90tfpv9SNxo0mqz0n+0k/eCNj/RttQn9t9MB5Vd05JO3Bi8VJ6/2f/zLZ/Z2ND4TRF4R9zzZfP6qnzxfcNAP/Oiz
tEzvot8wXqFvnjlL/+g+Dd3/yz/Q21dROvpetu+79Wrwjs0m+skv62mt5yX6OfP24PDSP9Lp+/y049sf6XNlHqM3b7sjuPf2Xwa/
3XUsuPGIvf939x/uH5OswW0z9waZb/woeOtbrwVjz10K/ssPFoNvfFMK3ilQ9KmPW+jp61y0d62W/vFyM23ct5uOsH30ePIAXXjh
RvqzqQ/Tr7/9CXoE+iwdOvFV+kT22/TQ+X+iR5I/oHu++BP6ty0/px9965e05div6fy//4b+6LUP07Z//RN94qPP0O8++AxNnb1+
35Pwt/Y9/Ol/2+eZ+9U+ZejVffCu6X3ffNIw8IUH6waueWHHQMvc4YGdT989oOy9f+DYq/820HHfiwPrr64P/BxXB371bXH/jRc1
wTtdnwtK5YeCj6d+Gvzq3/9n8LYHisGPvxYOfq13PHjdd2D6TPNw8LP/dil4T2s8GNkrBn/YfCEYM1L08FNC8NgwTt/9SQt9yNhC
T43toL/zHYJunnbTD2130fxP2umfQDvoeslPt/8DTAs/ctLf+l0b7fpJG82vEPR1//glOq3sp2/DPPSf/uil3xmA6HstQnDwC3yw
tVMJrnyvi/7uNoT+Vl8X/dqnO+ivqE30/S/ngi93YfQXi35aO22hM8sg7Z3PBFubrUgZyvHsvuKUxomSv01NwZhjR3h1b3GPQ9MY
b7mo5TT9M2nAuLbrzPH5DGmpkOX9CY7splA47ZMAyM9lkDSWCjqB/Zu5NTPOcLVyw7Jix41Sur69ItiKYAUUAVXFUYSHKwCsggqP
Q5wAgCAswbjECZIEMagqiBABU7KWYIAP/lyAQ2uFhG5z+d35b9xQCuemWjBh4BWlJawVOXA3BbPimFlWNKzFEwMld2ZumvJ58yrI
1FrwGkWXhPScE1GQtSTsgI1yhtWWeIObKs1P24h12EzUNYBNdjmfXa8t4qShMiPqKV1MwCmcSExa9UZPqZgC58B8idBJqoM4ZApD
sE1XyjSH6sfdvhrCF7MVw3xPjonZy0Cnxm1MNaQjHtSnkYlljFqpg3oKM5FjK6MJ1kBGXc9r3ytd2hxrK6+gt/iC4xv2RWjFHvfH
8RbIjaplZ7Lu+hV9dvyOD69fbgRuTWI3NL3xmMQxLJ5nu24hbp/pjHCLbFED1LLu7Aq3UYi2i0a2JnUFyRGXjNwFv6brpoIKx7ev
D7/dPjjv+sNT203liYIuuvYJ6uWjN2VspULROfmo/Uzd+VZc6V4tlk/TuZaufZ6V05EzjdfGrKXs+5CHGQ5AR2S5/QvwRtNqItnT
It5waEHZMdWts51H39/88+moJx4vRhTNmm18csxaKtjiwsY161H9OSbUVUcmC8KI6G48GAkvITv5xczujMHrC19sZTrnqNkPo3iy
x7Q0CwqjAT/XoW2+491X/1xeXV/zjeRbsUyaGBNhJcyLawmD1hnuNzhVfeaSZ9EO4KiZGHmtGDPb40oWxCZs26SwfUC2URPMRCYm
eCuDvVFcyxEn9hjyF955PHuCcAyv5mw1qDQ5cqPpc6z3vboztg81OA2FtBSfL5QsmYGktmRbSjBdB1/hz7W1MbULpM56fzDcE/1S
2DrW+jxmOpjpfGKkXvlC1rzb0myMf1EE9HCFg0iy3S4bLeyVKyUTQGKurKnVRMHWrJzIqKQe3uSMKhRfRbK6nQadhS1nDVw8IoU0
Zbklb9Hma9IWXXYG4Go2iTYGDJW9JaUUwqmUMRyG0RjFwjBMlCWtiuj1pCAKqIKootMglFhJh+K6FQhXIVTU5wowL0EqpOdB2Yhz
9blUuYCajbDRDJAkqwAub4nSq2LcihZAoymQMZQ3MEKSlJJNA6pxFi/rsiV9aglQpI39wcHO6Py363SaQvHAjIHDAuvG/Ehr07yj
aXUFzodjy7fBFlUBIBUGAQiuGgUVCJABFVAAsBroiCLJEAQoCKxeDVdZQUCp2vKBH1BWIVyBeaiiVscnBAiHZQKUVAWFIEhUAaJq
ERNUUFVhpdpdAiQ9BfbkDJpOwlM2InqoQKRhdBwI+3bw/ilvumaOlcVwZy6G6jUAoghmzObzbp82XI7yFt7uVICl9VlteCYlNsjR
YfPxvkRRFzfPdO+dryc2cPBNlzQvzvYkVFYxqJRagsW0VSqQBhDAEAzBIVLhRLAsiYCUZ6vzh1iIhDQmLVhSRm+VzxwrdPvkW+rf
t6b0i+zq/sps1iNG50rl5R27TdgJKGVtsyXTBAo4DGFGt6u6uqqqVrcagtWKqsgADMqwrFRBVAVBSAEUSFFhBK6+VVRBkQAF9hbV
kaUK31lI3dO4hk5ZfxNIyYXEJfX3vGCYLW6LL7avDU6+OH1vn7bb2fN8196OxK7R+SeRhXW1/jEkln7gDeTse1QxU/TcUCaDBz60
dnDfhDQ/1tFxYuoaYaxjo21Db8jjdrTLOZJmU22VBv2ONG+jHCJv35A1dj3otceoVrYz5F1d9O8eE1P4ZUPKN0doBBMjmnQWO2QS
mFJZy1V4yMSJZQ1CojAimyTWJAIyYxBZIw6oJCR0dKbZvQGfz/MdCGhroEyl8WSZXNEFyhO6dEO7QwbrlWIYj7nDKmbb1UUiLWZt
rI1r3BledtXt3p/e9pxErV1ShEJrRhl+0ZuyCLniPVnTTdaBU+cifRrbyWvarhdF9xFfAlvw6JSBwxczPlFYT591Fjvh9e3e6wca
gJrUTOCmofExs08ERy/qtclyzGuIkK8DJD4+m1dL1+THfWlNYgUcurxu6xVJsqj3AP2n3y8/12qMGU9r00CASngr1OVmIEPGUuWV
aE7VGZoZXGycVilk00PANasZsFjQBA2i2SBohryD8uj10FiuqMwhgmgEtwEOdiluakUw0Z4raK2ERORYtlwSUUnDtRcKICXk86wT
AhBcrToCDKEgDMIiABIyKoMYyiuwDFQAAK8GRQUWVElFYAoGUTULl/iPZFqIELMc33DblRognU7zuAbu3q5cdA+4ypHLPgfpFQ38
0pSzQg7uufBe3Vgli3V1O6+QgP/AtjdTUvylZVPDcbGm7eTO3vPGgC/tJ0+8gxaKyLXeRaEubi4y/jVw0XpHsx292Hc69E4Biyzt
T0ipkWeOlKmUPdKCjVP8q0jGvUzwSyZNdJhPaUzT3pRmkZHzWuvdcaszgc/IpoBQMlcyFqCmFLDmi+4SAraIPLP9hnKlACNoHC6Z
63h7boizhbT5Bb2zbDOvZqzFHb6NUAczGULEpp2mTIhzJeJ9ax9J/CKcHVGgTFwxzkXqTM0VJxOqpMKOgpg1ILdnYUtA67F6FaQM
RspiTI9ggpXeY5OyLoupKaEvnfSgSLOpZrn+lDBvumwEc/uVYH0Ve5DPTPSrl3qKMJmUGF6xM9YFuD/Mb/4xgMD1KwuiQZcxzCUJ
O7kO/XF8VzTHmJ8D+rtSprryCvzHeCK7ulI4tPEZUb9HcNcUkB1iRxYm7TL0CuCIdQWa+3yS6LNOnFqzRDLVYOcmFmjkZx8cRS2q
umJOYFmP8I1Go0t5p16+Ah935toaM/XcpldZGSnXrWkPn7jFl9fmPu5p1nvvqCIvqIJbiK0CVf9St6BbVqswf/VdFXKAq61XG7YA
X/1/4HCgisFVV8VQRFZEWQEIWBEUAVEgDFJVmYAERUawKnsUlKvfRhbhHUGdnRw/d7ISb9Z1tvbMnZ/qj2kOj9WCL8/l16FPaA20
dza2uqlZqsFTUGrUJ7E8xSVmSYNDVyHKMEWhBIiwAMITJFsE8xabCnJ5ASZIsAKhqs4qqRL516+2Vaqovv6az/76qGo1xQGK+tcl
UP/6/62Zu7SCEoGT5p11m3JWsbSMzxdQ2wolEmx8LyAhC7kcqDfvAWYYrLSDRdZr5DIoK5RY5Z8EL2vLvAxrQQxBqsiOo3JWRSC5
DAhVuqxASNUIjmEQAxtcM+Z0RM8Cybn6cSwKQZJYH8MhC+RuRdF8Ta4cw/xh2VjvSgaGHHZpT/GMCb/ENJYad5Q6dpc3ETUERgqB
tIVrS1ec22Vimreya+bXTrpV1ICatrXrnc68vbw2d4DM1nUmRY4HgWIt4GN286shIxeAkB35VS2ghtaX0mVINXK8OexCS1IhVJTE
uIeQWcNGqaiSJby0jBeVZm2aNXBDZdASia7bEB8i8oZFbVaDD0we3L6+0IcAhlnMKjqR88905IxNDeCnUQEQS3GbYV83eF3AKfLH
gPLlpiSsdEGiThYgniuppARWUkUJArUCLmKADJVBVSxChChV5QYE6mQOFBVZVrV7sEh7ALf6G5SXL75zKJet3G2O29lj2LmZlsM7
l6c0Pe+RmtPrR6TeJ0JjNx5P2L/ckXeWEUd38qnQmtv4nL+uq55xk8vuYhQe+JEM4k4XwR5wv/RxK/ryQCQjn2EaOxwf3NthVcWq
fg6gBALIVcaCCEAVlKv+xYM8Wp1AdbNzFMZUeI0ESwQMCXLVtbZITZVDVbEcUqpBcZVqVd1PUhQQVkBZ3vLGqy8I2grHTVQTfrXb
dmf4d+DFpuajb6vwTMhP7lvQXxAHDOdet252aHz5a0mygV1ftg5dSU5HMNmLqjCKGlkJIwQgq+KaXDqBYoCuiOYqIM7qJbshZy4W
KgigchSnUks35H+1YQU2ulFRW8ZSHuC6UYVYx7UlrnVz0XttJqDV3BK3QQ2encWFI7+4v/bK7tXl4Guc3ynoqbJaZ8a8RJeUoTiK
cFCbagk4qZ+zyiIptTpCqItYTdWq7GU3xOChFcukvsHTWbc96rWcKojHupZdmL1JrQiavdkuDbP7OKmFouBkYOLAdAv+wfdDyusc
6SrJQmIRuNyB5yQPRAmXkRxsVKt5ZUXnVEU3ojEqRgImNYSUiRMQIAlAFbBgUQZEUIVgRRExWVIkgQVBrOp+AihWquy5upcojAJV
sGh45bL5k/WZNs3Y54wGgyOinnVsoNhld2zs9TYnZBnovCb3dKtt726VMhbNLdtOjYe0Im6XIFRPSrheBqtKWqJ4nVoFxJIEwTAH
aFAuJzB8kWMIjdGkI2RRAXkyz+ME7kQpIMGIaiUnIkYMZAi8ykmJMqmW9AU9UkAlHhMJssp5x3NkiPe+2+hyudSnroXPSX6rjd1f
09bEfvhZfPf5yQu7LuIj158a/RT5HkYxcFu6b9Q/Fa27aVgz7e2/OPvhlqVykl8uSCdLeSzoI6Y7dxvqWIrJ8omJwpvYK5GlE893
V+U/oiIAivJVMqzKPIqpipjTiDAoCooKqRWoSm1BTK3gsKrnNXIaaizryaSm3mPa6fRMH0/sqC3FOieumIFE3rRnt8LN1VZK51YU
w4WkAbMEd9caytavHNw1k+BaplcqGg2h16ODPXDuvVbk4nxHXdklY95EY67ZPgbO+0+l6yNvnYlqHc1LG8wj7ulc3TWkDvRsJrAb
hlEO+P1mFPlx/ND7l7gab7GablezSoB87SR3aOj55Y0NG4TjAz5Kvy1cEtSExcpn3QlV7s5krFIMX2cxlZLaNaCCVITMMi9CkvUG
UngEQcS5miU5vMnVcqmsSEG1pnIdpsIPr2/azmcq0SL28dlsY2kN1Wnih7Cs2nI6fOKdGcex4eH6D+8ajjRPNQ62Y+vLcotfs/O9
jdMu9lJqQLEkWpcOoJ06eN//zkjAfyUn8L+LKxAEgf+RkNd+bZj58+yBFVL/OWIwYG/aedifksOdEDOxt+bSmVrglma5uLM5YKV0
OWfu9dMM7qgmuOqg6v+fCtWq8KgOrMBAVXbIAFh17qro27KkwNVQUOFqRAAFwIR5q23GdDWbVXQQQKpGtiLALI9CJUDGpTykVxCZ
wyEJtBEcIn/wqLVWDBdG0hmCWg6f1qr5HFBQChbqMjDL/ttmcb6+UsbIdGKXnnt4PemuGCffu2f/B7eRejnnGoMCxUUdByqb3PJk
nZdSjSYotddkB+rPk8eHtS1wRaPfluTBMm/x8egHt1F2bLbgRJjHQRMnF6HaOhIBCL1WghxqmczWKr68WbSUkoaiDsnrtUJJo/nb
nqsA8D+ltPK31v/iL4A4PQhYQ62/n7P/4c07W0JL8e78nUR2c0CjihfmorLg6iTO7rT3LG4rFT720VBdTZsVHOoNTENqxLkr1AlF
OWsv6wpZMMlhP9fr3WjfHDXjf7pumhmdWH27Vee4Q2YI0NTt+o2bAa11G9Jy08CN2eQ6Atb713O4Oe8kJI3ekbJDhKeiW4ZA/RPh
Kadq77p5YWO/ocAZzh70pd4S4foe/ej8I5s9r3cNPy6SbDR013Zb8f3WoWmM4hpGM43uLk+AeeKzVMDDtbrQPCL42uW47hruVKim
sXYH13DWGmgB+mE1egVuRC7esklgVju7RMx5Kxl1EL5guXco0eT+C1l4c6pQS60u+4wtmWFkH7KUnCWkGhLXaRYrZ9Vmnaq0ZNkK
oYcQgmJUTIspRcyT4cAKiVB6BcYLeNmvFwUoIvFVGQWBpV6MZM9Fsh99/45li/Xz5Q3NXlgC3V9n9c//LnWXeuDo80DC3bhYMs2j
2J2vbTbbjgCCnkFIKBcDbBSSTwomB2oWt+oDXE0pl2fkKvfEq/RSRU1gRQIhlYH0jVb9jJCG7TfCuy8wCHcKvoSIkbQq6F36aaeL
nUwwHxehXya5gqhffye0kGhhzXkHY0ZZrGaJYQDGykfr3EIlYYg1129YknYHS6UiRb2VTFkqsgHk59i89oTFujc5GBrW4PcON03t
ZwAH1Hr2naHNe7mLbTwA43J3Q+uRt5dq73UNXnrq2+2eftXE430XMWOHMSTl4ZZGjGcA6AqbsFoJCyJOMWGD2AEq8364pNrkvm6U
8Jo+eHzYBO9cXY3/Bc1IYXMTNayCNg4xTFCF4bnKwnj+kvfdBNy341tJDzixLalzxIax31lxpTOnpALJIS5XcoFJKRrII7nxdj2s
UeNCLCNZgRRVgpzpCIpam07gjT2OZc9Y0GeaU8xQ2kZ5vEwqrOYMglBuKO0rEBVdS72cn/RH5tubzPaSybz4gh/YqniB1fwuy6BS
3Su4CoBVKQTAICgpkLQlEZSqb2yh5hZCggr4cmJ1nVp+LLH9GOHfDf1l1HRJcYPkBupbukTc/oJYXmsnZs8dT9Sbi3HdkycRR9ve
5SX3pq5Q2+gPSjrdthuXY2R2Ve1Mg1niOsES0OXLVl57TQRBSqutfNzMODPDEGGokeSKXFupyv4eHaPa7FRPzpmU4UjIUbQp5aTB
rdMV0DwK4qCkB/OFUcRWsCRduzUZtWiWQFZUR5vYWYdvzD31J0+5SSr2FXafcWynwgdHPZuw51n2F0hMTULapE1cqOkqNHCYuiaT
xiOKfMVuGlM1x2YZrYxXrItyXYTsGAThxvxHZVRjvLs7IpwMIlcaL21PQ0cK5edKV26s8HZgT+rpoWbmqAu96z4xxoemzvjm7Dc6
Mzloz/eV+gZjukvK7YF2vF9sMXXHulaPjhwbunNZ9jRffP3dKDbMnG2E9EeQ7bmFuY8dAdma8t1F4EThOBlIGPARt+t29uhOm/iR
BvYQnBby956xX6SvSwh5K2DEe/07c/t7zY8zId9oLASPnI9pOhhQ0RJgAI0/xwr+475tuuJd4pON/a3Sm0e/O3ayM7JWFRrVoIQA
taoQVQ6St9IeUqVmKiJLklRVaNXsV3WEatqrEnFlq2qXFX0LgYm5VRv4siaS0HaDnfCCEZnb8PYOLOHDn4Zu4Al3eaMgVQChsmOa
4thEfpAqTIZdTxAGO0aea50Ok/1Re09xMX3EecPNvrq8ZHDVQAU5mzvTzaejjKFYqTf0ObOmGljg8xmqx2xvAUhSWUMRJoQiKx6+
FoaMplCqickko2JDj8ikupKnA7YGW1ts/eDsBeO2Em6cNw71h+HepiP0NvCZF4V33BXd+wXWPyM13fDn642dXemFsu1yWtPFXakb
bF17xrfuGowkMAglK909497QStnfUijkjj5qchdHC6fmPIYX62dwd2UpfRg+a790gP/nsN63dEWvr8zopq88O32pa3/sLwO+T55p
Ma5gMUvtNL3+Ot5qbvi5Q1nM6kLXMT362f51yhG77C9t+3gDsYaG55+/7npcTNQv+bT3RnRmd+XsaSr9G19deI8EgtpmY9xvHteD
3e36IlSgKqm8cGDoMXNcFfAw264rK4p+NNsubCsJ5VtrrknJ5uaZ+XO+Hk3425ru4OA/X1Pzc9nc8srgI1xBr+k4ughZZj9RSG8X
xVHWQ7hDLT58JW02W9SQVtL2prQxm51h19sSK1mFt3t0KIu+lqnRrjuixhXt4k7qgyNclUahCoAiqCirMLxV3ZarsCLKMEgAVYVR
BZaqOwlQtQWSEXiL0u1ePHQ5iitMGvkmyYcPPdykZD7ce7LkQn55E+NEL2xvL7LCS2tHB2+p3d5uppWaTXfZ2iERxdUdE03xnC6b
Cl3IetablHBPzsIgyVAMqRSyX2vh10yIVy05Ttksd3908+TKJLThv04ww06mKTiwfBi3Z0hpe9b273fO3DuB3WvXPuKof0piwDD/
aVdfue4Z3aw1KrDWFIZkGK6d0ZJMPrbh9sdiG6VdCFlRmoua2IYGV7IZo38qs4tca0/roIlSlHG31lFGmY5+3wTsdihJYy6yepCf
HsntZArkJpvpL++2vp74i/L4uoAIC2Y+35hXOLEH1myCoptssrRgclkg2KxEBjKYqofXtZk0AYtYRiwTbMJwOf/QyoqD97W8Mwog
v0xqnq1LtKE+V1u89t2sT3Yc9XuaKt+887Z6S03dj0e8VG6//vEbifwSl9nY5Zx4obxi/cWLg2vpmncbdrvf+vfBmkf2JAY9xmeL
atTVuxy2G7Wd6VOwqXgjl0/XMDucSpdGC/X4mqkjt2SFej+yZHGuhdPpdltd96LLbzJmc2HRZOIZ3OwKJ6xdtlW939QM+E1QSYaN
YbVNcygqvsKy2pBxlMvXm8pJxVRDGXT6zfcAdOa5vea2yu6vvHFPlc75x+7ar92zuhI9EpuZMn3TpltuUx9E19Yr3vKaGVgFwbIs
K7DWEIZxVBMvswAkkpQOgjwmxltATAJZrACo0QLKssEOcRlEAKLmK0G45kZ2BRDatPWl9/KEPlRjDzm2+xREwzmv5Akk6R835ucE
1lZjpCjIi5aHpBy8YQ1tFufeTY2ZNbZ99QJyoW79aE/uc7ixpfcjqe5fXzf36KfuIMxOq6lJTYkv1WpXNVnGPS+8qZAlVF8uoDXk
DGyFbenUU+X0mrVcI6+Y18g2VDSqjjoJS4Rd0bA2cZDhUGvSbVtbls5vkKZw2IPVq3lhVYCnuG0zHa7zZqxXxcy2VC5Q/JPOEMjj
DXv5F5Z2Mmd/ciybroV16p7MYtNkwg5MTG+0X8nddXAULn8rudkotDdOBnuIzrJ1QuRO9uKt1ttHbAIuRwrmiRfoy1KTfQB5LT5e
+5VD6Zl1a1jobA+Lwp2DT3YQzgNhkmy1uFfqZicrgRasaFsjNlW7sclDam4WkpP58H5KU8jlNNEBraqFdEQsqV3IGy9uRo8ohQTA
VsQutCJ5xXUNfH5tFQUbJTWaNXEigKoRtBtgVzdLoeLsxnymvI2P3sOZmjUL3ClD5y74okcHUzOnsxltvymy7tTqunL5lNfURMTN
ZUt+spjR0Bxsdp6RzVRkVYdRvBaqBREbktAw8+ZasrahRVY95lwjYABjDQKpbQCRSjeQixbgLFuyrev19ngZhBqQKJogMUgta3Ky
pFu2SKXa2pSsx7IxPLBNUhLaJR03BE/pUoChWCo0d250+LMH87GMOMF5iOE6Frdvt9W6QM9Ck0nHoKFkXddyzWpT3p4gub5k7NLe
Ygz3dL3brvMW7HPQlyuvTidY3ghYKkz7ZU73NtNxOOMiSnbc5NSN/AWqL63etK3ONYy/vCsn+8oljW6JenMgaQPeCr2XOOT0RyYN
wv7P56RL48c+5OrdP0Lnmp90fG3WnLG4dvnflfYYAy9po58ajjevzRoN2c4HucZsep7VmC8bjJdHjBe7xvW+3+/bpyV28xGUm3+n
yiRL+uKFbU/TN3X8dKTZqOPJ+pVphlluLqgNdlMklaeMLmOyGEE2uFLGU26V8QmcRVhtwVJ2knnSwLu9AKYjOaFiwjBYlgslHM8L
gKAkEEigZBOv4LhQRCtqWcJ4BYIoAAIsWrgiqCKhKihJauUKwkqgSGoBUJuwx1EC4lAMoSCdqGSrgSxiMGBhbcIUSsWMqqXBhXYc
dY2gcjKxnPL56scZC96+UDElXkQu385ga8MFq1HZTHHHEy+1zv8t96h/k4rg//il/vfCAT6pTXrmuJOp6425sw91aPfe5I5/oVnf
nmgFWd1bn6g7pQR00jCWVjzN6rVUcLpQJvxVOqk1N1fsaW5KsRYDVIl0sasWPFCfhc0UmSOYgKNktOW0GORNrXUjILaw6m+/hDjn
ZCVlYXcc+EoITV18NfQn7doMinaN80NC9NW2oR7IDHlubmufjFc2on4gYoyUV7Dtd5hfoqIVRV8PytpaB2zHpoVWuBTJYpOdzQXE
SlbgGXbEsNhEqIsrteVKQUckRB+HQjE4ZhMSpuKGhqyY2XX1opFMrTYYW0ZweMPiAy9BVZ16Zvr5vlverHs69Y2ZXmV0F6DrOYe1
pOvM0dI2iicgvuOxX1guhvdcmvcJ+wNXFnNAyCZrrBSU0R0H8VB+o120WimWPa8SJi2vperm/DbtWY1UydnI6HXlLniMSZM9OWMK
mGGyIzc4mPpz0RKr3Q6gUQhwuo0Xs05X2bQZSqUQmbObUoDTwo1wKfdoJ4CcTK0tFSlzr8MEJAG/7HDGmzbyN0EvqrUtXDnMNiJa
z6o3f775qdT8CSPQWlF5oCEaXRt5paMrvrAhj+UmM2s1DQaHp9fZhOWbwcaz1KjmQOpLzW/IhOWDMxlV2Tp6rBJgUIaArUPqKiOu
yqC/HpZU+TCoSiB8VTlBWz/VD8Q3KsMHZJNACIlEy7XCeEpjahueyBlR9RM+CfkMsJnPpev3tL1/2filyMm91wKf7ytT6sYsqNcj
slVCvQC8dU6MSDIBKxWBs+hEnpN42ESiPLR1TlSl7JppFxadY7W8AnuX+Vqfo+IOp+yUTuhOOHPqxbSOWoOScXaXJQNhIOgCCZCl
soBL7KhUHOhyPQ+XeL4EJyFXLYdqtFV5xmqWs3CdFpIUIgvEBXtglVyf7Znrazp49HVsmgMR1npn8l1/pPPIkHJ+8ozJWxyxn4GH
M59lLwD22sTFoXiLae2G/x5t6n8PNvC/4vL/KO2oAGINbrJD23R7zjzYuucXaz397Uy7ub8fS1fegm7soBaaN3IGh01uO3RNEDhY
0W3XT3/wHdSATGmGTOmsFlhMyIZSk7Dkpd5jS8XAxRVx/Xw1vpx2uet0KeWSs/ad9aesaSLEMuvhCa+dTzHJnvAE6C8S4oacMgGG
+rJIylqNjroEtJmXplxm1BWHbtjWMlUlKzv4Qbupc+j+mouZj+7ljiclNDqVaR2B9gmBfcfPoq9c+DGED4cdL6lZzLh5eXdhu28l
1ZP+rbHGFTPancRo9LKvspby3TCptbSViwzQ6It9zbks6NCKyF0Pj+gbU4+/2rYWeKJIpOseL7d9RzxT+bv2NaG90CDKl/fwHJZ2
rtQkI0aL+Ux4gOhtNt8f2L5nOesfaazZd63jzV2tUQ0JGp2yvfAW8UZtOtQHfob7D/+CDYqfcTsv9XuS73jWuvfuPgBVFUchZwYm
NaGp9yVtKQ8+HWJ3vroQOWHSuop5CYrODzbGO61KHXLnCCKWHIrOZtRZ/bYSs0LxoI4hdTJTkVvgfLlTUnkpyyhCuURV2Z8L9EYj
L/+nhP0iuBVN/ujhFX9XfJM3hbzNMB6lSO/aV0gYi+xoj1u5S75tRvUmleEyH3zPZe/Na9cXvMYiGPlqqXM+zzpqMxOtp2R9Uudj
MReulZoENr0aajmPIK0/V2ocgzWLoUczrKEz1uz+7qdGPCNKIFo4t7GNaToKexzIdP0s6zPEsqCdmvQatH8wkLxP3Sjv/lrd/rSu
vzdV4V13zVp+Sxa97a2QJj5007tHMxZPSdpc0+F72hvYaQNLTRU7rwcHt2Vjz9tp/0b9SmmnSZveWUbcq+2xILVsnLCnsaxtTdaE
Vxv4zboX4sYaR7sbC7u5lIEoRhdiujQQ6ix1G1hoZX+L/XkLRlhn29OFT6901tmIbGHu/CvguolEZKMqlgWFgAjMxqtYVWjJFIjg
qISgKAgIEFXRbZb0Bh6oiFWKjFU4igOTeDVX4ZacWpBwvAJJss5AgiBcAQsQzvECSgo4CKGyJFsgWTTcfubypaOl8T7b7CW48vad
WAc5GrnmrgMl5o2N98/mPrn04kLPcS4n6YhTOW2NN+RAxubVQHeHb6zZJ1wGoMw7jFqKtq/Ed8xvisTdb0V9h5ucB5vW2DcyFtC3
5je760+XERECQVTgq5Rfq/JiXotYihRS4hkmn5UUC0ixGAkwjKAFOAoUlCImdjJx/ZwOKjtTZbTUW+rRqb1Ri/08WVe7s1DRMtTa
JlEKzM/xtadcixFrumIY/uB+lSuuiWNYPNen114GVrACn8+rk06C97rQMsuu2xEVYdQUXHOlbCgjxt31BwcityXeZnact6S7XXdS
DushpXVf/W55cdmJWm4BlUolthdB3wpSNZsw36JK4pKjds7fWvxMprKwXvdgF/dULDzPArUaavy0uGkz1ITf6CRV0+JjjKNEgVoQ
yvsaKucW+Bl4HduIaMltrez6fDvFp6Xec/6VGKSU/RuYJJUmZslrb2NzLi7x0h4Fn1DS7fOuErx9WVPJ4OVIkza5Yjf2Tq7PUKvC
ZQOUZLGRKamuNZd6KzAd3WGZO9txC1KFbwgC/8qhqnkIlQCQlwhARRQBQARFBarZcKtypKoQplS7QR98dTtXwcO/77jwQDx1fkj0
R4Ah6fitZroUMY8ftXffXSFy4K2Tn5qPpyg7ilroYTlwro4X51jrReP62NrYK2LbfrlAIC3tNi2bKqi2G5+POps238vNE2ff76rJ
/+H2V26/+BqKadpjAis55x2owUMykajFWKlytoy8FsubtaxbUHkHA4AsAThYE0riRKd5UjGRWS12UT1XfsRZjIBmZmac5iq1vdFS
ak2hlyvv3HRzI4N1rha2Lc9Yp8r/DywD3LqKsXW6CoKKokIwuFWJgyAVVRVFVqorDm7xDQjeWv6tEizk0iOHBEYHy3CA1Y9v6kqm
JHuWd0TzBfLG1Uwgo5mZU4GxaxcSCsPs1BOgmv2/X1UB/488/bcH05ezikSYSizDV4lblpJxe6VgomQNSaA6UigoVZQBjCRFKS6i
yJgozQef+clD2YScdCvobZrj4hCYSMU0xSW9A86uTWJLjd14JAQnMKO/LEqI6EMBqLGJya8OZby5bvvYZq5neviLyQ588CRgrNRd
aFwuAa/q88iOzFIjq9gOVHx6SjxXji0CE/u9bn4aPRzI1u5yNu9rWcrI/s6HIdaYP2u/sAb6zO7pjX27Z1TPJIMCi28EOME61b/9
6SVAp5c8320GFze9NW+SH/Y6NaUKLTlmnMfLe+Rzv9IAZFvKdjrLg6OzO7/nGcoYl+zPEEDPYfP1bXJlybtgudeXPW2l0tAmz/sO
DMSeeuWXxdFaLN+WsC47TLv36E1Uucr5GrxG6wOOmLLSOzUUwcyuEd3890F9gvtQT4Vjb51m8LnNlSxXjp8hLFN5+y2h976dNNw8
1g8svk+5C12JaL1TucU1YSmkTQENdB0EH0uO9nOtlfcUcUUis+4C+FIdEgQCfKTINWZeB2uc+pg+l812ydpTBWG7ZsbAIinNjlVv
YhgGFBSW0GoSViuQosAAhagqz+G8qlYRGVIxBZWrBBXZEm6gRtRISRBtsfcbfWFbLY5YwXczQK62SafJ7WRcB07XRroMrdLscsBj
ymYCyydVS7QYXhhobp7pfX/ZINR9xmGoIY2ufIIta/bkzLeUpu7KZa3xrDnjFSTdqmt8uB1+M7f+oaf0UlwvpS6b6b7Hk+THWvU1
4xnQFmHFKwbYmdHDjSW0a+bZL7gLT7jTZ/KJSMPqhiGfOjypje6Tx0sOctAupvclrxHy687smdrAbO2b9otnqbAOXDFMAoGu3w3e
kLF6xLiqi/LbOAus+ldmPEsQ7BA9GaiA414ZLFFaFi2WCYORRyQtYya1ymXSrpMi78/FCHn3pVO5zy3rMWudLrnZ8OoCf+GK/YmS
OPW0d0+JMckfiZxuKd+EL/Y03zT1VathjxkPzv5pIXC8oWxvrYSGwvHyp7/zq+Jc43Zf3sSxH4Lr5GxUJfvSE8xmNf4BQILhKiJs
Xcr46+0scKtiv3VhBqhCrqJsgQMog/DWveEqpx6tCbEBl37B1/XHxhTbdWyxHpyeFvKi+flz2Gi6Ydqhm18IL11xLBzddvNLeY2n
Q7Ryik3Fwc5KxIml3Zqwn8EhN6u6YfcqDIswZuKy4RppIV31CbPOXClYC2vOODOFmi66VTjPlhWOtK9tbGM1VpCQ9TInuie1lFwo
dHhwQBPN+j1KyAgUK/qUZPZMpVMOs9wamHD0eE3lEFJk9jpZgqLWhxJohVA5vylKrne/WHqxuTodhQMhHhQlCQZxVZBVkMBVFYQx
CKkomCgiisLDoAAhqoSDqCz8f3ezP0E=
"""
# BACKEND END
