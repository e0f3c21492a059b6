"""Silences, like Alertmanager's: a rule's alerts are not published for a while.

``feedwatch silence add RULE_ID --for 2h [--comment …]`` stores one in Redis, so every process
on that Redis honours it at its next publish; ``silence list``; ``silence expire ID`` ends one
early. The poller drops a silenced rule's alerts (new and follow-ups) and counts them
(``PollResult.silenced``); they are not published later.

Layout: ``{p}:silences`` (hash id → JSON record) and ``{p}:silences:ends`` (sorted set id →
end). A silence stays listed (as expired) for ``KEEP_EXPIRED`` after it ends, then the next
``add`` or ``list`` removes it. Times are epoch seconds from the caller (injectable clock).
"""

from __future__ import annotations

import json
import secrets
from dataclasses import asdict, dataclass
from datetime import UTC, datetime

import redis.asyncio as aioredis

from daemon.errors import StoreError
from daemon.redis.errors import STORE_ERRORS
from daemon.redis.keys import Keys

KEEP_EXPIRED = 7 * 86400.0


@dataclass(frozen=True, slots=True)
class Silence:
    """One silence of one rule, active from ``starts`` until ``ends`` (epoch seconds)."""

    id: str
    rule_id: str
    starts: float
    ends: float
    comment: str = ""
    created_by: str = ""

    def active(self, now: float) -> bool:
        return self.starts <= now < self.ends


class Silences:
    """The silences stored in Redis under ``keys``."""

    def __init__(self, redis: aioredis.Redis, keys: Keys) -> None:
        self.redis = redis
        self.keys = keys

    async def add(
        self,
        rule_id: str,
        seconds: float,
        *,
        now: float,
        comment: str = "",
        created_by: str = "",
    ) -> str:
        """Silence ``rule_id`` for ``seconds`` from ``now``; returns the new silence's id."""
        if seconds <= 0:
            raise ValueError("a silence must last longer than 0s")
        silence = Silence(secrets.token_hex(6), rule_id, now, now + seconds, comment, created_by)
        try:
            async with self.redis.pipeline(transaction=True) as pipe:
                pipe.hset(self.keys.silences, silence.id, json.dumps(asdict(silence)))
                pipe.zadd(self.keys.silence_ends, {silence.id: silence.ends})
                await pipe.execute()
        except STORE_ERRORS as e:
            raise StoreError(f"cannot store the silence: {e}") from e
        await self._purge(now)
        return silence.id

    async def all(self) -> list[Silence]:
        """Every stored silence (active and recently expired), oldest first."""
        try:
            rows = await self.redis.hgetall(self.keys.silences)
        except STORE_ERRORS as e:
            raise StoreError(f"cannot read silences: {e}") from e
        found = [Silence(**json.loads(v)) for v in rows.values()]
        return sorted(found, key=lambda s: (s.starts, s.id))

    async def list(self, now: float, *, expired: bool = False) -> list[Silence]:
        """The active silences (``expired``: the recently expired ones too)."""
        await self._purge(now)
        return [s for s in await self.all() if expired or s.active(now)]

    async def active_rules(self, now: float) -> set[str]:
        """The ids of the rules silenced at ``now`` (one round trip)."""
        return {s.rule_id for s in await self.all() if s.active(now)}

    async def active(self, rule_id: str, now: float) -> bool:
        """Is ``rule_id`` silenced at ``now``?"""
        return rule_id in await self.active_rules(now)

    async def expire(self, silence_id: str, now: float) -> bool:
        """End a silence now. False if there is no such active silence."""
        try:
            raw = await self.redis.hget(self.keys.silences, silence_id)
            if raw is None:
                return False
            silence = Silence(**json.loads(raw))
            if not silence.active(now):
                return False
            ended = Silence(**{**asdict(silence), "ends": now})
            async with self.redis.pipeline(transaction=True) as pipe:
                pipe.hset(self.keys.silences, silence_id, json.dumps(asdict(ended)))
                pipe.zadd(self.keys.silence_ends, {silence_id: now})
                await pipe.execute()
        except STORE_ERRORS as e:
            raise StoreError(f"cannot expire silence {silence_id}: {e}") from e
        return True

    async def _purge(self, now: float) -> None:
        try:
            old = await self.redis.zrangebyscore(self.keys.silence_ends, "-inf", now - KEEP_EXPIRED)
            if old:
                async with self.redis.pipeline(transaction=True) as pipe:
                    pipe.hdel(self.keys.silences, *old)
                    pipe.zrem(self.keys.silence_ends, *old)
                    await pipe.execute()
        except STORE_ERRORS as e:
            raise StoreError(f"cannot purge old silences: {e}") from e


def format_silences(silences: list[Silence], now: float, *, as_json: bool = False) -> str:
    """``silence list`` output: a table, or a JSON array."""
    if as_json:
        return json.dumps(
            [{**asdict(s), "active": s.active(now)} for s in silences], ensure_ascii=False
        )
    if not silences:
        return "no silences"

    def when(t: float) -> str:
        return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%d %H:%M UTC")

    lines = []
    for s in silences:
        state = "active" if s.active(now) else "expired"
        comment = f"  {s.comment}" if s.comment else ""
        by = f"  by {s.created_by}" if s.created_by else ""
        lines.append(f"{s.id}  {s.rule_id}  {state} until {when(s.ends)}{by}{comment}")
    return "\n".join(lines)
