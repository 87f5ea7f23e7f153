"""Built-in plugin ``webhook``: POSTs every alert, and every job's end, as JSON to a URL, retrying transient failures.

An alert's body is ``{"session_id": ..., "alert": {kind, label, severity, message,
value, time_s, source, details}}``; a job's end (the completion callback of
``SubmitJob``) is ``{"event": "job_ended", "job": {job_id, session_id, state,
recordings, audio_s, error, utterance_count, metadata}}`` (fetch the utterances
with ``GetJob``). Connection errors, timeouts, 429 and 5xx
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
from emotion_service.plugins.types import Alert, JobSummary
from emotion_service.plugins.workers import SinkWorker
from emotion_service.settings import check, load_plugin_config, setting

NAME = "webhook"

log = structlog.get_logger(__name__)


class WebhookError(RuntimeError):
    """Every attempt to deliver an alert or a job's end failed."""


@dataclass(frozen=True)
class WebhookConfig:
    """Settings of ``[plugins.webhook]`` / ``EMOTION_WEBHOOK_*``."""

    url: str = setting("", "http(s) URL that receives each alert and each ended job as a JSON POST; empty turns the plugin off.")
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
    """The ``webhook`` plugin (``on_alert``, ``on_job_end``, ``on_shutdown``).

    Deliveries, and the sleeps between their retries, run on the plugin's own thread.
    """

    def __init__(self, config: WebhookConfig | None = None) -> None:
        self.config = config or load_plugin_config(NAME, WebhookConfig)
        self.worker: SinkWorker[dict[str, object]] = SinkWorker(
            NAME, self._deliver_all, max_queue=self.config.queue_size
        )

    @hookimpl
    def on_alert(self, alert: Alert, session_id: str) -> None:
        """Queues the alert for delivery (returns at once)."""
        if self.config.url:
            self.worker.put(_alert_body(alert, session_id))

    @hookimpl
    def on_job_end(self, job: JobSummary) -> None:
        """Queues the job's end for delivery (returns at once)."""
        if self.config.url:
            self.worker.put(
                {
                    "event": "job_ended",
                    "job": {
                        "job_id": job.job_id,
                        "session_id": job.session_id,
                        "state": job.state,
                        "recordings": list(job.recordings),
                        "audio_s": job.audio_s,
                        "error": job.error,
                        "utterance_count": len(job.utterances),
                        "metadata": dict(job.metadata),
                    },
                }
            )

    @hookimpl
    def on_shutdown(self) -> None:
        """Delivers what is queued (bounded by the retries' time), then stops the thread."""
        self.worker.close(timeout=self.config.timeout_s * (self.config.retries + 1))

    def flush(self, timeout: float = 30.0) -> bool:
        """Waits until every queued alert was delivered or given up; True when done in time."""
        return self.worker.wait_idle(timeout)

    def _deliver_all(self, items: list[dict[str, object]]) -> None:
        for payload in items:
            try:
                self.post(payload)
            except WebhookError as exc:
                log.error("webhook_failed", kind=payload.get("event", "alert"), reason=str(exc))

    def deliver(self, alert: Alert, session_id: str) -> None:
        """Delivers one alert now, retrying; raises :class:`WebhookError` when every attempt failed."""
        self.post(_alert_body(alert, session_id))

    def post(self, payload: dict[str, object]) -> None:
        """POSTs one JSON body now, retrying; raises :class:`WebhookError` when every attempt failed."""
        body = json.dumps(payload).encode()
        headers = {"Content-Type": "application/json", "User-Agent": "emotion-service-webhook"}
        if self.config.token:
            headers["Authorization"] = f"Bearer {self.config.token}"
        delay = self.config.backoff_s
        for attempt in range(1, self.config.retries + 2):
            error = self._post(body, headers)
            if error is None:
                log.debug("webhook_delivered", kind=payload.get("event", "alert"), attempt=attempt)
                return
            retryable, reason = error
            last_attempt = attempt > self.config.retries
            log.warning(
                "webhook_attempt_failed", attempt=attempt, reason=reason, retrying=retryable and not last_attempt
            )
            if not retryable or last_attempt:
                what = "job end" if payload.get("event") == "job_ended" else "alert"
                raise WebhookError(f"{what} not delivered to {self.config.url} after {attempt} attempt(s): {reason}")
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


def _alert_body(alert: Alert, session_id: str) -> dict[str, object]:
    return {"session_id": session_id, "alert": dataclasses.asdict(alert)}
