"""Bearer-token access control: hashed API keys with scopes, checked by an interceptor.

The tokens file (``auth_tokens_file``) is TOML; only SHA-256 hashes are kept::

    [[keys]]
    name = "interview-platform"          # shows in logs as `client`
    sha256 = "9f86d081884c7d65..."       # emotion token hash TOKEN, or emotion token new
    scopes = ["classify"]                # read | classify | admin (admin may do everything)

Health checks stay open so load balancers and probes need no token. The web UI takes the same
tokens: ``read`` lets a person view sessions, trends and the live monitor; ``classify`` lets a
caller (or the UI's analyse page) submit audio; ``admin`` may do everything.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import tomllib
from collections.abc import AsyncIterator, Awaitable, Callable
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import structlog

from emotion_service.server.rpc import abort_stream
from emotion_service.settings import ConfigError

log = structlog.get_logger(__name__)

SCOPES = ("read", "classify", "admin")
# Method prefix -> scope needed; "admin" satisfies every scope and alone may erase sessions.
# The first matching prefix decides: administrative calls are listed before their service.
REQUIRED_SCOPE = {
    "/emotion.v1.EmotionService/DeleteSession": "admin",
    "/emotion.v1.EmotionService/": "classify",
    "/grpc.reflection.v1alpha.ServerReflection/": "classify",
    "/grpc.reflection.v1.ServerReflection/": "classify",
}
OPEN_PREFIXES = ("/grpc.health.v1.Health/",)
# A refused stream is ended after at most this long: what its client already sent is dropped
# unparsed meanwhile, so the refusal reaches a client still writing (grpc/grpc#36066) without
# the server spending on it what an authorised stream gets (server/rpc.py's DRAIN_SECONDS).
REFUSED_DRAIN_SECONDS = 0.5


# The key of the call being served (None without token auth): jobs and sessions belong to it.
CALLER: ContextVar[ApiKey | None] = ContextVar("emotion_caller", default=None)


def caller_scope() -> tuple[str, str | None]:
    """The calling key's name ("" without token auth) and the owner its reads are limited to:
    its own name, or None (everything) without token auth and for an ``admin`` key."""
    key = CALLER.get()
    if key is None:
        return "", None
    return key.name, None if "admin" in key.scopes else key.name


@dataclass(frozen=True)
class ApiKey:
    """One client's key: its name, the SHA-256 of the token, and what it may call."""

    name: str
    sha256: str
    scopes: frozenset[str]


def hash_token(token: str) -> str:
    """The hex SHA-256 stored in the tokens file."""
    return hashlib.sha256(token.encode()).hexdigest()


def new_token() -> str:
    """A fresh random token (256 bits)."""
    return "emo_" + secrets.token_urlsafe(32)


def load_keys(path: Path) -> list[ApiKey]:
    """Reads and checks the tokens file; raises :class:`ConfigError` naming the problem."""
    try:
        data = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"auth_tokens_file {path} does not exist") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"auth_tokens_file {path} is not valid TOML: {exc}") from None
    keys = []
    for i, entry in enumerate(data.get("keys", [])):
        where = f"auth_tokens_file {path}, keys[{i}]"
        digest = str(entry.get("sha256", "")).lower()
        if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
            raise ConfigError(f"{where}: sha256 must be 64 hex digits (emotion token hash TOKEN)")
        scopes = frozenset(entry.get("scopes", ["classify"]))
        if not scopes <= set(SCOPES):
            raise ConfigError(f"{where}: unknown scope(s) {sorted(scopes - set(SCOPES))}; known: {', '.join(SCOPES)}")
        keys.append(ApiKey(str(entry.get("name", f"key-{i}")), digest, scopes))
    if not keys:
        raise ConfigError(f"auth_tokens_file {path} defines no [[keys]]: every call would be refused")
    return keys


def identify(keys: list[ApiKey], token: str) -> ApiKey | None:
    """The key whose hash matches ``token``, compared in constant time against every key."""
    digest = hash_token(token)
    found = None
    for key in keys:
        if hmac.compare_digest(digest, key.sha256):
            found = key
    return found


def allows(key: ApiKey, scope: str) -> bool:
    """Whether ``key`` may do what ``scope`` guards (``admin`` may do everything)."""
    return scope in key.scopes or "admin" in key.scopes


class AuthInterceptor(grpc.aio.ServerInterceptor):
    """UNAUTHENTICATED without a known bearer token, PERMISSION_DENIED without the scope."""

    def __init__(self, keys: list[ApiKey]) -> None:
        self.keys = keys

    def identify(self, token: str) -> ApiKey | None:
        """The key whose hash matches."""
        return identify(self.keys, token)

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        method = details.method
        if method.startswith(OPEN_PREFIXES):
            return await continuation(details)
        needed = next((scope for prefix, scope in REQUIRED_SCOPE.items() if method.startswith(prefix)), "admin")
        header = dict(details.invocation_metadata or ()).get("authorization", "")
        scheme, _, token = header.partition(" ")
        key = self.identify(token.strip()) if scheme.lower() == "bearer" and token.strip() else None
        if key is None:
            reason = "missing bearer token" if not header else "unknown bearer token"
            log.info("auth_refused", method=method, reason=reason)
            return _refuse(await continuation(details), grpc.StatusCode.UNAUTHENTICATED,
                           f"{reason}: send metadata 'authorization: Bearer <token>'")
        if not allows(key, needed):
            log.info("auth_refused", method=method, client=key.name, reason=f"scope {needed} missing")
            return _refuse(await continuation(details), grpc.StatusCode.PERMISSION_DENIED,
                           f"client {key.name!r} lacks scope {needed!r} for {method}")
        structlog.contextvars.bind_contextvars(client=key.name)
        CALLER.set(key)
        return await continuation(details)


def _refuse(handler: grpc.RpcMethodHandler | None, code: grpc.StatusCode, message: str) -> grpc.RpcMethodHandler:
    """A handler of the same shape as ``handler`` that only aborts."""

    async def unary(request: Any, context: grpc.aio.ServicerContext) -> Any:
        await context.abort(code, message)

    async def unary_in_stream_out(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
        await context.abort(code, message)
        yield  # makes this an async generator, as stream handlers are

    async def stream_in(requests: AsyncIterator[Any], context: grpc.aio.ServicerContext) -> Any:
        await abort_stream(context, requests, code, message, REFUSED_DRAIN_SECONDS)

    async def stream_in_stream_out(requests: AsyncIterator[Any], context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
        await abort_stream(context, requests, code, message, REFUSED_DRAIN_SECONDS)
        yield

    if handler is None:
        return grpc.unary_unary_rpc_method_handler(unary)
    # A refused caller's messages are never parsed: their bytes are dropped as they arrive.
    kwargs = dict(request_deserializer=_discard, response_serializer=handler.response_serializer)
    if handler.unary_unary:
        return grpc.unary_unary_rpc_method_handler(unary, **kwargs)
    if handler.unary_stream:
        return grpc.unary_stream_rpc_method_handler(unary_in_stream_out, **kwargs)
    if handler.stream_unary:
        return grpc.stream_unary_rpc_method_handler(stream_in, **kwargs)
    return grpc.stream_stream_rpc_method_handler(stream_in_stream_out, **kwargs)


def _discard(data: bytes) -> None:
    """The request deserializer of a refused call: nothing of an unauthorised message is kept."""
    return None
