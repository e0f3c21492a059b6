"""The Redis-backed story index: ``daemon.stories.cluster.StoryIndex``'s semantics, shared by
every process.

Each new item gets a fingerprint (``daemon.stories.cluster.fingerprint``);
``StoryStore.assign_many`` joins it to the most similar story remembered at or above
``SAME_STORY``, or starts a story. A story is remembered for ``window`` seconds after its first
item (default 48 h) and lists the feeds that carry it, first seen first, each with the time it
was first seen there (at most ``max_sources``). An item whose canonical link is already known
joins that story whatever its text; assigning a known item again changes nothing.

Two round trips per batch of items, and a retry for the few that raced (``daemon.stories.lua``,
which also draws the Redis layout):

1. ``LOOKUP`` (Lua, read only): per item, its known story, else up to ``max_candidates``
   candidate stories (packed sketches), how full its band keys' buckets are, and a digest of
   the buckets it looked in.
2. Python computes the similarities (``daemon.stories.cluster.matcher``) and plans: join, or start.
3. ``COMMIT`` (Lua, atomic): per item, checks that nothing it read changed; if another process
   filed a story under the item's probe keys meanwhile the item is looked up again
   (``MAX_ROUNDS``; the last round commits its plan as is: at worst a story split, never an
   error).

Cost is bounded per item: the probe keys (``Fingerprint.probes``, ~44) in each live slice
(``window / slice + 1``, 2 by default), at most ``max_candidates`` records, and a few writes.
Records are fixed-size and packed 64 to a string key; band and item keys are packed binary
in small hashes (``shards`` per slice, sized so that ~100,000 stories in a slice keep them
compact listpacks). Measured by bench/story.py (``--redis``): bytes per remembered item and
the cost per item of fingerprint + lookup + commit.
"""

from __future__ import annotations

import asyncio
import random
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from hashlib import blake2b
from typing import Any

import redis.asyncio as aioredis

from daemon.errors import StoreError
from daemon.redis.errors import STORE_ERRORS
from daemon.redis.keys import Keys
from daemon.stories.cluster import SAME_STORY, Fingerprint, story_key_for_url
from daemon.stories.lua import BLOCK, COMMIT, LOOKUP, MAX_SOURCES, RECORD
from daemon.stories.sketch import PACKED_SIZE, matcher

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
# Band and item hashes per slice (at most 65,536): ~100,000 stories per slice stay listpacks.
SHARDS = 8192
_TAIL = struct.Struct(">IHBB")
_FIELD = struct.Struct(">I")


def item_key(feed: str, item_id: str) -> str:
    """The story index's key for one item of one feed."""
    return "i" + blake2b(f"{feed}\0{item_id}".encode(), digest_size=8).hexdigest()


def _raw_key(key: str | None) -> bytes:
    """The 8 bytes stored for an item key (``item_key``) or a link key (``story_key_for_url``)."""
    return bytes.fromhex(key[1:]) if key else b""


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
    when each first carried it (epoch seconds, whole); ``similarity`` as in
    ``StoryAssignment``."""

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
    """(feeds, first-seen times) from the scripts' ``feed TAB time`` lines."""
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
    fills: tuple[int, ...] = ()  # per band key of the item: stories in its buckets
    version: str = ""  # the index's version the lookup saw


def _text(v: Any) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)


def _probes(fp: Fingerprint) -> tuple[int, ...]:
    return fp.probes or fp.bands


def _band_blob(keys: Sequence[int], shards: int) -> bytes:
    """A list of band keys as the scripts read it, in one argument: per key its shard (the
    hash it lives in: 4 hex digits) and its 4-byte field."""
    return b"".join(b"%04x" % (k % shards) + _FIELD.pack(k) for k in keys)


def _filed_under(fp: Fingerprint, fills: tuple[int, ...], keys: int, bucket: int) -> frozenset[int]:
    """The band keys the commit script files a new sketch under (its ``index``): the
    ``keys`` least used whose buckets are not full, else the two least used."""
    if len(fills) != len(fp.bands):
        return frozenset(fp.bands)
    order = sorted(range(len(fills)), key=lambda i: (fills[i], i))
    chosen = [i for i in order[:keys] if fills[i] < bucket] or order[:2]
    return frozenset(fp.bands[i] for i in chosen)


def _deferred(
    planned: Sequence[tuple[StoryEntry, Plan]], index_keys: int, bucket_size: int
) -> set[int]:
    """Items to look up again after this commit, because an earlier item of the same batch
    changes what they would find: it files a story they are similar to under one of their
    probe keys, or gives one of their candidates a new sketch. (The commit script trusts a
    plan when no *other* process wrote since the lookup.)"""
    out: set[int] = set()
    filed: list[tuple[frozenset[int], Fingerprint]] = []  # keys and sketch of earlier writers
    resketched: set[str] = set()
    for i, (e, p) in enumerate(planned):
        if p.action == "link":
            continue
        if resketched.intersection(p.cands):
            out.add(i)
            continue
        probes = _probes(e.fp)
        found = [fp for keys, fp in filed if not keys.isdisjoint(probes)]
        if found:
            compare = matcher(e.fp, SAME_STORY)
            if any(compare(fp) >= SAME_STORY for fp in found):
                out.add(i)
                continue
        if p.action == "new" or p.replace:
            keys = _filed_under(e.fp, p.fills, index_keys, bucket_size)
            filed.append((keys, e.fp.stored()))
        if p.replace:
            resketched.add(p.target)
    return out


class StoryStore:
    """The story index in Redis. ``bucket_size``, ``index_keys``, ``max_candidates`` and
    ``max_sources`` (at most 8) mean what they mean for ``daemon.stories.cluster.StoryIndex``;
    ``slice_seconds`` is the time slice of band and item keys (default: the window, so a
    lookup reads two slices)."""

    def __init__(
        self,
        redis: aioredis.Redis,
        keys: Keys,
        *,
        window: float = DEFAULT_WINDOW,
        slice_seconds: float | None = None,
        bucket_size: int = 4,
        index_keys: int = 6,
        max_candidates: int = 8,
        max_sources: int = MAX_SOURCES,
        shards: int = SHARDS,
    ) -> None:
        if not 1 <= max_sources <= MAX_SOURCES:
            raise ValueError(f"max_sources must be 1..{MAX_SOURCES}")
        self.redis = redis
        self.keys = keys
        self.window = window
        self.slice = slice_seconds or window
        self.bucket_size = bucket_size
        self.index_keys = index_keys
        self.max_candidates = max_candidates
        self.max_sources = max_sources
        self.shards = shards
        self._lookup = redis.register_script(LOOKUP)
        self._commit = redis.register_script(COMMIT)
        # One assignment at a time per process: interleaved lookups and commits of one
        # process's concurrent polls would each see the others' writes and go the checked way
        # (a cold poll of 1,000 feeds took minutes). Polls that ask meanwhile wait in a queue
        # and go together in the next assignment (at most ``max_batch`` items): fewer, larger
        # round trips (``_drain``).
        self.max_batch = 200
        self._queue: list[tuple[Sequence[StoryEntry], float, asyncio.Future[list[Assigned]]]] = []
        self._worker: asyncio.Task[None] | None = None

    def _head(self, now: float) -> tuple[list[str], list[str | bytes | int | float]]:
        return [self.keys.story_version], [
            self.keys.tag,
            f"{now:.3f}",
            self.window,
            self.slice,
            self.shards,
        ]

    async def assign(
        self, key: str, fp: Fingerprint, feed: str, now: float, *, url: str | None = None
    ) -> Assigned:
        """Assign one item (``assign_many`` of one)."""
        return (await self.assign_many([StoryEntry(key, fp, feed, url)], now))[0]

    async def assign_many(self, entries: Sequence[StoryEntry], now: float) -> list[Assigned]:
        """Assign every entry, in order (a later entry may join an earlier one's story)."""
        if not entries:
            return []
        future: asyncio.Future[list[Assigned]] = asyncio.get_running_loop().create_future()
        # retrieved here, so that a poll cancelled while it waits leaves no "exception was
        # never retrieved" behind
        future.add_done_callback(lambda f: f.cancelled() or f.exception())
        self._queue.append((entries, now, future))
        if self._worker is None or self._worker.done():
            self._worker = asyncio.create_task(self._drain(), name="story-assign")
        return await asyncio.shield(future)

    async def _drain(self) -> None:
        """Assign what the queue holds, polls with the same clock reading together, until it
        is empty. A failure fails the polls of that assignment, not the later ones."""
        while self._queue:
            _, now, _ = self._queue[0]
            take, size = 0, 0
            for entries, when, _ in self._queue:
                if when != now or (take and size + len(entries) > self.max_batch):
                    break
                take, size = take + 1, size + len(entries)
            batch, self._queue = self._queue[:take], self._queue[take:]
            try:
                got = await self._assign_many([e for entries, _, _ in batch for e in entries], now)
            except Exception as e:  # noqa: BLE001 - it belongs to the polls that wait
                for _, _, future in batch:
                    if not future.done():
                        future.set_exception(e)
                continue
            except BaseException:  # cancelled (shutdown): so are the polls waiting
                for _, _, future in batch + self._queue:
                    future.cancel()
                self._queue.clear()
                raise
            pos = 0
            for entries, _, future in batch:
                if not future.done():
                    future.set_result(got[pos : pos + len(entries)])
                pos += len(entries)

    async def _assign_many(self, entries: Sequence[StoryEntry], now: float) -> list[Assigned]:
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
        args += [self.max_candidates, len(entries), self.bucket_size]
        for e in entries:
            probes = _probes(e.fp)
            link = story_key_for_url(e.url) if e.url else None
            args += [_raw_key(e.key), _raw_key(link), _band_blob(probes, self.shards)]
        try:
            version, raw = await self._lookup(keys=keys, args=args)
        except STORE_ERRORS as e:
            raise StoreError(f"cannot look up stories: {e}") from e
        ver = _text(version)
        return [self._plan(e, r, ver) for e, r in zip(entries, raw, strict=True)]

    def _plan(self, entry: StoryEntry, raw: list[Any], version: str) -> Assigned | Plan:
        kind = _text(raw[0])
        if kind == "known":
            feeds, times = parse_sources(raw[3])
            return Assigned(_text(raw[1]), False, 1.0, feeds, times, float(raw[2]))
        if kind == "link":
            return Plan("link", _text(raw[1]), "", 1.0, False, (), version=version)
        digest = _text(raw[1])
        fill = dict(zip(_probes(entry.fp), raw[2], strict=True))
        fills = tuple(fill.get(b, 0) for b in entry.fp.bands)
        compare = matcher(entry.fp, SAME_STORY)
        best: tuple[float, float, str, Fingerprint] | None = None  # (sim, -started, id, fp)
        cands: list[str] = []
        for j in range(3, len(raw), 3):
            sid, started, packed = _text(raw[j]), float(raw[j + 1]), raw[j + 2]
            cands.append(sid)
            stored = Fingerprint.unpack(packed)
            sim = compare(stored)
            if best is None or (sim, -started) > best[:2]:
                best = (sim, -started, sid, stored)
        if best is not None and best[0] >= SAME_STORY:
            replace = entry.fp.size > best[3].size
            return Plan("join", best[2], digest, best[0], replace, tuple(cands), fills, version)
        sim = best[0] if best else 0.0
        return Plan("new", "", digest, sim, False, tuple(cands), fills, version)

    async def commit(
        self, planned: Sequence[tuple[StoryEntry, Plan]], now: float, *, force: bool = False
    ) -> list[Assigned | None]:
        """Step 3: commit each plan, or None where the item must be looked up again.
        ``force`` commits the plans without checking what changed since the lookup."""
        if not planned:
            return []
        deferred = set() if force else _deferred(planned, self.index_keys, self.bucket_size)
        sent = [(e, p) for i, (e, p) in enumerate(planned) if i not in deferred]
        versions = {p.version for _, p in sent}
        version = versions.pop() if len(versions) == 1 else ""
        keys, args = self._head(now)
        seed = random.randrange(1 << 15) * BLOCK
        args += [self.max_sources, self.bucket_size, self.index_keys, version, seed, len(sent)]
        for e, p in sent:
            probes = _probes(e.fp)
            link = story_key_for_url(e.url) if e.url else None
            digest = "" if force else (p.digest or "-")
            fills = p.fills if len(p.fills) == len(e.fp.bands) else ()
            args += [_raw_key(e.key), _raw_key(link), e.feed, p.action, p.target, digest]
            args += [e.fp.pack(), "1" if p.replace else "0"]
            args += [_band_blob(e.fp.bands, self.shards), bytes(min(f, 255) for f in fills)]
            args += [_band_blob(probes, self.shards), "".join(p.cands)]
        try:
            raw = await self._commit(keys=keys, args=args)
        except STORE_ERRORS as e:
            raise StoreError(f"cannot assign stories: {e}") from e
        results = iter(raw)
        out: list[Assigned | None] = []
        for i, (_e, p) in enumerate(planned):
            if i in deferred:
                out.append(None)
                continue
            r = next(results)
            status = _text(r[0])
            if status == "retry":
                out.append(None)
                continue
            feeds, times = parse_sources(r[3])
            joined_as_planned = (
                status == "joined" and p.action == "join" and _text(r[1]) == p.target
            )
            sim = p.similarity if status == "new" or joined_as_planned else 1.0
            out.append(Assigned(_text(r[1]), status == "new", sim, feeds, times, float(r[2])))
        return out

    async def _record(self, key: str, offset: int) -> bytes:
        raw = await self.redis.getrange(key, offset, offset + RECORD - 1)
        return raw if isinstance(raw, bytes) else str(raw).encode("latin-1")

    async def story(self, story_id: str, now: float) -> Assigned | None:
        """A remembered story (None if unknown or past its window), for inspection and tests."""
        key, offset = self.keys.story_record(story_id, BLOCK, RECORD)
        try:
            rec = await self._record(key, offset)
            if len(rec) < RECORD:
                return None
            started, _rev, count, _pad = _TAIL.unpack_from(rec, PACKED_SIZE)
            if not started or started + self.window <= now:
                return None
            sources = [
                struct.unpack_from(">HI", rec, PACKED_SIZE + 8 + 6 * i) for i in range(count)
            ]
            fields = [f"i:{n}" for n, _ in sources]
            names = await self.redis.hmget(self.keys.story_feeds, fields) if fields else []
        except STORE_ERRORS as e:
            raise StoreError(f"cannot read story {story_id}: {e}") from e
        feeds = tuple(_text(n) if n is not None else "?" for n in names)
        times = tuple(float(t) for _, t in sources)
        return Assigned(story_id, False, 1.0, feeds, times, float(started))

    async def revision(self, story_id: str) -> int | None:
        """How many times the story's sketch was set (1 when started), or None if unknown."""
        key, offset = self.keys.story_record(story_id, BLOCK, RECORD)
        try:
            rec = await self._record(key, offset)
        except STORE_ERRORS as e:
            raise StoreError(f"cannot read story {story_id}: {e}") from e
        if len(rec) < RECORD:
            return None
        return int(_TAIL.unpack_from(rec, PACKED_SIZE)[1])
