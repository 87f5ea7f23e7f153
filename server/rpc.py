"""Small helpers for ending RPCs with a status a person can act on."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any, NoReturn

import grpc
import structlog

log = structlog.get_logger(__name__)

# How long a refused stream's pending requests are read before the status is sent. An upload
# half-closes well within it; on a busy server (the very moment streams are refused) its writes
# can lag by more than a second, and a client still writing gets INTERNAL, not the refusal.
DRAIN_SECONDS = 3.0
# The header a stream's refusal is announced in (value: the status code's name) before the drain: a
# client that heeds it (emotion_client's AsyncEmotionClient and EmotionClient) stops sending and
# half-closes, so the status arrives with no write in flight. Relied on by clients; the client states
# it as well (emotion_client.messages.STREAM_ENDING_METADATA).
STREAM_ENDING_METADATA = "emotion-stream-ending"


# How a refused diarized job's reason begins (SubmitJob's FAILED_PRECONDITION), for the web form to
# recognise it through the UI process's bridge, which passes on only a refusal's code and text.
CANNOT_DIARIZE = "this server cannot diarize: "


class JobRequestError(ValueError):
    """A job that cannot be queued: ``code`` is the gRPC status, the message says what to change.

    Here, not beside ``submit_job``, so that the web UI's process catches it without importing the
    servicer (and the model's libraries with it)."""

    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code = code


async def abort(context: grpc.aio.ServicerContext, code: grpc.StatusCode, message: str) -> NoReturn:
    """Logs and ends the call with ``code``; never returns."""
    log.info("request_rejected", code=code.name, reason=message)
    await context.abort(code, message)
    raise AssertionError("unreachable: context.abort raises")


async def abort_stream(
    context: grpc.aio.ServicerContext,
    requests: AsyncIterator[Any],
    code: grpc.StatusCode,
    message: str,
    drain_s: float = DRAIN_SECONDS,
) -> NoReturn:
    """Ends a client-streaming call after reading what the client already sent (for at most ``drain_s``).

    A grpc.aio client still writing when the server's status arrives reports
    INTERNAL "Internal error from Core" instead of that status (grpc/grpc#36066);
    letting it finish its writes first delivers the real code and message. A live
    source never finishes: before any answer, the headers say the stream is ending
    (:data:`STREAM_ENDING_METADATA`), so that its client stops sending and half-closes.
    """
    with contextlib.suppress(Exception):  # headers already sent (the stream was answered): drain only
        await context.send_initial_metadata(((STREAM_ENDING_METADATA, code.name),))
    with contextlib.suppress(Exception):
        await asyncio.wait_for(_consume(requests), drain_s)
    await abort(context, code, message)


async def _consume(requests: AsyncIterator[Any]) -> None:
    async for _ in requests:
        pass
