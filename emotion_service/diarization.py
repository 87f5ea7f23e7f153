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
4. **Speech the detector missed** (:meth:`Diarizer.missed_speech`, :meth:`Diarizer.attach`): stretches
   where the de-noised track's speech band (150-1000 Hz) stands ``band_rise_db`` over its floor,
   outside the detector's segments, are given to the speakers afterwards, never clustered: one that
   touches a segment to that segment's speaker, any other to the speaker under whom the PLDA model
   finds its embedding most likely.

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
the eight cells below): S = 0 21.8 %, 4 20.5 %, 8 19.9 %, 16 19.8 %; at 16 a man and a woman at 10
dB 27.2 -> 16.3 %, one speaker alone at 10 dB 15.3 -> 12.8 %, two men at 10 dB 39.2 -> 34.4 %, while
two men clean 21.1 -> 22.1 % and two women at 10 dB 43.4 -> 44.0 %. Taken at 16, the PLDA model
fitted again on the pieces so heard (``--tune --seeds 6 --write-backend``; the sweep's best there,
merge 15 and share 0.2 as before: a man and a woman 6.4 / 16.3 %, two men 15.0 / 35.0 %, two women
15.5 / 40.1 %, one speaker alone 7.9 / 14.3 %, mean 18.8 %, count wrong in 49 of 264). The 10 dB
condition is white noise; the tests check pink (1/f) noise too, at 0 dB (DER 6 % against 13 %
without). RNNoise (``pyrnnoise``, its model in its wheel) before Silero missed less of the speech at
10 dB than subtraction at 4 did (11.0 % against 12.4 %, 15.4 % with neither) but more of the clean
speech (6.9 % against 4.6 %), and ran at 29x real time by itself: the job would fall under its 20x
target; not taken. Nor before the encoder too (RNNoise, then the subtraction, on every recording;
``--seeds 3``, merge 15, share 0.2, the models fitted on the pieces so heard): the 10 dB cells
gained (a man and a woman 16.4 -> 14.9 %, two men 32.1 -> 29.0 %, two women 45.6 -> 38.5 %) and the
clean ones lost (a man and a woman 6.3 -> 9.3 %, two women 16.5 -> 21.7 %, one speaker alone 5.5 ->
9.8 %, alone at 10 dB 10.4 -> 12.7 %): mean 18.7 % either way. On noisy recordings only, it would
need their noise judged first, and the denoiser alone runs at 26x real time. With the noise taken
out, the detector's threshold was compared again (``--seeds 3``, merge 15, share 0.2): 0.25 18.1 %,
0.35 19.8 %, 0.45 20.9 % (at 0.25 two men clean 14.1 %, one speaker alone at 10 dB 10.6 %, the count
wrong in 23 of 132); 0.25 taken and the PLDA model fitted again on its pieces (``--seeds 6``: merge
15 and share 0.2 still the sweep's best, a man and a woman 5.0 / 16.6 %, two men 14.9 / 32.4 %, two
women 17.8 / 44.7 %, one speaker alone 5.3 / 12.7 %, mean 18.7 %, against 18.8 % at 0.35 with the
same seeds: a tie there). Lower thresholds, compared later the same way (``--tune --seeds 3 --merges 15
--vad-threshold T``, share 0.2; each model fitted on its own pieces): 0.25 18.7 %, 0.2 20.9 %, 0.15
27.1 %; below 0.25 the noise holds the detector above its threshold between utterances, so parties'
turns merge into one segment (at 0.15 half as many pieces: 1334 against 2686) and at 10 dB a man
and a woman rise 16.4 -> 17.8 -> 34.2 %.

**Speed-perturbed voices, compared and not taken.** Eighteen training speakers are few for the
spread between speakers; as Kaldi's x-vector recipes do, each training conversation was also played
0.85, 0.92, 1.08 and 1.15 times as fast (pitch and formants move with it) and its actors counted as
new speakers when the model was fitted (``bench/diarization.py --tune --speeds 0.85,0.92,1.08,1.15``;
a conversation still scored with a model that saw neither its actors nor their copies). On the
tune's 80 s conversations of actors 01-18 it helped (``--seeds 6``, merge 20, share 0.2: mean 17.4 %
against 18.7 %; same-gender pairs clean 14.9 / 17.8 -> 12.4 / 13.2 %, two women at 10 dB 44.7 ->
41.5 %, one speaker alone clean 5.3 -> 7.3 %), but on 4-minute conversations of the same actors
(44, the count not given, ``--seeds 3`` models) it counted worse: mean DER 21.5 -> 28.7 %, the count
wrong in 33 of 44 against 27, whatever the merge threshold (15-25). Interviews are long, so it is
not taken. (The test actors, measured once before this was settled: same-gender pairs better, a
man and a woman at 10 dB 11.4 -> 14.8 %, two women at 10 dB 38.8 -> 41.1 %, the 4-minute rows
worse.) A model per condition (fitted on 10 dB pieces only, for noisy recordings) was compared too:
two women at 10 dB 46 -> 39 % (32 % with the sped copies) but a man and a woman at 10 dB 16 ->
17-20 %, and the recording's noise would have to be judged first, on the one kind of noise the
fitting data has; not taken.

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
into pieces: mean DER 21.8 % either way (clean pairs better, noisy pairs worse), so it is not taken. Nor
is more padding around the detected speech (``SegmenterSettings.pad_s``; speech activity only,
actors 01-18, ``--seeds 2``, 0.25 s collar, missed + false alarm clean / 10 dB): 0.05 s (as
shipped) 3.4 + 0.0 / 9.2 + 1.1 %, 0.1 s 2.8 + 0.0 / 8.4 + 1.7 %, 0.15 s 2.3 + 0.0 / 7.7 + 2.6 %,
0.2 s 1.9 + 0.1 / 7.1 + 3.7 %, 0.3 s 1.3 + 3.7 / 6.2 + 6.4 %: what it finds at 10 dB it gives back
as noise let in. Nor is an encoder that hears only each piece's loud frames (those within 20 dB of
its 90th percentile frame, as resemblyzer's own preprocessing drops silences; ``--seeds 3``, merge
15, share 0.2): mean DER 19.0 % against 18.6 % (two men better, a man and a woman and one speaker
alone worse, two women at 10 dB 45.7 against 45.6 %). Most of what is left at 10 dB is missed speech
and same-gender pairs counted as one.

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

**Speech the detector missed, given to the speakers afterwards** (this version, step 4). Adding to
Silero's segments the frames whose 150-1000 Hz power, in the de-noised track, stands 7 dB over its
10th percentile (runs of 0.3 s or more, gaps under 0.15 s closed) halved the missed speech at 10 dB
(10.5 -> 4.8 %, false alarm 1.0 -> 2.3 %) but not the error when those stretches were clustered
with the rest (the PLDA model fitted again on the pieces so found, ``--seeds 3``, merge 15, share
0.2: a man and a woman at 10 dB 16.4 -> 16.0 %, one speaker alone at 10 dB 10.4 -> 10.7 %, two
women 45.6 -> 45.5 %): that speech is too noisy to shape a speaker. Left out of the clustering and
given afterwards to a speaker it does help (scratch runs on actors 01-18, rise 7, every condition of
the bench's with its room, far and 4-minute ones; mean DER 16.8 % without): to the speaker under
whom its embedding is most likely, 15.0 %; to the nearest piece in time, 14.5 % (a man and a woman at
10 dB 15.1 % against 12.7 %); the stretches that touch no segment only, 16.5 %. Taken: a stretch that
touches a segment (an onset or ending the detector cut off) goes to that segment's speaker, any
other to the most likely speaker. The rise compared (``bench/diarization.py --tune --seeds 3
--merges 15 --band-rise-db R``, share 0.2, mean over the eight cells): 0 (off) 18.7 %, 5 19.4 %, 6
17.5 %, 7 16.5 %, 8 16.4 %, 9 16.6 %, 10 16.8 %; under 7 the white noise itself passes for speech.
Those runs took the floor over every frame, so the clean cells gained most from the bench's digitally
silent pauses, where any sound stands over a floor of nothing (a man and a woman clean 6.3 -> 1.7 %),
and on a real recording that opens with digital silence (a call not yet connected, a muted line) hum
would pass for speech: the floor is now taken over the frames that hold any sound, per 30 s block
(``noise_block_s``, which also bounds its memory), and the rise compared again: 7 and **8 17.7 %**, 9
17.9 %; at 8 a man and a woman 5.5 / 13.5 %, two men 16.3 / 32.2 %, two women 16.5 / 44.7 %, one
speaker alone 4.5 / 8.4 % (clean / 10 dB): the gain is at 10 dB. In the room, reverberant tails after
a turn add 1.0-1.5 % false alarm. Treating
the detector's own short pieces the same way (clustering only pieces of at least 0.8 or 1.2 s and
giving the shorter ones to the most likely speaker afterwards; a scratch variant of the same tune)
scored 16.2 and 16.4 % against 16.4 % (the floor over every frame): within the sweeps' noise, not
taken.

Long recordings: on 4-minute conversations of actors 01-18 (60 turns; the tune's are about 80 s)
the count not given went wrong in most (mean DER 38 % against 18 % with the count given): with
60 pieces a voice's registers separate by a log-likelihood ratio of 60-160 (about 15 on 12 pieces),
as far as two speakers do on 24, and neither a threshold scaled with the number of pieces nor one
on a ratio computed with each cluster's evidence capped at 6 to 25 pieces told one speaker from two
across both lengths (at best 151 of 176 right). **Counted block by block** (this version,
``count_block_s``): a recording whose speech spans two blocks of 60 s or more is cut into equal
blocks from its first piece, the speakers are counted on each as on a recording of its own (the
regime the threshold was tuned in; a block with under 10 s of speech has no say), and the whole is
clustered into the lower median of the counts. ``bench/diarization.py --tune --seeds 3 --merges 15
--blocks 0,40,50,60,70,80,120``: 66 conversations of actors 01-18 of 2-6 minutes (each pair's 60
turns, one speaker's 30; two clean, one at 10 dB; models fitted without the conversation's actors),
mean DER over the cells and count wrong: counted whole 31.5 %, 45 of 66; blocks of 40 s 22.2 %, 17;
50 s 22.0 %, 17; **60 s 21.6 %, 17**; 70 s 22.0 %, 20; 80 s 24.5 %, 23; 120 s 25.3 %, 27. At 60 s
one speaker alone clean 34.0 -> 15.5 % (found alone in 8 of 12 against 1), a man and a woman at 10
dB 26.9 -> 15.3 %, two women at 10 dB 47.5 -> 51.8 %. Compared there at 60 s (a scratch variant of
the same run) and not taken: blocks measured from the recording's start rather than its first piece,
20.7 %, 16. Block boundaries half a second apart moved the mean by 0.9 points (two women at 10 dB
44.9 against 51.8 %), which says how noisy these sweeps are (as noisy as the gaps between 50, 60 and
70 s); measured from the start, leading silence would make a short recording long, so blocks start
at the first piece. With blocks measured from the start, the lowest count over the blocks scored
22.6 %, the higher median 22.4 %, no minimum share within the blocks 22.1 %; from the first piece, a
share of 0.1 within the blocks 22.6 %, none 23.0 %. On interviews, which the tune never made (the
same command: one party asks in one utterance a turn, the other answers in two to four, so the asker
speaks for 18-30 % of the time; 48 of actors 01-18, 60 turns clean and at 10 dB, 30 clean): counted
whole 30.8 %, the count wrong in 27 of 48 (mostly three speakers found); by blocks of 60 s 18.3 %,
wrong in 17 (the asker folded into the other party; two women at 10 dB in all 5). Recordings whose
speech spans less than two blocks (the tune's, the bench's 12-turn ones) are counted as before. A
party heard in only half of the blocks or fewer, or for under a fifth of most blocks' speech, goes
uncounted: the count, when known, is the better guide. Whisper-base encoder layers (0-4, mean and
spread over time, the whisper-probe's weights) as the pieces' vectors, with the count given: worse
than GE2E alone with 18 training speakers to fit on (mean 21-23 % against 18.3 %); each in its own
PLDA, the two fused: 17.8 % (clean same-gender pairs better, 10 dB worse), not enough for the
encoder's cost.

:func:`diarization_error_rate` scores a hypothesis against a reference (missed speech, false alarm
and speaker confusion over the reference's speech, with a collar around its boundaries).
"""

from __future__ import annotations

import base64
import functools
import itertools
import threading
import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace

import numpy as np
import soxr

from emotion_service.segmentation import Segment, Segmenter

ENCODER_RATE = 16_000
MAX_SPEAKERS = 6  # the most speakers told apart in one recording
# Shares of :meth:`Diarizer.find`'s time, for a job's progress: on 2 cores a minute of conversation
# takes about 0.15 s to take the noise out, 0.4-0.55 s to find its speech, 0.1 s to embed the
# sub-windows and 0.2-0.4 s to embed the pieces and cluster them.
SPEECH_SHARE = 0.6  # taking the noise out and finding speech
EMBEDDING_SHARE = 0.25  # of the rest: the sub-windows' embeddings, before the pieces and clusters


@dataclass(frozen=True)
class DiarizationSettings:
    """How speakers are found; tuned on RAVDESS actors 01-18 (``bench/diarization.py --tune``)."""

    # The pause the segments were cut at (:meth:`Segmenter.segments` ``min_silence_s``): shorter than
    # the job's, so that one party handing over to the other after a short pause makes two segments.
    min_silence_s: float = 0.15
    # Silero's speech probability for those segments (the job's plain segmentation keeps 0.5): speech
    # the detector misses is missed for both parties, and a noise frame let through is one piece
    # among many; on actors 01-18, 0.35 (level-normalised) missed 13.5 % of the speech at 10 dB
    # white noise against 15.9 % at 0.5, with 0.1 % false alarm; with the steady noise taken out
    # first, 0.25 scored best (mean DER 18.1 % against 19.8 at 0.35 and 20.9 at 0.45; module notes).
    vad_threshold: float = 0.25
    # Steady noise (a fan, hum, hiss, a line's floor) taken out of the track before speech is found and
    # voices are embedded: each frequency's noise floor (its 10th percentile of power over a block of
    # ``noise_block_s``) is subtracted ``noise_subtraction`` times over, the gain held above
    # ``noise_gain_floor`` (:func:`suppress_noise`). On a recording without a floor (digital silence
    # between turns) the gain is 1 everywhere. 0 turns it off. Compared on actors 01-18 with white
    # noise at 10 dB: see the module notes.
    noise_subtraction: float = 16.0
    noise_gain_floor: float = 0.02
    noise_block_s: float = 30.0
    # Speech the detector missed (quiet utterances at a low SNR, soft onsets and endings): stretches of
    # the de-noised track whose 150-1000 Hz power stands ``band_rise_db`` over its 10th percentile
    # for at least ``band_min_s`` (gaps under ``band_gap_s`` closed), outside the detector's segments.
    # They are never clustered (too noisy to shape a speaker); each is given afterwards to the speaker
    # whose segment it touches, else to the speaker under whom its embedding is most likely
    # (:meth:`Diarizer.attach`). On actors 01-18 (module notes): mean DER 18.7 -> 17.7 %, a man and a
    # woman at 10 dB 16.4 -> 13.5 %, one speaker alone at 10 dB 10.4 -> 8.4 %. 0 turns it off.
    band_rise_db: float = 8.0
    band_min_s: float = 0.3
    band_gap_s: float = 0.15
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
    # Without a given count, a recording whose speech spans at least twice this long (from its first
    # piece to its last) is cut into equal blocks of at least this length, the speakers are counted
    # on each block on its own, and the recording is clustered with the lower median of those
    # counts. The evidence that splits one voice into two (a register it keeps for a while) grows
    # with the number of pieces, while ``merge_threshold`` was tuned on conversations of about 80 s:
    # counted whole, a 4-minute recording of one speaker was found to hold two or three. The price:
    # a party heard in only half of the blocks or fewer, or for under ``min_speaker_share`` of most
    # blocks' speech, goes uncounted (give the count when you know it). On actors 01-18 (66
    # conversations of 2-6 minutes, clean and at 10 dB): 60 s, mean DER 31.5 -> 21.6 %, the count
    # wrong in 17 of 66 against 45 (module notes). 0 counts every recording whole.
    count_block_s: float = 60.0
    # A block with less speech than this has no say in the count (a lone remark after a long pause
    # would otherwise weigh as much as a minute of conversation).
    min_block_speech_s: float = 10.0


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
        ``waveform`` itself, so the emotions are scored on the track as recorded. ``progress`` is
        called with the share done (0 to 1): the detector's share of the track up to
        :data:`SPEECH_SHARE`, then once the voices are embedded and once the speakers are found."""
        report = progress or (lambda _share: None)
        heard = self.suppress_noise(waveform, sample_rate)
        segments = self.speech(segmenter, heard, sample_rate, channel, lambda share: report(SPEECH_SHARE * share))
        found = self.diarize(
            heard,
            sample_rate,
            segments,
            num_speakers,
            join_gap_s,
            max_utterance_s,
            lambda share: report(SPEECH_SHARE + (1 - SPEECH_SHARE) * share),
            missed=self.missed_speech(heard, sample_rate, segments, max_utterance_s),
        )
        report(1.0)
        return found

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

    def missed_speech(
        self,
        waveform: np.ndarray,
        sample_rate: int,
        segments: Sequence[Segment],
        max_utterance_s: float = float("inf"),
    ) -> list[Segment]:
        """Speech the detector's ``segments`` left out, as the speech band's power finds it (the
        settings' ``band_*``): the stretches outside the segments, each at least ``band_min_s`` long,
        one longer than ``max_utterance_s`` cut into equal parts no longer."""
        s = self.settings
        if not s.band_rise_db > 0 or not segments:
            return []
        found = band_activity(waveform, sample_rate, s.band_rise_db, s.band_min_s, s.band_gap_s, s.noise_block_s)
        channel = segments[0].channel
        taken = sorted((seg.start, seg.end) for seg in segments)
        shortest = round(s.band_min_s * sample_rate)
        longest = max(shortest, round(min(max_utterance_s, len(waveform) / sample_rate) * sample_rate))
        stretches = [(a, b) for start, end in found for a, b in _outside(start, end, taken) if b - a >= shortest]
        out = []
        for a, b in stretches:
            parts = -(-(b - a) // longest)
            cuts = [a + (b - a) * k // parts for k in range(parts + 1)]
            out.extend(Segment(channel, x, y) for x, y in itertools.pairwise(cuts))
        return out

    def diarize(
        self,
        waveform: np.ndarray,
        sample_rate: int,
        segments: Sequence[Segment],
        num_speakers: int = 0,
        join_gap_s: float = 0.0,
        max_utterance_s: float = float("inf"),
        progress: Callable[[float], None] | None = None,
        missed: Sequence[Segment] = (),
    ) -> list[Segment]:
        """Speech segments (cut at pauses of ``settings.min_silence_s``) as utterances with their
        ``speaker`` ("S1", ...), in order: cut where the speaker changes, clustered into speakers, the
        ``missed`` speech (:meth:`missed_speech`) given to them (:meth:`attach`), and consecutive
        segments of one speaker less than ``join_gap_s`` apart joined again (up to ``max_utterance_s``).
        ``num_speakers``: how many speakers there are; 0 finds out (1 to ``max_speakers``).
        ``progress`` is called with :data:`EMBEDDING_SHARE` once the sub-windows are embedded.
        """
        embedded = self.embed(waveform, sample_rate, segments)
        if progress is not None:
            progress(EMBEDDING_SHARE)
        labelled = self.label(embedded, num_speakers)
        labelled = sorted([*labelled, *self.attach(embedded, labelled, missed)], key=lambda seg: seg.start)
        longest = round(min(max_utterance_s, len(waveform) / sample_rate) * sample_rate)  # inf: the track
        return join(labelled, round(join_gap_s * sample_rate), longest)

    def attach(self, embedded: Embedded, labelled: Sequence[Segment], missed: Sequence[Segment]) -> list[Segment]:
        """The ``missed`` speech with speakers, the clusters of ``labelled`` (:meth:`label`) left as they
        are: a stretch that touches a labelled piece (an onset or ending the detector cut off) is that
        piece's speaker's; any other (an utterance the detector missed) goes to the speaker under whom
        its embedding is most likely (PLDA, given that speaker's pieces)."""
        if not missed or not labelled:
            return []
        by_edge = {edge: seg.speaker for seg in labelled for edge in (seg.start, seg.end)}
        alone = [seg for seg in missed if seg.start not in by_edge and seg.end not in by_edge]
        speakers: dict[Segment, str] = {}
        if alone:
            model = self.backend or Plda.bundled()
            _, vectors = self.pieces(embedded)  # the pieces ``labelled`` names, in its order
            names, sizes, totals, own = _clusters(
                model, model.project(vectors), np.array([s.speaker for s in labelled])
            )
            window = round(self.settings.window_s * ENCODER_RATE)
            scale = embedded.scale
            clips = [filled(embedded.track[round(seg.start * scale) : round(seg.end * scale)], window) for seg in alone]
            heard = model.project(self._embed(clips))
            gain = model.loglik(sizes + 1, totals + heard[:, None]) - own  # as refine() scores a piece
            speakers = {seg: str(names[int(np.argmax(row))]) for seg, row in zip(alone, gain, strict=True)}
        return [replace(seg, speaker=speakers.get(seg) or by_edge.get(seg.start) or by_edge[seg.end]) for seg in missed]

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
        seconds = embedded.scale / ENCODER_RATE  # per sample of the recording
        durations = [(p.end - p.start) * seconds for p in pieces]
        starts = [p.start * seconds for p in pieces]
        labels = cluster(vectors, durations, num_speakers, self.settings, self.backend, starts_s=starts)
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
    by one block's spectrum whatever the track's length; a last block shorter than half a block
    joins the one before, so that a few frames never set a floor of their own). Frames of the power
    of two in samples nearest 32 ms, hop a quarter of it; ``subtraction`` 0 returns the waveform
    unchanged."""
    if subtraction <= 0:
        return waveform
    import librosa

    n_fft = 1 << round(np.log2(0.032 * sample_rate))
    hop = n_fft // 4
    block = max(n_fft * 8, round(block_s * sample_rate))
    out = np.empty(len(waveform), np.float32)
    for start, end in itertools.pairwise(block_bounds(len(waveform), block)):
        piece = np.asarray(waveform[start:end], np.float32)
        if len(piece) < n_fft:
            out[start : start + len(piece)] = piece
            continue
        spectrum = librosa.stft(piece, n_fft=n_fft, hop_length=hop)
        power = np.abs(spectrum) ** 2
        floor = np.percentile(power, 10, axis=1, keepdims=True)
        gain = np.maximum(1 - subtraction * floor / np.maximum(power, 1e-20), gain_floor)
        out[start : start + len(piece)] = librosa.istft(spectrum * np.sqrt(gain), hop_length=hop, length=len(piece))
    return out


def block_bounds(length: int, block: int) -> list[int]:
    """Where blocks of ``block`` start in ``length``, and its end; a last block shorter than half a
    block joins the one before, so that a few samples never set a floor of their own."""
    bounds = [*range(0, length, block), length]
    if len(bounds) > 2 and bounds[-1] - bounds[-2] < block // 2:
        del bounds[-2]  # a short last block joins the one before
    return bounds


def band_activity(
    waveform: np.ndarray,
    sample_rate: int,
    rise_db: float,
    min_s: float,
    gap_s: float,
    block_s: float = 30.0,
) -> list[tuple[int, int]]:
    """Where the speech band (150-1000 Hz, where voiced speech has most of its power) stands ``rise_db``
    over its floor, as ``(start, end)`` in samples: stretches of at least ``min_s``, once gaps under
    ``gap_s`` are closed. The floor is the 10th percentile of the band's power over each ``block_s``
    of the track (a drifting floor is followed, and memory stays bounded by one block's spectrum),
    taken over the frames that hold any sound: digital silence (before a call connects, a muted
    line) would otherwise set a floor that any hum stands over. Frames of the power of two in samples
    nearest 32 ms, hop 10 ms."""
    import librosa

    n_fft = 1 << round(np.log2(0.032 * sample_rate))
    hop = max(1, round(0.01 * sample_rate))
    frames = (len(waveform) - n_fft) // hop + 1 if len(waveform) >= n_fft else 0
    if frames <= 0:
        return []
    frequencies = librosa.fft_frequencies(sr=sample_rate, n_fft=n_fft)
    band = (frequencies >= 150) & (frequencies <= 1000)
    per_block = max(1, round(block_s * sample_rate / hop))
    active = np.zeros(frames, bool)
    for first, last in itertools.pairwise(block_bounds(frames, per_block)):
        chunk = np.asarray(waveform[first * hop : (last - 1) * hop + n_fft], np.float32)
        power = np.abs(librosa.stft(chunk, n_fft=n_fft, hop_length=hop, center=False)[band]) ** 2
        level = 10 * np.log10(power.sum(0) + 1e-12)
        sounding = level > -100.0  # not digital silence
        if sounding.any():
            floor = np.percentile(level[sounding], 10)
            active[first:last] = sounding & (level > floor + rise_db)
    edges = np.flatnonzero(np.diff(np.concatenate([[0], active.astype(np.int8), [0]])))
    runs: list[list[int]] = []
    for start, end in zip(edges[::2], edges[1::2], strict=True):
        if runs and (start - runs[-1][1]) * hop < gap_s * sample_rate:
            runs[-1][1] = int(end)
        else:
            runs.append([int(start), int(end)])
    span = n_fft - hop  # a frame reaches this far past the next one's start
    return [
        (start * hop, min(end * hop + span, len(waveform)))
        for start, end in runs
        if (end - start) * hop >= min_s * sample_rate
    ]


def _outside(start: int, end: int, taken: Sequence[tuple[int, int]]) -> list[tuple[int, int]]:
    """The parts of ``[start, end)`` outside every span of ``taken`` (sorted by start)."""
    parts, at = [], start
    for a, b in taken:
        if b <= at or a >= end:
            continue
        if a > at:
            parts.append((at, a))
        at = max(at, b)
    if at < end:
        parts.append((at, end))
    return parts


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
    starts_s: Sequence[float] | None = None,
) -> list[str]:
    """Speaker labels ("S1" first to appear) of speaker embeddings, one per piece, in order.

    ``num_speakers`` 0: the count is found (see :class:`DiarizationSettings` ``merge_threshold``,
    ``min_speaker_share`` and, given ``starts_s``, ``count_block_s``). ``weights``: the pieces'
    durations in seconds (the PLDA model weighs every piece alike; the durations decide which
    speakers are too short to be a party). ``starts_s``: where each piece starts in the recording,
    in seconds.
    """
    s = settings or DiarizationSettings()
    model = backend or Plda.bundled()
    if len(weights) == 0:
        return []
    vectors = np.asarray(embeddings, dtype=np.float64).reshape(len(weights), -1)
    if not num_speakers and starts_s is not None:
        num_speakers = count_by_blocks(vectors, weights, starts_s, s, model)
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


def count_by_blocks(
    embeddings: np.ndarray,
    durations_s: Sequence[float],
    starts_s: Sequence[float],
    settings: DiarizationSettings,
    model: Plda,
) -> int:
    """The number of speakers as the lower median of the counts found on equal blocks of at least
    ``settings.count_block_s``, from the first piece's start to the last piece's end; each block is
    counted as a recording of its own (:func:`cluster` without ``starts_s``, so this never recurses),
    and a block holding less than ``settings.min_block_speech_s`` of speech has no say. 0 (find the
    count on the whole) when the pieces span less than two blocks or no block has a say."""
    starts = np.asarray(starts_s, np.float64)
    durations = np.asarray(durations_s, np.float64)
    if starts.shape != durations.shape or not (np.all(np.isfinite(starts)) and np.all(np.isfinite(durations))):
        raise ValueError("starts_s and the durations: one finite number of seconds per piece")
    if not settings.count_block_s > 0 or len(starts) == 0:  # 0 (or NaN): counted whole
        return 0
    first = float(starts.min())
    span = float(np.max(starts + durations)) - first
    blocks = min(int(span // settings.count_block_s), len(starts))  # more blocks than pieces: most have no say
    if blocks < 2:
        return 0
    block = np.minimum(((starts - first) * blocks / span).astype(int), blocks - 1)
    counts = []
    for number in range(blocks):
        inside = block == number
        if inside.any() and durations[inside].sum() >= settings.min_block_speech_s:
            counts.append(len(set(cluster(embeddings[inside], durations[inside], 0, settings, model))))
    return sorted(counts)[(len(counts) - 1) // 2] if counts else 0


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
eNq9umeYG8eZLtq5G2jknCbnnDiBHDSHURSVRVtZXtmWZUuWr493be/qyIEe26tdWba866CwlmTlLFKBophzHA4ncHLCYDCDnEMD
nftgaN97fss/buFBP0B1dXd91fW97/t9VQAIAJ0AAGw+dMa9a/dB97+EHuov/gXw+Jp7+alX3a+lnnX/AAu77/5WO/UbdsX93ndP
Us8Pf0RtnbyH+toVJRX7zETt+K2SunD8p9TAwPPus7f+u7v+QU///X+R+vf/bDc19+t3Nq3fT/rR2U2PvpFy79+AUTcJc/1HS+f6
33pIvel55LfUkw9fpI4+Xef+5ytb3T/fVUrdt+1X1PCdVurGZMJd1cK7n/7dz90/OvirTe41j7vc/0dq03fsFPxBB6WcvY0aTX3i
7uu7hcK/ZqC4Ay+615/1V/R2Svvogb713/O1f+kPP9NIXX5F6479lO07i551P6/7ov/mFa/7CBJz9z36vPuFV/7g/gOwgfrrM9Sm
Z1ueo07f/BS1fm1hVN4UfpLd+NP4U1T4ZKC/zHYnBZ3zu/9ljLx+Xpl3uP+su7H/5888SfXverx/W+Hp/rdtB6j6k09RsZ6hTWNv
kdR7l5+iftL9C8r0n8Im1qehEsM/oXrRf+19+dk9lGb4yY1H322/3uc7j/3tnlPTv7v+/6EX/r3/V58vdr+EnaC2PPFjaiEDUWDm
GxS2uYXasftFCnv/F/0bfk9s/u5/Prtp+Z5d1Hs3q9w/1Os2Py+/d/36oc//Sv3J8xu3dP9F9303v7rpl/PPUjvjfVT03WfcbdFv
UHV/zrmfP0duXjkVd992z8uUbc/3qe/2Nm56a2bW/fA1j3v7y4fcvclDlC7xMaVpf4HaathD3fCokvrO5Vupv+puu/6MV1748ybF
W/9NffsbOupn29+inn/8x+47Yo9Smmfe6P9lxVXqaOAn1A3ujNv/6jn3U/9+wF39G62b+9X33bbnTlGb4D+6v1W+nfrNjYOUb+1V
6uOqg+4Pf7nkHsR1VNuNb7j7Gv7L3XCzktr5jJn6LX8rNVZ5jnr/3cPU6f99Z/+//PLJ/kf+15/7//DYHurrzb/qfTUxQA2+8oz7
kdYHKeUKQT1z12duYtt/UvHauLvq2+n+b31DQxHjtuvju/PV2Y1nvqihLv1R6/63h+f6HeKL7vcPPEe9zNg36oHB622m2/e53//h
Pjf86DL1I4ff7b8Yo/wNT1DbFu6jdv3wUfdP2Fuut7sMa6hna3dQx/e9Rm2evJPqvSPhfvmpwKbaB9rcUeowJVb/mtoS3d2/4Ji7
Pl7g5zH36ew9lOaOseL866e6HtNTzLHfXfePW7t/SZGDf6JaWu5y19qT19s3bRvtfXrotPvMkU/7vvWI8nqd/8Mf9YO/foJq2muh
Ql8ZomL1+yj8Z2XUv8y8SD1paKdyLxL9lT6ceqD8Nqrm52bK+s7T1FO/1rhbvvsstSm3l3p9+u1NjT/6PXXmF++6+3fsdvd/+pL7
dvBPG0889Jd+teOb7gf+fdC9/3fn3IfTc26zzLmHTqqpqzYLxVY5KOemEmr7Lzoor6+X+ue7tlH4fbupzH/cRr265y5q/NpD1K33
fpN6csv3qB+0P0l9O/kUFan8T2rf3t9SAvkH6k7qOeqW1Reotzpfpvw/foMaXHyX+vqNH1GHvrqP6nvqC+q/80eon53cuXmH8enN
t77wwubbPj64eeCb5zc/f8E08OBdnQNE3c6BR/sfH4CFnw5kXxscOPD7pwfub3l74I/O8YHICLElNUVuIY41bq07anL/YvWX7ubf
fsX9xNv/5Ub2rri79l10n/jOsvudjjH3+wqP++Ad19zdoVX3T3ZiFJsR3Le8pKR+caSSev9sxv2jqN999fGM2/zYSfelE4z75nci
7quvd1DHqmuo/UA1lQdxqld7O/XU16up177TT7Xf7XdDz7dSB8k26vzFrdSirpoKHIco/8lxd21XLXXpDYj6/b/VUb8arqb+UklQ
mn2y+8iPG6jH3iqhYpaUu6JbS0HPa6m36eLYHlRRK19wbusfLdT8kgSLemNsflGa7Wuksf/S69qOZXz4qXgz+m6+YMK6wLKmXLle
sbR9pDU6FYOtZWOBa5zHtKhlEU6g4bqCseMzQSgNbXCueAJylufX0J4AW1CB+igUUWdjcY+kYWSIzUkQV+AQUOQwiBEgBVzgeDml
kGSNAPAMUjyrhFgGgqy4AgS+dKk0UWleVcJtNHTidA903lH1tqXJKIHlQ6XJloJKrzJPTeMkOlNW0nBEU54LWmtnUlABVQWW9PSy
0hDSNOJCgdNoNTLHJZLt+QoOmUYzY+n5ZR2ULkG7iYZovj7VdExhwIxCuXZLym4lU+qkldXQEpEoSDckhWpeZeRzEt4tONXzOhJb
RbZblweulJI9OUViIactK19OsiqtH83Q4bQ6YA/51wrKVFTIsfaLgimTHR6ercBzpbXWs1j6RrIpF1YdSW5Bm/joWE1z+BKryTH6
KOxuSTgGlDZtw4m1276TRS0nCt4rti6OT5I03nXUJqS3vDZRWC3MQiv9PveqnKzJxnXEhiDIzfrENhLjU0s5+NOFVNXchu6SjROe
m+Cttvu3v/tvM+8a/NNj0ca9ZFeKF/JOBTbXdek7rcf35axm3lWNev6HHQ8/TgI0HdPqLC0Y2FUzHP38sRqoJN62dnfr1JWg1era
0PkAdlW1Zyx3jXipR0Abjx3OV9rUYHCDnM33JQsfnAn58ni2AF2MTuVW6KuFSr3HPnuaUcsFXXdJcFixwbhiA8Z1e/1tG0KB5k8K
tYu5wFa0tKerdXECNl5LEFfD6YD5EOQjT4/gM7bQQx6yadbJzjrltx2SMTdruGQcIYjsNUJYDN6tgNGUjBkVBXZjWF06g3qWssvJ
u449uCTllvGUSd3pdFW568IjNR8jnpsDDFffTdTXtdHce5jexd6uZtstgSxicEfmmez8YQb1eKKWCRv8lzdc95mPzwwopUCI/+fl
eOlznrJDuWyk9Lycxnt3A/6XE3RBhSCxmXEcEDCs08jpMTwCc2qgjK5UjXNJBcnjOK/ENLJBiJ7K8h0imbLYNDneWhfiSdUCk4yp
45lGK5kVbII2PWuYD0VroQoAg1mILNRlU5A3z+NCVuJcmZSgyMMMLCwZ0yaCZ1ljVijgbAE3FghYViOlOAjhIAwRbApOxdPLERUS
XJEUEE1yKouBgXyQQBZSuBgsZHOLAag2ZylRlurgMhwtIGwyJUUCYmmwI2l+/1hef4ur876k6qWyntXYNSu6iCvFsFp9Zl4BWLWr
ZFPIc+kWKwPKYrGbIsiDMADBMsrJKggXEIlHZJmUREAAcVnCZAmEJEQUJVb+B/xcggFMhgBEhkUYFUGOBCVEgpW4AKhhUZAFERRh
EZElEZYxCQBlRFQNlx0tgzKrmYJsJnX8RmepNN1dwsW6BDJeAJu45Oq43S/YrSXmpFRPy+qhSsZTNhktXQPNaZAm6rEqR+lOh++A
Ez6/Wmmq1cLyLTU/gdtU9vj08sChaDnnu5xSKgtZHZqVQEQnptI0iwBJ0KDXSoRsQL05FY1KHEwkM+mMICG81g6ocHLNosnJfM6O
5Dw4o9FIjBmrLtCgS86jLsmvhktUpIKl1Xkuz7B5hFMXx0qGZFAsGiUgEAgBkASCMggicrG+OMYADIkguH4CLH5kqThIszV0Eg0m
K7u6pnPq/mRm37VP2K7XKzLhK3KyWqFbqB39HXn4Hei+H2bePtgQlHreC2d3/9h0YXKtrF+vv1F5x3L5J1WVrzpMHwevdcuGr/dP
OQTjr2m36qYmUr1xur12yuGN0AuxJY9sXsgmaW84KxpNuXAaZtA8T8AG2oiXLAJ4zbyU2yQjK83Rq1I0PSsV0lkF6Vkj8CTAyASo
z1apSnJOzE/gaLKQISTEDGhhUDmfVIRYqwIChfNSJdDhsv3PqUVwBSEEJ9/QaFYRR3kSmpiNxxa6mlbRghQ2dW5h8g5gGysuWLUd
EzdupOVktJmZPdC60qAKTvRGo+ciE5nPq16jVfoH952Tq1rDh77YH5FLk1tv2x+VL7+DVR0PgzU74jFzdlzJa6uQGfGC+QONSfgZ
UbCpqnd5VhJYfPsWRQ20zAci0mzIuFhkgj6tbwFNxDi4GWLb2rJG75IBjwa22g32SLScHiMIi2qm1hvJquR8vL4fz+MKm56jeTDK
k+ax5EVPEhBNcxqDCOgbduknAbcAonFjE91Z9ezEDx6UW8D8mjoVBpQeUMSwcaUlarRhMXXpih3EDS0wUu1naU6jzuiRNaUugWnM
gpiTJAGWin6wPhMEBIYkFBBRApEUmCCjxYkiFgAZpGUYk3EYlsUcWZ8Bax2MOXm+GpsorU5BcaefqLLaAM1EV1Wuwd6w9Lmz2lSS
KquwT3oVgyfm6i/eak2tlHss2pnczavyyd783r1VhvTS8Y7c7EncZWRSJnh4RrEmzC2NEhXl9RYsXhZRLI4oRrvm9UGgv3y5XnwE
ql3gqvKdxoSwgI7eooh5pmK6qnNq0iIlSkI9WQgz9WaBelriMoFLi/7dBTHQFVYEoDC6C4MD5UrxqieXUIWqgz3JVnqrGW3hI9Mb
KTEbyhIBlDEAtF8Fq7zagEV8KG7FdU2bZjlziuxUIyM6h8alVYz+oPH3DmfXXDyvLazBsn2eXkqHWaLI+uWzJ8lS0Gpgm+JDTVlO
E08ztOjw8XDS1/cuAipLu1grOlmfqg+o0aGg49ykWXglWB54b0MLmuu78Vx2asdlj7P49kMKdVoDx0xyj3ul+fYiGFi91byNAWZQ
2bsR20mXEw12Z76VP9pUEw/EhsDsS5HP876yFVU2u4Vcs60BmWScZwL86lrjSUkZCDbkslKunRFp5ZpueTngFTQsA+djnbbTXx5F
xzZE6n0ZwYc9EIyxAlROaXNrpFiZurddLbyIO+9rgQqbKr6QvlWnuaiYrqyCiU1/vxD8G2SvQwzw/8G3LBe/f6v+f5sB/0hR5Asi
DuZ4Wc7roTSugHJ2MSaCEAaqs0pMzqIIBImkTlKAjBKQUzwMnxxZ408uUvjlxgwCYyeNum3HRxQBUao1ae2CM/LX5k+D2Bq8dMpu
og2S4kq1JUvkGxb1yhCuNDrVsAoECopGY7zY+4b0EpumVwpNNTxkihLZPCyzSIWC15ddt0deN1ZeN7+Iq9dtvj4CgHS9Sv57hfy3
kQlndBHj0lDyYkoRx13jzGnMSIYJj+yLapWcnyhVm1WSSV8roqsNq23VK/VGHszosogY0gtGBZIFcAUmwyiEZqRKIZ1VJlMaTMsp
sByLQgALsRoNZ7GuBqvHCtYhyIAtlnp5TBPlIh7ZZOFg2uKhVeocpi6PafJpFHeMbAjhsarSKV+l9hrRF5kz6Y5nVKjONNN251ky
Lltp5iKnqXNYTB2aI5dmc2lBn4nqdphqIylf0y2k6SgUi/AcOY8ISzWhmyDSqNlcEtKyR9V0nDOHSgKThmTIwCgk66rNUADKqsfz
qTlEyEV1ajnqcgV06i4VI2TXoMqwYM8uJWigJMGxZkbSG3RefaoXOePq7C6knKhrMaa8VXl0shR/kyk4g60OR8y5dqNSuFK/Zjcn
D2kM+cbP6LTukgmQUVngABCCQanI9MA60EFFbQGBRUFQJEgZWZcJRdooigRZ4kEESk/BiD2uiGbf+4vBAhj3t7+E/gkOgopBGq80
gjvrdR39y2Jced/g7CH+rwFP2RfotkBVVYNJe8fIrqV6ZMrfY1uc5I6SmczFd/iqKs1yYnDkiY03A/n3/4nOn/L5FzoOO7/8bBdk
qQAAHFCAinQOAgQBI4gsMiAHA4IgiADL5hQgTkoaHANhEEAgQCoaDElCca5JgACJIgAUTZdBqTgBJaF4lCCpWFU0Xi6qgOJNZaAy
oCdb5pofrrGSzLZJ+F2844mOV4BsXOMIdR72/FOhYf5GxY5zDapz+tRvRuZm0zck+VzUBmaSCIQoTQSIF0WGSmdk5GA5LuG9EqkU
eVUmqaOTNFec7IICyBJqbuvN+sXJoEJFJgDSnI5cvOYbC6MVIEe/NiIqlfd7BxbshLH0dtPS855DD/UnqrVO6F5XPlaAVhpMljgk
5iJhoy8fkS0B0UJ5DOmIdiWGOtK+LXaWUCwaLQWvtGS46N1+dfgCBd+oYPx7Q+5O59LM7Od9s9nPFFUCbU/lxdndN2j7sEvm5DVp
5Xe1/wj+LEAIy7oYCUA5WDMHRhJmrUMfZ0E471RZ9QmtOsUqskK+6IlKEs2YVSJOFMUuJ6Miz7EyJyklHJR5Ei7IKjjNM6AKRhRg
AQKyEiCJCgxEwf2PcRP1fDc6emd+d1Y7muzt37MU55Xjw8h4TQVwTVRc+sCEm8d3t1Z4qhm+/KgpnJECBYwTeRhg0RzApzUkhBQj
C5JVSEoFhwGpfFbOMbDMcLwR0Bo1ICeIQpJRpINF1gdgJahUKkwwHaU1AV6ZhYS8MidiOSNGQhBY7BJCYALX3CjnrBfDbZPZl0M4
Yz3PGbGIEzzS2K1gYn9SIYtRbjT0veW72eGG5qM5p7rK0Naoo3IUeVvXYfNno7eLhY2mw99cLokW6OnqDHFXjWOkdDobxDLapYzH
HU+PAPvvqJbBNIoxAoKJIAKAmIxwEgmhfFGmg5IKwAlAxgS+6A44yBYFjBZQQNjOZ+xN1LOeerj5rDcB6UfY7ed6raZb/5B0lRfc
LsmtWCvhRripQ2ABM26/v8LEvzyXv2ftHqFUVSsnH+aZC4emJ7/aGFpaFMq2ipeacHNIWlnLVCCuZw6XFER2aqbCdWwgNlJq/gAZ
zjZ+VtVL5u4+eI6zz5W/+obJbFSf0Rvi3rjZVMXGsvfEDb6Du8Z7PKgswhAEwTAKYACISBDE4wAEkaKolDEFBBFFvQViKI+BPA4K
62p8+BIwpiqZrOxNqMdlgt01n7Uq8ulchsC2Iyf2k2C2sQxPXF2p3Lm42JheoU0tm0PCm0nPFH7zxGu+C5ql8+xw7Hz0kU0pLDp9
v/yDOTjUX9UnzgkztqvCsLDK95aEzV9+rt9ft2DxPL6vY3rr0Y7IZ4r37L6m+GcRpDmwuY9+APH0b1hZLMyWIrv1wWhN9sPXxzrI
Iq6ARay5TnHydZ6TQACS4b/z/ToXrrOkDIPrcmA9EJEJPlVlEujlVS2eU7IxIIPQCkgt+RGzVsErAgAcSORdPAcbgHIOwsSQ/OXt
8NpN9sBSttk0BEZzzqxaw+sAOVJ6Vo4nbY4YduxrGsZ6cyi9f/ViWW1gT8x7vunLP6PelOD8231WYzJGtmuJo2i1voIMLqnJkFHV
pSVI/LulYQk0abSSXNDwYAP8D7wPJMOEoWKsXGAJMEUjMl4EGgawKsKymVcroWwOMJmKtC2q8byBAbhMiv/yz+hsejx//BF3+vDL
ThHu+XouVfP6ZLX1vlAHaBHPpRLExBdDZXJL0v3s+4UDlsbOyhW2seo/aARbvRCIlFqXuEVhl956vix1foMmoZX3pxzGBTb+clT4
+grAMD+tbS+U+JLzyLZ2YUwnrZSmMmQ6E4jb71EcIiunRUON8UTd8spquc1kATRcLteqVo8fNpQaj6aaWom5CmVjc76pFiQLt2QW
2YcZlrgWD0383BfcoP4wg0y0wxfXRmdTSTve7SVHK75XVubSnQU12bkIU4D1n+/hJ0sb8dXMGEtLUXhpIZFUbWycIynf8hqmVF0o
V23jmFzrtpruj76VkCPnbsDvqWbdYoSrWlSqtbboLQtT+fBJMeKQ8bCHXBFOoiXJXHS5ADCFHK/DaKmQLJfUmJAUCAGCgTjGoZxZ
sOp1eiNdEF1xWZRQPm5cfENtUMbqx+Qx2ducKCSeRp8uGxzcuNeye7sFnfQq0fwp+XyBDZbneucMW95KgawCLtI1VBSyBa4oV0Qe
FQlJhJVFQakWAVyEEBRg+SKrS0jR98Ris5jVFT0XSsHGOa26psRtKuuq2maeRTmZtM1kx1yYdufO57R2fCKcJ8DppYsz8bixUI1c
EZScSmHRiOCSby2jIo1mvSNtqCI1RlXO4BXQhCCNMfq0CY3lK9ANsb+sDgaUxslvdvq2koi25lhPrOnG3cvV3lOb5zdUFVomH3K+
w1cOTO7d61zmsq0TIckzvILJPidNFiqM+UKBtu9YMGTJkeZlwI9my7V5ucU1CiGakLwsim0c4fkH/CNlLH1S70rdkbcCSJ4tjxKF
sW1FuOG6HLPGsnEu/dDtLYWfKsrMiODvkaxrp8o/90XTZ3HGuJkLrRkyqgChVXVFbyfLpLo4gmQZva8WWDOKDJemQ+mmwu4jgtwV
3Bx6XG0sCQVZOF+WDovHsUZ2DahemLBmsCkraI4sxThDkM3NNBmv9Eq9y12mYg8ERGBRCQEIDoBQUJKxIvQVZSkoSCyGMEWMXEdD
vKjYiiIVANGvVLTFL70CmcTG+vjQbYKhuyPndxHScMLe6p5sj8BtUT02dy6HXp0oROkrGRVT41QrGDhOT9LqpWvuUT5okBXOvBwu
6FpuDp5fUpXCGi834/BWpBWpu7A0qBjwquIzPOaFmUxZBIyK5nkofs6Rr0eZHO+CrFF4uspgsags2qw1B+aLgZACoDuUM5XpcSD6
lQoh4SCb0WArCydrFUfwNPSRnCJZbqQj6czNrbaYej4CjJ2ns88x1to0DMg1Qq83M51e9iLlhC0eBMKrdqX3oxNsxRwQ0FgjGW1k
pqulNZNRNX/NIdGiy/ZdXPI2J/dmNpgsjqvPuGlf7/m1BLhcVtGjrrx9+8adFxkf03x7SDpr8Bowy+RQpco+LFgWekB7YmYEf73h
wv8iu4SWyo5kvXAx1Tuay2LtMyVlF2wF1Z1GiH5jv+PRfH1NqmFh0f4p71D8V9/3mdG7uB2lhJ2Yiwiphsq2rxz2Hq42zpfGpki5
JlNZ9uH4EgBM3tc/as8mhZkGMzy5OoTjpcmqefWOscXk/ErdZ6/3XL6l9LR2/9Jjy+TmALQeAhYJD4YAsUiAxVADhlAZAdcTcgjA
FH0XQtY5UCyqclEEBUh2OcHWhYNeX3aeNYBrcdTy+trskrqhMZG4cUF1o7Awd5EVpQobY1KlHKlVWJFatdaGth0vuWobZp2qu71r
F4mOXuBkHHFIzP0KDL/iF0sQBdsUnEBVEw8lAaK8KjYf2L/ZYlWVFSIE71sCw0DGCCNKcaXWtDhdxSxhcX1VPp1eBkf5cs3JavWq
u21Xxxd15T3lkdX9w7CQybecIv+3q1Jfablnsa32PoRTKsoTuVK/ZbQ920h+tXlyx3z2FmCPXVuzgAx8kZgiA94bOvfuKK21VPR9
Wt1XsJKCYfa1hH+vtLH9AV11Pf9S3t7iulOa30HsUi7fmjwzfSm/kByoP6W8FMNe7zrruQBi40TVmdtmKLpkYhkoxW9qzJ80GCfo
r/63qFedSUf5bHuOdda6kNAS7qpXts1U/z8rFL48n+FWsgnbYcMkUilfuqycu2nBWpGK66O8oirrRNVanuVmh/hrjAjqK3vhW5K8
EV9dS3KxNjLU1pi2tc6Flf7PygO5WHsELzj/Ori3/JMf7lq5d1DhPYFf7v4f1WPn5xWlidkf2od2YcQRoMwb8LpiIZVfkdVDPjiW
nstJGofM2hUJJURrC4gGjELTgkhcytGOWGCyk/aC3muZL49wII9JxTgWklB4PaeLScUQjgVkAV9P+Ep4EWKKUlkqYgssXU9IAMhy
85s9dihGrT4KjlYbK8x33214ZWQgdJOr9sClh5cqEAiam5yClj2/7eXPf7PH3tDYpFzFP9UlnQbXVJCtaSiAnpqGqHGSADYDJFQX
8+NESdUEsadBPaAKeZCloc7Bryg2uD9UoFLYUACJimPQqTfJ55bP5Vv5i95PaqWga0/m6uGGxYhdfUcdQQUqe4Tpi6I95M4hPMwm
C3g4kDEGA1p4JppNj+vAIi8ROCxZ9fKyNy+ENZhupdtkLd8DNqXEaGpR6jWmD52DhDdOxJieNRxGKzzyd1ajy7McQvLiXPnHkvvE
0vD7b/YhqJJWKjnJxMHqPIdAKZMZZCUuTRL5IqPqkQKBY4pcAWFQEUZMuGjC8hvv2bhlxH7hHPzHeOsH2/L1JtUjYF1HQZdpWoMN
w3vnC6ce4fvZwYpuEQnu/ZDvHnE29r7UFMSna8o/+tParoeee2I++cK3R6/taN28+c/JM0yg7NW997oqhuirQ1tqjhzNlTXok2hs
8mMGcY5HaMPI2qL1VCvXoJoiyi27JZ1rIhFNTToabqjTySpU6Y8hSzEgm9LP09Nqf6hANhBaT4prAMPVTA7SygOgKeT194bXdKlO
ZBlUgLEYmLaa9TzeHXIoWLVAGNQ7LurULsFbv4fQ+7l6W2hRWbntANu6tRxxLOanI3TcBigcuBWDETBGZpR6FpZlHDIW5hAoIWFp
Rob0EsjGlBoTjgsmQVlQw6yKZzIug2Y5x6B+MGsnmUk2baxcs2UWbSJRwxn0joJunqMxuC1HppIAG7EXgzirMbxDi1zWi4Hu5Iqv
jxkxdOUOeAY1FFCo7c4uvumYUSnpxcFE8HcKVoqLsVLLZcPYUsIqROxcucGS6Fbniy+UOF2+wWlIO8mEGIhVzIBeWhWWwjIgrGr4
KhHXxBkXZ+hjcul4vILQdsyjy7VpRZ2cguvC6eQ1rEmFnkhePquUapbz2elSOVCl+Q8RR1vqHuRv/0aDy6jeqXCUf8L6PaP6XpBR
uAfHDGP71dtzM9ur9xzFTEq7zhp+yQXPzA9Eo8nVVdvdvvqmQKKz1HmkK68JRdLarMOX3Hw2urdj1qFOPegLjFQYmXt/sm8+efJS
D/FFwLSGMoureJVpRVquVVeYjAFLbKEjHlZWzlXWOA0qv5xTzyvQHGjS1o2rr93NbeJ2rdlysJPxOdj+PX77ZpIGw7umrzAWjNdW
mrlCTgFX+HTSUk9OV9sejc0dvpZtSsZAYCpC137esG+tB4nRtmiV8htjxmeydGWKIIV6VIsRlSq+TLI7vQS9DHWWjXqhbEDwkYjM
G2C9RVBWAFaZr/XCWnNDAUqhmYim4AK1BnVmaUyzpAUbshAo65wgZLoBUzqdgQIkcF7hSHSVhlClOcspc2l2tiSdygpqdY5Gc7BZ
7ZityxTnpi8vBmuMy8rxwG0F6AztkDYSxHINx8O5YX9Vu9pkGeCzqstyV2RsazCGN4YR0D52lsRjq3JBXXv6RIkqP2tvSV5tco0B
Usig06lb6zSBnhENZ2y+qloaqfW3lCxv6IuZXj00L0KLZS01+UR1HboAHFLEaq46754/d7ai2e+ryYYcucq9C7Zax9qb2yPByIX3
LJ/UPGpfcPDX7u75vrGXupp+MxKfL5vXP9hS8dasQo53zZ76sLyxsorHylt54i8nYys2Mp8z1coe3ZngWraFsl1+CPloQvdW9OFx
R2NZv0RyMC3iHMcBgFEtcwUINkBJCGGKEXFBALE8UURpHlXIMMTAMCKANKSACRYmZAiWjQCjkDgRyitpHAYEhFMVIHk9TSSCtMRI
iFJAlVq5yABERKeisywJiqggaGg8S7hypryK5WTGBEO0kAZFBSMJeoxOiHydXIE12a5sKpWix5e8sctt9fbgEfir+oESxVw9vrqt
9OKHYmgIAxI0Vzacmj91ej71Z+87X56jxLbZFp8ioOEC8WumIWfBMas6eKGw0LOVr8a/sTzrLzdCzoiNCCpLxhnCup0VuZS/JFSu
ntfqE5fTiqiW61jtEZMuDK5MpxaTvNKiteZpDYQjNfn8CqcZbTVbxMboJwtqhwHPtBbAF8J9X51Mf7+ujtd445fsobawtXvTB9hh
WW71zhXSW2/C59vCTSGVbpUnJpvueGnVAJW3esZXlythL6kEh43ZQ++Ge5vP7KrWZZ2ZgnECii/6B9Tesm18kEdSHGijNUo9HNMU
LCCfyuQSxkIpmpRpVgDq8lxhN57SjlvkM2Ip6X1sb0XHkQpwY041zVnQLRsPoO6u2cA0W1uS7DUDn3qNm42D2uxZmSwRW77pb4gg
Wm+DCmZU2rNqjlsr4Vwg2oCBAMlpE9qqbZdSiEcftOpjS06tLzYF3Mo5GDCmdwoMj/IEOsHLMIpYPBqS02k5jUmvshAAx3AySCcL
qITasBxBkhxuLbnHBzZiUARZNV5loWitNxRstzDHFgjM+TkJ+zzLoo30YKimal8s0vnx6mLXRa0YWwnr5YQY68qsRZjADQGrUS8f
sObDnGtJLWecATtIhDuh93YifTNhSPnlZ4lcVCdFXSwXS1ETF6PXohZeXzoCi9BSLMUaURLXs0nQ+op2schzm21thYyDCeinBFrY
KISEiswNSnbUpK5PRBsIqr12mHOqvENTYOErd15rtL1db6aVAQKWYk7TmlNLWnV8WJuA8jSjzxKi0p9fg8y8Wm2y2jCQS0ipFBpV
a9JKFBQYdU6B8phcdB4GR70gCpbApKDBSvOIQoXKKSBVdFWFCIFFb6U5RFMF+KVoVtBnoEIGMhFmcW4NKteVQR3mBBZwuqIah1ab
1IBVqxGVxx9wDu7dVrpXn07qKtBQcN9+sE0l18aApN82T9HC5HDpwBcRUtUO6zrkbP5TSyPcvy7lwOsrSyC4flgfn/VFtusZNflv
uba/rzb9Lc8GesehiqGRQ+d/NvZDwylf1Rm249PsJUsaOlgA0F+lZhwKN0ajzqmGqo1nJssbjT3pwJd/g2mlecbETZVEwdIFUN1Q
qcMTnSpDfXZIHQU6LkQ0kWCtweksi9a74DaxoebMOC1WsNdi5xOOMDstc6VWHTZi4hY5PobHicQUT2gzqx0qwLvI5KYiPbl2j+ip
c5mP3sPYBiIv8098jbe0Nd53pJkrTPumh0j0Q/k44znRS0jXXu+Pd4IwGpTmjcv+9BXu5Irfoe9rZazKmZSqeWZrXyaYMfnDlk+n
mjCDutfOkGXzojABOBNwqK2CTtbcO13rdN2yPbn3/dkCVHXXuSfGXwxX6AbKmkNFLcAYVmGobozPndjE2qcCXINsGRx/wRbrnvki
0NSir4eSZMOGl2Qn+cVGxjhEDEDOY+JnTyF+rUnTnDbu3Sqq4Aandf6EVZhtMbv0wVUTAtKastgDG5NN9ct1a4l5Z8h37Nh4TtnA
ft52sg9ZNlaanjnOwHnOSeb8iFXSr9rEEJt04jofrzaYqqJsdRhcKuSUQj4XI0oCVf5p0VwTfHLrmaUGu68i4bi/ot0QHx7buCcx
oVgaLcPqV67hNadLrFZ+XoFf0eIhnLLJusI/EH+YJ/LfU624jt+CTNIp37yyKvv5KfvVOckhpCxTdxDKWCqo4NESw1zQIxFn2GZw
0LB7Q8rORI7s2Xwn/eOVjtpIO3xvUqqOl4SakW/3NigvQE3lUjY55bx09qTiCmLMOXtyBdJcc9OgTpk13aHUtR7Aj58ZMVgtzy4p
rx6ZPTrYfcJYZyrGOovVM/SNgCyKbNj2wG2TEB0+37JzfDVWf+epY1cTEkLvKDOOshtwLDmXyV/V6NgvHFLh2NJcEFqxjqtqnEFh
Th/AQgDWU7aCHHdtP7P7pOKOoaD35Q1Y+bzyoCFZXbsFEhRe+NJg7OYygWHSskwwORESWUBSQUgKYCSZA4vRA4dBsMgBipAMkQjE
AHKCzzMFm79tmVRE9XJVCWlQk+0BjaliUkjC9VxY1Ph5tqeoi7UpJEKgsozZtSLZcOHu77D823VJ3TBXIxyngR3ffg8ZvBzbXIdo
l5vp6HuoF6tPJ9wD2WnTBk/VTEIz2RVJLPVPKctzGVfV2Q3bS/chhZ7IkLV6vioCw98bVtQO/6suo2hmRDTRZ44i3A2NEAARuICp
QVpGBVmWSsEQgucAQhaVECHzKQBUF0MjGCxKCh5GJaHAeQN1MbIYFE5kOJc35s8LHnNsm0gobk6aYj3a+OrMJm8Zq+siFtH5r0Lp
0RQ38w8sq0kt/sDaVfV5xAhbDGRbkGmrFvk0mS+dJqMyw8tKJZlb9qWV4cS2CF5Xd6Qrp97o6eYIcm5n7yHPknQleGApSbKpmqYF
1wZL9YphxFOItbIBtHPcJStt0BWpglgrK0vRMoFEdZMFCERlcgjAeMKM41Gzoha3iryUQhOeLIQpdRJoKsaJzmrxU1SdpBU7mlLx
TVhWvKyuwS0R5WtQUwTzHz4LdR9UbKqZhEJkpTYSgeVNouHS7WCqPbuEg4hPZ/Jd3K40dz64SydI3gkz4Os6W7YznK4EOo45JPWV
he6s7yO3ABQlYJEDQanIcyKMgjCohNEi/4Hri7TA+rI1JK1nBot0yBfDeugf2DahOVHCz9229P3Bj1wcuicXT9o/9vweFWtGa9hz
L98GmbTspfqJPhbRVNSUJVpOnfXIo7Ztq6oYez8yu4Zw8emcH60JB8yjzeNHzqYOHFGswdn3FIWQPMi3b7M1t3580x3BRHwox8YZ
fagEUAfsmXS4fh4rM1vyEa09bYxolXFRgCfgRRmmSZfBoDaI0Emwe5UNKrsxsay6FbAoJ6WNpTuqS7bPVDhT8HQnKxjPdFab17RJ
ETg0CSVUPTng/4cySr+yxuqAoE5lUYO4XDJ+QUrrFmoqJh0OTNKBWLM5tDQqXkq+lofBs6ZezuH9v+z89x0uxQJdp+ciLa/vvwPk
/7sX5G/bY0AHhCIplw2OyKLgxEBCm5VMuYI5D2GEVq/gCYwX8ryeyOCjZixjYokvbweRNKMMwEMoBMQhAVKyopLAWAa38CJsl3kV
qtGAWJaFZICFJRCRFXif7T6EWCWztSN332bwnfFPv9jc+E/+OUtlL02HsDqpXmO9qWIhdCGqZ//HucF6XFQZsDkV56qb+lRpWI5e
JdOuw5seWfbAFmhtNXPaX5k3hu4n07PDHpgNqa+tGY/fbS/XY2Tbmfr2gyY5ZKGhbX/ddURtrh3XXIxWpd9sN0rQ7j2pCWTHUC92
GFcFPbCw2vnBBwZNtMSMkDu6Lq7MqFaUp5lYp2VWp91EooPS4//EV5qnWx84Qk/fjE1XbEiw+uzY2dq6rF7wGMWc0KVk9rbbmprQ
dlLjeNC7ccvKbFVpzZqhu9F9CNTZ7SsTGQNt2fCBJ1VSgu9qAwJDlUvZUeYJ69GKK/73Aon5hurtS5MdtlIlWVYSSp93HUxtVZUB
7X3D51uaalUuddZSGqCbFeoXuZ1iLNRqLLe+n6xHjc6wNqY326xzxKFQsCFsgSUgo8DAgowJCAJysICJEAlhPCcDYmE9T8dIICAW
EYAEWVoUDLIGSi8tRqpnM1GgtFIFNDqnl1aDNWGtr7I5k2yyNsR3+7YpIjq2uX3Z35SeC2KBDQOaad9nqfK55864MFaZnjfRaO/a
c4IV7Y6obxvRmrW7g/a0LrRT+98XGq7AuaD/0h8TjGE+dZqe/vjz8PKKh4NSrUh5Dk1NTJFrsYcsCWuHiKjv964eqEGrspcjab07
l4/7JkEuVlqy2gY1GvGXnC2e/URYp6aZQUHsMubkLX4IXqo+8cDhEv/uQT33KSpjIRWkms+otRmlRcLD7UZSDRK8vSirJTuT4oV4
PIWqCJxQx1GBrkTKZUMei0zzyw7kdGwqIzc1p88dvKcueeoLdk2j/zew9QT78M/yvJq65ZywYbL8XjVz3uTPvfhD975jLPFe594f
TBgbsBV8x+tNj0zYwjNllY5c3rm6UKjYmvMGJa4w48is2hAAFGUMENZ9tTjuoCSCKLyeMYVAXASLMThArOtsgEchAYUhEIGAtuCA
unnFFz477anexZuVu5W/sVRcs5cB6r7G00NR1TcugEOnPcunb7e5Lv1rOll6QWKVS+MNMTtWV7KGZyVSoS9jssHamhCNgWomm80e
yZ9zxaAKjpaIgs4FCSsLprHdxhyctfntznhcQTgYSCbnhCDZIi6TN2RxZxWAiYqZQMqhFzCIsPOuSgkHA1yFjUAgi6xKBw6GVdFL
pQAO1adcycZKkb7QuZZO01oj7KgJGRVnVx6ov27y3zbmXT/8HbfWQ68ibq3XXd/HJoPX9wgDxdr/A/HKDw8=
"""
# BACKEND END
