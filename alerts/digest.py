"""Digests: a notifier's alerts gathered into one message per window (``digest: 15m``).

A notifier configured with ``digest: <window>`` does not send alerts one by one. The
dispatcher *buffers* each alert routed to it (:meth:`DigestBuffer.add`) and the stream entry is
acknowledged once the alert is durably in Redis; a flusher (``alerts/digest_flush.py``) sends
the buffer as one message when ``window`` has passed since its first alert. The
(alert, notifier) delivered marker is written only after that message was accepted.

Redis, per notifier (``daemon/redis/keys.py``)::

    {p}:digest:<n>           hash  alert id → record (JSON: source_id, buffered_at ms, alert)
    {p}:digest:<n>:since     str   epoch ms of the buffer's first alert (SET NX on add)
    {p}:digest:<n>:sending   hash  the batch taken from the buffer (RENAME), being sent
    {p}:digest:<n>:state     hash  attempts / error / next_at / dead of that batch
    {p}:digest:<n>:lock      str   token of the flusher sending it (SET NX PX)

Adding is one Lua script and idempotent: an alert already delivered or dead-lettered for the
notifier, already in the buffer, or in the batch being sent is not added again, so a stream
entry redelivered before the digest went out does not put the alert in it twice.

This module holds the buffer (:class:`DigestBuffer`), the record format, the capability check
and senders, and the Lua steps the flusher uses (``TAKE_SCRIPT``…).

Which notifiers can digest: a notifier class that implements
``async def send_digest(self, alerts: Sequence[Alert]) -> None`` (one message for all of them,
same error contract as ``send``), as the built-in ``email`` notifier does (one mail listing the
alerts, built by :func:`alerts.mailfmt.build_message`). Configuring ``digest`` on any other
type is a config error (``notifier type 'slack' does not support digest``).
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol, runtime_checkable

import redis.asyncio as aioredis

from alerts.base import Notifier
from alerts.dlq import dead_field
from alerts.wire import Alert
from daemon.errors import NotifyError, StoreError
from daemon.redis.errors import STORE_ERRORS
from daemon.redis.keys import Keys

MIN_WINDOW = 60.0
MAX_WINDOW = 86400.0
MAX_PER_MESSAGE = 100
"""A digest holding more alerts is sent as several messages of at most this many."""


def epoch_ms(when: datetime) -> int:
    return int(when.timestamp() * 1000)


# -- which notifiers can send a digest --------------------------------------------------------


@runtime_checkable
class SupportsDigest(Protocol):
    """A notifier that renders several alerts as one message."""

    async def send_digest(self, alerts: Sequence[Alert]) -> None: ...


def supports_digest(cls: type[Notifier]) -> bool:
    """Whether notifiers of class ``cls`` can be configured with ``digest``."""
    return callable(getattr(cls, "send_digest", None))


@dataclass(frozen=True)
class DigestSender:
    """How to send a batch to one notifier: ``send`` takes at most ``batch`` alerts."""

    send: Callable[[Sequence[Alert]], Awaitable[None]]
    batch: int


def sender_for(notifier: Notifier, *, max_per_message: int = MAX_PER_MESSAGE) -> DigestSender:
    """The digest sender of ``notifier``.

    ``send_digest`` if the notifier has one; otherwise (a buffer left over after ``digest``
    was removed from a notifier that cannot digest) one ``send`` per alert, so each accepted
    alert is recorded on its own.
    """
    if isinstance(notifier, SupportsDigest):
        return DigestSender(notifier.send_digest, max_per_message)

    async def one_by_one(alerts: Sequence[Alert]) -> None:
        for alert in alerts:
            await notifier.send(alert)

    return DigestSender(one_by_one, 1)


# -- the buffer -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Buffered:
    """One alert waiting in a digest buffer."""

    alert: Alert
    source_id: str
    buffered_at: int  # epoch ms

    def to_json(self) -> str:
        record = {
            "source_id": self.source_id,
            "buffered_at": self.buffered_at,
            "alert": self.alert.to_dict(),
        }
        return json.dumps(record, ensure_ascii=False, separators=(",", ":"))

    @classmethod
    def from_json(cls, raw: str | bytes) -> Buffered:
        """Raises ValueError (or KeyError/TypeError) for a record that cannot be read."""
        data: Any = json.loads(raw)
        return cls(
            alert=Alert.from_dict(data["alert"]),
            source_id=str(data["source_id"]),
            buffered_at=int(data["buffered_at"]),
        )


# KEYS: buffer, since, sending, delivered:<id>, attempts:<id>
# ARGV: alert id, notifier name, dead field, record, now ms
_ADD = """
if redis.call('SISMEMBER', KEYS[4], ARGV[2]) == 1 then return 'delivered' end
if redis.call('HEXISTS', KEYS[5], ARGV[3]) == 1 then return 'dead' end
if redis.call('HEXISTS', KEYS[3], ARGV[1]) == 1 then return 'sending' end
if redis.call('HSETNX', KEYS[1], ARGV[1], ARGV[4]) == 0 then return 'buffered' end
redis.call('SET', KEYS[2], ARGV[5], 'NX')
return 'added'
"""


class DigestBuffer:
    """Adds alerts to the per-notifier digest buffers in Redis (see the module docstring)."""

    def __init__(self, redis: aioredis.Redis, keys: Keys) -> None:
        self.redis = redis
        self.keys = keys
        self._add = redis.register_script(_ADD)

    async def add(self, name: str, source_id: str, alert: Alert, now: datetime) -> str:
        """Buffer ``alert`` for notifier ``name``; returns what happened.

        ``added``; ``buffered`` or ``sending`` (already waiting: not added twice);
        ``delivered`` or ``dead`` (already done with for this notifier). Raises StoreError.
        """
        k = self.keys
        record = Buffered(alert, source_id, epoch_ms(now))
        try:
            status = await self._add(
                keys=[
                    k.digest(name),
                    k.digest_since(name),
                    k.digest_sending(name),
                    k.delivered(alert.id),
                    k.attempts(alert.id),
                ],
                args=[alert.id, name, dead_field(name), record.to_json(), record.buffered_at],
            )
        except STORE_ERRORS as e:
            raise StoreError(f"cannot buffer alert {alert.id} for digest {name}: {e}") from e
        return status.decode() if isinstance(status, bytes) else str(status)

    async def pending(self, name: str) -> int:
        """Alerts buffered or being sent for ``name``."""
        try:
            async with self.redis.pipeline(transaction=False) as pipe:
                pipe.hlen(self.keys.digest(name))
                pipe.hlen(self.keys.digest_sending(name))
                buffered, sending = await pipe.execute()
        except STORE_ERRORS as e:
            raise StoreError(f"cannot read digest {name}: {e}") from e
        return int(buffered) + int(sending)


# KEYS: buffer, since, sending, state, lock. ARGV: token, lease ms, now ms, window ms, force.
# Returns {status, ms}: busy | empty | waiting (ms: when due) | resume | take.
TAKE_SCRIPT = """
local holder = redis.call('GET', KEYS[5])
if holder and holder ~= ARGV[1] then return {'busy', '0'} end
local now = tonumber(ARGV[3])
local force = ARGV[5] == '1'
if redis.call('EXISTS', KEYS[3]) == 1 then
  local next_at = tonumber(redis.call('HGET', KEYS[4], 'next_at') or '0')
  if not force and next_at > now then return {'waiting', tostring(next_at)} end
  redis.call('SET', KEYS[5], ARGV[1], 'PX', ARGV[2])
  return {'resume', '0'}
end
if redis.call('HLEN', KEYS[1]) == 0 then
  redis.call('DEL', KEYS[2])
  return {'empty', '0'}
end
local since = tonumber(redis.call('GET', KEYS[2]) or '')
if not since then
  since = now
  redis.call('SET', KEYS[2], ARGV[3])
end
local due = since + tonumber(ARGV[4])
if not force and due > now then return {'waiting', tostring(due)} end
redis.call('RENAME', KEYS[1], KEYS[3])
redis.call('DEL', KEYS[2], KEYS[4])
redis.call('SET', KEYS[5], ARGV[1], 'PX', ARGV[2])
return {'take', '0'}
"""
RENEW_SCRIPT = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""
RELEASE_SCRIPT = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


def as_notify_error(e: Exception, timeout: float) -> NotifyError:
    """A send failure as ``NotifyError`` (the dispatcher's mapping)."""
    if isinstance(e, NotifyError):
        return e
    if isinstance(e, TimeoutError):
        return NotifyError(f"send timed out after {timeout:g}s", recoverable=True, reason="timeout")
    return NotifyError(f"{type(e).__name__}: {e}", recoverable=True, reason="unexpected")


def stored_error(raw: str | None, *, recoverable: bool = True) -> NotifyError | None:
    """A ``reason<TAB>message`` kept in Redis, back as a ``NotifyError``."""
    if raw is None:
        return None
    reason, _, message = raw.partition("\t")
    return NotifyError(message, recoverable=recoverable, reason=reason or "unexpected")


def gave_up(attempts: int, err: NotifyError) -> str:
    return f"gave up after {attempts} attempt(s): {err.message}"
