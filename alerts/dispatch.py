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

The Redis records and their Lua steps live in ``alerts/ledger.py``: one round trip reads the
state and counts the first attempts, one records a success. With ``deliver(..., ack=True)``
(the consumer) the last notifier's delivered marker carries the stream entry's ``XACK`` in the
same atomic step; if the last job to end was not a success, the ack follows on its own.

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
from dataclasses import dataclass
from typing import Any, TypeVar

import redis.asyncio as aioredis

from alerts.backoff import backoff
from alerts.base import Notifier
from alerts.digest import DigestBuffer
from alerts.dlq import dead_field, dead_record
from alerts.ledger import Ledger, State
from alerts.observer import DeliveryObserver, Guarded
from alerts.wire import Alert, severity_rank
from daemon.clock import Clock, utc_now
from daemon.errors import NotifyError
from daemon.logging import log as structured
from daemon.redis.keys import Keys
from daemon.redis.shielded import committed

log = logging.getLogger(__name__)

T = TypeVar("T")
__all__ = [
    "DeliveryOutcome",
    "DeliverySettings",
    "Dispatcher",
    "NotifierRuntime",
]


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
    acked: bool = False  # the stream entry was acknowledged (``deliver(..., ack=True)``)


def _text(value: bytes | str) -> str:
    return value.decode("utf-8", errors="replace") if isinstance(value, bytes) else value


def _as_notify_error(e: Exception, timeout: float) -> NotifyError:
    if isinstance(e, NotifyError):
        return e
    if isinstance(e, TimeoutError):
        return NotifyError(f"send timed out after {timeout:g}s", recoverable=True, reason="timeout")
    return NotifyError(f"{type(e).__name__}: {e}", recoverable=True, reason="unexpected")


class _Completion:
    """The notifier jobs of one ``deliver(..., ack=True)`` still running: the last one to
    succeed acknowledges the entry with its delivered marker. A job counts as running until
    its final write returned, so an ack never overtakes another job's marker."""

    __slots__ = ("acked", "entry_id", "failed", "open")

    def __init__(self, entry_id: str, jobs: int) -> None:
        self.entry_id = entry_id
        self.open = jobs
        self.failed = False
        self.acked = False

    def take_ack(self) -> str | None:
        """The entry id to XACK with this job's marker if it is the last job running (and none
        failed), else None. Called once per successful job, right before its final write."""
        if self.open == 1 and not self.failed:
            self.acked = True  # if that write fails, deliver() raises and nothing relies on it
            return self.entry_id
        return None


async def _tracked(done: _Completion | None, job: Awaitable[T]) -> T:
    if done is None:
        return await job
    try:
        return await job
    except BaseException:
        done.failed = True
        raise
    finally:
        done.open -= 1


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
        observer: DeliveryObserver | None = None,
    ) -> None:
        self.redis = redis
        self.keys = keys
        self.notifiers = dict(notifiers)
        self.settings = settings
        self.sleep = sleep
        self.rand = rand
        self.clock = clock
        self.digests = DigestBuffer(redis, keys)
        self.ledger = Ledger(redis, keys, settings.ttl_seconds)
        self.observer = Guarded(observer)  # alerts/observer.py: metrics hooks, never raise

    async def deliver(
        self, entry_id: bytes | str, alert: Alert, *, ack: bool = False
    ) -> DeliveryOutcome:
        """Deliver ``alert`` (read from stream entry ``entry_id``) to each routed notifier.

        Returns once every routed notifier delivered, was dead-lettered, was skipped or
        filtered out; the entry may then be acknowledged. With ``ack=True`` this call
        acknowledges it (``XACK``): in the same atomic step as the last delivered marker when it
        can, else right after. Raises ``StoreError`` if Redis failed (nothing acknowledged then).
        """
        source_id = _text(entry_id)
        names = list(dict.fromkeys(alert.notify))
        if not names:
            log.warning("alert %s (entry %s) is routed to no notifier", alert.id, source_id)
        # Each notifier sees the message with the rules routed to it (one message per item).
        views = {name: alert.for_notifier(name) or alert for name in names}
        wanted = {  # configured and not filtered out: name → runtime
            name: rt
            for name in names
            if (rt := self.notifiers.get(name)) is not None
            and severity_rank(views[name].rule.severity) >= severity_rank(rt.min_severity)
        }
        # The first attempt of each send is counted in the same round trip as the state read,
        # unless digest buffers are written first (a failure there must not count a send).
        limits: dict[str, int] = {}
        if all(rt.digest is None for rt in wanted.values()):
            limits = {n: rt.max_attempts or self.settings.max_attempts for n, rt in wanted.items()}
        state, counted = await self.ledger.prepare(alert.id, limits)
        skipped: list[str] = []
        filtered: list[str] = []
        buffered: list[str] = []
        sends: list[str] = []  # unconfigured names too: they are dead-lettered
        for name in names:
            runtime = wanted.get(name)
            if name in state.delivered or state.is_dead(name):
                skipped.append(name)
            elif runtime is None and name in self.notifiers:
                filtered.append(name)
            elif runtime is not None and runtime.digest is not None:
                buffered.append(name)
            else:
                sends.append(name)
        for name in buffered:  # before the sends: a StoreError here leaves the entry pending
            await self.digests.add(name, source_id, views[name], self.clock())
        done = _Completion(source_id, len(sends)) if ack else None
        jobs = [
            _tracked(done, self._send_one(source_id, views[name], name, state, counted, done))
            for name in sends
        ]
        if len(jobs) == 1:  # the common case: no task needed to wait for one job
            results: list[tuple[str, bool] | BaseException] = [await jobs[0]]
        else:
            results = await asyncio.gather(*jobs, return_exceptions=True)
        delivered: list[str] = []
        dead: list[str] = []
        for result in results:
            if isinstance(result, BaseException):
                raise result
            name, ok = result
            (delivered if ok else dead).append(name)
        if delivered and not state.delivered:
            self.observer.first_delivery(alert, at=self.clock())
        if done is not None and not done.acked:
            await self.ledger.ack(source_id)
        return DeliveryOutcome(
            alert.id,
            tuple(delivered),
            tuple(dead),
            tuple(skipped),
            tuple(filtered),
            tuple(buffered),
            acked=ack,
        )

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
        self.observer.dead(notifier, reason=reason)
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
    async def _send_one(
        self,
        source_id: str,
        alert: Alert,
        name: str,
        state: State,
        counted: Mapping[str, int],
        done: _Completion | None,
    ) -> tuple[str, bool]:
        runtime = self.notifiers.get(name)
        if runtime is None:
            return await self._unconfigured(source_id, alert, name)
        return await self._send_with_retries(
            source_id, alert, name, runtime, state, counted.get(name, 0), done
        )

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
        self,
        source_id: str,
        alert: Alert,
        name: str,
        runtime: NotifierRuntime,
        state: State,
        counted: int,
        done: _Completion | None,
    ) -> tuple[str, bool]:
        """Send with retries; ``counted`` > 0: the first attempt was counted already."""
        limit = runtime.max_attempts or self.settings.max_attempts
        attempts = state.count(name)
        err = state.last_error(name)
        while attempts < limit:
            if counted:
                attempts, counted = counted, 0
            else:
                attempts = await self.ledger.count_attempt(alert.id, name)
            try:
                async with asyncio.timeout(self.settings.send_timeout):
                    await runtime.notifier.send(alert)
            except Exception as e:  # noqa: BLE001 - any plugin failure is a delivery failure
                err = _as_notify_error(e, self.settings.send_timeout)
            else:
                ack = done.take_ack() if done is not None else None
                await self.ledger.mark_delivered(alert.id, name, ack=ack)
                now = self.clock()
                self.observer.delivered(alert, name, attempt=attempts, at=now)
                structured(
                    log,
                    "delivered",
                    alert=alert.id,
                    rule=alert.rule.id,
                    feed=alert.item.feed,
                    notifier=name,
                    attempt=attempts,
                    latency_ms=round((now - alert.created).total_seconds() * 1000, 1),
                )
                return name, True
            if not err.recoverable or attempts >= limit:
                break
            await self.ledger.remember_error(alert.id, name, err)
            self.observer.retried(alert, name, attempt=attempts, reason=err.reason)
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
