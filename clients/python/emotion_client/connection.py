"""How a client reaches the service: target, TLS/mTLS, bearer token, channel options, retries."""

from __future__ import annotations

import os
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Union

import grpc

from emotion_client.errors import DeadlineExceededError

DEFAULT_TARGET = "localhost:50051"
PemSource = Union[str, "os.PathLike[str]", bytes]
"""A PEM file's path, or its bytes."""

# Reconnect quickly after a server restart; the client's own retries pace the calls.
_CHANNEL_OPTIONS: tuple[tuple[str, Any], ...] = (
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.min_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 2000),
    ("grpc.max_receive_message_length", 16 * 1024 * 1024),
)


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff for calls that fail with UNAVAILABLE (and only those).

    Attempt ``n`` (from 1) that fails waits ``min(max_backoff_s, initial_backoff_s
    * multiplier ** (n - 1))``, less up to ``jitter`` of it at random, before
    attempt ``n + 1``; never past the call's deadline. ``max_attempts=1`` turns
    retries off.
    """

    max_attempts: int = 5
    initial_backoff_s: float = 0.2
    max_backoff_s: float = 5.0
    multiplier: float = 2.0
    jitter: float = 0.2

    def __post_init__(self) -> None:
        if self.max_attempts < 1 or self.initial_backoff_s < 0 or self.multiplier < 1 or not 0 <= self.jitter <= 1:
            raise ValueError(f"invalid retry policy {self}: need max_attempts >= 1, backoff >= 0, multiplier >= 1")

    def backoff_s(self, attempt: int) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1-based)."""
        base = min(self.max_backoff_s, self.initial_backoff_s * self.multiplier ** (attempt - 1))
        return base * (1 - self.jitter * random.random())


@dataclass(frozen=True)
class Deadline:
    """A call's time budget, shared by its attempts and the waits between them."""

    timeout_s: float | None
    started: float = field(default_factory=time.monotonic)

    def remaining_s(self) -> float | None:
        """Seconds left (None: no deadline); raises DeadlineExceededError when none are."""
        if self.timeout_s is None:
            return None
        left = self.started + self.timeout_s - time.monotonic()
        if left <= 0:
            raise DeadlineExceededError(
                grpc.StatusCode.DEADLINE_EXCEEDED, f"no time left of the {self.timeout_s:g} s deadline"
            )
        return left

    def allows_wait(self, seconds: float) -> bool:
        """True when waiting ``seconds`` still leaves time for another attempt."""
        return self.timeout_s is None or self.started + self.timeout_s - time.monotonic() > seconds


def is_retryable(error: grpc.RpcError) -> bool:
    """Only UNAVAILABLE is retried: the call did not run, or the server is loading or draining."""
    return callable(getattr(error, "code", None)) and error.code() == grpc.StatusCode.UNAVAILABLE


@dataclass(frozen=True)
class Connection:
    """Channel settings shared by :class:`~emotion_client.EmotionClient` and its async twin.

    TLS is on when ``tls`` is true or any certificate is given. ``ca_cert``
    replaces the system roots (for a private CA); ``client_cert`` and
    ``client_key`` (both or neither) enable mutual TLS; ``server_name``
    overrides the name checked against the server's certificate. ``token`` is
    sent as ``authorization: Bearer <token>`` on every call.
    """

    target: str = DEFAULT_TARGET
    tls: bool = False
    ca_cert: PemSource | None = None
    client_cert: PemSource | None = None
    client_key: PemSource | None = None
    server_name: str | None = None
    token: str | None = None
    options: Sequence[tuple[str, Any]] = ()

    def __post_init__(self) -> None:
        if (self.client_cert is None) != (self.client_key is None):
            raise ValueError("mutual TLS needs both client_cert and client_key")

    @property
    def secure(self) -> bool:
        """True when the channel uses TLS."""
        return self.tls or any(x is not None for x in (self.ca_cert, self.client_cert, self.client_key))

    def credentials(self) -> grpc.ChannelCredentials:
        """TLS credentials from the configured certificates (system roots when no CA is given)."""
        return grpc.ssl_channel_credentials(
            root_certificates=_pem(self.ca_cert),
            private_key=_pem(self.client_key),
            certificate_chain=_pem(self.client_cert),
        )

    def channel_options(self) -> list[tuple[str, Any]]:
        """The client's channel options, overridden by ``options``."""
        merged = dict(_CHANNEL_OPTIONS)
        if self.server_name:
            merged["grpc.ssl_target_name_override"] = self.server_name
        merged.update(dict(self.options))
        return list(merged.items())

    def metadata(self) -> tuple[tuple[str, str], ...]:
        """Metadata sent with every call."""
        return (("authorization", f"Bearer {self.token}"),) if self.token else ()


def _pem(source: PemSource | None) -> bytes | None:
    if source is None or isinstance(source, bytes):
        return source
    try:
        return Path(source).read_bytes()
    except OSError as exc:
        raise ValueError(f"cannot read certificate file {source}: {exc.strerror}") from None
