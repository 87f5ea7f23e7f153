"""The client's one exception family.

Every failed call raises an :class:`EmotionError` (or a subclass picked by the
gRPC status code), carrying the status code and the server's message, so
callers can ``except EmotionError`` once or catch the cases they handle::

    try:
        client.classify("speech.wav")
    except UnavailableError:
        ...  # every retry failed: the service is down
    except EmotionError as exc:
        print(exc.code.name, exc.message)
"""

from __future__ import annotations

import grpc


class EmotionError(Exception):
    """A call failed; ``code`` is the gRPC status, ``message`` the server's (or client's) explanation."""

    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(f"{code.name}: {message}")
        self.code = code
        self.message = message


class InvalidArgumentError(EmotionError, ValueError):
    """The request was rejected as malformed (bad audio, bad stream settings)."""


class AudioInputError(InvalidArgumentError):
    """The client could not turn its input into audio to send (unsupported file, missing extra, bad array)."""

    def __init__(self, message: str) -> None:
        super().__init__(grpc.StatusCode.INVALID_ARGUMENT, message)


class UnavailableError(EmotionError):
    """The service could not be reached, or is loading or draining; retried with backoff before raised."""


class DeadlineExceededError(EmotionError):
    """The call's deadline passed before the answer came."""


class ResourceExhaustedError(EmotionError):
    """The server's queue is full; back off and try again later."""


class UnauthenticatedError(EmotionError):
    """The bearer token is missing or invalid."""


class PermissionDeniedError(EmotionError):
    """The token is valid but may not make this call."""


_BY_CODE: dict[grpc.StatusCode, type[EmotionError]] = {
    grpc.StatusCode.INVALID_ARGUMENT: InvalidArgumentError,
    grpc.StatusCode.UNAVAILABLE: UnavailableError,
    grpc.StatusCode.DEADLINE_EXCEEDED: DeadlineExceededError,
    grpc.StatusCode.RESOURCE_EXHAUSTED: ResourceExhaustedError,
    grpc.StatusCode.UNAUTHENTICATED: UnauthenticatedError,
    grpc.StatusCode.PERMISSION_DENIED: PermissionDeniedError,
}


def from_rpc_error(error: grpc.RpcError) -> EmotionError:
    """The :class:`EmotionError` subclass matching a failed call's status."""
    code = error.code() if callable(getattr(error, "code", None)) else grpc.StatusCode.UNKNOWN
    details = error.details() if callable(getattr(error, "details", None)) else str(error)
    return _BY_CODE.get(code, EmotionError)(code, details or "no message from the server")
