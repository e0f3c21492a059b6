"""The Redis-backed story index: ``daemon.story.StoryIndex``'s semantics, shared by every process.

Each new item gets a fingerprint (``daemon.story.fingerprint``); ``StoryStore.assign_many`` joins
it to the most similar story remembered at or above ``SAME_STORY``, or starts a story. A story
is remembered for ``window`` seconds after its first item (default 48 h) and lists the feeds
that carry it, first seen first, each with the time it was first seen there (at most
``max_sources``). An item whose canonical link is already known joins that story whatever its
text; assigning a known item again changes nothing.

Two round trips per batch of items, and a retry for the few that raced (``daemon.story_lua``):

1. ``LOOKUP`` (Lua, read only): per item, its known story, else up to ``max_candidates``
   candidate stories (packed sketches) and a digest of the buckets it looked in.
2. Python computes the similarities (``daemon.story.matcher``) and plans: join, or start.
3. ``COMMIT`` (Lua, atomic): per item, re-checks the digest; if another process filed a story
   under the item's probe keys meanwhile the item is looked up again (``MAX_ROUNDS``; the last
   round commits its plan as is: at worst a story split, never an error).

Redis layout (all keys under the hash tag, ``daemon.keys``): a hash per story (the packed
sketch in three fields of <= 64 bytes, started, revision, sources), expiring ``window`` after
its start; band buckets and the item/link map in ``shards`` small hashes per ``slice`` (12 h)
of time, expiring ``window`` after the slice ends, so a lookup reads ``window / slice + 1``
slices. Times are the caller's clock (injectable); Redis TTLs only reclaim memory. Measured
(3,000 stories of one item and one link each, Redis 6.2, ``INFO memory``): ~700 bytes per
story (records ~300, band keys ~130, item and link map ~90, the rest key overhead), where the
bench's bit-packed layout (``daemon.story``) needs 258: plain fields a person can read with
redis-cli, and one Lua script per step instead of client-side decoding.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from hashlib import blake2b
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from daemon.errors import StoreError
from daemon.keys import Keys
from daemon.story import SAME_STORY, Fingerprint, story_key_for_url
from daemon.story_lua import COMMIT, LOOKUP
from daemon.story_sketch import matcher

__all__ = [
    "MAX_ROUNDS",
    "Assigned",
    "Plan",
    "StoryEntry",
    "StoryStore",
    "item_key",
    "parse_sources",
]

MAX_ROUNDS = 8
DEFAULT_WINDOW = 48 * 3600.0
SLICE = 12 * 3600.0
SHARDS = 256  # band and item hashes per slice: up to ~5,000 stories per slice stay listpacks


def item_key(feed: str, item_id: str) -> str:
    """The story index's key for one item of one feed."""
    return "i" + blake2b(f"{feed}\0{item_id}".encode(), digest_size=8).hexdigest()


def _base_id(key: str) -> str:
    """A new story's id, from its first item's key (as ``StoryIndex`` makes it)."""
    return blake2b(key.encode(), digest_size=6).hexdigest()


@dataclass(frozen=True, slots=True)
class StoryEntry:
    """One item to assign: its key (``item_key``), fresh fingerprint, feed and link."""

    key: str
    fp: Fingerprint
    feed: str
    url: str | None = None


@dataclass(frozen=True, slots=True)
class Assigned:
    """Where an item went. ``sources``: the story's feeds, first seen first; ``first_seen``:
    when each first carried it (epoch seconds); ``similarity`` as in ``StoryAssignment``."""

    story_id: str
    new_story: bool
    similarity: float
    sources: tuple[str, ...]
    first_seen: tuple[float, ...]
    started: float

    def sources_within(self, seconds: float, now: float) -> tuple[str, ...]:
        """The sources first seen in the last ``seconds`` before ``now``."""
        return tuple(
            f for f, t in zip(self.sources, self.first_seen, strict=True) if now - t <= seconds
        )


def parse_sources(src: str | bytes | None) -> tuple[tuple[str, ...], tuple[float, ...]]:
    """(feeds, first-seen times) from a story's ``src`` field (``feed TAB time`` lines)."""
    text = src.decode() if isinstance(src, bytes) else (src or "")
    feeds: list[str] = []
    times: list[float] = []
    for line in text.splitlines():
        feed, _, when = line.partition("\t")
        if feed:
            feeds.append(feed)
            times.append(float(when or 0))
    return tuple(feeds), tuple(times)


@dataclass(frozen=True, slots=True)
class Plan:
    """What ``lookup`` decided for an item, for ``commit``."""

    action: str  # join | new | link
    target: str  # story to join ("" for new)
    digest: str
    similarity: float
    replace: bool  # a fuller text: it becomes the story's sketch
    cands: tuple[str, ...]


def _text(v: Any) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)


class StoryStore:
    """The story index in Redis. ``bucket_size``, ``index_keys``, ``max_candidates`` and
    ``max_sources`` mean what they mean for ``daemon.story.StoryIndex``."""

    def __init__(
        self,
        redis: aioredis.Redis,
        keys: Keys,
        *,
        window: float = DEFAULT_WINDOW,
        slice_seconds: float = SLICE,
        bucket_size: int = 4,
        index_keys: int = 6,
        max_candidates: int = 16,
        max_sources: int = 8,
        shards: int = SHARDS,
    ) -> None:
        self.redis = redis
        self.keys = keys
        self.window = window
        self.slice = slice_seconds
        self.bucket_size = bucket_size
        self.index_keys = index_keys
        self.max_candidates = max_candidates
        self.max_sources = max_sources
        self.shards = shards
        self._lookup = redis.register_script(LOOKUP)
        self._commit = redis.register_script(COMMIT)

    def _head(self, now: float) -> tuple[list[str], list[str | bytes | int | float]]:
        keys = [self.keys.story_items(int(now // self.slice), 0)]
        return keys, [self.keys.tag, f"{now:.3f}", self.window, self.slice, self.shards]

    async def assign(
        self, key: str, fp: Fingerprint, feed: str, now: float, *, url: str | None = None
    ) -> Assigned:
        """Assign one item (``assign_many`` of one)."""
        return (await self.assign_many([StoryEntry(key, fp, feed, url)], now))[0]

    async def assign_many(self, entries: Sequence[StoryEntry], now: float) -> list[Assigned]:
        """Assign every entry, in order (a later entry may join an earlier one's story)."""
        done: dict[int, Assigned] = {}
        todo = list(range(len(entries)))
        for round_no in range(MAX_ROUNDS):
            if not todo:
                break
            found = await self.lookup([entries[i] for i in todo], now)
            plans: list[tuple[int, Plan]] = []
            for i, hit in zip(todo, found, strict=True):
                if isinstance(hit, Assigned):
                    done[i] = hit
                else:
                    plans.append((i, hit))
            force = round_no == MAX_ROUNDS - 1
            results = await self.commit([(entries[i], plan) for i, plan in plans], now, force=force)
            todo = []
            for (i, _plan), res in zip(plans, results, strict=True):
                if res is None:
                    todo.append(i)
                else:
                    done[i] = res
        return [done[i] for i in range(len(entries))]

    # -- the two steps (public so that tests can interleave two processes) -------------------
    async def lookup(self, entries: Sequence[StoryEntry], now: float) -> list[Assigned | Plan]:
        """Step 1 and 2: known items as ``Assigned``, the others as a plan to commit."""
        if not entries:
            return []
        keys, args = self._head(now)
        args += [self.max_candidates, len(entries)]
        for e in entries:
            probes = e.fp.probes or e.fp.bands
            args += [e.key, story_key_for_url(e.url) if e.url else "", len(probes), *probes]
        try:
            raw = await self._lookup(keys=keys, args=args)
        except RedisError as e:
            raise StoreError(f"cannot look up stories: {e}") from e
        return [self._plan(e, r) for e, r in zip(entries, raw, strict=True)]

    def _plan(self, entry: StoryEntry, raw: list[Any]) -> Assigned | Plan:
        kind = _text(raw[0])
        if kind == "known":
            feeds, times = parse_sources(raw[3])
            return Assigned(_text(raw[1]), False, 1.0, feeds, times, float(_text(raw[2])))
        if kind == "link":
            return Plan("link", _text(raw[1]), "", 1.0, False, ())
        digest = _text(raw[1])
        compare = matcher(entry.fp, SAME_STORY)
        best: tuple[float, float, str, Fingerprint] | None = None  # (sim, -started, id, fp)
        cands: list[str] = []
        for j in range(2, len(raw), 3):
            sid, started, packed = _text(raw[j]), float(_text(raw[j + 1])), raw[j + 2]
            cands.append(sid)
            stored = Fingerprint.unpack(packed)
            sim = compare(stored)
            if best is None or (sim, -started) > best[:2]:
                best = (sim, -started, sid, stored)
        if best is not None and best[0] >= SAME_STORY:
            replace = entry.fp.size > best[3].size
            return Plan("join", best[2], digest, best[0], replace, tuple(cands))
        return Plan("new", "", digest, best[0] if best else 0.0, False, tuple(cands))

    async def commit(
        self, planned: Sequence[tuple[StoryEntry, Plan]], now: float, *, force: bool = False
    ) -> list[Assigned | None]:
        """Step 3: commit each plan, or None where the item must be looked up again.
        ``force`` commits the plans without the digest check."""
        if not planned:
            return []
        keys, args = self._head(now)
        args += [self.max_sources, self.bucket_size, self.index_keys, len(planned)]
        for e, p in planned:
            probes = e.fp.probes or e.fp.bands
            link = story_key_for_url(e.url) if e.url else ""
            digest = "" if force else (p.digest or "-")
            args += [e.key, link, e.feed, p.action, p.target, _base_id(e.key), digest]
            args += [e.fp.pack(), "1" if p.replace else "0"]
            args += [len(e.fp.bands), *e.fp.bands, len(probes), *probes, len(p.cands), *p.cands]
        try:
            raw = await self._commit(keys=keys, args=args)
        except RedisError as e:
            raise StoreError(f"cannot assign stories: {e}") from e
        out: list[Assigned | None] = []
        for (_e, p), r in zip(planned, raw, strict=True):
            status = _text(r[0])
            if status == "retry":
                out.append(None)
                continue
            feeds, times = parse_sources(r[3])
            joined_as_planned = (
                status == "joined" and p.action == "join" and _text(r[1]) == p.target
            )
            sim = p.similarity if status == "new" or joined_as_planned else 1.0
            out.append(
                Assigned(_text(r[1]), status == "new", sim, feeds, times, float(_text(r[2])))
            )
        return out

    async def story(self, story_id: str, now: float) -> Assigned | None:
        """A remembered story (None if unknown or past its window), for inspection and tests."""
        try:
            t, src = await self.redis.hmget(self.keys.story(story_id), ["t", "src"])
        except RedisError as e:
            raise StoreError(f"cannot read story {story_id}: {e}") from e
        if t is None or float(t) + self.window <= now:
            return None
        feeds, times = parse_sources(src)
        return Assigned(story_id, False, 1.0, feeds, times, float(t))
