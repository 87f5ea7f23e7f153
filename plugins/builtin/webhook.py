"""Built-in plugin ``webhook``: POSTs every alert as JSON to a URL, retrying transient failures.

The body is ``{"session_id": ..., "alert": {kind, label, severity, message,
value, time_s, source, details}}``. Connection errors, timeouts, 429 and 5xx
answers are retried with exponential backoff; other 4xx answers are not (the
request itself is wrong). When every attempt fails the hook raises, which the
plugin host logs as ``plugin_failed`` naming ``webhook``. Without a URL the
plugin does nothing.
"""

from __future__ import annotations

import dataclasses
import json
import time
import urllib.error
import urllib.request
from dataclasses import dataclass

import structlog

from emotion_service.plugins.hookspecs import hookimpl
from emotion_service.plugins.types import Alert
from emotion_service.plugins.workers import SinkWorker
from emotion_service.settings import check, load_plugin_config, setting

NAME = "webhook"

log = structlog.get_logger(__name__)


class WebhookError(RuntimeError):
    """Every attempt to deliver an alert failed."""


@dataclass(frozen=True)
class WebhookConfig:
    """Settings of ``[plugins.webhook]`` / ``EMOTION_WEBHOOK_*``."""

    url: str = setting("", "http(s) URL that receives each alert as a JSON POST; empty turns the plugin off.")
    token: str = setting("", "Sent as 'Authorization: Bearer TOKEN' when set.")
    timeout_s: float = setting(5.0, "Timeout of one attempt, in seconds.")
    retries: int = setting(3, "Attempts after the first one fails.")
    backoff_s: float = setting(0.5, "Wait before the first retry; doubled before each next one.")
    queue_size: int = setting(1000, "Alerts waiting for delivery at most; beyond it new ones are dropped (logged).")

    def __post_init__(self) -> None:
        check(
            f"plugin {NAME!r}",
            self,
            {
                "url": (not self.url or self.url.startswith(("http://", "https://")), "must be an http(s) URL"),
                "timeout_s": (self.timeout_s > 0, "must be positive"),
                "retries": (self.retries >= 0, "must be at least 0"),
                "backoff_s": (self.backoff_s >= 0, "must be at least 0"),
                "queue_size": (self.queue_size >= 1, "must be at least 1"),
            },
        )


class Webhook:
    """The ``webhook`` plugin (``on_alert``, ``on_shutdown``).

    Deliveries, and the sleeps between their retries, run on the plugin's own thread.
    """

    def __init__(self, config: WebhookConfig | None = None) -> None:
        self.config = config or load_plugin_config(NAME, WebhookConfig)
        self.worker: SinkWorker[tuple[Alert, str]] = SinkWorker(
            NAME, self._deliver_all, max_queue=self.config.queue_size
        )

    @hookimpl
    def on_alert(self, alert: Alert, session_id: str) -> None:
        """Queues the alert for delivery (returns at once)."""
        if self.config.url:
            self.worker.put((alert, session_id))

    @hookimpl
    def on_shutdown(self) -> None:
        """Delivers what is queued (bounded by the retries' time), then stops the thread."""
        self.worker.close(timeout=self.config.timeout_s * (self.config.retries + 1))

    def flush(self, timeout: float = 30.0) -> bool:
        """Waits until every queued alert was delivered or given up; True when done in time."""
        return self.worker.wait_idle(timeout)

    def _deliver_all(self, items: list[tuple[Alert, str]]) -> None:
        for alert, session_id in items:
            try:
                self.deliver(alert, session_id)
            except WebhookError as exc:
                log.error("webhook_failed", session_id=session_id, kind=alert.kind, reason=str(exc))

    def deliver(self, alert: Alert, session_id: str) -> None:
        """Delivers one alert now, retrying; raises :class:`WebhookError` when every attempt failed."""
        body = json.dumps({"session_id": session_id, "alert": dataclasses.asdict(alert)}).encode()
        headers = {"Content-Type": "application/json", "User-Agent": "emotion-service-webhook"}
        if self.config.token:
            headers["Authorization"] = f"Bearer {self.config.token}"
        delay = self.config.backoff_s
        for attempt in range(1, self.config.retries + 2):
            error = self._post(body, headers)
            if error is None:
                log.debug("webhook_delivered", session_id=session_id, attempt=attempt)
                return
            retryable, reason = error
            last_attempt = attempt > self.config.retries
            log.warning(
                "webhook_attempt_failed", attempt=attempt, reason=reason, retrying=retryable and not last_attempt
            )
            if not retryable or last_attempt:
                raise WebhookError(f"alert not delivered to {self.config.url} after {attempt} attempt(s): {reason}")
            time.sleep(delay)
            delay *= 2

    def _post(self, body: bytes, headers: dict[str, str]) -> tuple[bool, str] | None:
        """None on success, else (whether to retry, why it failed)."""
        request = urllib.request.Request(self.config.url, data=body, headers=headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=self.config.timeout_s):
                return None
        except urllib.error.HTTPError as exc:
            return exc.code == 429 or exc.code >= 500, f"HTTP {exc.code} {exc.reason}"
        except (urllib.error.URLError, TimeoutError, ConnectionError) as exc:
            return True, f"{type(exc).__name__}: {getattr(exc, 'reason', exc)}"
