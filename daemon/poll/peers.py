"""Which live process a feed prefers, so several ``feedwatch run`` processes share the feeds.

Claims (``daemon/poll/leases.py``) keep a feed to one poll per interval, but alone they are sticky:
the process that polled a feed last ticks first once its claim ends, so a process started
after another would never get a feed. So every polling process (a *peer*) registers in a
sorted set ``{p}:pollers`` (identity → last beat, refreshed every third of ``ttl``, the
lease ttl, and dropped after ``ttl`` of silence or at a clean stop), and each feed *prefers*
one of them by rendezvous hashing (the member with the highest hash of (member, feed)): an
even share each, and a process that joins or leaves moves only its own share. The preferred
process claims a feed as soon as the last claim ends; another one only ``CLAIM_PATIENCE`` of
an interval later, so it takes over only when the preferred one is late, gone, or does not
poll that feed. Preference never weakens "once per interval": it only decides who waits.

When a peer leaves or is dropped, the feeds it was preferred for now prefer a survivor each
(:func:`gained`), and ``on_change`` tells the scheduler to tick them now
(``FeedScheduler.hurry``): the tick claims the feed as soon as the dead peer's claim ends,
instead of at the half-interval-late time its patience had planned. So a dead process's feeds
are polled again within ``max(interval, ttl + ttl / 3) + jitter`` of its death: within one
interval once the interval exceeds four thirds of the lease ttl.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import time
from collections.abc import Callable, Iterable, Sequence

import redis.asyncio as aioredis

from daemon.redis.errors import STORE_ERRORS
from daemon.redis.keys import Keys

logger = logging.getLogger("daemon.poll")

BEATS_PER_TTL = 3  # a member beats every ttl / 3 and is dropped after ttl of silence
CLAIM_PATIENCE = 0.5  # of the interval: how long a process waits for the preferred one


def preferred(feed: str, members: Sequence[str]) -> str | None:
    """The member ``feed`` prefers (rendezvous hashing); None when there is none."""

    def weight(member: str) -> bytes:
        return hashlib.blake2b(f"{member}\0{feed}".encode(), digest_size=8).digest()

    return max(members, key=weight, default=None)


def gained(feeds: Iterable[str], me: str, before: Sequence[str], after: Sequence[str]) -> list[str]:
    """The feeds that prefer ``me`` among ``after`` and preferred another member ``before``
    (none when ``before`` was unknown: at the start, patience is not applied yet)."""
    if not before or me not in after:
        return []
    return [f for f in feeds if preferred(f, after) == me and preferred(f, before) != me]


class Peers:
    """This process's view of the live polling processes (``me`` among them)."""

    def __init__(self, redis: aioredis.Redis, keys: Keys, me: str, ttl: float = 30.0) -> None:
        self.redis = redis
        self.keys = keys
        self.me = me
        self.ttl = ttl  # a member silent this long is dropped
        self.members: tuple[str, ...] = ()  # unknown yet: every feed prefers everyone
        # Called with (before, after) when the members change (not at the first refresh).
        self.on_change: list[Callable[[tuple[str, ...], tuple[str, ...]], None]] = []

    def patience(self, feed: str, interval: float) -> float:
        """Seconds this process waits after a claim ends before it claims ``feed``: none if
        the feed prefers it (or nobody is known yet), else ``CLAIM_PATIENCE`` of an interval."""
        if self.me not in self.members or preferred(feed, self.members) == self.me:
            return 0.0
        return CLAIM_PATIENCE * interval

    async def refresh(self, now: float) -> tuple[str, ...]:
        """Beat (we are alive at ``now``), drop the silent, read the members (one MULTI)."""
        key = self.keys.pollers
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.zadd(key, {self.me: now})
            pipe.zremrangebyscore(key, "-inf", now - self.ttl)
            pipe.zrange(key, 0, -1)
            *_, raw = await pipe.execute()
        before = self.members
        self.members = tuple(sorted(m.decode() if isinstance(m, bytes) else m for m in raw))
        if before and self.members != before:
            for cb in self.on_change:
                cb(before, self.members)
        return self.members

    async def leave(self) -> None:
        with contextlib.suppress(*STORE_ERRORS):
            await self.redis.zrem(self.keys.pollers, self.me)

    async def track(self, stop: asyncio.Event) -> None:
        """Refresh every third of the ttl until ``stop``, then leave, so the others take our
        share at once."""
        try:
            while not stop.is_set():
                try:
                    await self.refresh(time.time())
                except STORE_ERRORS as e:  # keep the last view; the next beat retries
                    logger.debug("pollers not refreshed: %s", e)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), self.ttl / BEATS_PER_TTL)
        finally:
            await self.leave()
