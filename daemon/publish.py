"""Publishing alerts to the Redis Stream, idempotently.

One Lua script per poll (one round trip per feed): for each alert,
``SET {p}:alert:<id> NX EX ttl`` and, only if that succeeded, ``XADD {p}:alerts MAXLEN ~ n``.
The alert id is derived from (rule, feed, item), so a poll repeated after a crash — between
publishing and recording the items as seen — publishes nothing twice. The alert key, not the
seen-memory, is the correctness guarantee (Alertmanager's notification log plays this role).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from alerts.wire import Alert
from daemon.errors import StoreError
from daemon.keys import Keys

ALERT_KEY_TTL = 30 * 86400

_PUBLISH = """
local out = {}
for i = 2, #KEYS do
  if redis.call('SET', KEYS[i], '1', 'NX', 'EX', ARGV[2]) then
    local id = redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], '*', 'data', ARGV[i + 1])
    redis.call('SET', KEYS[i], id, 'XX', 'KEEPTTL')
    out[#out + 1] = id
  else
    out[#out + 1] = ''
  end
end
return out
"""


def alert_id(rule_id: str, feed: str, item_id: str) -> str:
    """Deterministic alert id for (rule, feed, item)."""
    digest = hashlib.sha256(f"{rule_id}\0{feed}\0{item_id}".encode()).hexdigest()
    return digest[:24]


@dataclass(frozen=True, slots=True)
class Published:
    alert: Alert
    entry_id: str | None  # stream entry id; None when the alert had been published before


class Publisher:
    def __init__(
        self,
        redis: aioredis.Redis,
        keys: Keys,
        *,
        stream_maxlen: int = 100_000,
        alert_ttl: int = ALERT_KEY_TTL,
    ) -> None:
        self.redis = redis
        self.keys = keys
        self.stream_maxlen = stream_maxlen
        self.alert_ttl = alert_ttl
        self._script = redis.register_script(_PUBLISH)

    async def publish(self, alerts: Sequence[Alert]) -> list[Published]:
        """Publish every alert not published before, in one round trip."""
        if not alerts:
            return []
        keys = [self.keys.alerts, *(self.keys.alert(a.id) for a in alerts)]
        args: list[str | int] = [self.stream_maxlen, self.alert_ttl, *(a.to_json() for a in alerts)]
        try:
            ids = await self._script(keys=keys, args=args)
        except RedisError as e:
            raise StoreError(f"cannot publish {len(alerts)} alert(s): {e}") from e
        return [
            Published(alert=a, entry_id=(i.decode() if isinstance(i, bytes) else str(i)) or None)
            for a, i in zip(alerts, ids, strict=True)
        ]
