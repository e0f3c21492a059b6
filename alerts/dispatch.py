"""Delivering one alert to its notifiers: dedup → retry with backoff → record (alertmanager's
notify pipeline: per-integration Dedup, Retry, SetNotifies).

For every notifier the alert is routed to, concurrently:

1. skip it if it already delivered this alert (``{p}:delivered:<id>``) or was dead-lettered for
   it (``<name>#dead`` in ``{p}:attempts:<id>``): a redelivered stream entry does not send
   again to the notifiers that already succeeded;
2. otherwise send, up to ``max_attempts`` times in total *across restarts* (the count lives in
   ``{p}:attempts:<id>``, incremented before each send), waiting ``backoff()`` in between;
3. on success, record the notifier in the delivered set (before anything else); on a permanent
   error or when attempts run out, write one dead-letter record (see ``alerts/dlq.py``).

A notifier with a ``digest`` window is not sent to here: the alert is added to its digest
buffer (``alerts/digest.py``, idempotent) and reported as ``buffered``; the digest flusher
sends it later and records the delivered marker then.

A routed name that is not a configured notifier is dead-lettered with reason ``config``, never
dropped silently. Redis failures raise ``StoreError``; the caller then leaves the stream entry
pending so it is delivered again later.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from alerts.backoff import backoff
from alerts.base import Notifier
from alerts.digest import DigestBuffer
from alerts.dlq import attempts_field, dead_field, dead_record, error_field
from alerts.wire import Alert, severity_rank
from daemon.clock import Clock, utc_now
from daemon.errors import NotifyError, StoreError
from daemon.keys import Keys
from daemon.logging import log as structured

log = logging.getLogger(__name__)

T = TypeVar("T")
COMMIT_TIMEOUT = 5.0
"""Seconds a shielded final write (delivered marker, dead letter, XACK) may take."""


async def committed(write: Callable[[], Awaitable[T]], *, limit: float = COMMIT_TIMEOUT) -> T:
    """Run a final write to completion even if the caller is cancelled meanwhile.

    The write runs in its own task bounded by ``limit`` seconds; if the caller is cancelled, we
    wait (at most ``limit``) for the write to finish, then let the cancellation through. Redis
    errors and the timeout become ``StoreError``.
    """

    async def bounded() -> T:
        try:
            async with asyncio.timeout(limit):
                return await write()
        except (RedisError, TimeoutError) as e:
            raise StoreError(f"final write failed: {type(e).__name__}: {e}") from e

    task = asyncio.ensure_future(bounded())
    try:
        return await asyncio.shield(task)
    except asyncio.CancelledError:
        await asyncio.wait({task}, timeout=limit)
        if task.done() and not task.cancelled():
            task.exception()  # retrieved: a failure here is moot, we are being cancelled
        raise


@dataclass(frozen=True)
class NotifierRuntime:
    """A configured notifier instance with its delivery policy."""

    name: str
    notifier: Notifier
    min_severity: str = "info"
    max_attempts: int | None = None  # None: DeliverySettings.max_attempts
    digest: float | None = None  # seconds: buffer alerts into one message per window


@dataclass(frozen=True)
class DeliverySettings:
    max_attempts: int = 5
    backoff_initial: float = 1.0
    backoff_max: float = 300.0
    claim_after: float = 60.0
    stream_maxlen: int = 100_000
    send_timeout: float = 30.0
    concurrency: int = 16
    delivered_ttl: float = 7 * 86400
    read_count: int = 100
    block_ms: int = 2000

    @property
    def ttl_seconds(self) -> int:
        """``delivered_ttl`` as whole seconds for EXPIRE (at least 1: 0 would delete the key)."""
        return max(1, int(self.delivered_ttl))

    def __post_init__(self) -> None:
        positive = (
            "max_attempts",
            "claim_after",
            "send_timeout",
            "concurrency",
            "delivered_ttl",
            "read_count",
            "stream_maxlen",
        )
        for name in positive:
            if getattr(self, name) <= 0:
                raise ValueError(f"delivery setting {name} must be > 0")
        if self.backoff_initial < 0 or self.backoff_max < self.backoff_initial:
            raise ValueError("delivery backoff needs 0 <= backoff_initial <= backoff_max")
        if self.block_ms <= 0:
            raise ValueError("delivery setting block_ms must be > 0 (0 would block forever)")


@dataclass(frozen=True)
class DeliveryOutcome:
    """What ``Dispatcher.deliver`` did with one alert. Every routed name lands in one field."""

    alert_id: str
    delivered: tuple[str, ...] = ()  # sent successfully by this call
    dead: tuple[str, ...] = ()  # dead-lettered by this call
    skipped: tuple[str, ...] = ()  # delivered or dead-lettered earlier: not sent again
    filtered: tuple[str, ...] = ()  # severity below the notifier's min_severity
    buffered: tuple[str, ...] = ()  # added to (or already in) the notifier's digest buffer


@dataclass
class _State:
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


def _text(value: bytes | str) -> str:
    return value.decode("utf-8", errors="replace") if isinstance(value, bytes) else value


def _as_notify_error(e: Exception, timeout: float) -> NotifyError:
    if isinstance(e, NotifyError):
        return e
    if isinstance(e, TimeoutError):
        return NotifyError(f"send timed out after {timeout:g}s", recoverable=True, reason="timeout")
    return NotifyError(f"{type(e).__name__}: {e}", recoverable=True, reason="unexpected")


class Dispatcher:
    """Delivers one alert to the notifiers it is routed to (see the module docstring)."""

    def __init__(
        self,
        redis: aioredis.Redis,
        keys: Keys,
        notifiers: Mapping[str, NotifierRuntime],
        settings: DeliverySettings,
        *,
        sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
        rand: Callable[[], float] = random.random,
        clock: Clock = utc_now,
    ) -> None:
        self.redis = redis
        self.keys = keys
        self.notifiers = dict(notifiers)
        self.settings = settings
        self.sleep = sleep
        self.rand = rand
        self.clock = clock
        self.digests = DigestBuffer(redis, keys)

    async def deliver(self, entry_id: bytes | str, alert: Alert) -> DeliveryOutcome:
        """Deliver ``alert`` (read from stream entry ``entry_id``) to each routed notifier.

        Returns once every routed notifier delivered, was dead-lettered, was skipped or
        filtered out; the entry may then be acknowledged. Raises ``StoreError`` if Redis failed.
        """
        source_id = _text(entry_id)
        if not alert.notify:
            log.warning("alert %s (entry %s) is routed to no notifier", alert.id, source_id)
        state = await self._state(alert.id)
        skipped: list[str] = []
        filtered: list[str] = []
        buffered: list[str] = []
        jobs: list[Awaitable[tuple[str, bool]]] = []
        for name in dict.fromkeys(alert.notify):
            runtime = self.notifiers.get(name)
            if name in state.delivered or state.is_dead(name):
                skipped.append(name)
            elif runtime is None:
                jobs.append(self._unconfigured(source_id, alert, name))
            elif severity_rank(alert.rule.severity) < severity_rank(runtime.min_severity):
                filtered.append(name)
            elif runtime.digest is not None:
                buffered.append(name)
            else:
                jobs.append(self._send_with_retries(source_id, alert, name, runtime, state))
        for name in buffered:  # before the sends: a StoreError here leaves the entry pending
            await self.digests.add(name, source_id, alert, self.clock())
        results = await asyncio.gather(*jobs, return_exceptions=True)
        delivered: list[str] = []
        dead: list[str] = []
        for result in results:
            if isinstance(result, BaseException):
                raise result
            name, ok = result
            (delivered if ok else dead).append(name)
        return DeliveryOutcome(
            alert.id,
            tuple(delivered),
            tuple(dead),
            tuple(skipped),
            tuple(filtered),
            tuple(buffered),
        )

    # -- Redis state ---------------------------------------------------------------------
    async def _state(self, alert_id: str) -> _State:
        try:
            async with self.redis.pipeline(transaction=False) as pipe:
                pipe.smembers(self.keys.delivered(alert_id))
                pipe.hgetall(self.keys.attempts(alert_id))
                members, attempts = await pipe.execute()
        except RedisError as e:
            raise StoreError(f"cannot read delivery state of alert {alert_id}: {e}") from e
        return _State(
            delivered={_text(m) for m in members},
            attempts={_text(k): _text(v) for k, v in attempts.items()},
        )

    async def _count_attempt(self, alert_id: str, name: str) -> int:
        key = self.keys.attempts(alert_id)
        try:
            async with self.redis.pipeline(transaction=True) as pipe:
                pipe.hincrby(key, attempts_field(name), 1)
                pipe.expire(key, self.settings.ttl_seconds)
                count, _ = await pipe.execute()
        except RedisError as e:
            raise StoreError(f"cannot count an attempt for alert {alert_id}: {e}") from e
        return int(count)

    async def _remember_error(self, alert_id: str, name: str, err: NotifyError) -> None:
        try:
            await self.redis.hset(
                self.keys.attempts(alert_id),
                error_field(name),
                f"{err.reason}\t{err.message}"[:2000],
            )
        except RedisError as e:
            raise StoreError(f"cannot record an error for alert {alert_id}: {e}") from e

    async def _mark_delivered(self, alert_id: str, name: str) -> None:
        key = self.keys.delivered(alert_id)

        async def write() -> None:
            async with self.redis.pipeline(transaction=True) as pipe:
                pipe.sadd(key, name)
                pipe.expire(key, self.settings.ttl_seconds)
                await pipe.execute()

        await committed(write)

    async def dead_letter(
        self,
        *,
        source_id: str,
        data: str | bytes,
        notifier: str,
        attempts: int,
        error: str,
        reason: str,
        alert_id: str | None = None,
    ) -> None:
        """Write one dead-letter record (and, with ``alert_id``, the pair's dead marker)."""
        record = dead_record(
            data=data,
            notifier=notifier,
            attempts=attempts,
            error=error,
            reason=reason,
            failed_at=self.clock(),
            source_id=source_id,
        )

        async def write() -> None:
            async with self.redis.pipeline(transaction=True) as pipe:
                pipe.xadd(
                    self.keys.dead,
                    record,  # type: ignore[arg-type]
                    maxlen=self.settings.stream_maxlen,
                    approximate=True,
                )
                if alert_id is not None:
                    key = self.keys.attempts(alert_id)
                    pipe.hset(key, dead_field(notifier), "1")
                    pipe.expire(key, self.settings.ttl_seconds)
                await pipe.execute()

        await committed(write)
        structured(
            log,
            "dead-lettered",
            level=logging.WARNING,
            entry=source_id,
            alert=alert_id,
            notifier=notifier or "-",
            attempts=attempts,
            reason=reason,
            error=error,
        )

    # -- one notifier ----------------------------------------------------------------------
    async def _unconfigured(self, source_id: str, alert: Alert, name: str) -> tuple[str, bool]:
        await self.dead_letter(
            source_id=source_id,
            data=alert.to_json(),
            notifier=name,
            attempts=0,
            error=f"no notifier named {name!r} is configured",
            reason="config",
            alert_id=alert.id,
        )
        return name, False

    async def _send_with_retries(
        self, source_id: str, alert: Alert, name: str, runtime: NotifierRuntime, state: _State
    ) -> tuple[str, bool]:
        limit = runtime.max_attempts or self.settings.max_attempts
        attempts = state.count(name)
        err = state.last_error(name)
        while attempts < limit:
            attempts = await self._count_attempt(alert.id, name)
            try:
                async with asyncio.timeout(self.settings.send_timeout):
                    await runtime.notifier.send(alert)
            except Exception as e:  # noqa: BLE001 - any plugin failure is a delivery failure
                err = _as_notify_error(e, self.settings.send_timeout)
            else:
                await self._mark_delivered(alert.id, name)
                structured(
                    log,
                    "delivered",
                    alert=alert.id,
                    rule=alert.rule.id,
                    feed=alert.item.feed,
                    notifier=name,
                    attempt=attempts,
                    latency_ms=round((self.clock() - alert.created).total_seconds() * 1000, 1),
                )
                return name, True
            if not err.recoverable or attempts >= limit:
                break
            await self._remember_error(alert.id, name, err)
            delay = backoff(
                attempts,
                initial=self.settings.backoff_initial,
                maximum=self.settings.backoff_max,
                retry_after=err.retry_after,
                rand=self.rand,
            )
            structured(
                log,
                "delivery-retry",
                level=logging.WARNING,
                alert=alert.id,
                notifier=name,
                attempt=attempts,
                limit=limit,
                reason=err.reason,
                error=err.message,
                retry_in_s=round(delay, 2),
            )
            await self.sleep(delay)
        if err is None:
            err = NotifyError("attempts exhausted", recoverable=True, reason="unexpected")
        message = (
            err.message
            if not err.recoverable
            else f"gave up after {attempts} attempt(s): {err.message}"
        )
        await self.dead_letter(
            source_id=source_id,
            data=alert.to_json(),
            notifier=name,
            attempts=attempts,
            error=message,
            reason=err.reason,
            alert_id=alert.id,
        )
        return name, False
