"""The Redis story index (daemon/stories/index.py) against a real Redis: StoryIndex's semantics,
and atomic assignment when two processes race."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis

from daemon.config.yamlfile import load_yaml, to_plain
from daemon.errors import StoreError
from daemon.redis.keys import Keys
from daemon.stories.cluster import StoryIndex, item_terms
from daemon.stories.index import Assigned, Plan, StoryEntry, StoryStore, item_key
from daemon.stories.lua import COMMIT, LOOKUP
from daemon.stories.profile import SAME_STORY
from tests.support.redis_topologies import aclient

PAIRS = Path(__file__).parent.parent / "data" / "stories" / "pairs.yaml"
KEYS = Keys("st")
T0 = 1_780_000_000.0


@cache
def _items() -> dict[str, Any]:
    return dict(to_plain(load_yaml(PAIRS))["items"])


def entry(name: str, feed: str | None = None, url: str | None = None) -> StoryEntry:
    it = _items()[name]
    feed = feed or name
    return StoryEntry(item_key(feed, name), item_terms(it["title"], it["text"]), feed, url)


@pytest.fixture
async def r(redis_url: str) -> AsyncIterator[aioredis.Redis]:
    client = aclient(redis_url)
    yield client
    await client.aclose()


async def test_rewrites_join_one_story_sources_first_seen_first(r: aioredis.Redis) -> None:
    """Three outlets' rewrites are one story; its sources grow in arrival order."""
    store = StoryStore(r, KEYS)
    a = await store.assign_many([entry("troops-wire", "wire")], T0)
    b = await store.assign_many([entry("troops-rewrite", "kyiv")], T0 + 60)
    c = await store.assign_many([entry("troops-cut", "desk")], T0 + 120)
    assert a[0].new_story and not b[0].new_story and not c[0].new_story
    assert a[0].story_id == b[0].story_id == c[0].story_id
    assert c[0].sources == ("wire", "kyiv", "desk")
    assert c[0].first_seen == (T0, T0 + 60, T0 + 120)
    assert c[0].similarity >= SAME_STORY
    assert c[0].sources_within(90, T0 + 120) == ("kyiv", "desk")


async def test_different_reports_stay_apart_and_match_the_memory_index(r: aioredis.Redis) -> None:
    """Nine items of three reports give the stories the in-memory StoryIndex gives."""
    names = [
        "merc-wire", "troops-wire", "back-kyiv", "merc-kyiv", "troops-rewrite",
        "back-worlddesk", "troops-cut", "back-rewrite", "merc-seed",
    ]  # fmt: skip
    store = StoryStore(r, KEYS)
    got = await store.assign_many([entry(n) for n in names], T0)
    index = StoryIndex(clock=lambda: T0)
    want = [index.assign(e.key, e.terms, e.feed, T0) for e in map(entry, names)]

    def partition(ids: list[str]) -> list[int]:
        first: dict[str, int] = {}
        return [first.setdefault(i, len(first)) for i in ids]

    assert partition([g.story_id for g in got]) == partition([w.story_id for w in want])
    assert len({g.story_id for g in got}) == 3
    assert [g.new_story for g in got] == [w.new_story for w in want]


async def test_known_item_changes_nothing_and_link_joins(r: aioredis.Redis) -> None:
    """Assigning an item again returns its story; a known canonical link joins whatever the
    text; the same feed is listed once."""
    store = StoryStore(r, KEYS)

    async def one(e: StoryEntry, now: float) -> Assigned:
        return await store.assign(e.key, e.terms, e.feed, now, url=e.url)

    first = await one(entry("merc-wire", "wire", "https://example.net/wire/merc?utm_source=x"), T0)
    again = await one(entry("merc-wire", "wire"), T0 + 5)
    assert (again.story_id, again.new_story, again.sources) == (first.story_id, False, ("wire",))
    linked = await one(entry("sudzha", "mirror", "http://example.net/wire/merc/"), T0 + 10)
    assert linked.story_id == first.story_id and linked.similarity == 1.0
    assert linked.sources == ("wire", "mirror")
    same_feed = await one(entry("merc-kyiv", "wire"), T0 + 20)
    assert same_feed.story_id == first.story_id and same_feed.sources == ("wire", "mirror")


async def test_window_forgets_stories(r: aioredis.Redis) -> None:
    """A rewrite after the window starts a new story; the old one is gone for lookups."""
    store = StoryStore(r, KEYS, window=3600)
    a = await store.assign_many([entry("troops-wire", "wire")], T0)
    assert await store.story(a[0].story_id, T0 + 3599) is not None
    b = await store.assign_many([entry("troops-rewrite", "kyiv")], T0 + 3600)
    assert b[0].new_story and b[0].story_id != a[0].story_id
    assert await store.story(a[0].story_id, T0 + 3600) is None
    # The first item itself is forgotten too: it would start a story again.
    c = await store.assign_many([entry("troops-wire", "wire")], T0 + 3600 * 3)
    assert c[0].new_story and c[0].story_id not in (a[0].story_id, b[0].story_id)


async def test_the_profile_accumulates(r: aioredis.Redis) -> None:
    """A title-only item starts a story; the full report joins and its terms join the story's
    profile (a new revision), so a rewrite sharing little with the title still finds it."""
    store = StoryStore(r, KEYS)
    title = await store.assign_many([entry("title-troops", "titles")], T0)
    full = await store.assign_many([entry("troops-wire", "wire")], T0 + 1)
    assert full[0].story_id == title[0].story_id
    assert await store.revision(title[0].story_id) == 2
    cut = await store.assign_many([entry("troops-cut", "desk")], T0 + 2)
    assert cut[0].story_id == title[0].story_id
    assert cut[0].sources == ("titles", "wire", "desk")


async def test_interleaved_processes_never_split_a_story(redis_url: str) -> None:
    """Process B looks up before process A commits its new story: B's commit is refused
    (retry), and B's next round joins A's story."""
    ra, rb = aclient(redis_url), aclient(redis_url)
    try:
        a, b = StoryStore(ra, KEYS), StoryStore(rb, KEYS)
        ea, eb = entry("troops-wire", "wire"), entry("troops-rewrite", "kyiv")
        plan_a = (await a.lookup([ea], T0))[0]
        plan_b = (await b.lookup([eb], T0))[0]
        assert isinstance(plan_a, Plan) and isinstance(plan_b, Plan)
        assert plan_a.action == plan_b.action == "new"
        done_a = (await a.commit([(ea, plan_a)], T0))[0]
        assert done_a is not None and done_a.new_story
        assert (await b.commit([(eb, plan_b)], T0)) == [None]
        joined = (await b.assign_many([eb], T0))[0]
        assert joined.story_id == done_a.story_id and joined.sources == ("wire", "kyiv")
    finally:
        await ra.aclose()
        await rb.aclose()


async def test_concurrent_batches_give_the_sequential_stories(redis_url: str) -> None:
    """Two clients assigning rewrites of three reports at once end with three stories, each
    listing both feeds."""
    left = ["troops-wire", "merc-wire", "back-kyiv"]
    right = ["troops-rewrite", "merc-kyiv", "back-worlddesk"]
    ra, rb = aclient(redis_url), aclient(redis_url)
    try:
        a, b = StoryStore(ra, KEYS), StoryStore(rb, KEYS)
        got_a, got_b = await asyncio.gather(
            a.assign_many([entry(n, "left") for n in left], T0),
            b.assign_many([entry(n, "right") for n in right], T0),
        )
        assert [x.story_id for x in got_a] == [x.story_id for x in got_b]
        assert sum(x.new_story for x in got_a + got_b) == 3
        final = [await a.story(x.story_id, T0) for x in got_a]
        assert all(isinstance(s, Assigned) and set(s.sources) == {"left", "right"} for s in final)
    finally:
        await ra.aclose()
        await rb.aclose()


async def test_keys_expire_and_share_the_hash_tag(r: aioredis.Redis) -> None:
    """Every key the index writes carries the prefix's hash tag and a TTL."""
    store = StoryStore(r, KEYS, window=7200)
    await store.assign_many([entry("troops-wire", "wire", "https://example.org/a")], T0)
    names = [k.decode() async for k in r.scan_iter(match="*")]
    assert names and all(n.startswith("{st}:story:") for n in names)
    for n in names:
        assert 0 < await r.ttl(n) <= 7200 + 7200 + 3661


async def test_one_process_concurrent_polls_share_one_assignment(r: aioredis.Redis) -> None:
    """Polls of one process that ask at once are assigned together, in the order they asked:
    the stories are those of asking one after the other, in fewer round trips."""
    store = StoryStore(r, KEYS)
    calls = 0
    lookup = store.lookup

    async def counted(entries: Any, now: float, vectors: Any = None) -> Any:
        nonlocal calls
        calls += 1
        return await lookup(entries, now, vectors)

    store.lookup = counted  # type: ignore[method-assign]
    polls = [["troops-wire"], ["troops-rewrite", "merc-wire"], ["merc-kyiv", "troops-cut"]]
    got = await asyncio.gather(
        *(store.assign_many([entry(n, f"feed{i}") for n in p], T0) for i, p in enumerate(polls))
    )
    assert [[a.new_story for a in g] for g in got] == [[True], [False, True], [False, False]]
    assert got[2][1].sources == ("feed0", "feed1", "feed2")
    assert calls <= 3  # the last two polls went together (plus at most one retry round)


async def test_a_failed_assignment_fails_its_polls_not_later_ones(redis_url: str) -> None:
    """Redis gone while assigning: the waiting polls get the StoreError; the store works
    again afterwards."""
    client = aioredis.Redis.from_url(redis_url)
    store = StoryStore(client, KEYS)
    await client.aclose()
    broken = aioredis.Redis.from_url("redis://127.0.0.1:9/0", socket_connect_timeout=0.5)
    store.redis = broken
    store._lookup = broken.register_script(LOOKUP)
    with pytest.raises(StoreError):
        await store.assign_many([entry("troops-wire", "wire")], T0)
    await broken.aclose()
    good = aioredis.Redis.from_url(redis_url)
    try:
        store.redis = good
        store._lookup = good.register_script(LOOKUP)
        store._commit = good.register_script(COMMIT)
        assert (await store.assign_many([entry("troops-wire", "wire")], T0))[0].new_story
    finally:
        await good.aclose()
