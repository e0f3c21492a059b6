"""Alert delivery: the wire format, the Redis Streams consumer and the notifier plugin API."""

from __future__ import annotations

from alerts.base import Notifier, NotifierOptions
from alerts.wire import Alert, AlertItem, AlertMatch, AlertRule
from daemon.errors import NotifyError

__all__ = [
    "Alert",
    "AlertItem",
    "AlertMatch",
    "AlertRule",
    "Notifier",
    "NotifierOptions",
    "NotifyError",
]
