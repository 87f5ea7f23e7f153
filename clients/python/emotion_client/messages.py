"""Turns what callers pass (paths, bytes, arrays, chunk iterables) into request messages."""

from __future__ import annotations

import os
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Union, cast

from emotion_client.audio import AudioFile, PcmFormat, RawAudio, array_to_raw, chunk_bytes, is_array, split
from emotion_client.errors import AudioInputError
from emotion_client.v1 import emotion_pb2 as pb

# The most speakers the server tells apart in one recording (its diarizer's MAX_SPEAKERS; the API
# documents 1 to 6). Stated here because the client does not import the server: checked before a
# job is sent, so a bigger count is the client's own sentence, not a protobuf range error.
MAX_SPEAKERS = 6

# The header in which the server announces that it is ending a stream it has not answered (a
# refusal); the server's ``emotion_service.server.rpc.STREAM_ENDING_METADATA``. Both clients stop
# sending and half-close when they see it, so the refusal's status comes intact, and at once unless
# the sync client's source is blocked inside ``next()`` (then after the server's 3 s drain at most).
STREAM_ENDING_METADATA = "emotion-stream-ending"


def announces_ending(metadata: Sequence[tuple[str, str | bytes]] | None) -> bool:
    """Whether a stream's response headers announce that the server is ending it (a refusal)."""
    return any(key == STREAM_ENDING_METADATA for key, _ in metadata or ())


AudioInput = Union[str, "os.PathLike[str]", bytes, RawAudio, Any]
"""What ``classify`` takes: a file path, an encoded file's bytes (raw PCM bytes
with ``format=``), a :class:`RawAudio`, or a NumPy array with ``sample_rate=``."""

StreamInput = Union[AudioInput, Iterable[bytes], AsyncIterable[bytes]]
"""What ``stream`` takes: anything ``classify`` takes, or an (async) iterable of
raw PCM chunks in ``format``."""


def classify_request(
    audio: AudioInput,
    sample_rate: int | None,
    format: PcmFormat | None,
    request_id: str,
    metadata: Mapping[str, str] | None,
) -> pb.ClassifyRequest:
    """The ``ClassifyRequest`` for ``audio``: files go as encoded bytes, the server decodes them."""
    if isinstance(audio, (str, os.PathLike)):
        path = Path(audio)
        if not path.is_file():
            raise AudioInputError(f"{path}: no such file")
        message = pb.Audio(content=path.read_bytes())
    elif isinstance(audio, (bytes, bytearray, memoryview)):
        data = bytes(audio)
        message = pb.Audio(content=data) if format is None else _raw_pb(RawAudio(data, format))
    elif isinstance(audio, RawAudio):
        message = _raw_pb(audio)
    elif is_array(audio):
        message = _raw_pb(array_to_raw(audio, sample_rate))
    else:
        raise TypeError(
            f"cannot classify a {type(audio).__name__}: pass a path, bytes, RawAudio or a NumPy array with sample_rate"
        )
    return pb.ClassifyRequest(audio=message, request_id=request_id, metadata=dict(metadata or {}))


def job_request(
    recordings: Sequence[str | os.PathLike[str] | bytes],
    channels: str,
    uris: Sequence[str],
    metadata: Mapping[str, str] | None,
    session_id: str,
    diarize: bool = False,
    num_speakers: int = 0,
) -> pb.SubmitJobRequest:
    """The ``SubmitJobRequest`` for files (sent as their bytes), encoded bytes and server-side paths."""
    modes = {"mix": pb.CHANNEL_MODE_MIX, "separate": pb.CHANNEL_MODE_SEPARATE}
    if channels not in modes:
        raise ValueError(f"channels={channels!r}: use 'mix' (one track) or 'separate' (one party per channel)")
    messages = []
    for number, recording in enumerate(recordings):
        if isinstance(recording, (bytes, bytearray, memoryview)):
            messages.append(pb.Recording(name=f"recording-{number}", content=bytes(recording)))
            continue
        path = Path(recording)
        if not path.is_file():
            raise AudioInputError(f"{path}: no such file")
        messages.append(pb.Recording(name=path.name, content=path.read_bytes()))
    messages.extend(pb.Recording(name=Path(uri).name, uri=uri) for uri in uris)
    if not messages:
        raise AudioInputError("a job needs at least one recording (a file, bytes or a server-side uri)")
    if not 0 <= num_speakers <= MAX_SPEAKERS:
        raise ValueError(
            f"num_speakers={num_speakers}: give a count from 1 to {MAX_SPEAKERS}, or 0 to let the server find out"
        )
    if num_speakers and channels == "separate":
        raise ValueError(
            f"num_speakers={num_speakers} counts the speakers of one channel: with channels='separate' each channel "
            "is one speaker; leave num_speakers 0, or use channels='mix' with diarize=True"
        )
    if diarize and channels == "separate":
        raise ValueError(
            "diarize=True finds the speakers of one channel: with channels='separate' each channel is one speaker "
            "already; leave diarize off, or use channels='mix'"
        )
    if num_speakers and not diarize:
        raise ValueError(f"num_speakers={num_speakers} needs diarize=True (it counts the speakers diarization finds)")
    return pb.SubmitJobRequest(
        recordings=messages,
        channels=modes[channels],
        metadata=dict(metadata or {}),
        session_id=session_id,
        diarize=diarize,
        num_speakers=num_speakers,
    )


def _raw_pb(raw: RawAudio) -> pb.Audio:
    return pb.Audio(raw=pb.RawAudio(data=raw.data, format=raw.format.to_pb()))


@dataclass(frozen=True)
class StreamSource:
    """Where a stream's PCM chunks come from.

    ``open()`` returns a fresh iterator of chunks (async for an async
    iterable); a ``replayable`` source can be opened again, so a stream that
    failed before its first answer can be retried.
    """

    format: PcmFormat
    open: Callable[[], Iterator[bytes] | AsyncIterator[bytes]]
    replayable: bool


def stream_source(
    source: StreamInput, sample_rate: int | None, format: PcmFormat | None, chunk_s: float
) -> StreamSource:
    """Resolves what ``stream`` was given; files are decoded to PCM here (WAV, or anything with soundfile)."""
    if chunk_s <= 0:
        raise ValueError(f"chunk_s must be positive, got {chunk_s}")
    if isinstance(source, (str, os.PathLike)):
        return _file_source(AudioFile(source), chunk_s)
    if isinstance(source, (bytes, bytearray, memoryview)):
        if format is None:  # an encoded file in memory
            return _file_source(AudioFile(bytes(source)), chunk_s)
        source = RawAudio(bytes(source), format)
    elif is_array(source):
        source = array_to_raw(source, sample_rate)
    if isinstance(source, RawAudio):
        raw = source
        return StreamSource(raw.format, lambda: split(raw.data, chunk_bytes(raw.format, chunk_s)), replayable=True)
    if format is None:
        raise AudioInputError("raw PCM chunks carry no format: pass format=PcmFormat(sample_rate, encoding, channels)")
    if isinstance(source, AsyncIterable):
        chunks = source
        return StreamSource(format, lambda: aiter(chunks), replayable=False)
    if isinstance(source, Iterable):
        items = cast(Iterable[bytes], source)
        return StreamSource(format, lambda: iter(items), replayable=False)
    raise TypeError(f"cannot stream a {type(source).__name__}: pass a path, bytes, an array or an iterable of chunks")


def _file_source(audio_file: AudioFile, chunk_s: float) -> StreamSource:
    return StreamSource(audio_file.format, lambda: audio_file.chunks(chunk_s), replayable=True)


def stream_config(
    fmt: PcmFormat, window_s: float, hop_s: float, session_id: str, metadata: Mapping[str, str] | None
) -> pb.StreamClassifyRequest:
    """The first message of a stream."""
    return pb.StreamClassifyRequest(
        config=pb.StreamConfig(
            format=fmt.to_pb(), window_s=window_s, hop_s=hop_s, session_id=session_id, metadata=dict(metadata or {})
        )
    )
