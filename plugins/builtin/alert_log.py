"""Built-in plugin ``alert_log``: every alert as one structured log event (``alert_raised``)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import structlog

from emotion_service.plugins.hookspecs import hookimpl
from emotion_service.plugins.types import Alert
from emotion_service.settings import check, load_plugin_config, setting

NAME = "alert_log"

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class AlertLogConfig:
    """Settings of ``[plugins.alert_log]`` / ``EMOTION_ALERT_LOG_*``."""

    level: str = setting("warning", "Log level of the alert events: info, warning or error.")

    def __post_init__(self) -> None:
        check(
            f"plugin {NAME!r}",
            self,
            {"level": (self.level in ("info", "warning", "error"), "must be info, warning or error")},
        )


class AlertLog:
    """The ``alert_log`` plugin (``on_alert``)."""

    def __init__(self, config: AlertLogConfig | None = None) -> None:
        self.config = config or load_plugin_config(NAME, AlertLogConfig)

    @hookimpl
    def on_alert(self, alert: Alert, session_id: str) -> None:
        """Logs the alert with all its fields."""
        fields = dataclasses.asdict(alert)
        fields["alert_kind"] = fields.pop("kind")
        getattr(log, self.config.level)("alert_raised", session_id=session_id, **fields)
