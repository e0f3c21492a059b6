"""Sharing the feeds (daemon/peers.py): rendezvous preference over the live pollers, the member
set in Redis, and the patience of a process a feed does not prefer."""

from __future__ import annotations

from collections import Counter

import redis.asyncio as aioredis

from daemon.keys import Keys
from daemon.peers import CLAIM_PATIENCE, MEMBER_TTL, Peers, preferred

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
    a, b = Peers(r, KEYS, "a"), Peers(r, KEYS, "b")
    try:
        assert await a.refresh(1000.0) == ("a",)
        assert await b.refresh(1001.0) == ("a", "b")
        assert await b.refresh(1000.0 + MEMBER_TTL + 0.5) == ("b",)  # a fell silent
        assert await a.refresh(1012.0) == ("a", "b")
        await a.leave()
        assert await b.refresh(1013.0) == ("b",)
    finally:
        await r.aclose()


def test_only_a_process_the_feed_does_not_prefer_waits() -> None:
    """No known members (not tracked yet, or run --once): nobody waits."""
    a, b = Peers(None, KEYS, "a"), Peers(None, KEYS, "b")  # type: ignore[arg-type]
    assert a.patience("feed-1", 60.0) == 0.0
    a.members = b.members = ("a", "b")
    mine = {p.me: p.patience("feed-1", 60.0) for p in (a, b)}
    assert sorted(mine.values()) == [0.0, CLAIM_PATIENCE * 60.0]
    assert mine[preferred("feed-1", ["a", "b"]) or ""] == 0.0
