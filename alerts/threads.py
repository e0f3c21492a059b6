"""Where a story's first alert went, per notifier, so that its follow-ups can reply to it.

A notifier that can thread (Telegram replies, Slack threads) records the reference the
service gave its story's first message (``put(alert.id, ref)``) and looks it up for a
follow-up (``get(alert.extra["first_alert_id"])``). References are kept in Redis, shared by
every process, for ``ttl`` seconds (longer than a story is remembered). A lookup that finds
nothing (expired, or the first message was sent before threading existed) makes the
follow-up a message of its own; a failed write is logged and the alert still counts as
delivered (the message was sent).
"""

from __future__ import annotations

import logging

import redis.asyncio as aioredis

from daemon.redis.errors import STORE_ERRORS
from daemon.redis.keys import Keys

log = logging.getLogger(__name__)

TTL = 14 * 86400.0


class ThreadStore:
    """One notifier's story → first-message references."""

    def __init__(self, redis: aioredis.Redis, keys: Keys, notifier: str, *, ttl: float = TTL):
        self.redis = redis
        self.keys = keys
        self.notifier = notifier
        self.ttl = ttl

    async def get(self, first_alert_id: str) -> str | None:
        try:
            value = await self.redis.get(self.keys.thread(self.notifier, first_alert_id))
        except STORE_ERRORS as e:
            log.warning("threads of %s: cannot read: %s", self.notifier, e)
            return None
        if value is None:
            return None
        return value.decode() if isinstance(value, bytes) else str(value)

    async def put(self, first_alert_id: str, ref: str) -> None:
        key = self.keys.thread(self.notifier, first_alert_id)
        try:
            await self.redis.set(key, ref, px=int(self.ttl * 1000))
        except STORE_ERRORS as e:
            log.warning("threads of %s: cannot record: %s", self.notifier, e)
