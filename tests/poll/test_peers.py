"""Sharing the feeds (daemon/poll/peers.py): rendezvous preference over the live pollers, the member
set in Redis, and the patience of a process a feed does not prefer."""

from __future__ import annotations

from collections import Counter

import redis.asyncio as aioredis

from daemon.poll.peers import CLAIM_PATIENCE, Peers, gained, preferred
from daemon.redis.keys import Keys

KEYS = Keys("pl")
FEEDS = [f"feed-{i}" for i in range(300)]


def test_each_feed_prefers_one_member_evenly_and_stably() -> None:
    """An even share each; a member leaving moves its own feeds only; nobody: None."""
    three = {f: preferred(f, ["a", "b", "c"]) for f in FEEDS}
    assert set(Counter(three.values())) == {"a", "b", "c"}
    assert min(Counter(three.values()).values()) >= len(FEEDS) // 5
    two = {f: preferred(f, ["a", "b"]) for f in FEEDS}
    assert all(two[f] == three[f] for f in FEEDS if three[f] != "c")
    assert preferred("feed-1", ["b", "a", "c"]) == three["feed-1"]  # order does not matter
    assert preferred("feed-1", []) is None


async def test_members_beat_are_dropped_when_silent_and_leave(redis_url: str) -> None:
    r = aioredis.Redis.from_url(redis_url)
    a, b = Peers(r, KEYS, "a", ttl=10.0), Peers(r, KEYS, "b", ttl=10.0)
    changes: list[tuple[tuple[str, ...], tuple[str, ...]]] = []
    b.on_change.append(lambda before, after: changes.append((before, after)))
    try:
        assert await a.refresh(1000.0) == ("a",)
        assert await b.refresh(1001.0) == ("a", "b")  # b's first view: no change reported
        assert await b.refresh(1010.5) == ("b",)  # a fell silent: dropped after ttl
        assert await a.refresh(1012.0) == ("a", "b")
        assert await b.refresh(1012.5) == ("a", "b")
        await a.leave()
        assert await b.refresh(1013.0) == ("b",)
        assert await b.refresh(1014.0) == ("b",)  # no change, no call
    finally:
        await r.aclose()
    assert changes == [(("a", "b"), ("b",)), (("b",), ("a", "b")), (("a", "b"), ("b",))]


def test_a_dead_peers_feeds_are_gained_by_the_survivors_they_now_prefer() -> None:
    """c dies: each of its feeds now prefers a or b, which gains exactly those; nothing is
    gained at the first view (before unknown) or by a process not among the members."""
    feeds = FEEDS
    before, after = ("a", "b", "c"), ("a", "b")
    theirs = {f for f in feeds if preferred(f, before) == "c"}
    got = {m: set(gained(feeds, m, before, after)) for m in after}
    assert got["a"] | got["b"] == theirs and not got["a"] & got["b"]
    assert got["a"] and got["b"]
    assert gained(feeds, "a", (), after) == []
    assert gained(feeds, "c", before, after) == []
    # A peer joining takes feeds from the others; they gain none.
    assert gained(feeds, "a", after, before) == []


def test_only_a_process_the_feed_does_not_prefer_waits() -> None:
    """No known members (not tracked yet, or run --once): nobody waits."""
    a, b = Peers(None, KEYS, "a"), Peers(None, KEYS, "b")  # type: ignore[arg-type]
    assert a.patience("feed-1", 60.0) == 0.0
    a.members = b.members = ("a", "b")
    mine = {p.me: p.patience("feed-1", 60.0) for p in (a, b)}
    assert sorted(mine.values()) == [0.0, CLAIM_PATIENCE * 60.0]
    assert mine[preferred("feed-1", ["a", "b"]) or ""] == 0.0
