"""Feed health: a feed failing longer than ``polling.alert_after`` raises one alert.

The first failed poll of an episode records its time (``{p}:feedhealth:<feed>``, ``SET NX``);
a successful poll (ok, not modified, unchanged) deletes it. A failed poll at least
``alert_after`` after the episode began publishes a ``feed-health`` alert through the default
route (rule id ``feed-health``, severity ``high``), with an id derived from (feed, episode
start), so an episode alerts once, whatever the number of processes and polls. It can be
silenced like a rule: ``feedwatch silence add feed-health --for 1d``. The alert carries no
feed URL (it may hold a secret) and the error message is redacted of the feed's secrets.

A feed that stops publishing compared with its own rhythm (``daemon/poll/rhythm.py`` decides, the
poller asks after each successful poll) raises a ``feed-health`` alert too, severity
``medium``, ``extra.signal: quiet``, with an id derived from (feed, last publication), so a
quiet episode alerts once; the poller records that it did in the feed's rhythm, and a new
publication ends the episode (logged as ``feed_resumed``). ``alert_after`` 0 turns the
failure alerts off, ``quiet_factor`` 0 the quiet ones.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from datetime import UTC, datetime

import redis.asyncio as aioredis

from alerts.wire import Alert, AlertItem, AlertRule
from daemon.config.load import FeedConfig
from daemon.config.messages import redact
from daemon.config.models import PollingConfig
from daemon.durations import format_duration
from daemon.errors import FeedError, FeedwatchError, StoreError
from daemon.logging import log
from daemon.poll.rhythm import Quiet, Rhythm, mark_alerted, quiet_due
from daemon.publish.silence import Silences
from daemon.publish.stream import Publisher
from daemon.redis.errors import STORE_ERRORS
from daemon.redis.keys import Keys

RULE_ID = "feed-health"
KEY_TTL = 30 * 86400
logger = logging.getLogger("daemon.feed_health")


def health_alert(
    feed: FeedConfig,
    error: FeedError,
    *,
    since: float,
    streak: int,
    now: datetime,
    notify: Sequence[str],
) -> Alert:
    """The ``feed-health`` alert of a failure episode that began at ``since``."""
    began = datetime.fromtimestamp(since, UTC)
    lasted = format_duration(max(0.0, now.timestamp() - since))
    message = redact(error.message, feed.secrets)
    digest = hashlib.sha256(f"{RULE_ID}\0{feed.name}\0{since:.3f}".encode()).hexdigest()[:24]
    return Alert(
        id=digest,
        rule=AlertRule(id=RULE_ID, title="Feed failing", severity="high"),
        item=AlertItem(
            id=f"{RULE_ID}:{began.isoformat()}",
            title=f"Feed {feed.name} has been failing for {lasted}",
            link=None,
            excerpt=f"error:{error.kind}: {message} ({streak} failed polls in a row)",
            published=None,
            feed=feed.name,
        ),
        matches=(),
        created=now,
        notify=tuple(notify),
        extra={
            "failing_since": began.isoformat(),
            "error_kind": error.kind,
            "error_streak": streak,
        },
    )


def quiet_alert(feed: FeedConfig, q: Quiet, *, now: datetime, notify: Sequence[str]) -> Alert:
    """The ``feed-health`` alert of a quiet episode (nothing published since ``q.last``)."""
    last = datetime.fromtimestamp(q.last, UTC)
    digest = hashlib.sha256(f"{RULE_ID}\0quiet\0{feed.name}\0{q.last:.0f}".encode()).hexdigest()
    return Alert(
        id=digest[:24],
        rule=AlertRule(id=RULE_ID, title="Feed quiet", severity="medium"),
        item=AlertItem(
            id=f"{RULE_ID}:quiet:{last.isoformat()}",
            title=f"Feed {feed.name} has published nothing for {format_duration(q.silence)}",
            link=None,
            excerpt=(
                f"It usually publishes every {format_duration(q.usual)}; the last item is from "
                f"{last.isoformat()}; quiet after {format_duration(q.threshold)}."
            ),
            published=None,
            feed=feed.name,
        ),
        matches=(),
        created=now,
        notify=tuple(notify),
        extra={
            "signal": "quiet",
            "last_published": last.isoformat(),
            "usual_gap_s": round(q.usual),
            "quiet_after_s": round(q.threshold),
        },
    )


class FeedHealth:
    def __init__(
        self,
        redis: aioredis.Redis,
        keys: Keys,
        publisher: Publisher,
        *,
        alert_after: float,
        notify: Sequence[str],
        silences: Silences | None = None,
        quiet_factor: float = 0.0,
        quiet_min: float = 12 * 3600.0,
    ) -> None:
        self.redis = redis
        self.keys = keys
        self.publisher = publisher
        self.alert_after = alert_after  # 0: no failure alerts
        self.notify = tuple(notify)
        self.silences = silences
        self.quiet_factor = quiet_factor  # 0: no quiet alerts
        self.quiet_min = quiet_min

    @classmethod
    def configured(
        cls,
        redis: aioredis.Redis,
        keys: Keys,
        publisher: Publisher,
        polling: PollingConfig,
        notify: Sequence[str],
        silences: Silences | None = None,
    ) -> FeedHealth | None:
        """Feed-health alerts as ``polling:`` asks for them; None when it turns both off."""
        if polling.alert_after <= 0 and polling.quiet_factor <= 0:
            return None
        return cls(
            redis,
            keys,
            publisher,
            alert_after=polling.alert_after,
            notify=notify,
            silences=silences,
            quiet_factor=polling.quiet_factor,
            quiet_min=polling.quiet_min,
        )

    async def failed(
        self, feed: FeedConfig, error: FeedError, streak: int, now: datetime
    ) -> str | None:
        """Record a failed poll; the stream entry id of the alert it raised, if any."""
        if self.alert_after <= 0:
            return None
        key = self.keys.feed_failing(feed.name)
        try:
            await self.redis.set(key, f"{now.timestamp():.3f}", nx=True, ex=KEY_TTL)
            raw = await self.redis.get(key)
        except STORE_ERRORS as e:
            raise StoreError(f"cannot record the failure of {feed.name}: {e}") from e
        since = float(raw) if raw is not None else now.timestamp()
        if now.timestamp() - since < self.alert_after:
            return None
        if self.silences is not None and await self.silences.active(RULE_ID, now.timestamp()):
            return None
        alert = health_alert(feed, error, since=since, streak=streak, now=now, notify=self.notify)
        (published,) = await self.publisher.publish([alert])
        return published.entry_id

    async def watch(
        self, feed: FeedConfig, before: Rhythm, rhythm: Rhythm, now: datetime
    ) -> tuple[Rhythm, str | None]:
        """After a successful poll that turned the feed's rhythm ``before`` into ``rhythm``:
        end a quiet episode that alerted if the feed published, alert once on a new one. The
        rhythm to store, and the stream entry id of the alert this poll raised, if any."""
        if before.alerted is not None and rhythm.last != before.last:
            self.resumed(feed.name, (rhythm.last or 0.0) - (before.last or 0.0))
        q = quiet_due(rhythm, now.timestamp(), factor=self.quiet_factor, floor=self.quiet_min)
        if q is None:
            return rhythm, None
        try:
            handled, entry = await self.quiet(feed, q, now)
        except FeedwatchError:
            return rhythm, None  # asked again at the next poll
        return (mark_alerted(rhythm) if handled else rhythm), entry

    async def quiet(self, feed: FeedConfig, q: Quiet, now: datetime) -> tuple[bool, str | None]:
        """Alert on a quiet episode: ``(handled, stream entry id)``. Not handled while
        ``feed-health`` is silenced (asked again at the next poll, as for failures); the entry
        id is None when another process published it already."""
        if self.silences is not None and await self.silences.active(RULE_ID, now.timestamp()):
            return False, None
        alert = quiet_alert(feed, q, now=now, notify=self.notify)
        (published,) = await self.publisher.publish([alert])
        log(
            logger,
            "feed_quiet",
            level=logging.WARNING,
            feed=feed.name,
            silent_s=round(q.silence),
            usual_gap_s=round(q.usual),
            quiet_after_s=round(q.threshold),
        )
        return True, published.entry_id

    @staticmethod
    def resumed(feed: str, quiet_for: float) -> None:
        """A feed that alerted as quiet published again: the episode is over."""
        log(logger, "feed_resumed", feed=feed, quiet_s=round(quiet_for))

    async def recovered(self, feed: str) -> None:
        """A successful poll ends the feed's failure episode."""
        try:
            await self.redis.delete(self.keys.feed_failing(feed))
        except STORE_ERRORS as e:
            raise StoreError(f"cannot record the recovery of {feed}: {e}") from e
