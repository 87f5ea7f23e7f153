"""Speaker diarization of one-channel recordings: who speaks in each utterance ("S1", "S2", ...).

Built on what the job already has, the voice-activity segments (:mod:`emotion_service.segmentation`):

0. **Steady noise out.** Speakers are found in a copy of the track with its steady noise taken out
   (:func:`suppress_noise`: each frequency's floor, its 10th percentile of power over each 30 s,
   subtracted ``noise_subtraction`` times over); the emotions are still scored on the track as recorded.
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

**Steady noise taken out first** (this version). For noise with a Gaussian spread a frequency's
power in one frame is exponential, its 10th percentile 0.105 of its mean: a subtraction of 8 takes
out about the noise's mean power, 16 twice that (the gain never under 0.02, -17 dB). On actors 01-18
(``bench/diarization.py --tune --seeds 3 --noise-subtraction S``, merge 15, share 0.2, the mean over
the eight cells below): S = 0 21.8 %, 4 20.5 %, 8 19.9 %, 16 19.8 %; at 16 a man and a woman at 10 dB
27.2 -> 16.3 %, one speaker alone at 10 dB 15.3 -> 12.8 %, two men at 10 dB 39.2 -> 34.4 %, while
two men clean 21.1 -> 22.1 % and two women at 10 dB 43.4 -> 44.0 %. Taken at 16, the PLDA model
fitted again on the pieces so heard (``--tune --seeds 6 --write-backend``; the sweep's best there,
merge 15 and share 0.2 as before: a man and a woman 6.4 / 16.3 %, two men 15.0 / 35.0 %, two women
15.5 / 40.1 %, one speaker alone 7.9 / 14.3 %, mean 18.8 %, count wrong in 49 of 264). The 10 dB
condition is white noise; the tests check pink (1/f) noise too, at 0 dB (DER 6 % against 13 %
without). RNNoise (``pyrnnoise``, its model in its wheel) before Silero missed less of the speech
at 10 dB than subtraction at 4 did (11.0 % against 12.4 %, 15.4 % with neither) but more of the
clean speech (6.9 % against 4.6 %), and ran at 29x real time by itself: the job would fall under
its 20x target; not taken.

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
    # Steady noise (a fan, hum, hiss, a line's floor) taken out of the track before speech is found and
    # voices are embedded: each frequency's noise floor (its 10th percentile of power over a block of
    # ``noise_block_s``) is subtracted ``noise_subtraction`` times over, the gain held above
    # ``noise_gain_floor`` (:func:`suppress_noise`). On a recording without a floor (digital silence
    # between turns) the gain is 1 everywhere. 0 turns it off. Compared on actors 01-18 with white
    # noise at 10 dB: see the module notes.
    noise_subtraction: float = 16.0
    noise_gain_floor: float = 0.02
    noise_block_s: float = 30.0
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

    def find(
        self,
        segmenter: Segmenter,
        waveform: np.ndarray,
        sample_rate: int,
        channel: int = 0,
        num_speakers: int = 0,
        join_gap_s: float = 0.0,
        max_utterance_s: float = float("inf"),
        progress: Callable[[float], None] | None = None,
    ) -> list[Segment]:
        """The track's utterances with their speakers, as a job finds them: its steady noise taken out
        (:meth:`suppress_noise`), speech found (:meth:`speech`), then :meth:`diarize`. Segments index
        ``waveform`` itself, so the emotions are scored on the track as recorded."""
        heard = self.suppress_noise(waveform, sample_rate)
        segments = self.speech(segmenter, heard, sample_rate, channel, progress)
        return self.diarize(heard, sample_rate, segments, num_speakers, join_gap_s, max_utterance_s)

    def suppress_noise(self, waveform: np.ndarray, sample_rate: int) -> np.ndarray:
        """The track with its steady noise taken out, as :meth:`speech` and :meth:`diarize` should hear
        it (the settings' ``noise_*``); the same length, so segments index the original track too."""
        s = self.settings
        return suppress_noise(waveform, sample_rate, s.noise_subtraction, s.noise_gain_floor, s.noise_block_s)

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


def suppress_noise(
    waveform: np.ndarray, sample_rate: int, subtraction: float, gain_floor: float = 0.02, block_s: float = 30.0
) -> np.ndarray:
    """``waveform`` less its steady noise: per frequency, a gain of ``1 - subtraction * floor / power``
    (at least ``gain_floor``) on its power, the floor being that frequency's 10th percentile of power
    over each ``block_s`` of the track (so a floor that drifts is followed, and memory stays bounded
    by one block's spectrum whatever the track's length). Frames of 32 ms, hop 8 ms; ``subtraction``
    0 returns the waveform unchanged."""
    if subtraction <= 0:
        return waveform
    import librosa

    n_fft = 1 << round(np.log2(0.032 * sample_rate))
    hop = n_fft // 4
    block = max(n_fft * 8, round(block_s * sample_rate))
    out = np.empty(len(waveform), np.float32)
    for start in range(0, len(waveform), block):
        piece = np.asarray(waveform[start : start + block], np.float32)
        if len(piece) < n_fft:
            out[start : start + len(piece)] = piece
            continue
        spectrum = librosa.stft(piece, n_fft=n_fft, hop_length=hop)
        power = np.abs(spectrum) ** 2
        floor = np.percentile(power, 10, axis=1, keepdims=True)
        gain = np.maximum(1 - subtraction * floor / np.maximum(power, 1e-20), gain_floor)
        out[start : start + len(piece)] = librosa.istft(spectrum * np.sqrt(gain), hop_length=hop, length=len(piece))
    return out


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
eNq9unecI1eZNlo5KGeppVZL3VK3OudJ3arJM57xeBwxGGwcwL7+YBd2LyywsMs3NMHsejFgY8AGJzDONsYeT7An2ZO6e6Z7Quek
VktqtXKWSqr8qQfuvft9/5k/bulXpVOnjnSqznnf53ne8xYAAkAvAACPPXrMu7n7uPeFR24brJ4Cb1FJb+eu33tvZZ70vvRvUe9X
jV3UA09e9yZaT1Kv/OAd6qFPvkD9KYNSzp+bqdRZGfXC979D/UPz096ntY95xzpmBo9MpQY/XtlDxcXnB9b/z0JdHBjpSHtbToHU
fGBq8Iu564OPaY0DbRP/RXW8O0w9dZ/T++BUj/etX9so53/8mLqVMlBfcMS8VwcY77vf/6H3gdL3BuovznrBtqepI/9moRzP9VDf
3nMz9ccdx7zPLe+kLPVqCn31Ge96X4Nbb6UKt41sXi8b3vj94D8f8lBzHOF9hL+++Unlce93sTcHp/5p3vvdnwS86OST3u9WnvYe
udxFvfTS3QNfG/s1Zf75T6n13z7+fwkDw9eQAf+On1If7IoNPrPzINW4GvZ2fRW/cZ151+p9PtEz+HPfd6iTivsH13I/GvzFxAdU
ev+Pqb2zlweI+wnqged/RDEHv0f9J8kNPPcPBPXYt/+d+u6wdvPJw5+jfrzv1S0PvNVx4577T5E3/vM17lc3zm9N/GCQOXH3JgD5
hKLc/0o9gwheVnyA+tzxFurA6O+of9/47UGqlth6dun5gVsye6ivP4N5Ha3arW9+/dUbv//ml1+g5r71uPf9W855P+55aeCpe56k
/Ke3UPveedx7R+lB6nGi6H2sU7H12VcS3gf//Ax1cNvXqe8OdA/8HJzz3v6DqPeF6Ade46sfUsv3vUf9lHqGGqVvoX7dLaMu1d1M
Ne/fe6MPLfjvA8VLT1D/elxLPf/nV6jbj33TG6r7GrXb+rtBz9AVqqntf1Kmr6S8b9af9opPvOvNf0PvfaP+H73ln31MXZI95T1m
3U2dI4eoE5dfpO76l7e9XnrV+8WdKuoQ8Sfv6t5fee31CupBh5E68/Gt1PjUeWrvlz6ibnnrs4M/umto0PbJTwYnn/oM9eEPn9p0
59tbqboHf+z9cviL1GuvkdTd9x/2lhM/ob5xMeHNHZoe/DCjpH40ZL0xvouBxS0bv15PbX7f4O0/PTG4NPhb79uxp6kHA54t3+n9
wY02zz37uveNs+958R/4KXYm6P1eNEG9sP2fqEPye6nIyUe9HQ/eeaNdklZQs7O7KPiOV6jn/v026i4o5h3uXRqI3ePxOoY+pF7+
0k+o0/lbB789dP3GeM19GPGuKO6iqObzg+OTXir1Qw215Ylf3fCPu356iDr77lNU4UcHvMie+I32lV++umn7Eye8D45Mbl5rIW7U
vfFf/2NQ96XvUY//wkxdAC5Tm8LvUM9qaqnshd9TFxv7qKceTg80boGo+1M3Ucrf6Cg+9h/UAzG5FzT+kto3/l3qM53/OfDtHzxB
bet+1bs2sc/71S++4O397c+3vBH646Du5Qe9b33uB16284x30+UZ79dLOe9tOiX1Lx/oqLVvGanRr9mof3uylXIJG6hf1nupg1/c
RR0b2089+4e7qB967qMejzxAvfjGI9SmTd+hvnf8h9Q/sT+hVv/tP6gv9f+c+uKpX1Hh939DnT/xO+rpzhep4St/oka51yjNd9+g
bnruL9RLjx2l/tS2deuT0ce2mrqf3nrwncNbxeNntjq+bNyW57q3dRJ7tw3d/PC23zz07W3z576/7bknf7ItTv5xm+1XY9vuuhvZ
vnxVsT17sWPHvd+o9d7Z8zNvvny7d0viae+LhoJ3h/+MV/vbipdx+7x//O2iN2aa8RYvst7fP3TGW/TT3t/xBurHU2rq8M0r3gO3
odQ//0zwJnr93nctGOV8Cqf6L7RQ72UbKMPvNNQ//hihDn7vM9T3lQbK63dRTwA11HvPst6vutwU8fLtlCPfSKl+UfQO/wShcn1y
6jUu6f2vETd1Ju6kxj/mvV+EVdTKsoq6eLWWqr0Lpw5+V0P9ZVJBfb+opvY5LdS7n5NTdSsWqjFIiEAp1YhZgSuzPqLpNVdobSNp
X5ztWkzpt0sEfb3gXyQCcWTbivkvhsY0ol+dcjfjnizcjHCsAHMT2bxvDy6b0CvmlF1Wg4qHnMvX2jhZVliDYyaajFd8oBIFJUwO
IChRESUEhXgUkhhJLqKQqlpWcAIK86iAlmCYlcQkicLAp97mdR+p4VJ4rLYw69DMlG8lFz6Xms8qVXvsuDzl11jihU32BCR5Qty5
2OSKMu/0NKZ5gssZBTdXW86omCs8BgO5fFENQwbDfBSrZJpRba+mvilWJLWKq6JthV9IzW3mMgwSCcU+y7PBUhwg8khWITMpjUz0
ks6VEDIqEyxeM2YjseViLq7bnZg/1x3iJwS1rqGUyM56ODldrCnZBLAW1ToDmqw6aVIDSqA8UB2ucv/GhBtV101HNpdlc6eK6JzU
4jq2sqA226amnPMmHq9LJotji2DwdDmzOtv50G2X5TTzSdl5rTCNIgRXhPwv6bKOwPDBUoOmG3PdU7PQtCigjKESu+IsQZ1qMOhO
EKo5WNobUPjrrk5PYZuRb532Xf7JXc2H3dvnnTWcZ2rIUnekqDNHBNQ2rH8sjfxSiBcU+kYx9aDK0/xSpuAko4V84grNLkzXGruG
mnG/6ZcFrFOzl1kJxqeOnJQPSCOb8CXXi9cl9trO3brZDMpOTBHyUi9nuaVD6yrAmDrrbXCXXPKG4qV8B9s56NRpkehGdLUdngw6
A7mCbkjuOukwzoy0x2z6+vf1YuSPfl65w+TAFVsbyQZxD42t7Ooq+JsibyyXxxqDkNhcuaVrjec1/bX5XlRQ7xCYzoblV3mXtiFY
UpHqKxbAl/O3W6KR7BsnXzcgRL02vhpqn80G3jUoehe6czW/z6hkY6eW5g3j6g0Phcv+ypk43go1GmWyTTqfEvDslblFm3m7GUkd
WlS8Wjjg/LCgq28QCn+299xtAe9wOExcb9khXzjBXT5TIEt0RVS71F1pSZ3z+XFZAVHzBM01kUHW6FGQLMFgSI5JEkxwvl2FedZI
jTFYIvE0Pqdj6lyY0WDAkfl0SQ/XlThNmx0Wahfy80hFKPMxBWnRCkGUZUUliIVwQpaTESgEW21CkcNgOJ7HcTqL4RpYEKSCtFoE
YQHlgBJdhjR5Ta2hRLsJniWQIpGD10hRxeBpSENiuFIOdtrTYXkoGIpmABMkYSKTVfJ6G+7Xi+cqe4/KY+8sxZ43Q3ddnavVd0GQ
2FgAVWvuA24aykFmvrWhaev2NC1KMMAJECKIgiSJICAiBVFAOJgHBAnmIAkUOAjgQUjiQbB61zwMfno/h2GJA0UA4EQQrGJG1e5x
TuRpDsSLIlTtGpYgHuIgCOQgEK22R8T8aHRrGFDW6viKLpaCzhUWRfd4Dm7wlOnm63UcbGxWB+rZsC+UVjKLKo652kgEYo2mZWNZ
qeSRfDCVQOavB5zb0mxsMBvCSpPLZ669YbsirXl6vcP5+AI244vThFxeYOQIyLGgntDgEKcDU7kcSkIJibeTGUEiuLJGrsUkBCLS
MUSG0eFURQGAMT2vGcfFXB7EwsUVtQwwlAxxfRKQCyuZLI2RRaVCniZlHCCvjhUkgCIMggIEC4AgQqAkipLEV8dEQHhofcRFQZSE
9UEFQQiAgGYX3ihYjadLs02q5CjasXZzF5Z+JNEr72nSlKLBYGX/FwJf3Sp7/MWW/rfmPaD+9bR+51C8v8N+GSwvHBo5r+TOKq98
KVTYBJ2eCwc3PnelSwbtWTpTOXFeJZ9UvDvfpArGlSsGux2K1FgVxoCdlwc0oppACV4OseUU6yzWqPnknIdTXtQUbWBjP5gEF5Dq
QPD5GrwmpQURiGYMQjidU0SlKJ5jNQoFDJWyaBYUeZeBpcU4i8D8hsqyOJ4If34rAI9hCUVmeXaUY/ndiWS22erMtjdcb5O0GmXy
gzGNXE9exHMrpnx39/CIGsSKl2rw2z9yRglEueTQHdAMQ9tGwUdMa299ub54+Lr+3q4dO2UV/ETT7+Pi9Qfp1B7NZfCcLZ4BBlix
uCiahdb5cf1awvBswhK4tOhpMBXA62dXNJgHXwWk1miiHVqpxJbb7VpYjmTsEfJaTM0OzORpE+Y+rwnWoLNWTymejNcUO+wGokQb
XZ8wGMelckqZJKrJiNui7qvRQkCnA8xkDXnVW2xN9riaZg2ZhPlU8H/yj34e7CxjNSlcps26FCLEdIARay7KmCqdyhI2ow7ipdUG
BsMKZQ1DJ6MZHa4wwqICXHcDQKp6Clg9cBJYdTcO4aSywCEoiIMIKUGQTAJQmBUgUSCIqzg/F6FJdbst0xEdCyuUfrLiyzsgVatl
Pu66emXLpuFMOO6MzpMNdfkhcW7p4rGwzrkWbcg2jZxoFjdtyLw2RIdq6/+4tubht6qBHFrO73BU3FC/Y7I0v9pBkLo6TdnZS0cP
2golcW7U1Rk/n1trF67PJa7rWZ/24gLT1NBFZqMbUwiB6oLsphSERsYwcAqU1HXlHUjPsRUYmSJYSwk0vwevlFEG6mioqgldSHEc
g20fFg0ermZ2dATELZLZwFayKF5rqAC2nCuleijH6aZrhhO1aTwyzFdcaysVE13e/GjmiZB5tFanTDdwLLZRSzapAKIAaDoCfWPa
pWwtU2yEuxftKKu1KmFB0yIDormBOwEJDE4hZbHdNxIx81CqL7irM6m7ezZquV9/fbzy8fEOWvlhS/dqYUIAWL6iQsx6ZPFcQ2Tq
tII9iIW5soA1p6HWS9qDEA+nS/PJJYP9k1mNqbFJlXktc5My41ymC4qzubokaVEYcrDkIFH71d1AWafz5DSE3jaBkqIu0GkxNuaj
UoFWmHqZc58eRbt7tFN2NUcjr5tjeJkbq52o0eHqJa3r3GVF6R+NG/8oD38k7JMPFcDa8e7AMqquxg7/G1hXTat6+H/OQPD/vSj9
t+On3RhaVjVJOYIImIrRsmkcz1Rxj2fkYEmHlcoVsApvUDHDVwQMhDGtgCKDc3U81TRav5RQ6kOpXWL20iZ3zkPwHp8Q7UeWXsF3
awUla9ngCwASXt7ukoqV/LKrWDAXgFhQywo8UWF9tFzEKs7yBsCGqDP+ZbSc1RRJQMBodrEIkLa/PeKNZ5KqDw5KNxD2RkGqouyN
i399YumvZWOeVZecXQMCKBSZ1Z6WGXVAUpXthZyDSechQpdM0UQ0vYgCnXTtucW6Rp4BckWlCJrYTJKWKQCuKPGFKpKrBCdrImW0
SVbMCxmeBCsciLBEgYZ1pprwfLNipYXH8o5NCkRMFdUqezGd0GnlhSa5li0VUyVr3iwvMwuOUhtnc5NzJmu8gR8laFdoIBuWkpmF
9IntZW12NVweJAKQT7183bNne6Oqls2BkfTJlDmYsTW8n05uQ62kiNdbMcSyiZnlluPxc06FRMr6hAJeMvra6wsaPIyV+XCNBSgD
1pk2Qt4kAyGVPiVYlk1YIjtdVplxoxRYbEbZJj3GRmwIHyNk+lKugYgPFM4mp66r9auhtE2Mjq08nOalu1SGVVl9bLzuMkQWC+5g
0zQI35FOxIAD8hrhkh6QWADBwOr4ACDMgwBclQNiVejAEs9KiCRAXHUeYFFCQaE6QxgEQ7pJOB8xI921N93rnLYEG/+pu+7zgo4W
f9Uayb3mD3dyodL2Bpti+HuOvhMPNTaDR8Qz4YB/KcugT06ZPdnG5sMqo03VFrTb9Ldt8csqnPFQ/2PZMYV88Nl63wxa32J6o+HT
WzsiQSQIoITAc1UmB2iI5TkAxjkGFBFQQkCCgEsiU+QLPFPVcAACVm0NqmL6uqqBEESEkKrXVa2wWg2CMIDBIriujOAb7lgVR1U5
AAYiZXipN/rBeVU6Pryvchc6PBp+NIMwwaA/+MwWNJjceNkc3O6rbJStPc62tKObV9CyJQIotALA5LUltChIUKEqbNC62pzAZBYh
OY/xGmVWVlO9dQjBygJDpLjhE0VHM21NgUF1uSRXU90yswEY4+RNX1XVyOk/WOL7/EJs9lxN4hnppuc6Vtw5C/vOCm6G9MZFiTdh
kFSvKblQPditIqNXrlgYE1sry2U0mvPREgR4YprcChAoddQeq91N/jm5fR5wP/7hwlHG07Bp2w6w8wuaYoDM1miNrvdPLE3lXfE6
L3v28N8xHyDcKIk4IYYJEJcjWY/aoItXVsvOqpQkkzyr4xOCAhBVShlTFvI5nrOpYYyBqkEtj8AYgFY/MhYSJKQicniFIVCEK4ts
BcJFmIRAHqAZCAYO3Mc3z2qvtiwcrnx1Em4kHW+cbbMAdNs5vnGm/qqc0d/euMaE+16du6wQaonFK91rKtGKcxgCYgKmQEFYRmbX
zVwqlzi+XCqDkEZB8mpMxGBJJidzaYXAVSW/kqBlmLEMAdVboIFSmpNpiURaXyEJHiRRQVAkwGIVuli5xFdQjp/pEGTZQYfikuae
lZI2tAMqMfgiufWEO0DoLN9AY2bWU/rxjhf5bejoyMJ82o13zmCfqC7ip2veFLa8+F4ZG+1vf12XsCPaSwmOKR0dmRRaNSZak+k2
9k5ahX5k+pE6ANTwHIGyIFx1TJARERimRRZDqvgJl8oiLiEijksgTkNANWrJVcdM3PWt8txH90Q3RJNndojKctQyvfl46sr5FztC
K2HpT4U5ucFn8JC7aqNGsXz0D3aU+0pYc8r2OjsfCYsnT2vkd/sPuE6xdX2uSvxNRNsTduNAuwYO4uihHQobi7XHOq3bNmoGopn9
fUU+8DPgdFZ2n7EHtjVA3zhiu1BczHoxuTkfX4mxquIzmXDdno/SO5Y5CRZEUazGHBIpQlw1yCFoVhTKMCaCEleAGVFCOJaBy2J1
tlCg6oNdw/I+1t80JtrYOVVEdWHOEicNCiUq17+LR/TegnKignW5G6ZOO1xmV5OuzrTFhnxRV98OGoa/2fYRTt7sXG1tlf/ngsWw
qX8sijyLhq9eDyncQnO5C/OMNMNXNXHT/2HK/52bpb8x9/9Bye+0NOQa/mNA89HZgR7F/YKnFwaRVlPqzMXyR0D9M5Haj9uNoHlW
GOGNVov+4QdTfcp1rpOgdapbp/sqYgHrMQcgrFOhtN7LeshR/eZvkGQ1GAMlCNH6U3AzpC+pqjFKjU4FkXmxJM/JkmUpz0dUtF1V
DoIIsyYodTyfT/8dmqHOmIgbnKZYYRsng1dgTF2JE3pTZa9JZgnwa8XXztGVlcP1wJ3yfqDT+pbr6rXGT9/HglGBWo7UxES9TLpG
rN4mBug11tySdemwcC4cMuSfqKgkNJUVNQhdgPjGtOnT98EXCBOA8QqgCicaXGKVOFHV8AmRVeUJhKkKCjZWUBVYsUAjkArCMxXx
0/cx6/lPovOlS18AH1pJIb4nDL7SAw3R3JE2F5PVqXua9E1fMKyWr7ni/3xfUzB46ZxxhR/3/GuVAPRd7VK8yYR4Cn1Xi+3XDJ0f
K2BWEdjjqNczux/UaV8yA7nNX9COIzJ/1g2eG0O6C8ZCRFFKmJTOQnwU2JkMWJmyj+tvC5R7l1MMzRVAQpZqDrXvMGDKHZmFSaYt
flVaFmpnyEymN+nJ/tmosC3WdzujQ/ae9D8UydZx/h6gsS5nzwGNw5pW69OroUgCb121XqthFWWq+TjiXJqWwsoNFZtNpzQ5ZLqp
y+M1mfHCaR2dZy7X57czGmTuwkX1/3gzqQL2j1w/MkOOmcz6Rr3GBxjLO4ketXqPYK5IgtyXcwFXa+062mQnAEyHSnk5CROELctU
UBWa56okS2pFDE/Q4WQxH9cgpNwKwiDG6nT1X84VS8XOTt2I3eDLlx1fsB6aPLS3NPT7C7I/+wJ9CZDcWdxaj2nKjRfrg+YX8lXB
K8BVHmV5oCSXYB5AyzCLAryiijE8XSUWqcofJFr1M6gqaAAJRZTprN/cb4Tl8VplJDg1lgiO+oaTTUUBzsy77QZ1PP3R9L9MxcRe
3MhDnfVni0mDjpjnuwmALpWMOaXogRuV2UwmybUglcWIPEWyBWuRMaGaDlwAQrQOrMOmxIeMh+wB1cyRydenC0Jl0L6mnD56YbCz
vPPsyiPnfQtdJ4g7C9eP7x8aaivAqHl4BQ4NWCXQDsYYoD5ggZWVxEgLpxA3b9TKmwIKtbxCzJW2MwKrF0wRZAoXVs2f3nb1muVf
p326+HtciTApFi0g2nhFh8Ck/ophNX6mzffRyRX9D2XRCZ7pkNXGXNc63q5LqbycjKGvetSdNKNFZbFpzUkwZO4FAIE24/PLkDIA
ygglobDrLUdvE8R+21bD71L5kEGO8b6QvMa2aJlVeARfYxVDGF0Lr4YbNGLOTpisc9n4MeYTeodpXW8JCFEN9QB5VbRxVSzkIRGA
UFDCKygBoyIoVHFQYqGqSKvWg+ifbWP4lkdEPhVabqo/XM5pj9lq8gLSn86dvtxaOyFkGjhsT5NZ3tZqyEMbDVjGHsVpXDLgutqE
54UVj0qDF6GgBtXTYOIJF29t0kfDdskZcq7pFxt67GrY2r9C5ztxwSGp2YBNY8JSDYTOG+GnEYWaSAJQQLaUS8ZLqUhOSpthns2n
Mal8WdW8qu2QjvbEwXBBmEGu5VW4cYbcg+HYQ8KaWuRb1zoKJrd7gnw/OZ0evaD/rUyzJKs+T/LanENRT7g8lYVktsWKKOfBOYuG
2m+U50F/spZg7S7krnmdsqbh/iSHQyviayLQfu3Fl+vG/Vxhz+eP26yTY+4W8XLHcp8v9sLMRyObZY5i5qAL281fVRV0nm5/Kexw
Ljq+PM+aGlZsjwbBnyXOpn2rITo+ntq3sJVQJi8pPpxqilgzRxR06f7383+EpxdWXW0tt/arV5GXkXfV9J/WXrAWIozCSYbXEsMn
H4D2TeMbFzljBTTGnStHqBaS6X9/7kAG0eZ6JuSATdtYySxF0zUruotdcZ2IPrB/hJoxfWlylfhNR+PmpFSd5CrP8VXaqwp3oVoU
eB6qnla9luCrnipxPL++9AIBPAJJIiyF7dz1hp12R51drhFNTSsDu3u05fxMyNDoH6jNvM31bjLomZU1YjWJyIxOEUxFUs2Go9un
O1wrsvn5t3utW/ipHNuopM83uk6mPpeNrBoWuUx6XNeeHu9u2MlLTWS8MfHZ4WS8zEScIt1cVWIEHuNRGquTL7uc9qBFhsXXSJPO
ZuxCFuQblwrilo7TvVt9c6OrreqbWvEigcenyZ8lguUr4iF8bZq+xunSeaMUr0/YZ4yc972J9paL9Ef8X7L5mcbLDQeVwyzfempp
aG7yeuHq0juyYwZhqWBruYOsHbKPvHsBWu5DHsUbnba/QC3nufcK5zdZ9rJdeTdh/aAFuklpe2i36o5OijOoQ4MzB8YdC216Rt10
ekZ2qUnbnn79AaiUbu6D8bkpQDmrXFFrDNLURGpBPfP2cZOo9BCsTWsWd/haEjFx05Rr/th8YkFuTivkpeUoLbBFVkUMbIQ8DCzM
pH45Oi0QJUPzZq1Sd361rj5rWDONRQu5g+FapVozCyqa/u9DQ1O/uXSuJ3CIo37NNMV/8aXA+IEk1q/4+VrTB4ppXyLSOJ+sNUTK
RkadM1VjWsYtYRFNFliDdRxaYuQFVRGXNVRZ0gvKUgayR97UIMxGC58e4aSqFVUDV1DgeKRqY5xYhRO8WkBFAWMFSRSqqgup6kmO
v6Hpqk3rux68lEJla28cKb0ZzS4vGp4jP4ufp1+MXNmw88QTNbig7nG3c82fuek9ZeDZs8utlsZshL+NtmSSZK+KHFvlDIG838r0
5YS+ioDIRh2IFOD3ht5bXrkigUtFV580dDvXcuzzNIwILlGdZvaqvSPtd7cMikvklO0zZybbmrqntxg/qjcuTVxYTjS0Bkay0Sto
jfkiycG4qFGpDFp9pFyfBt0aJTiMZ8qSQ11hxXhWVWdXCwbMXHKOWFTOI8KsljDCSssZjHvErYVXHyrjIWdcmfEbRe73TvYmPJXX
Yi2Fe9RHY0Xqsxc+C/EEyVUwiM/CZZYAJDURRjEeVeXUCITwcIIFeJHVwTxWBlBFhkE0HH3pjlOnXHNdbTffpfum+wK/Iiu8zC5M
AMl5X0Q/pFR+LHiOeD6xHVpdRC3Wn94u2K65l7Z8+Yoh3RPO3ndr9rkf3vvWaHvL87s2HQ2tHfkMnHf2brpz6Egc8JKbay/+ZcSo
nGlgwkKm6xaZFG5yweBIuzPduHE5X3Rl/fMHy8VVVY+mvGHl7MXpTGWFZXULtNMo5rP5ebO7bDWw6BTXZMVVV2DZikwLJODB8vKm
824y7SiWhmvsYqli0hTV6ZS6iI6FIyBRAJZVpUvH0MKiMZR6l465kYkG4IHQLXMnofSJhJhxCE4JcLDaYgav8hMsGMtGVspIECsi
MXVQwxuAipxDsIxg4nA8nihyQhopK/Ick4EJsU5f8isVQoOwZizrx61SYd4nGOyLsuQCU8n4mxABMvOxcXlKR5T4WhzlBCsRPywr
ddBgrWqyQddb7Cy9Zt5n/8rsRA4qnym3HGivc7Do5w9p3N+ByRJUcEZjU56r7nSEMASweCJHDIR1bJ7hBwNzcdYjW5VrFuS1fmNL
lTsEU4ljzKw+QKCyFGrBSlcJlZIkIkRyqqlhvljhAkqj1AiajKv7eSy4qc3bV8ZynVpNZEG0u+H/wjA4HHgZG/Llgy2xa+E1aotO
Y+rInUcs2Qnf97sCjy76220fht65m0bUycjSlY9reF/7GYsVr9GtHj6fntHaXRPMoF+bdxZqYmQh1XNbi2OIv3kFlv7SJU+usvJ/
ufl9T3734GR+O+rCALZDIV01yyTDeMUvudSio92zUCYXlNeuxjJZi4DmPTRfwYzFNo/Y/gd27dQ1jQsg5+RLgnDinZa1ea22G295
uaEoB/Lp8TgvIWlB1plTZPvz+fpJjcnptdlHrSxAb2oIR3cvHjBek0nW0saj7JUx9BvqmkBNkRFmczhP++GyHbKseXiibly91peC
oVp5jANxtpAtmplCCJJCXNpDQ8uzaoCklWsFbAVWaXJ5d3+lifVb1ZycFRYAKX6Vq/iSdTSA4XuZerAV47BKVMullUKqKaTLVoSC
TIHwSiETSzi3i8VwMWEGrJPp+iK+8SjOJyhj6jzDOH0KvCJvWwyPVWy63XCptAm7qFneqzQXlvRg1NY8EOMMrVJeih/Q9+cUtqu0
0zXh76MrNSSYZbtUhrp+T4ZPzpr6jK13iqkxi/rD2sq9mzpW6xvpYXVE1E+Sjdz2mDG3L/8MqNk2YZ33LaW1q0hkKKuN8s37jhja
zFtuCQ7OPimEefXmk8FXkNNnNqbuBGVdIY39UT72zXkDIOu27Nzv9/klDd1yxZP7aqLfnmc0xrgp2VSAjO505hw2+Jz21tbFXYM7
HoquNRu4EiOSMIORCM9r41WRB/O0qOQlrCoGlQLIV6qiHsMYWuQFXJQkhC9BZbBIChVQlIAcKStDpCDJOGVFACsVMCehOJiHSRBU
VAs8DVeKGQnFANxUpEl5Rc4jKEaUUBkuRcEYWeQxDK8kaV6uBzEeB8EEKKVAbEFmxabMfddCgLp7I659dW1x1jtregUJRYqe2ij6
euvUTtC5o6R2wPJobw36VrNb87L81b8j+9rTsGAtmiTGYT1KtmbjbVriJiOpe+NuKMvqH1esZrlyTBsoGv0LtjkofIoDWVU4ao1k
3DlO0xmj9fliV3kRIdbK5VrR5KZluDaY0sjTQLkcMbEJltnYyhpkrco7XNmowOv9Psfe/j9s5PS/m59V1c4Lt89KYNo+FTy4un9V
N2N3dpITR4tr/bFAvJC14cWpmnfun8gkfVcrg4I9yDoS9nzH5B75wxcvzjC/PFnCplvq0ksBvBXfq7HVHEV0BK9WcZE4yOSQIAgX
lZDBhOsLamAa0GiNAhpVy/MfgvkqPRIjOrs499zQ8jAVmRyTydqAWAo8taN8cbynLSufjwCbTxG7bdNvGw8lra0CqiEvPy90JTmN
Y7XAqkuaATpttAezujI6SfMgl07Wre4InkN1TqEhmNXYFgrCRJ94BNFXgFQhhsgggeHQCVMJ5OiMM0vLsxWeS+YENo5pcIyDSDXM
CLARUXIyhGHMy28ZoKUK14hchJw14GLG6VCNZDSRLSI3H9omGDw6YFl0VP307GxSf+mY2n9plAasTmuprBfHrqvrzEbTqHolnUVe
R2B1N5ORMWK2dhUr4iejnxFaRjcXUPXfsZIKgDeCnfU1IVCC1lMl65JZXE9OQ+sfCa7uN1aPQOhGRsW1yXcN1q9ZSgknjStOwzk8
pLkuyjag2UmTlvRtGIl48nN0zSA6uWOPr+Nq7s2mVKFi5lg4Z1kz2EOgP6EwZTUCqaoKXpGAojVpVZyls8nYHEyKUd6oETPKQpbl
RIRAs9VIlK2GZ7xc5O18matjMroVPlmSGE6UqwRNIQ8DaFV2MZK8ImUDYk0Ni8A2GYSr+XQxo3aby3XFeVg/nVWpl4qmTDXkN8Yr
ygZD3seGY0O/OBseCmuB9KpZrb3zIXSyYMzbYdulFf2x+ph6Wja6XUikJgLZiaxPOhBy5Tb/NZW2vqomgdX9b8W/rtlJwHrsCP7v
eTXQMQX4t9TvOPV9x/ud9zZHmqOrd+uafJb4SRuU67+1UZs4SqiT4fZz85dsR1cnko3LyU8/gwo80Z5Dm4mgGD1ric35GUYxASeC
DSMKIlX5mMIVxnEgEF8GZwNMrXFm5kShDDmwNhNl0QUJl0qMBWJWZwaq55Qyk54zY/1KhWSdB82uRrnc3tzkvt6cDTSvGXc8ByU+
fiDBDe3LoaMn73av5nT2LfrrRvEuU/H2WOcxIHbnHR+yy5YUpJC1yJZj6mvEgMsWGwWDWE2xpcbfjk5ewPW6TMEB36Vxh0zR8xUy
E2/TEI0Kuw2u7YKLGuufvMu5+B8i3c+/eqBAjDwsvtf4Wc3YWG/6mLs7XRfPawtMbAts6DlcirqNmDutOrT8taRmxNDadma2ymmO
Qnn6DnyKoy6GfBvwT97hFrq+8rmoIVn0+zINhypYRtFYFw3tpYk2/yQNGherHKylI/qXF4wz9PEVvV2NINjdOz2yzKxy7/WbprY6
MvPRZ85goFwWKWKwyQ95NCXOrFLHSwWXmILyi/YmIWhuxrGCCleoo9dlfEsXUmdc+zG1tcUXrZEiyT/pLyuUd0yHLnqa8m0Ga/n6
1oRzbUxYZU19mVLfTKyRGF6DyET20895dkHzTMEWu3SQ7cPUys5FW2VXf4Zyw+q4O6Ua/FBr0hvTFTrCNxja08AA1JQaylLDxjVc
ffqe9959+Vjj/PIntOyNGiZcf5NxtRJOfWJuy4/NyAljf2a/57zYJ2qLdVfzZGot+IH1K8tk9F2WXj7aeUsfFi2GP7zZsvlBsH5I
viNCR7lSCbrcEz3DCDzL6cyvvN8kCi2JS9ff3lvIH/Y9QhIsWDqhC7SDsTWGt6GmllAFvCViCY+ompxMsKZHM1syiPXVcEWDlP3L
dmtbdL7x7e1Ldwobtmdvy+/01G5Paq7E39fJSsXV3YfArWaEIZQAxCihKhKhPFISeBmAQ1XehSQeVvMwiIhlMy8UQBFhIT1KS5VY
YMHBlA2V1JIPT5cqywtQIOMB1BkXYxa5lCw7HqvAnLykylUQgY8XAdi9bfcvQem+DOrqw7rEneaZ0jOPZA52q95uhgybzGeAM731
CX+r7PKJ2m6po2W1La+6NpG0to33iXhYGd3fH34/c6GdGDa0BZfOJK2V24XX5LHOdxpqU8sgv+h2yw2CyusRAYFlEEEsqwE5DIGs
Lm8tV5QYi64rk5xUIkQGIUuCKMAcxPEgw7IN4UU1nbG0JVG8Tautw0yWgPy8nMbu5SSzPlSCOs/LxuDMSKoutMls0/YVgPm/gw2Y
KYO1tr07mItkMtni4pr5cghHyMxS2JQD1LIiwBUyNTUOMo/XunrZGeJwD4yNNk8qCoqVj2Nv7TOYe+yDBn1JhQf26oHTDm6i0esm
TeOEmZ7dVnCLGeC63MmEV1eVMoSVqg5Rm0X5EtsmQfJ8kc1YoyXYZxYJpUrUNBjofEUnE9OEWAjXSbeAJZBGTy6L+itlU10bF0gF
7aVzzX7lwbPOGetY28o7gQ5Rn/frZSpe28FERw5z6jEUcpSl6fKafXfvRHb+z6egRgXakzkKkyPIx1bxKj7c46sPTMpGjePnBhAA
FKsUJ1YhHIQggRVEsSxwACBUIV9cr5EkAVlP36KAgPDC+orRp88bXMhqnB803DP0kA/JnIRbE+RNtl20+PFbWenglnumrHG5adjx
gbwATc+7NDPbj4pCj+6Yu2Qwhj4ZsOolbU9NEbnWzIXbx2K99yCh7ptXtNatPtSc/9bqmeuDw5Ofu9WyqsluJmRaWB5MQE2KpMy5
krEya4W0KQ+GNamkHsUEUGhnGmQCDLkqmZKCxXZJ4/WIDUgsqGcN04YI6ncGZo7FZ69dRq+ZztD6NJuRH7+WqhN0lpULOGe2e2jg
/4ets/KwlcgwojWe0UoMGGNuxsB061TuCrlYlsPx8sxak6VF2DSwj6MLg2ujsHHlb+ws/ffsmXSDksX1euiv9eBfE27gXzPvUVBg
tIEcrJUgPFThOFolxnHcIrJiDs+SbAVESFJWxBzlxBIrV9Hk3/GeTC4tVAP7MiAhYVKSyixaLFfkWMkgkEUwI5LlPC2ISlyCIFxA
JQ4isDHdm0CpTsx0Nh+9L9q+y+j42uKVDzvrC7HzWfWcXmKWwJEPSg5DPy+UDp8fi12oUSQwdx4IT+4H4tDJXg8C9TWNveQxYXmV
wa5fOljnj+s/UdS19HoKVbIZqC8E7rcsqOn01L6Q6zCHTNGSJjQkNfFzi72xkLOg1zx0gZZeiDe0FQ67P6h4FyRrF5IJjB97OFk2
rQpJ6NK93ZaNxTlxg1K9EHWZyTfDad+h1p8arwANI7/br9g41l0TGU/DSuXs/qkVebomm2G4wuwasvM55clJeAGqhU53b734/ho7
WemcvzI3e6CkromZ2xlNLrnh1hZVYv6YfE3ravO5OgqGXyh2jPZqTzUoekez5/OusaCf55OpOo1r9h7lGVMdMLGxa8fUtH+NFWTq
WY3mcrJyF3RZZ7fbl6/HSgf1xbVFQxxeTQbxvakZuGa26IFBUMVVFeX6W+wwSIgSCgBlkcVxDqiqTxHB8KqTowIIFmGAhpEMrICU
K83aUKMcl834rWA62M56iKgsZZ9oLTZehIqhA/BFXJXFlhY2tS4TGmOF7ffmfc1e/az2/oHzYCWB9aSEzLL7IBDxDeKlo5mdc7lR
J+/MGI6T/7xfYBYJw/zCzzXFpE25TfOwakOt361SQ4u+RNzO6joXyg2w5e2oapgIx97o1O2blQ+DTqu1zlGU5eo6QXldGLaPF/1Q
4mG7r32vpE8KS8FDFaYryvHnVPNAfbj34/vJltOH/MFLchA1V8CMs6xL4FKkatQ2H55IV9BVAcRBhZ9EdVqdMpcvFYpFeUkt86st
IM2xRg9gl7Fbrdc8mYWp3ID9nKS6916nHsiffO7qTOOvT3WZ8iNn9lvC0MVXMquT6nrm609d2HW3vpl6f//QgdR5rAM7svvCR7u6
4ZvmrXBV5DuM0PELsN0p5pPNYVOqZv2VApAHqugrVV2gukugsO6uVaTlEHH95WNmvYUEVXhkXXMjEjDmP59ZNDftJdQa/rB6bdoS
OnR5ZrCQwInpq6qazYnT3sb9N2lNLS9lsqohvVo8BZBEQ9eSNbMEJM0mEcxmhCWVRr8QcNCSkFMgJnS73Dqpo/2QrGoWyUClkFhO
XzudIESFYj4ayTakuFROKqPtkCLZmK5JRy/gikt6HiCaalXBCAOi3CpcUwfikhELRquGmK2ULNZbAahmQ5jIod0AayRDi8bNl+oA
vYwuotkFbInbiny2+a+xw//3AgD4t+hh/QUjQLwRXayHEDfy9TfwCvhfea868w==
"""
# BACKEND END
