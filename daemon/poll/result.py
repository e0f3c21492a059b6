"""What one poll of one feed did (``PollResult``) and its structured log line.

A poll never raises: every failure is a value here (reader's ParseResult idea), logged on one
line with the feed's name. The scheduler (``follow``), the metrics and the tests read it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from daemon.logging import log

logger = logging.getLogger("daemon.poll")

# Outcomes of a scheduled poll that did not run: another process polls the feed now (leased) or
# polled it this interval (fresh), or WebSub pushes it and its fallback poll is not due.
SKIPPED = ("leased", "fresh", "websub")


@dataclass(frozen=True, slots=True)
class PollResult:
    """What one poll of one feed did. ``outcome``: ok, pushed, not_modified, unchanged, backoff,
    one of ``SKIPPED``, or ``error:<kind>``."""

    feed: str
    outcome: str
    status: int | None = None
    bytes: int = 0
    items: int = 0
    new: int = 0
    alerts: int = 0
    duration: float = 0.0
    error: str | None = None
    published: tuple[str, ...] = field(default=())  # stream entry ids of the alerts raised
    overflow: bool = False
    fetch_seconds: float | None = None  # the fetch alone, when it answered
    parse_seconds: float | None = None  # the parse alone, when the body was parsed
    matched: tuple[str, ...] = ()  # a rule id per match (alertable items only)
    alerted: tuple[str, ...] = ()  # a rule id per alert published (new in the stream)
    held: int = 0  # matches held until more feeds carry their story (min_sources)
    throttled: int = 0  # first alerts held back by their rule's throttle
    silenced: int = 0  # matches of silenced rules, dropped
    # When the feed is due next (epoch s; None: no news for the scheduler) and the effective
    # interval from then on (None: keep it); see daemon/poll/rhythm.py and
    # daemon/poll/scheduling.py.
    next_poll: float | None = None
    interval: float | None = None
    interval_reason: str | None = None

    @property
    def skipped(self) -> bool:
        return self.outcome in SKIPPED


def log_result(result: PollResult) -> None:
    """The poll's structured line (DEBUG when it was skipped), and a warning on overflow."""
    log(
        logger,
        "poll",
        level=logging.DEBUG
        if result.skipped
        else logging.WARNING
        if result.error
        else logging.INFO,
        feed=result.feed,
        outcome=result.outcome,
        status=result.status,
        bytes=result.bytes,
        items=result.items,
        new=result.new,
        alerts=result.alerts,
        held=result.held or None,
        throttled=result.throttled or None,
        silenced=result.silenced or None,
        duration_ms=round(result.duration * 1000, 1),
        error=result.error,
        overflow=result.overflow or None,
        interval_s=round(result.interval)
        if result.interval and result.interval_reason != "fixed"
        else None,
    )
    if result.overflow:
        log(
            logger,
            "feed_overflow",
            level=logging.WARNING,
            feed=result.feed,
            items=result.items,
            note="every item was new: some may have been missed; polling sooner",
            interval_s=round(result.interval) if result.interval else None,
        )
