"""Feed health: a feed failing longer than ``polling.alert_after`` raises one alert.

The first failed poll of an episode records its time (``{p}:feedhealth:<feed>``, ``SET NX``);
a successful poll (ok, not modified, unchanged) deletes it. A failed poll at least
``alert_after`` after the episode began publishes a ``feed-health`` alert through the default
route (rule id ``feed-health``, severity ``high``), with an id derived from (feed, episode
start), so an episode alerts once, whatever the number of processes and polls. It can be
silenced like a rule: ``feedwatch silence add feed-health --for 1d``. The alert carries no
feed URL (it may hold a secret) and the error message is redacted of the feed's secrets.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import UTC, datetime

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from alerts.wire import Alert, AlertItem, AlertRule
from daemon.config import FeedConfig
from daemon.config_models import redact
from daemon.durations import format_duration
from daemon.errors import FeedError, StoreError
from daemon.keys import Keys
from daemon.publish import Publisher
from daemon.silence import Silences

RULE_ID = "feed-health"
KEY_TTL = 30 * 86400


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
    ) -> None:
        self.redis = redis
        self.keys = keys
        self.publisher = publisher
        self.alert_after = alert_after
        self.notify = tuple(notify)
        self.silences = silences

    async def failed(
        self, feed: FeedConfig, error: FeedError, streak: int, now: datetime
    ) -> str | None:
        """Record a failed poll; the stream entry id of the alert it raised, if any."""
        key = self.keys.feed_failing(feed.name)
        try:
            await self.redis.set(key, f"{now.timestamp():.3f}", nx=True, ex=KEY_TTL)
            raw = await self.redis.get(key)
        except RedisError as e:
            raise StoreError(f"cannot record the failure of {feed.name}: {e}") from e
        since = float(raw) if raw is not None else now.timestamp()
        if now.timestamp() - since < self.alert_after:
            return None
        if self.silences is not None and await self.silences.active(RULE_ID, now.timestamp()):
            return None
        alert = health_alert(feed, error, since=since, streak=streak, now=now, notify=self.notify)
        (published,) = await self.publisher.publish([alert])
        return published.entry_id

    async def recovered(self, feed: str) -> None:
        """A successful poll ends the feed's failure episode."""
        try:
            await self.redis.delete(self.keys.feed_failing(feed))
        except RedisError as e:
            raise StoreError(f"cannot record the recovery of {feed}: {e}") from e
