import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class PcmEncoding(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    PCM_ENCODING_UNSPECIFIED: _ClassVar[PcmEncoding]
    PCM_ENCODING_S16LE: _ClassVar[PcmEncoding]
    PCM_ENCODING_F32LE: _ClassVar[PcmEncoding]

class ChannelMode(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CHANNEL_MODE_UNSPECIFIED: _ClassVar[ChannelMode]
    CHANNEL_MODE_MIX: _ClassVar[ChannelMode]
    CHANNEL_MODE_SEPARATE: _ClassVar[ChannelMode]

class JobState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    JOB_STATE_UNSPECIFIED: _ClassVar[JobState]
    JOB_STATE_QUEUED: _ClassVar[JobState]
    JOB_STATE_RUNNING: _ClassVar[JobState]
    JOB_STATE_SUCCEEDED: _ClassVar[JobState]
    JOB_STATE_FAILED: _ClassVar[JobState]
    JOB_STATE_CANCELLED: _ClassVar[JobState]
PCM_ENCODING_UNSPECIFIED: PcmEncoding
PCM_ENCODING_S16LE: PcmEncoding
PCM_ENCODING_F32LE: PcmEncoding
CHANNEL_MODE_UNSPECIFIED: ChannelMode
CHANNEL_MODE_MIX: ChannelMode
CHANNEL_MODE_SEPARATE: ChannelMode
JOB_STATE_UNSPECIFIED: JobState
JOB_STATE_QUEUED: JobState
JOB_STATE_RUNNING: JobState
JOB_STATE_SUCCEEDED: JobState
JOB_STATE_FAILED: JobState
JOB_STATE_CANCELLED: JobState

class PcmFormat(_message.Message):
    __slots__ = ("encoding", "sample_rate", "channels")
    ENCODING_FIELD_NUMBER: _ClassVar[int]
    SAMPLE_RATE_FIELD_NUMBER: _ClassVar[int]
    CHANNELS_FIELD_NUMBER: _ClassVar[int]
    encoding: PcmEncoding
    sample_rate: int
    channels: int
    def __init__(self, encoding: _Optional[_Union[PcmEncoding, str]] = ..., sample_rate: _Optional[int] = ..., channels: _Optional[int] = ...) -> None: ...

class RawAudio(_message.Message):
    __slots__ = ("data", "format")
    DATA_FIELD_NUMBER: _ClassVar[int]
    FORMAT_FIELD_NUMBER: _ClassVar[int]
    data: bytes
    format: PcmFormat
    def __init__(self, data: _Optional[bytes] = ..., format: _Optional[_Union[PcmFormat, _Mapping]] = ...) -> None: ...

class Audio(_message.Message):
    __slots__ = ("content", "raw")
    CONTENT_FIELD_NUMBER: _ClassVar[int]
    RAW_FIELD_NUMBER: _ClassVar[int]
    content: bytes
    raw: RawAudio
    def __init__(self, content: _Optional[bytes] = ..., raw: _Optional[_Union[RawAudio, _Mapping]] = ...) -> None: ...

class ClassifyRequest(_message.Message):
    __slots__ = ("audio", "request_id", "metadata")
    class MetadataEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    AUDIO_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    audio: Audio
    request_id: str
    metadata: _containers.ScalarMap[str, str]
    def __init__(self, audio: _Optional[_Union[Audio, _Mapping]] = ..., request_id: _Optional[str] = ..., metadata: _Optional[_Mapping[str, str]] = ...) -> None: ...

class LabelScore(_message.Message):
    __slots__ = ("label", "score")
    LABEL_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    label: str
    score: float
    def __init__(self, label: _Optional[str] = ..., score: _Optional[float] = ...) -> None: ...

class ClassifyResponse(_message.Message):
    __slots__ = ("label", "scores", "duration_s", "model_name", "model_version", "request_id", "alerts", "session_id", "no_speech", "voiced_fraction")
    LABEL_FIELD_NUMBER: _ClassVar[int]
    SCORES_FIELD_NUMBER: _ClassVar[int]
    DURATION_S_FIELD_NUMBER: _ClassVar[int]
    MODEL_NAME_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    ALERTS_FIELD_NUMBER: _ClassVar[int]
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    NO_SPEECH_FIELD_NUMBER: _ClassVar[int]
    VOICED_FRACTION_FIELD_NUMBER: _ClassVar[int]
    label: str
    scores: _containers.RepeatedCompositeFieldContainer[LabelScore]
    duration_s: float
    model_name: str
    model_version: str
    request_id: str
    alerts: _containers.RepeatedCompositeFieldContainer[Alert]
    session_id: str
    no_speech: bool
    voiced_fraction: float
    def __init__(self, label: _Optional[str] = ..., scores: _Optional[_Iterable[_Union[LabelScore, _Mapping]]] = ..., duration_s: _Optional[float] = ..., model_name: _Optional[str] = ..., model_version: _Optional[str] = ..., request_id: _Optional[str] = ..., alerts: _Optional[_Iterable[_Union[Alert, _Mapping]]] = ..., session_id: _Optional[str] = ..., no_speech: _Optional[bool] = ..., voiced_fraction: _Optional[float] = ...) -> None: ...

class StreamConfig(_message.Message):
    __slots__ = ("format", "window_s", "hop_s", "session_id", "metadata")
    class MetadataEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    FORMAT_FIELD_NUMBER: _ClassVar[int]
    WINDOW_S_FIELD_NUMBER: _ClassVar[int]
    HOP_S_FIELD_NUMBER: _ClassVar[int]
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    format: PcmFormat
    window_s: float
    hop_s: float
    session_id: str
    metadata: _containers.ScalarMap[str, str]
    def __init__(self, format: _Optional[_Union[PcmFormat, _Mapping]] = ..., window_s: _Optional[float] = ..., hop_s: _Optional[float] = ..., session_id: _Optional[str] = ..., metadata: _Optional[_Mapping[str, str]] = ...) -> None: ...

class StreamClassifyRequest(_message.Message):
    __slots__ = ("config", "audio_content")
    CONFIG_FIELD_NUMBER: _ClassVar[int]
    AUDIO_CONTENT_FIELD_NUMBER: _ClassVar[int]
    config: StreamConfig
    audio_content: bytes
    def __init__(self, config: _Optional[_Union[StreamConfig, _Mapping]] = ..., audio_content: _Optional[bytes] = ...) -> None: ...

class WindowResult(_message.Message):
    __slots__ = ("index", "start_s", "end_s", "label", "scores", "skipped", "voiced_fraction", "silent", "no_speech")
    INDEX_FIELD_NUMBER: _ClassVar[int]
    START_S_FIELD_NUMBER: _ClassVar[int]
    END_S_FIELD_NUMBER: _ClassVar[int]
    LABEL_FIELD_NUMBER: _ClassVar[int]
    SCORES_FIELD_NUMBER: _ClassVar[int]
    SKIPPED_FIELD_NUMBER: _ClassVar[int]
    VOICED_FRACTION_FIELD_NUMBER: _ClassVar[int]
    SILENT_FIELD_NUMBER: _ClassVar[int]
    NO_SPEECH_FIELD_NUMBER: _ClassVar[int]
    index: int
    start_s: float
    end_s: float
    label: str
    scores: _containers.RepeatedCompositeFieldContainer[LabelScore]
    skipped: bool
    voiced_fraction: float
    silent: bool
    no_speech: bool
    def __init__(self, index: _Optional[int] = ..., start_s: _Optional[float] = ..., end_s: _Optional[float] = ..., label: _Optional[str] = ..., scores: _Optional[_Iterable[_Union[LabelScore, _Mapping]]] = ..., skipped: _Optional[bool] = ..., voiced_fraction: _Optional[float] = ..., silent: _Optional[bool] = ..., no_speech: _Optional[bool] = ...) -> None: ...

class Alert(_message.Message):
    __slots__ = ("kind", "label", "severity", "message", "value", "time_s", "source", "details", "speaker")
    class DetailsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    KIND_FIELD_NUMBER: _ClassVar[int]
    LABEL_FIELD_NUMBER: _ClassVar[int]
    SEVERITY_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    TIME_S_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    DETAILS_FIELD_NUMBER: _ClassVar[int]
    SPEAKER_FIELD_NUMBER: _ClassVar[int]
    kind: str
    label: str
    severity: str
    message: str
    value: float
    time_s: float
    source: str
    details: _containers.ScalarMap[str, str]
    speaker: str
    def __init__(self, kind: _Optional[str] = ..., label: _Optional[str] = ..., severity: _Optional[str] = ..., message: _Optional[str] = ..., value: _Optional[float] = ..., time_s: _Optional[float] = ..., source: _Optional[str] = ..., details: _Optional[_Mapping[str, str]] = ..., speaker: _Optional[str] = ...) -> None: ...

class StreamSummary(_message.Message):
    __slots__ = ("window_count", "duration_s", "dominant_label", "shares", "mean_scores", "alert_count")
    WINDOW_COUNT_FIELD_NUMBER: _ClassVar[int]
    DURATION_S_FIELD_NUMBER: _ClassVar[int]
    DOMINANT_LABEL_FIELD_NUMBER: _ClassVar[int]
    SHARES_FIELD_NUMBER: _ClassVar[int]
    MEAN_SCORES_FIELD_NUMBER: _ClassVar[int]
    ALERT_COUNT_FIELD_NUMBER: _ClassVar[int]
    window_count: int
    duration_s: float
    dominant_label: str
    shares: _containers.RepeatedCompositeFieldContainer[LabelScore]
    mean_scores: _containers.RepeatedCompositeFieldContainer[LabelScore]
    alert_count: int
    def __init__(self, window_count: _Optional[int] = ..., duration_s: _Optional[float] = ..., dominant_label: _Optional[str] = ..., shares: _Optional[_Iterable[_Union[LabelScore, _Mapping]]] = ..., mean_scores: _Optional[_Iterable[_Union[LabelScore, _Mapping]]] = ..., alert_count: _Optional[int] = ...) -> None: ...

class StreamClassifyResponse(_message.Message):
    __slots__ = ("session_id", "window", "alert", "summary")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    WINDOW_FIELD_NUMBER: _ClassVar[int]
    ALERT_FIELD_NUMBER: _ClassVar[int]
    SUMMARY_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    window: WindowResult
    alert: Alert
    summary: StreamSummary
    def __init__(self, session_id: _Optional[str] = ..., window: _Optional[_Union[WindowResult, _Mapping]] = ..., alert: _Optional[_Union[Alert, _Mapping]] = ..., summary: _Optional[_Union[StreamSummary, _Mapping]] = ...) -> None: ...

class DeleteSessionRequest(_message.Message):
    __slots__ = ("session_id",)
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    def __init__(self, session_id: _Optional[str] = ...) -> None: ...

class DeleteSessionResponse(_message.Message):
    __slots__ = ("session_id", "erased")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    ERASED_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    erased: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, session_id: _Optional[str] = ..., erased: _Optional[_Iterable[str]] = ...) -> None: ...

class Recording(_message.Message):
    __slots__ = ("name", "content", "uri")
    NAME_FIELD_NUMBER: _ClassVar[int]
    CONTENT_FIELD_NUMBER: _ClassVar[int]
    URI_FIELD_NUMBER: _ClassVar[int]
    name: str
    content: bytes
    uri: str
    def __init__(self, name: _Optional[str] = ..., content: _Optional[bytes] = ..., uri: _Optional[str] = ...) -> None: ...

class SubmitJobRequest(_message.Message):
    __slots__ = ("recordings", "channels", "metadata", "session_id", "diarize", "num_speakers")
    class MetadataEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    RECORDINGS_FIELD_NUMBER: _ClassVar[int]
    CHANNELS_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    DIARIZE_FIELD_NUMBER: _ClassVar[int]
    NUM_SPEAKERS_FIELD_NUMBER: _ClassVar[int]
    recordings: _containers.RepeatedCompositeFieldContainer[Recording]
    channels: ChannelMode
    metadata: _containers.ScalarMap[str, str]
    session_id: str
    diarize: bool
    num_speakers: int
    def __init__(self, recordings: _Optional[_Iterable[_Union[Recording, _Mapping]]] = ..., channels: _Optional[_Union[ChannelMode, str]] = ..., metadata: _Optional[_Mapping[str, str]] = ..., session_id: _Optional[str] = ..., diarize: _Optional[bool] = ..., num_speakers: _Optional[int] = ...) -> None: ...

class Utterance(_message.Message):
    __slots__ = ("recording", "channel", "start_s", "end_s", "label", "scores", "window_count", "speaker", "no_speech", "voiced_fraction")
    RECORDING_FIELD_NUMBER: _ClassVar[int]
    CHANNEL_FIELD_NUMBER: _ClassVar[int]
    START_S_FIELD_NUMBER: _ClassVar[int]
    END_S_FIELD_NUMBER: _ClassVar[int]
    LABEL_FIELD_NUMBER: _ClassVar[int]
    SCORES_FIELD_NUMBER: _ClassVar[int]
    WINDOW_COUNT_FIELD_NUMBER: _ClassVar[int]
    SPEAKER_FIELD_NUMBER: _ClassVar[int]
    NO_SPEECH_FIELD_NUMBER: _ClassVar[int]
    VOICED_FRACTION_FIELD_NUMBER: _ClassVar[int]
    recording: int
    channel: int
    start_s: float
    end_s: float
    label: str
    scores: _containers.RepeatedCompositeFieldContainer[LabelScore]
    window_count: int
    speaker: str
    no_speech: bool
    voiced_fraction: float
    def __init__(self, recording: _Optional[int] = ..., channel: _Optional[int] = ..., start_s: _Optional[float] = ..., end_s: _Optional[float] = ..., label: _Optional[str] = ..., scores: _Optional[_Iterable[_Union[LabelScore, _Mapping]]] = ..., window_count: _Optional[int] = ..., speaker: _Optional[str] = ..., no_speech: _Optional[bool] = ..., voiced_fraction: _Optional[float] = ...) -> None: ...

class PartySummary(_message.Message):
    __slots__ = ("party", "count", "seconds", "time_share", "dominant_label", "shares", "mean_scores", "alert_count")
    PARTY_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    SECONDS_FIELD_NUMBER: _ClassVar[int]
    TIME_SHARE_FIELD_NUMBER: _ClassVar[int]
    DOMINANT_LABEL_FIELD_NUMBER: _ClassVar[int]
    SHARES_FIELD_NUMBER: _ClassVar[int]
    MEAN_SCORES_FIELD_NUMBER: _ClassVar[int]
    ALERT_COUNT_FIELD_NUMBER: _ClassVar[int]
    party: str
    count: int
    seconds: float
    time_share: float
    dominant_label: str
    shares: _containers.RepeatedCompositeFieldContainer[LabelScore]
    mean_scores: _containers.RepeatedCompositeFieldContainer[LabelScore]
    alert_count: int
    def __init__(self, party: _Optional[str] = ..., count: _Optional[int] = ..., seconds: _Optional[float] = ..., time_share: _Optional[float] = ..., dominant_label: _Optional[str] = ..., shares: _Optional[_Iterable[_Union[LabelScore, _Mapping]]] = ..., mean_scores: _Optional[_Iterable[_Union[LabelScore, _Mapping]]] = ..., alert_count: _Optional[int] = ...) -> None: ...

class Job(_message.Message):
    __slots__ = ("job_id", "session_id", "state", "progress", "audio_s", "created_at", "updated_at", "eta_s", "error", "utterances", "channels", "metadata", "recordings", "attempts", "parties")
    class MetadataEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    PROGRESS_FIELD_NUMBER: _ClassVar[int]
    AUDIO_S_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_FIELD_NUMBER: _ClassVar[int]
    ETA_S_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    UTTERANCES_FIELD_NUMBER: _ClassVar[int]
    CHANNELS_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    RECORDINGS_FIELD_NUMBER: _ClassVar[int]
    ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    PARTIES_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    session_id: str
    state: JobState
    progress: float
    audio_s: float
    created_at: _timestamp_pb2.Timestamp
    updated_at: _timestamp_pb2.Timestamp
    eta_s: float
    error: str
    utterances: _containers.RepeatedCompositeFieldContainer[Utterance]
    channels: ChannelMode
    metadata: _containers.ScalarMap[str, str]
    recordings: _containers.RepeatedScalarFieldContainer[str]
    attempts: int
    parties: _containers.RepeatedCompositeFieldContainer[PartySummary]
    def __init__(self, job_id: _Optional[str] = ..., session_id: _Optional[str] = ..., state: _Optional[_Union[JobState, str]] = ..., progress: _Optional[float] = ..., audio_s: _Optional[float] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., updated_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., eta_s: _Optional[float] = ..., error: _Optional[str] = ..., utterances: _Optional[_Iterable[_Union[Utterance, _Mapping]]] = ..., channels: _Optional[_Union[ChannelMode, str]] = ..., metadata: _Optional[_Mapping[str, str]] = ..., recordings: _Optional[_Iterable[str]] = ..., attempts: _Optional[int] = ..., parties: _Optional[_Iterable[_Union[PartySummary, _Mapping]]] = ...) -> None: ...

class GetJobRequest(_message.Message):
    __slots__ = ("job_id",)
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    def __init__(self, job_id: _Optional[str] = ...) -> None: ...

class ListJobsRequest(_message.Message):
    __slots__ = ("state", "page_size", "page_token")
    STATE_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    state: JobState
    page_size: int
    page_token: str
    def __init__(self, state: _Optional[_Union[JobState, str]] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListJobsResponse(_message.Message):
    __slots__ = ("jobs", "next_page_token")
    JOBS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    jobs: _containers.RepeatedCompositeFieldContainer[Job]
    next_page_token: str
    def __init__(self, jobs: _Optional[_Iterable[_Union[Job, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class CancelJobRequest(_message.Message):
    __slots__ = ("job_id",)
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    def __init__(self, job_id: _Optional[str] = ...) -> None: ...

class WatchJobRequest(_message.Message):
    __slots__ = ("job_id",)
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    def __init__(self, job_id: _Optional[str] = ...) -> None: ...

class GetModelInfoRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class BatchingInfo(_message.Message):
    __slots__ = ("max_batch_size", "max_queue_delay_ms", "max_queue_size", "pads_mixed_lengths")
    MAX_BATCH_SIZE_FIELD_NUMBER: _ClassVar[int]
    MAX_QUEUE_DELAY_MS_FIELD_NUMBER: _ClassVar[int]
    MAX_QUEUE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PADS_MIXED_LENGTHS_FIELD_NUMBER: _ClassVar[int]
    max_batch_size: int
    max_queue_delay_ms: float
    max_queue_size: int
    pads_mixed_lengths: bool
    def __init__(self, max_batch_size: _Optional[int] = ..., max_queue_delay_ms: _Optional[float] = ..., max_queue_size: _Optional[int] = ..., pads_mixed_lengths: _Optional[bool] = ...) -> None: ...

class ModelInfo(_message.Message):
    __slots__ = ("name", "version", "labels", "sample_rate", "device", "dtype", "architecture", "batching", "max_audio_s", "default_window_s", "default_hop_s")
    NAME_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    SAMPLE_RATE_FIELD_NUMBER: _ClassVar[int]
    DEVICE_FIELD_NUMBER: _ClassVar[int]
    DTYPE_FIELD_NUMBER: _ClassVar[int]
    ARCHITECTURE_FIELD_NUMBER: _ClassVar[int]
    BATCHING_FIELD_NUMBER: _ClassVar[int]
    MAX_AUDIO_S_FIELD_NUMBER: _ClassVar[int]
    DEFAULT_WINDOW_S_FIELD_NUMBER: _ClassVar[int]
    DEFAULT_HOP_S_FIELD_NUMBER: _ClassVar[int]
    name: str
    version: str
    labels: _containers.RepeatedScalarFieldContainer[str]
    sample_rate: int
    device: str
    dtype: str
    architecture: str
    batching: BatchingInfo
    max_audio_s: float
    default_window_s: float
    default_hop_s: float
    def __init__(self, name: _Optional[str] = ..., version: _Optional[str] = ..., labels: _Optional[_Iterable[str]] = ..., sample_rate: _Optional[int] = ..., device: _Optional[str] = ..., dtype: _Optional[str] = ..., architecture: _Optional[str] = ..., batching: _Optional[_Union[BatchingInfo, _Mapping]] = ..., max_audio_s: _Optional[float] = ..., default_window_s: _Optional[float] = ..., default_hop_s: _Optional[float] = ...) -> None: ...
