"""The Redis-backed story index: ``daemon.stories.cluster.StoryIndex``'s semantics, shared by
every process.

Each new item gets its terms (``daemon.stories.terms``); ``StoryStore.assign_many`` joins it to
the story whose profile is most similar at or above ``SAME_STORY``
(``daemon.stories.profile``), or starts a story. A story is remembered for ``window`` seconds
after its first item (default 48 h) and lists the publishers that carry it, first seen first,
each with the time it was first seen there (at most ``max_sources``). An item whose canonical
link is already known joins that story whatever its text; assigning a known item again
changes nothing.

Three round trips per batch of items, and a retry for the few that raced
(``daemon.stories.lua``, which also draws the Redis layout):

0. The document frequencies of the batch's terms in the live slices (one pipeline of
   ``HMGET``): each item's vector weighs its terms by them.
1. ``LOOKUP`` (Lua, read only): per item, its known story, else up to ``max_candidates``
   candidate stories (packed profiles) under its heaviest terms, and a digest of the buckets
   it looked in.
2. Python computes the similarities and plans: join (the story's profile gains the item's
   vector), or start.
3. ``COMMIT`` (Lua, atomic): per item, checks that nothing it read changed; if another process
   filed a story under the item's probe keys meanwhile the item is looked up again
   (``MAX_ROUNDS``; the last round commits its plan as is: at worst a story split, never an
   error).

Cost is bounded per item: its ``PROBE_TERMS`` probe terms in each live slice (``window /
slice + 1``, 2 by default), at most ``max_candidates`` records, and a few writes (its terms'
counts, the story's record and its ``INDEX_TERMS`` buckets).
Records are fixed-size and packed 64 to a string key; band and item keys are packed binary
in small hashes (``shards`` per slice, sized so that ~100,000 stories in a slice keep them
compact listpacks). Measured by bench/story.py (``--redis``): bytes per remembered item and
the cost per item of fingerprint + lookup + commit.
"""

from __future__ import annotations

import asyncio
import random
import struct
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from hashlib import blake2b
from typing import Any

import redis.asyncio as aioredis

from daemon.errors import StoreError
from daemon.redis.errors import STORE_ERRORS
from daemon.redis.keys import Keys
from daemon.stories.cluster import (
    BUCKET_SIZE,
    MAX_CANDIDATES,
    REWRITE,
    Remembered,
    score,
    story_key_for_url,
)
from daemon.stories.lua import BLOCK, COMMIT, LOOKUP, MAX_SOURCES, PACKED_SIZE, RECORD
from daemon.stories.profile import Vector, probes, vector
from daemon.stories.sketch import matcher
from daemon.stories.terms import ItemTerms

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
    """One item to assign: its key (``item_key``), terms, publisher and link."""

    key: str
    terms: ItemTerms
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
    cands: tuple[str, ...]
    vector: Vector = field(default_factory=dict)
    memory: Remembered | None = None  # the story with the item (join, new)
    version: str = ""  # the index's version the lookup saw


def _text(v: Any) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)


def _term_blob(terms: Sequence[int], weights: Sequence[float], shards: int) -> bytes:
    """Terms as the scripts read them, in one argument: per term its shard (the hash it lives
    in: 4 hex digits), its 4-byte field and its weight (one byte, 0..255)."""
    return b"".join(
        b"%04x" % (t % shards) + _FIELD.pack(t) + bytes((min(255, round(w * 255)),))
        for t, w in zip(terms, weights, strict=True)
    )


def _probe_blob(v: Vector, long: bool, shards: int) -> bytes:
    keys = probes(v, long=long)
    return _term_blob(keys, [v[k] for k in keys], shards)


def _sequenced(
    planned: Sequence[tuple[StoryEntry, Plan]], *, force: bool = False
) -> tuple[set[int], list[tuple[StoryEntry, Plan]]]:
    """The plans of one batch as one process doing the items in turn would make them: the
    items to look up again (an earlier item of the batch filed a story they belong to under
    one of their probe terms, or changed a candidate so that it may now win), and the plans
    with each join applied to the story as earlier items of the batch left it. (The commit
    script trusts a plan when no *other* process wrote since the lookup.) With ``force`` (the
    last round) nothing is looked up again, but joins still apply to the story as left."""
    out: set[int] = set()
    plans = list(planned)
    filed: list[Remembered] = []  # new stories of earlier items
    changed: dict[str, Remembered] = {}  # stories earlier items joined: as they left them
    for i, (e, p) in enumerate(plans):
        if p.action == "link":
            continue
        keys = set(probes(p.vector, long=not e.terms.sketch.short))
        compare = matcher(e.terms.sketch, REWRITE)
        if not force and (
            any(
                not keys.isdisjoint(f.keys()) and score(compare, e.terms, p.vector, f) >= 1.0
                for f in filed
            )
            or any(
                score(compare, e.terms, p.vector, m) >= max(1.0, p.similarity)
                for sid, m in changed.items()
                if sid in p.cands and sid != p.target
            )
        ):
            out.add(i)
            continue
        if p.action == "join" and p.target in changed:
            now = changed[p.target]
            if not force and score(compare, e.terms, p.vector, now) < 1.0:
                out.add(i)
                continue
            p = replace(p, memory=now.with_item(e.terms, p.vector))
            plans[i] = (e, p)
        if p.memory is None:
            continue
        if p.action == "join":
            changed[p.target] = p.memory
        else:
            filed.append(p.memory)
    return out, plans


class StoryStore:
    """The story index in Redis. ``bucket_size``, ``max_candidates`` and ``max_sources`` (at
    most 8) mean what they mean for ``daemon.stories.cluster.StoryIndex``; ``slice_seconds``
    is the time slice of terms, item keys and document frequencies (default: the window, so a
    lookup reads two slices)."""

    def __init__(
        self,
        redis: aioredis.Redis,
        keys: Keys,
        *,
        window: float = DEFAULT_WINDOW,
        slice_seconds: float | None = None,
        bucket_size: int = BUCKET_SIZE,
        max_candidates: int = MAX_CANDIDATES,
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
        self, key: str, terms: ItemTerms, feed: str, now: float, *, url: str | None = None
    ) -> Assigned:
        """Assign one item (``assign_many`` of one)."""
        return (await self.assign_many([StoryEntry(key, terms, feed, url)], now))[0]

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
        vectors = await self.vectors(entries, now)
        for round_no in range(MAX_ROUNDS):
            if not todo:
                break
            found = await self.lookup([entries[i] for i in todo], now, [vectors[i] for i in todo])
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
    async def frequencies(self, terms: Sequence[int], now: float) -> tuple[dict[int, int], int]:
        """(document frequency of each term, items) in the live slices."""
        first, last = int((now - self.window) // self.slice), int(now // self.slice)
        distinct = list(dict.fromkeys(terms))
        fields = [_FIELD.pack(t) for t in distinct] + [b"n"]
        try:
            async with self.redis.pipeline(transaction=False) as pipe:
                for s in range(first, last + 1):
                    pipe.hmget(self.keys.story_df(s), fields)
                rows = await pipe.execute()
        except STORE_ERRORS as e:
            raise StoreError(f"cannot read story term counts: {e}") from e
        counts = [sum(int(row[j] or 0) for row in rows) for j in range(len(fields))]
        return dict(zip(distinct, counts, strict=False)), counts[-1]

    async def vectors(self, entries: Sequence[StoryEntry], now: float) -> list[Vector]:
        """Each entry's vector, its terms weighed by the stream's document frequencies: those
        in Redis plus the batch's own items (a cold start's first batches would otherwise
        weigh every word alike)."""
        df, n = await self.frequencies([t for e in entries for t in e.terms.ids], now)
        batch = Counter(t for e in entries for t in set(e.terms.ids))
        n += len(entries) - 1
        return [vector(e.terms, [df[t] + batch[t] - 1 for t in e.terms.ids], n) for e in entries]

    async def lookup(
        self, entries: Sequence[StoryEntry], now: float, vectors: Sequence[Vector] | None = None
    ) -> list[Assigned | Plan]:
        """Step 1 and 2: known items as ``Assigned``, the others as a plan to commit."""
        if not entries:
            return []
        if vectors is None:
            vectors = await self.vectors(entries, now)
        keys, args = self._head(now)
        args += [self.max_candidates, len(entries), self.bucket_size]
        for e, v in zip(entries, vectors, strict=True):
            link = story_key_for_url(e.url) if e.url else None
            long = not e.terms.sketch.short
            args += [_raw_key(e.key), _raw_key(link), _probe_blob(v, long, self.shards)]
        try:
            version, raw = await self._lookup(keys=keys, args=args)
        except STORE_ERRORS as e:
            raise StoreError(f"cannot look up stories: {e}") from e
        ver = _text(version)
        return [self._plan(e, r, v, ver) for e, v, r in zip(entries, vectors, raw, strict=True)]

    def _plan(self, entry: StoryEntry, raw: list[Any], v: Vector, version: str) -> Assigned | Plan:
        kind = _text(raw[0])
        if kind == "known":
            feeds, times = parse_sources(raw[3])
            return Assigned(_text(raw[1]), False, 1.0, feeds, times, float(raw[2]))
        if kind == "link":
            return Plan("link", _text(raw[1]), "", 1.0, (), v, version=version)
        digest = _text(raw[1])
        terms = entry.terms
        compare = matcher(terms.sketch, REWRITE)
        best: tuple[float, float, str, Remembered] | None = None  # (score, -started, id, story)
        cands: list[str] = []
        for j in range(2, len(raw), 3):
            sid, started, packed = _text(raw[j]), float(raw[j + 1]), raw[j + 2]
            cands.append(sid)
            story = Remembered.unpack(packed)
            got = score(compare, terms, v, story)
            if best is None or (got, -started) > best[:2]:
                best = (got, -started, sid, story)
        if best is not None and best[0] >= 1.0:
            joined = best[3].with_item(terms, v)
            return Plan("join", best[2], digest, best[0], tuple(cands), v, joined, version)
        got = best[0] if best else 0.0
        return Plan("new", "", digest, got, tuple(cands), v, Remembered.first(terms, v), version)

    async def commit(
        self, planned: Sequence[tuple[StoryEntry, Plan]], now: float, *, force: bool = False
    ) -> list[Assigned | None]:
        """Step 3: commit each plan, or None where the item must be looked up again.
        ``force`` commits the plans without checking what changed since the lookup."""
        if not planned:
            return []
        deferred, planned = _sequenced(planned, force=force)
        sent = [(e, p) for i, (e, p) in enumerate(planned) if i not in deferred]
        versions = {p.version for _, p in sent}
        version = versions.pop() if len(versions) == 1 else ""
        keys, args = self._head(now)
        seed = random.randrange(1 << 15) * BLOCK
        args += [self.max_sources, self.bucket_size, version, seed, len(sent)]
        for e, p in sent:
            link = story_key_for_url(e.url) if e.url else None
            digest = "" if force else (p.digest or "-")
            memory = p.memory or Remembered.first(e.terms, p.vector)
            filed = memory.keys()
            args += [_raw_key(e.key), _raw_key(link), e.feed, p.action, p.target, digest]
            args += [memory.pack(), _term_blob(filed, [0.0] * len(filed), self.shards)]
            long = not e.terms.sketch.short
            args += [_probe_blob(p.vector, long, self.shards), "".join(p.cands)]
            args += [b"".join(_FIELD.pack(t) for t in e.terms.ids)]
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
        """How many times the story's profile was set (1 when started), or None if unknown."""
        key, offset = self.keys.story_record(story_id, BLOCK, RECORD)
        try:
            rec = await self._record(key, offset)
        except STORE_ERRORS as e:
            raise StoreError(f"cannot read story {story_id}: {e}") from e
        if len(rec) < RECORD:
            return None
        return int(_TAIL.unpack_from(rec, PACKED_SIZE)[1])
