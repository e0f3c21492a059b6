"""Per-feed state in Redis: conditional-GET validators, the "is this new?" memory, poll outcome.

One hash per feed (``{p}:feed:<name>``) and one sorted set per feed (``{p}:seen:<name>``,
item id → the last time the item was in the feed). Every poll of a feed refreshes the scores of
the items it still holds, so the memory forgets only items that left the feed long ago
(``seen_ttl``) or that overflow ``seen_max``: bounded in size and time, yet an item that is still
in the feed is never forgotten and never alerts twice.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import redis.asyncio as aioredis
from redis.typing import EncodableT, FieldT

from daemon.errors import StoreError
from daemon.poll.rhythm import Rhythm, decode, encode
from daemon.redis.errors import STORE_ERRORS
from daemon.redis.keys import Keys
from daemon.redis.shielded import committed
from daemon.types import Caching

SEEN_MAX = 10_000
SEEN_TTL = 90 * 86400.0


@dataclass(frozen=True, slots=True)
class FeedState:
    caching: Caching
    polled_before: bool
    error_streak: int = 0
    next_after: float = 0.0  # epoch seconds before which the feed is not polled (backoff)
    last_poll: float | None = None
    last_ok: float | None = None
    last_outcome: str | None = None
    last_error: str | None = None
    items_seen: int = 0
    # Adaptive polling (daemon/poll/rhythm.py): what the feed's publications taught, and the
    # effective interval the last successful poll chose (None: the configured one) and why.
    rhythm: Rhythm = Rhythm()
    interval: float | None = None
    interval_reason: str | None = None


@dataclass(frozen=True, slots=True)
class Commit:
    """What a poll writes back for one feed."""

    outcome: str
    now: datetime
    caching: Caching | None = None  # None: keep the stored validators
    error: str | None = None
    error_streak: int = 0
    next_after: float = 0.0
    present_ids: Sequence[str] = ()  # every item id the feed holds now (refreshed in memory)
    new_count: int = 0
    rhythm: Rhythm | None = None  # None: keep the stored rhythm and interval
    interval: float | None = None
    interval_reason: str | None = None
    # A WebSub push: only the memory, the counts and ``last_push`` are written (a push is no
    # poll: the poll time, validators, error streak and backoff stay as the last poll left them).
    push: bool = False


def _s(v: bytes | str | None) -> str | None:
    if not v:
        return None
    return v.decode() if isinstance(v, bytes) else v


class FeedStore:
    def __init__(
        self,
        redis: aioredis.Redis,
        keys: Keys,
        *,
        seen_max: int = SEEN_MAX,
        seen_ttl: float = SEEN_TTL,
    ) -> None:
        self.redis = redis
        self.keys = keys
        self.seen_max = seen_max
        self.seen_ttl = seen_ttl

    async def load(self, feed: str) -> FeedState:
        try:
            raw = await self.redis.hgetall(self.keys.feed_state(feed))
        except STORE_ERRORS as e:
            raise StoreError(f"cannot read state of feed {feed}: {e}") from e
        h = {_s(k) or "": v for k, v in raw.items()}
        return FeedState(
            caching=Caching(
                etag=_s(h.get("etag")),
                last_modified=_s(h.get("last_modified")),
                body_hash=_s(h.get("body_hash")),
            ),
            polled_before=b"1" == h.get("polled"),
            error_streak=int(h.get("error_streak") or 0),
            next_after=float(h.get("next_after") or 0),
            last_poll=float(h["last_poll"]) if h.get("last_poll") else None,
            last_ok=float(h["last_ok"]) if h.get("last_ok") else None,
            last_outcome=_s(h.get("last_outcome")),
            last_error=_s(h.get("last_error")),
            items_seen=int(h.get("items_seen") or 0),
            rhythm=decode(h.get("rhythm")),
            interval=float(h["interval"]) if h.get("interval") else None,
            interval_reason=_s(h.get("interval_reason")),
        )

    async def seen_flags(self, feed: str, ids: Sequence[str]) -> list[bool]:
        """For each id: is it in the feed's memory?"""
        if not ids:
            return []
        try:
            scores = await self.redis.zmscore(self.keys.seen(feed), list(ids))
        except STORE_ERRORS as e:
            raise StoreError(f"cannot read memory of feed {feed}: {e}") from e
        return [s is not None for s in scores]

    async def commit(self, feed: str, c: Commit) -> None:
        """Write a poll's outcome in one MULTI, shielded from cancellation: a final write is
        never half done (the caller may be cancelled by a second signal), and its failure is
        never left unretrieved in an orphaned task."""
        await committed(lambda: self._commit(feed, c))

    async def _commit(self, feed: str, c: Commit) -> None:
        epoch = c.now.timestamp()
        mapping: dict[FieldT, EncodableT] = {
            "last_poll": epoch,
            "last_outcome": c.outcome,
            "error_streak": c.error_streak,
            "next_after": c.next_after,
            "last_error": c.error or "",
        }
        if c.error is None:
            mapping["last_ok"] = epoch
            mapping["polled"] = "1"
        if c.rhythm is not None:
            mapping["rhythm"] = encode(c.rhythm)
        if c.interval is not None:
            mapping["interval"] = c.interval
            mapping["interval_reason"] = c.interval_reason or ""
        if c.caching is not None:
            mapping["etag"] = c.caching.etag or ""
            mapping["last_modified"] = c.caching.last_modified or ""
            mapping["body_hash"] = c.caching.body_hash or ""
        if c.push:
            mapping = {"last_push": epoch}
        state_key, seen_key = self.keys.feed_state(feed), self.keys.seen(feed)
        try:
            async with self.redis.pipeline(transaction=True) as pipe:
                pipe.hset(state_key, mapping=mapping)
                if c.new_count:
                    pipe.hincrby(state_key, "items_seen", c.new_count)
                    counts = self.keys.new_counts(feed)
                    pipe.hincrby(counts, str(int(epoch // 3600) * 3600), c.new_count)
                    pipe.expire(counts, 26 * 3600)
                if c.present_ids:
                    pipe.zadd(seen_key, dict.fromkeys(c.present_ids, epoch))
                    pipe.zremrangebyscore(seen_key, "-inf", epoch - self.seen_ttl)
                    pipe.zremrangebyrank(seen_key, 0, -(self.seen_max + 1))
                await pipe.execute()
        except STORE_ERRORS as e:
            raise StoreError(f"cannot write state of feed {feed}: {e}") from e


def epoch_to_dt(epoch: float | None) -> datetime | None:
    return datetime.fromtimestamp(epoch, UTC) if epoch else None
