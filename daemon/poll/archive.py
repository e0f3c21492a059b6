"""The item archive: every new item, normalised, kept a while for ``feedwatch backtest``.

Three keys under the hash tag, shared by every process on the Redis (``daemon/redis/keys.py``):

- ``{p}:archive:items`` — hash ``<feed>:<item id>`` → the item as compact JSON (feed names hold
  no ``:``, so the first one splits the member);
- ``{p}:archive:seen`` — sorted set, same members → epoch seconds the item was first archived;
- ``{p}:archive:bytes`` — the approximate size of the archive: each record's bytes, its member
  twice and ``OVERHEAD`` for Redis' own bookkeeping.

One Lua step (``_ADD``) adds a poll's new items and trims: members first seen before
``now - keep`` go (at most ``TRIM_BATCH`` a call: the next poll takes the rest), then the oldest
until the size is within ``max_bytes``. An item archived again (a poll whose commit failed sees it
as new once more) replaces its record and keeps its first-seen time.

Archiving is best effort: a failure is logged once (until the archive works again), counted
(``on_error``), and never fails the poll.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, cast

import redis.asyncio as aioredis

from daemon.config.models import ArchiveConfig
from daemon.errors import StoreError
from daemon.logging import log
from daemon.match.backtest import Archived
from daemon.redis.errors import STORE_ERRORS
from daemon.redis.keys import Keys
from daemon.types import Item

if TYPE_CHECKING:
    from daemon.stories.index import Assigned

logger = logging.getLogger("daemon.archive")

VERSION = 1
OVERHEAD = 96  # bytes Redis spends per archived item beyond its member and record (approx.)
TRIM_BATCH = 1000  # members trimmed by age in one call
READ_BATCH = 500  # records read per HMGET
MAX_SUMMARY = 20_000  # characters of an item's summary kept

# KEYS: records, seen, bytes. ARGV: now, oldest kept, max bytes, overhead, batch, then pairs of
# member and record. Returns {items dropped, bytes after}.
_ADD = """
local now, cap, over, batch = ARGV[1], tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
local total = tonumber(redis.call('GET', KEYS[3]) or '0')
for i = 6, #ARGV, 2 do
  local m, rec = ARGV[i], ARGV[i + 1]
  local before = redis.call('HSTRLEN', KEYS[1], m)
  if before > 0 then total = total - before - 2 * #m - over end
  redis.call('HSET', KEYS[1], m, rec)
  redis.call('ZADD', KEYS[2], 'NX', now, m)
  total = total + #rec + 2 * #m + over
end
local dropped = 0
local function drop(members, fits)
  for _, m in ipairs(members) do
    if fits and total <= cap then return end
    local n = redis.call('HSTRLEN', KEYS[1], m)
    if n > 0 then total = total - n - 2 * #m - over end
    redis.call('HDEL', KEYS[1], m)
    redis.call('ZREM', KEYS[2], m)
    dropped = dropped + 1
  end
end
drop(redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', '(' .. ARGV[2], 'LIMIT', 0, batch), false)
while total > cap do
  local oldest = redis.call('ZRANGE', KEYS[2], 0, 99)
  if #oldest == 0 then total = 0 break end
  drop(oldest, true)
end
if total < 0 or redis.call('ZCARD', KEYS[2]) == 0 then total = 0 end
redis.call('SET', KEYS[3], total)
return {dropped, total}
"""


@dataclass(frozen=True, slots=True)
class ArchiveStats:
    items: int
    bytes: int


def member(item: Item) -> str:
    return f"{item.feed}:{item.id}"


def encode(item: Item, story: str | None = None) -> str:
    """The compact JSON record of ``item`` (empty fields left out)."""
    rec: dict[str, Any] = {"v": VERSION, "f": item.feed, "i": item.id, "t": item.title}
    if item.summary:
        rec["s"] = item.summary[:MAX_SUMMARY]
    if item.link:
        rec["l"] = item.link
    if item.published is not None:
        rec["p"] = item.published.timestamp()
    if story:
        rec["st"] = story
    if item.tags:
        rec["g"] = list(item.tags)
    if item.source_url:
        rec["u"] = item.source_url
    return json.dumps(rec, ensure_ascii=False, separators=(",", ":"))


def decode(record: str | bytes, seen: float) -> Archived | None:
    """The archived item of ``record``; None if it is not one this version can read."""
    try:
        rec = json.loads(record)
        published = rec.get("p")
        item = Item(
            feed=str(rec["f"]),
            id=str(rec["i"]),
            title=str(rec.get("t") or ""),
            summary=str(rec.get("s") or ""),
            link=rec.get("l"),
            published=None if published is None else datetime.fromtimestamp(published, UTC),
            tags=tuple(str(t) for t in rec.get("g") or ()),
            source_url=rec.get("u"),
        )
    except (ValueError, TypeError, KeyError, OverflowError, OSError):
        return None
    return Archived(item, seen, rec.get("st") or None)


class Archive:
    """The archive on one Redis. ``keep``: seconds an item stays; ``max_bytes``: the size cap."""

    def __init__(
        self,
        redis: aioredis.Redis,
        keys: Keys,
        *,
        keep: float,
        max_bytes: int,
        on_error: Callable[[], None] | None = None,
    ) -> None:
        self.redis = redis
        self.keys = keys
        self.keep = keep
        self.max_bytes = max_bytes
        self.on_error = on_error
        self._add = redis.register_script(_ADD)
        self._failing = False

    @classmethod
    def configured(
        cls,
        redis: aioredis.Redis,
        keys: Keys,
        settings: ArchiveConfig,
        on_error: Callable[[], None] | None = None,
    ) -> Archive | None:
        """The archive the config's ``archive:`` asks for; None when it turns it off."""
        if not settings.enabled:
            return None
        keep, max_bytes = settings.keep, settings.max_bytes
        return cls(redis, keys, keep=keep, max_bytes=max_bytes, on_error=on_error)

    @property
    def _keys(self) -> list[str]:
        k = self.keys
        return [k.archive_items, k.archive_seen, k.archive_bytes]

    async def add(
        self, items: Sequence[Item], now: datetime, stories: Mapping[str, Assigned] | None = None
    ) -> int:
        """Archive ``items`` (a poll's new items; ``stories``: item id → its story) and trim.
        Never raises a store error: returns how many items the trim dropped (0 on failure)."""
        if not items:
            return 0
        stories = stories or {}
        args: list[str | float | int] = [
            repr(now.timestamp()),
            repr(now.timestamp() - self.keep),
            self.max_bytes,
            OVERHEAD,
            TRIM_BATCH,
        ]
        for item in items:
            told = stories.get(item.id)
            args += [member(item), encode(item, told.story_id if told else None)]
        try:
            dropped, _ = await self._add(keys=self._keys, args=args)
        except STORE_ERRORS as e:
            if self.on_error is not None:
                self.on_error()
            if not self._failing:
                log(logger, "archive_failed", level=logging.WARNING, error=str(e))
            self._failing = True
            return 0
        if self._failing:
            log(logger, "archive_recovered")
        self._failing = False
        return int(dropped)

    async def read(self, since: float, until: float = float("inf")) -> list[Archived]:
        """The archived items first seen in ``[since, until]``, oldest first. Raises StoreError."""
        k = self.keys
        try:
            top = "+inf" if until == float("inf") else until
            raw = await self.redis.zrangebyscore(k.archive_seen, since, top, withscores=True)
            scored = cast("list[tuple[bytes, float]]", raw)  # withscores: (member, score) pairs
            out: list[Archived] = []
            for i in range(0, len(scored), READ_BATCH):
                batch = scored[i : i + READ_BATCH]
                records = await self.redis.hmget(k.archive_items, [m for m, _ in batch])
                for (_, seen), rec in zip(batch, records, strict=True):
                    if rec is not None and (a := decode(rec, float(seen))) is not None:
                        out.append(a)
        except STORE_ERRORS as e:
            raise StoreError(f"cannot read the item archive: {e}") from e
        return out

    async def stats(self) -> ArchiveStats:
        """Items archived and their approximate size. Raises StoreError."""
        k = self.keys
        try:
            items = await self.redis.zcard(k.archive_seen)
            size = await self.redis.get(k.archive_bytes)
        except STORE_ERRORS as e:
            raise StoreError(f"cannot read the item archive: {e}") from e
        return ArchiveStats(int(items), int(size or 0))
