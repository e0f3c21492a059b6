"""The delivery ledger: what Redis remembers per (alert, notifier), and the shielded final write.

Keys (``daemon/redis/keys.py``; layout in ``alerts/README.md``)::

    {p}:delivered:<id>   set   notifier names that delivered the alert (SADD + EXPIRE)
    {p}:attempts:<id>    hash  <n> → sends tried, <n>#error → last recoverable error,
                               <n>#dead → dead-lettered once (EXPIRE like the set)

Delivering one alert costs two round trips here in the common case, each one Lua step:

* :meth:`Ledger.prepare`, before the sends: reads the delivered set and the attempts hash and,
  for each notifier about to send (not delivered, not dead, attempts left), counts the attempt
  (``HINCRBY``) in the same step, so the count is durable before the send as it always was;
* :meth:`Ledger.mark_delivered`, after a send was accepted: ``SADD`` + ``EXPIRE`` and, when
  it is the last notifier of the stream entry, the entry's ``XACK`` *after* them in the same
  atomic step. A marker is never missing behind an ack.

Retries count further attempts with :meth:`Ledger.count_attempt`. All keys share one hash tag,
so the multi-key steps stay legal on Redis Cluster.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import redis.asyncio as aioredis

from alerts.dlq import attempts_field, dead_field, error_field
from daemon.errors import NotifyError, StoreError
from daemon.redis.errors import STORE_ERRORS
from daemon.redis.keys import Keys
from daemon.redis.shielded import committed

# KEYS: delivered set, attempts hash. ARGV: ttl, then per notifier about to send: name,
# attempts field, dead field, limit. Returns {members, hash (as it was), counts}: counts[i] is
# the count after this attempt, or 0 when none was counted (delivered, dead, or used up).
_PREPARE = """
local counts, counted = {}, false
local members = redis.call('SMEMBERS', KEYS[1])
local attempts = redis.call('HGETALL', KEYS[2])
for i = 2, #ARGV, 4 do
  local n = 0
  if redis.call('SISMEMBER', KEYS[1], ARGV[i]) == 0
      and redis.call('HEXISTS', KEYS[2], ARGV[i + 2]) == 0 then
    local before = tonumber(redis.call('HGET', KEYS[2], ARGV[i + 1]) or '0') or 0
    if before < tonumber(ARGV[i + 3]) then
      n = redis.call('HINCRBY', KEYS[2], ARGV[i + 1], 1)
      counted = true
    end
  end
  counts[#counts + 1] = n
end
if counted then redis.call('EXPIRE', KEYS[2], ARGV[1]) end
return {members, attempts, counts}
"""
# KEYS: delivered set, alert stream. ARGV: name, ttl[, group, entry id]: the marker, then the ack.
_DELIVERED = """
redis.call('SADD', KEYS[1], ARGV[1])
redis.call('EXPIRE', KEYS[1], ARGV[2])
if ARGV[4] then redis.call('XACK', KEYS[2], ARGV[3], ARGV[4]) end
return 1
"""


def _text(value: bytes | str) -> str:
    return value.decode("utf-8", errors="replace") if isinstance(value, bytes) else value


@dataclass
class State:
    """One alert's delivered set and attempts hash, as read before the sends."""

    delivered: set[str] = field(default_factory=set)
    attempts: dict[str, str] = field(default_factory=dict)

    def count(self, name: str) -> int:
        try:
            return int(self.attempts.get(attempts_field(name), "0"))
        except ValueError:
            return 0

    def is_dead(self, name: str) -> bool:
        return dead_field(name) in self.attempts

    def last_error(self, name: str) -> NotifyError | None:
        raw = self.attempts.get(error_field(name))
        if raw is None:
            return None
        reason, _, message = raw.partition("\t")
        return NotifyError(message, recoverable=True, reason=reason or "unexpected")


class Ledger:
    """Reads and writes the delivery records of alerts (see the module docstring)."""

    def __init__(self, redis: aioredis.Redis, keys: Keys, ttl_seconds: int) -> None:
        self.redis = redis
        self.keys = keys
        self.ttl = ttl_seconds
        self._prepare = redis.register_script(_PREPARE)
        self._delivered = redis.register_script(_DELIVERED)

    async def prepare(
        self, alert_id: str, limits: Mapping[str, int]
    ) -> tuple[State, dict[str, int]]:
        """The alert's state, and for each notifier of ``limits`` (name → max attempts) that
        is about to send, its attempt count with this attempt counted (absent if none was)."""
        args: list[str | int] = [self.ttl]
        for name, limit in limits.items():
            args += [name, attempts_field(name), dead_field(name), limit]
        keys = [self.keys.delivered(alert_id), self.keys.attempts(alert_id)]
        try:
            members, flat, counts = await self._prepare(keys=keys, args=args)
        except STORE_ERRORS as e:
            raise StoreError(f"cannot read delivery state of alert {alert_id}: {e}") from e
        pairs = iter(flat)
        state = State(
            delivered={_text(m) for m in members},
            attempts={_text(k): _text(v) for k, v in zip(pairs, pairs, strict=True)},
        )
        return state, {name: int(n) for name, n in zip(limits, counts, strict=True) if n}

    async def count_attempt(self, alert_id: str, name: str) -> int:
        """Count one more attempt (before a retry's send); returns the new count."""
        key = self.keys.attempts(alert_id)
        try:
            async with self.redis.pipeline(transaction=True) as pipe:
                pipe.hincrby(key, attempts_field(name), 1)
                pipe.expire(key, self.ttl)
                count, _ = await pipe.execute()
        except STORE_ERRORS as e:
            raise StoreError(f"cannot count an attempt for alert {alert_id}: {e}") from e
        return int(count)

    async def remember_error(self, alert_id: str, name: str, err: NotifyError) -> None:
        try:
            await self.redis.hset(
                self.keys.attempts(alert_id),
                error_field(name),
                f"{err.reason}\t{err.message}"[:2000],
            )
        except STORE_ERRORS as e:
            raise StoreError(f"cannot record an error for alert {alert_id}: {e}") from e

    async def mark_delivered(self, alert_id: str, name: str, *, ack: str | None = None) -> None:
        """Add ``name`` to the delivered set; with ``ack``, XACK that stream entry after it, in
        the same atomic step. Shielded (:func:`committed`)."""
        keys = [self.keys.delivered(alert_id), self.keys.alerts]
        args: list[str | int] = [name, self.ttl]
        if ack is not None:
            args += [self.keys.group, ack]
        await committed(lambda: self._delivered(keys=keys, args=args))

    async def ack(self, entry_id: str) -> None:
        """XACK a stream entry. Shielded (:func:`committed`)."""
        await committed(lambda: self.redis.xack(self.keys.alerts, self.keys.group, entry_id))
