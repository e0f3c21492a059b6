"""What delivery reports as it happens, for metrics: an optional observer of the Dispatcher.

``Dispatcher(..., observer=obs)`` calls these methods synchronously, right after the event
(after the Redis record was written). They must be cheap; an exception is logged and
swallowed. ``alerts`` defines the protocol so it never imports
the daemon's metrics: ``daemon.ops.metrics.Metrics`` implements it. ``Guarded`` wraps one (or
none) so that calling it is always safe.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime
from typing import Protocol

from alerts.wire import Alert

log = logging.getLogger(__name__)


class DeliveryObserver(Protocol):
    def delivered(self, alert: Alert, notifier: str, *, attempt: int, at: datetime) -> None:
        """``notifier`` accepted ``alert`` at ``at`` (the dispatcher's clock), on ``attempt``."""

    def retried(self, alert: Alert, notifier: str, *, attempt: int, reason: str) -> None:
        """Attempt ``attempt`` failed recoverably (``reason``: NotifyError.reason); retrying."""

    def dead(self, notifier: str, *, reason: str) -> None:
        """One dead-letter record was written for ``notifier`` ("" when none: undecodable)."""

    def first_delivery(self, alert: Alert, *, at: datetime) -> None:
        """``alert`` reached its first notifier (once per alert, not once per notifier)."""


class Guarded:
    """An observer that forwards to ``inner`` (if any) and logs whatever it raises: observing
    must never spoil a delivery."""

    def __init__(self, inner: DeliveryObserver | None) -> None:
        self.inner = inner

    def _call(self, event: Callable[[DeliveryObserver], None]) -> None:
        if self.inner is None:
            return
        try:
            event(self.inner)
        except Exception:
            log.exception("delivery observer failed")

    def delivered(self, alert: Alert, notifier: str, *, attempt: int, at: datetime) -> None:
        self._call(lambda o: o.delivered(alert, notifier, attempt=attempt, at=at))

    def retried(self, alert: Alert, notifier: str, *, attempt: int, reason: str) -> None:
        self._call(lambda o: o.retried(alert, notifier, attempt=attempt, reason=reason))

    def dead(self, notifier: str, *, reason: str) -> None:
        self._call(lambda o: o.dead(notifier, reason=reason))

    def first_delivery(self, alert: Alert, *, at: datetime) -> None:
        self._call(lambda o: o.first_delivery(alert, at=at))
