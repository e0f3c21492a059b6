"""Scale-out on one Redis: who polls a feed now (a lease), who polled it this interval (a claim).

Every ``feedwatch run`` process schedules every feed; these two keys per feed make the processes
share the work:

* **Lease** ``{p}:lease:<feed>`` = owner, ``SET NX PX lease_ttl``: held for the duration of one
  poll, renewed every ``lease_ttl / 3`` while the poll runs (owner-only ``PEXPIRE``), released
  after it (owner-only ``DEL``). No two polls of one feed at once, in any process; the lease of
  a process that died (SIGKILL, lost host) expires within ``lease_ttl``.
* **Claim** ``{p}:claim:<feed>`` = ``"<since ms> <length ms> <owner>"``: taken atomically (Lua) by a
  scheduled poll, under the lease, once it decided to fetch (the feed is not in backoff), and
  stamped again when the poll ends, so it lasts :func:`claim_ttl` (the interval less a small
  slack) from the poll's request at least. Another process's tick inside that window skips the
  feed (outcome ``fresh``), so one feed is polled at most once per interval across processes.
  The owner's own ticks are not held back by its claim (they already come one interval apart),
  so a single process polls exactly as it schedules. Which process waits longer after a claim
  ends, so that the processes share the feeds, is ``daemon/poll/peers.py``'s business (patience:
  a claim is taken only ``patience`` after the last one ended, and the owner's bypass holds
  only without patience). A poll cancelled before it committed (shutdown) gives its claim
  back so another process polls the feed at its next tick; a poll that failed on the feed
  keeps it (the backoff in the feed's state decides the retry). Explicit polls (``run
  --once``, triggered polls) do not ask for the claim, and stamp it. A WebSub push is no
  fetch: it takes the lease (no overlap with a poll) but neither asks for nor stamps a claim.
  A refused tick learns when the claim opens to it, and the scheduler moves that process's
  job there (``daemon/poll/scheduling.py``): one skipped tick per interval and process at most,
  and a cheap one: a scheduled tick first reads the claim (``peek``, one GET, with the length
  its claimer stored), and only a tick the claim lets through takes the lease, reads the
  feed's state and claims atomically.

Guarantees, with ``I`` the interval and ``J`` the scheduler's jitter: two polls of a feed by two
processes are at least ``claim_ttl(I)`` apart (measured between their requests); a process
that dies is replaced, for each of its feeds, within ``max(claim_ttl(I) + patience,
lease_ttl) + I + J`` of its death (patience: ``daemon/poll/peers.py``, while the others still
count it as alive).

A claim records when it was taken, not when it ends: its length is the claim_ttl of the feed's
interval *now* (its effective interval, adaptive within its bounds and shared in the feed's
state in Redis: ``daemon/poll/rhythm.py``), so a changed interval applies at once. ``since`` comes
from the poller's clock (injected in tests), so the processes' clocks must agree (NTP); the
key's ``PX`` (two claims long) only garbage-collects it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Mapping
from datetime import datetime

import redis.asyncio as aioredis

from daemon.errors import StoreError
from daemon.logging import log
from daemon.poll.peers import Peers
from daemon.redis.errors import STORE_ERRORS
from daemon.redis.keys import Keys
from daemon.redis.shielded import committed

logger = logging.getLogger("daemon.poll")

CLAIM_SLACK = 0.05  # a claim lasts the interval less this fraction of it ...
CLAIM_SLACK_MAX = 1.0  # ... but never less than the interval minus this many seconds
RENEWALS_PER_TTL = 3  # a lease is renewed every ttl / 3 while its poll runs

_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""
# KEYS: leases. ARGV: owner, then a ttl (ms) per key. Extends those that are ours: 1, else 0.
_RENEW = """
local kept = {}
for i = 1, #KEYS do
  kept[i] = 0
  if redis.call('GET', KEYS[i]) == ARGV[1] then
    kept[i] = redis.call('PEXPIRE', KEYS[i], ARGV[i + 1])
  end
end
return kept
"""
# KEYS: claim. ARGV: owner, now (ms), claim length (ms), patience (ms). Refused before the last
# claim's start + length + patience, unless it is ours and there is no patience: returns 0 when
# claimed, else that time (ms), when this caller may claim.
_CLAIM = """
local v = redis.call('GET', KEYS[1])
local now, length, patience = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
if v then
  local since, _, owner = string.match(v, '^(%d+) (%d+) (.+)$')
  if since then
    local opens = tonumber(since) + length + patience
    if not (owner == ARGV[1] and patience == 0) and now < opens then return opens end
  end
end
redis.call('SET', KEYS[1], ARGV[2] .. ' ' .. ARGV[3] .. ' ' .. ARGV[1], 'PX', 2 * length + patience)
return 0
"""
# KEYS: claim. ARGV: owner. Deletes the claim if it is ours.
_UNCLAIM = """
local v = redis.call('GET', KEYS[1])
if v and string.match(v, '^%d+ %d+ (.+)$') == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


def claim_ttl(interval: float) -> float:
    """Seconds a poll's claim keeps other processes off a feed polled every ``interval``."""
    return interval - min(CLAIM_SLACK_MAX, interval * CLAIM_SLACK)


def _ms(seconds: float) -> int:
    return max(1, int(seconds * 1000))


def _parse_claim(raw: bytes | str) -> tuple[float, float, str | None]:
    """``"<since ms> <length ms> <owner>"`` → (since s, length s, owner); owner None if the
    value is not a claim."""
    text = raw.decode() if isinstance(raw, bytes) else raw
    parts = text.split(" ", 2)
    if len(parts) != 3 or not (parts[0].isdigit() and parts[1].isdigit()):
        return 0.0, 0.0, None
    return int(parts[0]) / 1000, int(parts[1]) / 1000, parts[2]


class Leases:
    """Per-feed leases and claims of one process (``owner``) on one Redis."""

    def __init__(
        self, redis: aioredis.Redis, keys: Keys, owner: str, peers: Peers | None = None
    ) -> None:
        if " " in owner:
            raise ValueError("a lease owner holds no space")
        self.redis = redis
        self.keys = keys
        self.owner = owner
        self.peers = peers  # None: no preference, every process claims alike
        self._release = redis.register_script(_RELEASE)
        self._renew = redis.register_script(_RENEW)
        self._claim = redis.register_script(_CLAIM)
        self._unclaim = redis.register_script(_UNCLAIM)
        self._held: dict[str, float] = {}  # feed -> ttl of the leases held now
        self._keeper: asyncio.Task[None] | None = None

    # -- leases ------------------------------------------------------------------------------
    async def acquire(self, feed: str, ttl: float) -> bool:
        try:
            got = await self.redis.set(self.keys.lease(feed), self.owner, nx=True, px=_ms(ttl))
        except STORE_ERRORS as e:
            raise StoreError(f"cannot take the lease of feed {feed}: {e}") from e
        return bool(got)

    async def remaining(self, feed: str) -> float | None:
        """Seconds the lease of ``feed`` (another poll's) still runs; None if there is none."""
        try:
            ms = await self.redis.pttl(self.keys.lease(feed))
        except STORE_ERRORS as e:
            raise StoreError(f"cannot read the lease of feed {feed}: {e}") from e
        return ms / 1000 if ms > 0 else None

    async def renew(self, ttls: Mapping[str, float]) -> set[str]:
        """Extend our leases of these feeds, each to its ttl from now (one round trip); returns
        the feeds whose lease was still ours."""
        feeds = list(ttls)
        keys = [self.keys.lease(f) for f in feeds]
        args: list[str | int] = [self.owner, *(_ms(ttls[f]) for f in feeds)]
        try:
            kept = await self._renew(keys=keys, args=args)
        except STORE_ERRORS as e:
            raise StoreError(f"cannot renew the leases of {len(feeds)} feeds: {e}") from e
        return {f for f, k in zip(feeds, kept, strict=True) if k}

    async def release(self, feed: str) -> None:
        """Release our lease (only ours: it may have expired and been taken since). Finishes
        even if the caller is cancelled; a failure is moot (the lease expires by itself)."""
        with contextlib.suppress(StoreError):
            await committed(lambda: self._release(keys=[self.keys.lease(feed)], args=[self.owner]))

    @contextlib.asynccontextmanager
    async def hold(self, feed: str, ttl: float) -> AsyncIterator[bool]:
        """Take the lease of ``feed`` (yields False if another poll holds it), keep it while
        the block runs, release it after. One keeper task per process renews every lease
        held, in one round trip, while any is held."""
        if not await self.acquire(feed, ttl):
            yield False
            return
        self._held[feed] = ttl
        if self._keeper is None:
            self._keeper = asyncio.create_task(self._keep(), name="leases")
        try:
            yield True
        finally:
            del self._held[feed]
            if not self._held and self._keeper is not None:
                self._keeper.cancel()
                self._keeper = None
            await self.release(feed)

    async def _keep(self) -> None:
        while self._held:
            await asyncio.sleep(min(self._held.values()) / RENEWALS_PER_TTL)
            held = dict(self._held)
            try:
                lost = set(held) - await self.renew(held)
            except StoreError as e:  # try again at the next beat: the leases still have 2/3 left
                log(logger, "lease-renew", level=logging.WARNING, feeds=len(held), error=str(e))
                continue
            for feed in lost & set(self._held):
                log(logger, "lease-lost", level=logging.WARNING, feed=feed, ttl_s=held[feed])

    # -- claims ------------------------------------------------------------------------------
    def patience(self, feed: str, interval: float) -> float:
        """How long after the last claim's end this process may claim ``feed``."""
        return 0.0 if self.peers is None else self.peers.patience(feed, interval)

    async def claim(self, feed: str, now: datetime, ttl: float, patience: float = 0.0) -> bool:
        """Claim ``feed`` from ``now``, unless the last claim (another owner's, or ours with
        ``patience``), counted ``ttl`` long, ends after ``now - patience``."""
        return await self.attempt(feed, now, ttl, patience) is None

    async def attempt(
        self, feed: str, now: datetime, ttl: float, patience: float = 0.0
    ) -> float | None:
        """``claim``, saying when a refused claim opens to us: None when claimed, else the
        time (epoch s) from which this process may claim ``feed``."""
        args: list[str | int] = [self.owner, _ms(now.timestamp()), _ms(ttl), int(patience * 1000)]
        try:
            opens = int(await self._claim(keys=[self.keys.claim(feed)], args=args))
        except STORE_ERRORS as e:
            raise StoreError(f"cannot claim feed {feed}: {e}") from e
        return None if opens == 0 else opens / 1000

    async def peek(self, feed: str, now: datetime, longest: float) -> float | None:
        """The claim check without the claim (one GET, no lease, no state): when ``feed``'s
        claim opens to us (epoch s), or None if it may be open now. The claim counts as long
        as its claimer stored, but never longer than ``longest`` (the claim of the feed's
        longest interval now: a shortened interval applies at once, as in ``attempt``); the
        patience is counted on that length (within 5 % of the interval). A scheduled
        tick of a feed another process holds ends here, cheaply; one that passes takes the
        lease and then the claim itself (``attempt``), atomically."""
        try:
            raw = await self.redis.get(self.keys.claim(feed))
        except STORE_ERRORS as e:
            raise StoreError(f"cannot read the claim of feed {feed}: {e}") from e
        if raw is None:
            return None
        since, stored, owner = _parse_claim(raw)
        length = min(stored, longest)
        patience = self.patience(feed, length)
        if owner is None or (owner == self.owner and patience == 0):
            return None
        opens = since + length + patience
        return opens if now.timestamp() < opens else None

    async def unclaim(self, feed: str) -> None:
        """Give our claim back (a poll that did not complete); finishes even if cancelled."""
        with contextlib.suppress(StoreError):
            await committed(lambda: self._unclaim(keys=[self.keys.claim(feed)], args=[self.owner]))
