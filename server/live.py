"""Live events of the running streams, for the web UI's live monitor.

The servicer publishes one event per stream start, window (scored, silent or skipped), alert
and stream end; every subscriber (a browser on ``/live`` or on a running session's page, through
server-sent events) gets its own bounded queue. A subscriber that cannot keep up loses events
(counted in its ``dropped``), never slows a stream.

With the results store on PostgreSQL, :class:`PostgresRelay` carries the events between replicas
with ``NOTIFY``/``LISTEN`` on the channel ``emotion_live``: the UI of any replica behind a load
balancer shows every replica's streams. Delivery is best effort (a replica that loses its
connection reconnects and misses what was sent meanwhile); what is stored is never relayed.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import psycopg
import structlog
from sqlalchemy.engine import make_url

log = structlog.get_logger(__name__)

CHANNEL = "emotion_live"
# PostgreSQL refuses NOTIFY payloads of 8000 bytes or more; larger events stay local.
MAX_PAYLOAD = 7900
RECONNECT_S = 2.0

# Events a slow subscriber may have waiting before newer ones are dropped for it.
SUBSCRIBER_QUEUE = 1000


@dataclass(eq=False)  # compared (and hashed) by identity: each browser is its own subscriber
class Subscriber:
    """One browser's queue, on the loop that reads it (the web UI's, a thread apart from the gRPC loop)."""

    queue: asyncio.Queue[dict[str, Any]] = field(default_factory=lambda: asyncio.Queue(SUBSCRIBER_QUEUE))
    dropped: int = 0
    loop: asyncio.AbstractEventLoop | None = None

    def offer(self, event: dict[str, Any]) -> None:
        """Queues ``event``, or counts it dropped when the queue is full (on the subscriber's loop)."""
        try:
            self.queue.put_nowait(event)
        except asyncio.QueueFull:
            self.dropped += 1


class LiveHub:
    """Fan-out of live events; ``running`` holds the streams open now, with their latest windows."""

    def __init__(self) -> None:
        self._subscribers: set[Subscriber] = set()
        self.running: dict[str, dict[str, Any]] = {}
        self.origin = uuid.uuid4().hex  # this replica, so that it ignores its own relayed events
        self.outbox: asyncio.Queue[dict[str, Any]] | None = None  # set by a relay

    def publish(self, event: dict[str, Any]) -> None:
        """Hands ``event`` (with ``type`` and ``session_id``) to every subscriber, here and (through a
        relay) on the other replicas; never blocks."""
        event = {**event, "at": time.time(), "origin": self.origin}
        self.deliver(event)
        if self.outbox is not None:
            try:
                self.outbox.put_nowait(event)
            except asyncio.QueueFull:
                pass

    def deliver(self, event: dict[str, Any]) -> None:
        """Hands ``event`` to this replica's subscribers and updates the running streams."""
        session_id = event["session_id"]
        if event["type"] == "stream_started":
            self.running[session_id] = {**event, "windows": [], "alerts": 0}
        elif event["type"] == "stream_ended":
            self.running.pop(session_id, None)
        elif session_id in self.running:
            state = self.running[session_id]
            if event["type"] == "window":
                state["windows"] = [*state["windows"][-59:], event]
            elif event["type"] == "alert":
                state["alerts"] += 1
        try:
            here = asyncio.get_running_loop()
        except RuntimeError:
            here = None
        # A copy: subscribers come and go from the web UI's thread.
        for subscriber in tuple(self._subscribers):
            if subscriber.loop is None or subscriber.loop is here:
                subscriber.offer(event)
            else:  # asyncio queues are not thread-safe: the subscriber's own loop queues it
                with contextlib.suppress(RuntimeError):  # that loop has closed
                    subscriber.loop.call_soon_threadsafe(subscriber.offer, event)

    def subscribe(self) -> Subscriber:
        """A new subscriber, read on the calling loop (any thread)."""
        subscriber = Subscriber(loop=asyncio.get_running_loop())
        self._subscribers.add(subscriber)
        return subscriber

    def unsubscribe(self, subscriber: Subscriber) -> None:
        self._subscribers.discard(subscriber)


class PostgresRelay:
    """Relays live events between replicas through PostgreSQL ``NOTIFY``/``LISTEN``."""

    def __init__(self, url: str, hub: LiveHub) -> None:
        self.conninfo = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
        self.hub = hub
        self._tasks: list[asyncio.Task[None]] = []

    @staticmethod
    def applies(url: str) -> bool:
        """Whether ``url`` is a PostgreSQL database (the only one that can relay)."""
        return make_url(url).get_backend_name() in ("postgresql", "postgres")

    def start(self) -> None:
        self.hub.outbox = asyncio.Queue(SUBSCRIBER_QUEUE)
        self._tasks = [
            asyncio.create_task(self._keep(self._listen), name="live-listen"),
            asyncio.create_task(self._keep(self._send), name="live-send"),
        ]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self.hub.outbox = None

    async def _keep(self, work: Any) -> None:
        while True:
            try:
                async with await psycopg.AsyncConnection.connect(self.conninfo, autocommit=True) as conn:
                    await work(conn)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the database is away: the UI shows this replica's streams meanwhile
                log.warning("live_relay_disconnected", reason=f"{type(exc).__name__}: {exc}")
            await asyncio.sleep(RECONNECT_S)

    async def _listen(self, conn: psycopg.AsyncConnection[Any]) -> None:
        await conn.execute(f"LISTEN {CHANNEL}")
        log.info("live_relay_listening", channel=CHANNEL)
        async for notice in conn.notifies():
            event = json.loads(notice.payload)
            if event.get("origin") != self.hub.origin:
                self.hub.deliver(event)

    async def _send(self, conn: psycopg.AsyncConnection[Any]) -> None:
        assert self.hub.outbox is not None
        while True:
            event = await self.hub.outbox.get()
            payload = json.dumps(event)
            if len(payload.encode()) < MAX_PAYLOAD:
                await conn.execute("SELECT pg_notify(%s, %s)", (CHANNEL, payload))
