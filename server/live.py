"""Live events of the streams running on this replica, for the web UI's live monitor.

The servicer publishes one event per stream start, window (scored, silent or skipped), alert
and stream end; every subscriber (a browser on ``/live`` or on a running session's page, through
server-sent events) gets its own bounded queue. A subscriber that cannot keep up loses events
(counted in its ``dropped``), never slows a stream.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

# Events a slow subscriber may have waiting before newer ones are dropped for it.
SUBSCRIBER_QUEUE = 1000


@dataclass(eq=False)  # compared (and hashed) by identity: each browser is its own subscriber
class Subscriber:
    queue: asyncio.Queue[dict[str, Any]] = field(default_factory=lambda: asyncio.Queue(SUBSCRIBER_QUEUE))
    dropped: int = 0


class LiveHub:
    """Fan-out of live events; ``running`` holds the streams open now, with their latest windows."""

    def __init__(self) -> None:
        self._subscribers: set[Subscriber] = set()
        self.running: dict[str, dict[str, Any]] = {}

    def publish(self, event: dict[str, Any]) -> None:
        """Hands ``event`` (with ``type`` and ``session_id``) to every subscriber; never blocks."""
        event = {**event, "at": time.time()}
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
        for subscriber in self._subscribers:
            try:
                subscriber.queue.put_nowait(event)
            except asyncio.QueueFull:
                subscriber.dropped += 1

    def subscribe(self) -> Subscriber:
        subscriber = Subscriber()
        self._subscribers.add(subscriber)
        return subscriber

    def unsubscribe(self, subscriber: Subscriber) -> None:
        self._subscribers.discard(subscriber)
