"""WebSub state in Redis: per feed its discovered links and its subscription record.

Keys (``daemon.redis.keys``): ``websub:links:<feed>`` (hubs, self URL, and the refusal of a hub
the policy forbids) and ``websub:sub:<feed>`` (hashes),
``websub:tokens`` (callback token → feed) and ``websub:feeds`` (the feeds to look at). Every
change to a subscription goes through ``transact``: WATCH the record, read it, let a pure
function decide, write in MULTI, retry if another process changed it in between. So several
processes on one Redis never send two requests for one subscription, and any process can
answer the hub's verification.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, fields, replace
from typing import Any, TypeVar

import redis.asyncio as aioredis
from redis.exceptions import WatchError

from daemon.errors import StoreError
from daemon.parse.feedlinks import FeedLinks
from daemon.redis.errors import STORE_ERRORS
from daemon.redis.keys import Keys
from daemon.websub.decisions import STATES, Subscription

logger = logging.getLogger("daemon.websub")
T = TypeVar("T")
_RETRIES = 10


@dataclass(frozen=True, slots=True)
class Refusal:
    """A hub the feed advertises that is not contacted (``daemon.websub.policy``), and why."""

    hub: str  # shown without userinfo or query
    reason: str


@dataclass(frozen=True, slots=True)
class Change:
    """What ``transact``'s function decided: write this record, or delete it, or neither."""

    write: Subscription | None = None
    delete: bool = False


def _text(v: bytes | str) -> str:
    return v.decode() if isinstance(v, bytes) else v


def to_hash(sub: Subscription) -> dict[str, str]:
    return {f.name: str(getattr(sub, f.name)) for f in fields(Subscription)}


def from_hash(raw: dict[Any, Any]) -> Subscription | None:
    """The record, or None if it is missing or unreadable (an unreadable one is forgotten at
    the next change)."""
    h = {_text(k): _text(v) for k, v in raw.items()}
    try:
        state = h["state"]
        if state not in STATES:
            return None
        return Subscription(
            feed=h["feed"],
            hub=h["hub"],
            topic=h["topic"],
            token=h["token"],
            secret=h["secret"],
            callback=h.get("callback", ""),
            state=state,
            requested_at=float(h.get("requested_at") or 0),
            renewing=float(h.get("renewing") or 0),
            lease=float(h.get("lease") or 0),
            expires_at=float(h.get("expires_at") or 0),
            attempts=int(h.get("attempts") or 0),
            retry_at=float(h.get("retry_at") or 0),
            error=h.get("error", ""),
            last_push=float(h.get("last_push") or 0),
        )
    except (KeyError, ValueError):
        return None


class WebSubStore:
    def __init__(self, redis: aioredis.Redis, keys: Keys) -> None:
        self.redis = redis
        self.keys = keys

    # -- links -------------------------------------------------------------------------------
    async def links(self, feed: str) -> FeedLinks:
        return (await self.links_and_refusal(feed))[0]

    async def links_and_refusal(self, feed: str) -> tuple[FeedLinks, Refusal | None]:
        """The feed's links, and the refusal of one of its hubs recorded by ``set_refusal``."""
        try:
            raw = await self.redis.hgetall(self.keys.websub_links(feed))
        except STORE_ERRORS as e:
            raise StoreError(f"cannot read WebSub links of feed {feed}: {e}") from e
        h = {_text(k): _text(v) for k, v in raw.items()}
        hubs = tuple(line for line in h.get("hubs", "").split("\n") if line)
        hub = h.get("refused_hub")
        refused = Refusal(hub, h.get("refused_reason", "")) if hub else None
        return FeedLinks(hubs, h.get("self") or None), refused

    async def set_refusal(self, feed: str, refused: Refusal | None) -> bool:
        """Record (or clear) the refusal of a hub the feed advertises, beside its links (new
        links clear it). True if this call changed it: one process of several, once."""
        key = self.keys.websub_links(feed)
        try:
            async with self.redis.pipeline(transaction=True) as pipe:
                await pipe.watch(key)
                hub, reason = await pipe.hmget(key, ["refused_hub", "refused_reason"])
                current = Refusal(_text(hub), _text(reason or b"")) if hub else None
                if current == refused or (refused is not None and not await pipe.exists(key)):
                    return False
                pipe.multi()  # type: ignore[no-untyped-call]
                if refused is None:
                    pipe.hdel(key, "refused_hub", "refused_reason")
                else:
                    pipe.hset(
                        key, mapping={"refused_hub": refused.hub, "refused_reason": refused.reason}
                    )
                await pipe.execute()
                return True
        except WatchError:
            return False  # changed meanwhile (new links, or another process): looked at again
        except STORE_ERRORS as e:
            raise StoreError(f"cannot write WebSub links of feed {feed}: {e}") from e

    async def set_links(self, feed: str, links: FeedLinks) -> None:
        key = self.keys.websub_links(feed)
        try:
            async with self.redis.pipeline(transaction=True) as pipe:
                pipe.delete(key)
                if links.hubs or links.self_url:
                    pipe.hset(
                        key, mapping={"hubs": "\n".join(links.hubs), "self": links.self_url or ""}
                    )
                if links.usable:
                    pipe.sadd(self.keys.websub_feeds, feed)
                await pipe.execute()
        except STORE_ERRORS as e:
            raise StoreError(f"cannot write WebSub links of feed {feed}: {e}") from e

    async def feeds(self) -> list[str]:
        """The feeds with links or a subscription recorded."""
        try:
            members = await self.redis.smembers(self.keys.websub_feeds)
        except STORE_ERRORS as e:
            raise StoreError(f"cannot read the WebSub feed set: {e}") from e
        return sorted(_text(m) for m in members)

    async def forget(self, feed: str, *, keep_usable: bool) -> None:
        """Drop a feed with no subscription from the set, and its links; not if a
        subscription was recorded meanwhile, nor (``keep_usable``) if a poll just recorded
        usable links."""
        links_key, sub_key = self.keys.websub_links(feed), self.keys.websub_sub(feed)
        try:
            async with self.redis.pipeline(transaction=True) as pipe:
                await pipe.watch(links_key, sub_key)
                if await pipe.exists(sub_key):
                    return
                hubs, self_url = await pipe.hmget(links_key, ["hubs", "self"])
                if keep_usable and hubs and self_url:
                    return
                pipe.multi()  # type: ignore[no-untyped-call]
                pipe.delete(links_key)
                pipe.srem(self.keys.websub_feeds, feed)
                await pipe.execute()
        except WatchError:
            return  # changed meanwhile: the next pass looks again
        except STORE_ERRORS as e:
            raise StoreError(f"cannot forget WebSub state of feed {feed}: {e}") from e

    # -- subscriptions -----------------------------------------------------------------------
    async def load(self, feed: str) -> Subscription | None:
        try:
            raw = await self.redis.hgetall(self.keys.websub_sub(feed))
        except STORE_ERRORS as e:
            raise StoreError(f"cannot read WebSub subscription of feed {feed}: {e}") from e
        return from_hash(raw)

    async def record_push(self, feed: str, token: str, at: float) -> None:
        """Note that the subscription with callback ``token`` delivered content at ``at``."""

        def mark(cur: Subscription | None) -> tuple[None, Change]:
            if cur is None or cur.token != token:
                return None, Change()
            return None, Change(write=replace(cur, last_push=at))

        await self.transact(feed, mark)

    async def feed_for(self, token: str) -> str | None:
        """The feed whose callback path holds ``token``."""
        try:
            value = await self.redis.hget(self.keys.websub_tokens, token)
        except STORE_ERRORS as e:
            raise StoreError(f"cannot read WebSub callbacks: {e}") from e
        return _text(value) if value is not None else None

    async def transact(
        self, feed: str, decide: Callable[[Subscription | None], tuple[T, Change]]
    ) -> T:
        """Read the feed's record, apply ``decide`` (pure: it may run more than once) and
        write what it says, atomically; returns ``decide``'s first value."""
        key = self.keys.websub_sub(feed)
        try:
            async with self.redis.pipeline(transaction=True) as pipe:
                for _ in range(_RETRIES):
                    try:
                        await pipe.watch(key)
                        current = from_hash(await pipe.hgetall(key))
                        result, change = decide(current)
                        pipe.multi()  # type: ignore[no-untyped-call]
                        self._apply(pipe, feed, current, change)
                        await pipe.execute()
                        return result
                    except WatchError:
                        continue
        except STORE_ERRORS as e:
            raise StoreError(f"cannot update WebSub subscription of feed {feed}: {e}") from e
        raise StoreError(f"WebSub subscription of feed {feed} keeps changing; gave up")

    def _apply(self, pipe: Any, feed: str, current: Subscription | None, change: Change) -> None:
        key, tokens = self.keys.websub_sub(feed), self.keys.websub_tokens
        old_token = current.token if current is not None else None
        if change.delete:
            pipe.delete(key)
            if old_token:
                pipe.hdel(tokens, old_token)
        elif change.write is not None:
            new = change.write
            pipe.delete(key)
            pipe.hset(key, mapping=to_hash(new))
            if old_token and old_token != new.token:
                pipe.hdel(tokens, old_token)
            pipe.hset(tokens, new.token, feed)
            pipe.sadd(self.keys.websub_feeds, feed)
