"""Client for the speech emotion service, API version ``emotion.v1``.

:class:`EmotionClient` (blocking) and :class:`AsyncEmotionClient` (asyncio)
wrap the generated stubs of :mod:`emotion_client.v1` with typed results,
retries, deadlines, TLS and token options. :mod:`emotion_client.interview`
turns an interview recording into a per-question report.
"""

from importlib.metadata import PackageNotFoundError, version

API_VERSION = "emotion.v1"
SERVICE_NAME = "emotion.v1.EmotionService"

try:
    __version__ = version("emotion-client")
except PackageNotFoundError:  # imported from a source tree that was not installed
    __version__ = "0+unknown"

from emotion_client.aio import AsyncEmotionClient  # noqa: E402
from emotion_client.audio import PcmFormat, RawAudio  # noqa: E402
from emotion_client.client import EmotionClient  # noqa: E402
from emotion_client.connection import RetryPolicy  # noqa: E402
from emotion_client.errors import (  # noqa: E402
    AudioInputError,
    DeadlineExceededError,
    EmotionError,
    InvalidArgumentError,
    PermissionDeniedError,
    ResourceExhaustedError,
    UnauthenticatedError,
    UnavailableError,
)
from emotion_client.results import (  # noqa: E402
    Alert,
    BatchingInfo,
    Classification,
    HealthStatus,
    ModelInfo,
    StreamEvent,
    StreamSummary,
    WindowResult,
)

__all__ = [
    "API_VERSION",
    "SERVICE_NAME",
    "__version__",
    "Alert",
    "AsyncEmotionClient",
    "AudioInputError",
    "BatchingInfo",
    "Classification",
    "DeadlineExceededError",
    "EmotionClient",
    "EmotionError",
    "HealthStatus",
    "InvalidArgumentError",
    "ModelInfo",
    "PcmFormat",
    "PermissionDeniedError",
    "RawAudio",
    "ResourceExhaustedError",
    "RetryPolicy",
    "StreamEvent",
    "StreamSummary",
    "UnauthenticatedError",
    "UnavailableError",
    "WindowResult",
]
