"""Interview assessment: stream a recording, then report emotions per question.

::

    from emotion_client import EmotionClient
    from emotion_client.interview import assess_interview, load_segments, render_html

    with EmotionClient("localhost:50051") as client:
        report = assess_interview(client, "interview.wav", load_segments("questions.csv"))
    Path("report.json").write_text(report.to_json())
    Path("report.html").write_text(render_html(report))

Without segments, questions are found from long pauses (:class:`PauseSettings`).
``diarize=True`` analyses a one-channel recording of both parties as a diarized job
instead of a stream: each utterance carries its speaker, and the whole interview
and every question get a summary per party (``report.parties``, ``question.parties``).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Mapping, Sequence

from emotion_client.aio import AsyncEmotionClient
from emotion_client.audio import AudioFile
from emotion_client.client import EmotionClient
from emotion_client.interview.html import render_html
from emotion_client.interview.pauses import PauseSettings, find_segments
from emotion_client.interview.report import (
    SCHEMA,
    SCHEMA_VERSION,
    EmotionStats,
    InterviewReport,
    PartyStats,
    QuestionReport,
    StreamRecord,
    build_report,
)
from emotion_client.interview.segments import Segment, SegmentError, check_segments, load_segments
from emotion_client.results import ModelInfo

# An interview's parties when it is diarized and no count is given: the interviewer and the
# candidate. Giving the count is what keeps a long recording's voices from being split by register.
INTERVIEW_PARTIES = 2

__all__ = [
    "INTERVIEW_PARTIES",
    "SCHEMA",
    "SCHEMA_VERSION",
    "EmotionStats",
    "InterviewReport",
    "PartyStats",
    "PauseSettings",
    "QuestionReport",
    "Segment",
    "SegmentError",
    "assess_interview",
    "assess_interview_async",
    "find_segments",
    "load_segments",
    "render_html",
]


def _questions(
    recording: str | os.PathLike[str], segments: Sequence[Segment] | None, pauses: PauseSettings
) -> tuple[list[Segment], str]:
    """The checked segments and how they were obtained ("provided" or "pauses")."""
    name = os.fspath(recording)
    if segments is not None:
        return check_segments(segments, name), "provided"
    found = find_segments(AudioFile(recording), pauses)
    if not found:
        raise SegmentError(f"{name}: found no speech between pauses; give the question segments instead")
    return found, "pauses"


def _window(window_s: float, hop_s: float, info: ModelInfo) -> tuple[float, float]:
    """The window and hop actually used (the server's defaults fill in zeros)."""
    window_s = window_s or info.default_window_s
    return window_s, hop_s or min(info.default_hop_s, window_s)


def assess_interview(
    client: EmotionClient,
    recording: str | os.PathLike[str],
    segments: Sequence[Segment] | None = None,
    *,
    window_s: float = 0.0,
    hop_s: float = 0.0,
    realtime: bool = False,
    pauses: PauseSettings = PauseSettings(),
    session_id: str = "",
    metadata: Mapping[str, str] | None = None,
    diarize: bool = False,
    num_speakers: int = INTERVIEW_PARTIES,
    timeout: float | None = None,
) -> InterviewReport:
    """Streams ``recording`` and reports per question.

    :param segments: the questions' spans (see :func:`load_segments`); None
        finds them from pauses of at least ``pauses.min_pause_s``.
    :param window_s: window length; 0 uses the server's default (so does ``hop_s``).
        Short answers want short windows: a question gets the windows whose
        midpoint falls in it.
    :param realtime: pace the upload as the audio plays.
    :param diarize: both parties in one channel: analyse it as a diarized job (the server finds
        who speaks when among ``num_speakers``, by default the interview's two; 0: it finds out how
        many, which may miss a party who speaks little or split a voice by register) and report per
        party. The report's windows are then the job's utterances; ``window_s``, ``hop_s`` and
        ``realtime`` do not apply.
    :param timeout: seconds to wait for the diarized job (None: as long as it takes).
    """
    questions, segmentation = _questions(recording, segments, pauses)
    info = client.model_info()
    if diarize:
        job = client.submit_job([recording], diarize=True, num_speakers=num_speakers, session_id=session_id,
                                metadata=metadata)  # fmt: skip
        record = StreamRecord.from_job(client.wait_job(job.job_id, timeout=timeout))
        return build_report(record, questions, info, recording=os.fspath(recording), window_s=0.0, hop_s=0.0,
                            segmentation=segmentation)  # fmt: skip
    window_s, hop_s = _window(window_s, hop_s, info)
    record = StreamRecord()
    for event in client.stream(
        recording, window_s=window_s, hop_s=hop_s, realtime=realtime, session_id=session_id, metadata=metadata
    ):
        record.add(event)
    return build_report(
        record,
        questions,
        info,
        recording=os.fspath(recording),
        window_s=window_s,
        hop_s=hop_s,
        segmentation=segmentation,
    )


async def assess_interview_async(
    client: AsyncEmotionClient,
    recording: str | os.PathLike[str],
    segments: Sequence[Segment] | None = None,
    *,
    window_s: float = 0.0,
    hop_s: float = 0.0,
    realtime: bool = False,
    pauses: PauseSettings = PauseSettings(),
    session_id: str = "",
    metadata: Mapping[str, str] | None = None,
) -> InterviewReport:
    """:func:`assess_interview` for :class:`~emotion_client.AsyncEmotionClient`, streaming only (the
    async client has no job calls: a diarized interview goes through :func:`assess_interview`)."""
    questions, segmentation = await asyncio.to_thread(_questions, recording, segments, pauses)
    info = await client.model_info()
    window_s, hop_s = _window(window_s, hop_s, info)
    record = StreamRecord()
    async for event in client.stream(
        recording, window_s=window_s, hop_s=hop_s, realtime=realtime, session_id=session_id, metadata=metadata
    ):
        record.add(event)
    return build_report(
        record,
        questions,
        info,
        recording=os.fspath(recording),
        window_s=window_s,
        hop_s=hop_s,
        segmentation=segmentation,
    )
