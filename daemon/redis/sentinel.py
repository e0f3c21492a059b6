"""Noticing that Redis lost feedwatch's state, and re-baselining instead of re-alerting.

A sentinel key holds a random epoch, written when a process first finds no state. Every
process remembers the epoch it saw, and so does the state directory (``state_dir/epoch-…``,
one file per Redis and key prefix), so a *restarted* process can tell "a fresh install" (no
sentinel, no local epoch) from "Redis came back empty" (no sentinel, but we had one).

When state was lost every feed looks new again and the alert keys that make publishing
idempotent are gone: alerting on what the feeds hold would re-send everything of the last
``backfill``. Instead each feed's next successful poll is a *baseline*: its items are recorded
as seen and raise nothing. The check is cheap: it runs at start, in the heartbeat loop, and
before the first poll of any feed whose state is missing.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import secrets
from collections.abc import Iterable
from pathlib import Path
from urllib.parse import urlsplit

import redis.asyncio as aioredis

from daemon.errors import StoreError
from daemon.logging import log
from daemon.redis.errors import STORE_ERRORS
from daemon.redis.keys import Keys
from daemon.redis.url import describe as describe_redis
from daemon.redis.url import parse as parse_redis_url

logger = logging.getLogger("daemon.state")


def _identity(redis_url: str | None, prefix: str) -> str:
    """A stable name for (Redis, prefix) without credentials: the embedded server's port
    changes at every start, so it is just "embedded"."""
    if redis_url is None:
        where = "embedded"
    elif (target := parse_redis_url(redis_url)).kind != "single":  # several hosts
        where = describe_redis(target)
    else:
        u = urlsplit(redis_url)
        where = f"{u.scheme}://{u.hostname}:{u.port}{u.path}"
    return hashlib.sha256(f"{where}\0{prefix}".encode()).hexdigest()[:16]


class StateGuard:
    def __init__(
        self,
        redis: aioredis.Redis,
        keys: Keys,
        *,
        state_dir: Path,
        redis_url: str | None,
        feeds: Iterable[str],
    ) -> None:
        self.redis = redis
        self.keys = keys
        self.feeds = list(feeds)
        self.file = state_dir / f"epoch-{_identity(redis_url, keys.prefix)}"
        self.epoch: str | None = None
        self.pending: set[str] = set()  # feeds whose next poll is a baseline

    def _local_epoch(self) -> str | None:
        try:
            return self.file.read_text().strip() or None
        except OSError:
            return None

    def _remember(self, epoch: str) -> None:
        self.epoch = epoch
        with contextlib.suppress(OSError):
            self.file.parent.mkdir(parents=True, exist_ok=True)
            self.file.write_text(epoch)

    async def _current(self) -> str | None:
        try:
            raw = await self.redis.get(self.keys.sentinel)
        except STORE_ERRORS as e:
            raise StoreError(f"cannot read the state sentinel: {e}") from e
        return raw.decode() if isinstance(raw, bytes) else raw

    async def _claim(self) -> str:
        """Write a new epoch unless another process just did; return the one in force."""
        mine = secrets.token_hex(8)
        try:
            await self.redis.set(self.keys.sentinel, mine, nx=True)
        except STORE_ERRORS as e:
            raise StoreError(f"cannot write the state sentinel: {e}") from e
        return await self._current() or mine

    async def start(self) -> None:
        """At start: adopt the epoch in force, or detect that Redis lost our state."""
        current = await self._current()
        known = self._local_epoch()
        if current is None:
            epoch = await self._claim()
            if known is not None:
                self._lost("start", known, epoch)
            self._remember(epoch)
        else:
            if known is not None and known != current:
                self._lost("start", known, current)
            self._remember(current)

    async def check(self, trigger: str = "check") -> bool:
        """Has the state been lost since we last looked? (Re-arms: True once per loss.)"""
        current = await self._current()
        if current is not None and current == self.epoch:
            return False
        if current is None:
            current = await self._claim()
        old = self.epoch
        self._remember(current)
        self._lost(trigger, old, current)
        return True

    def _lost(self, trigger: str, old: str | None, new: str) -> None:
        self.pending = set(self.feeds)
        log(
            logger,
            "redis-state-lost",
            level=logging.WARNING,
            trigger=trigger,
            old_epoch=old,
            epoch=new,
            baseline_feeds=len(self.pending),
            note="the next poll of each feed records its items as seen without alerting",
        )

    def baseline(self, feed: str) -> bool:
        return feed in self.pending

    def done(self, feed: str) -> None:
        self.pending.discard(feed)
