"""Sending digests: the flusher that turns each notifier's buffer into one message per window.

``flush_due(now)`` handles every digest notifier (concurrently), each in one Lua step
(``alerts.digest.TAKE_SCRIPT``) that:

* returns ``busy`` if another flusher holds the notifier's lock (only one process sends a
  given digest);
* *resumes* a batch already taken (``{p}:digest:<n>:sending`` exists: a send failed
  recoverably and its ``next_at`` has come, or the flusher that took it died), or
* *takes* the buffer when ``window`` has passed since its first alert: ``RENAME`` buffer →
  sending, so alerts arriving meanwhile open a new buffer and a new window;

and in both cases sets the lock (``SET PX``, renewed before each message). The flusher then
sends the batch (at most ``MAX_PER_MESSAGE`` alerts per message). When a message is accepted,
one transaction adds the notifier to the delivered set of each of its alerts and removes them
from the batch — never earlier. On a recoverable failure the batch stays, with its attempt
count, last error and ``next_at`` (``backoff()``) in ``{p}:digest:<n>:state``; nothing is
marked. On a permanent failure, or when ``max_attempts`` (the notifier's, else the delivery
default) is used up, every alert left in the batch is dead-lettered for the notifier
(``Dispatcher.dead_letter``: one record each, replayable). Attempts are counted in Redis before
each send, so they survive crashes, like the dispatcher's.

Time comes from the injected clock or the ``now`` argument: tests never wait out a window.
``run(stop)`` calls ``flush_due`` every ``poll`` seconds; stopping does not force a flush (the
buffer is durable and the next start sends it). ``flush_all()`` sends every buffer now, due or
not, retrying with backoff until sent or dead-lettered: ``feedwatch run --once`` calls it so a
cron run delivers before it exits.

A buffer left behind by a notifier that no longer has ``digest`` configured is flushed at
once (window 0) by the next flusher that starts.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import socket
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from alerts.backoff import backoff
from alerts.digest import (
    MAX_PER_MESSAGE,
    RELEASE_SCRIPT,
    RENEW_SCRIPT,
    TAKE_SCRIPT,
    Buffered,
    as_notify_error,
    epoch_ms,
    gave_up,
    sender_for,
    stored_error,
)
from alerts.dispatch import Dispatcher
from alerts.dlq import dead_field
from daemon.clock import Clock
from daemon.errors import NotifyError, StoreError
from daemon.logging import log as structured
from daemon.redis.errors import STORE_ERRORS
from daemon.redis.shielded import committed

log = logging.getLogger(__name__)

Outcome = Literal["empty", "waiting", "busy", "sent", "retry", "dead"]


def _text(value: Any) -> str:
    return value.decode("utf-8", errors="replace") if isinstance(value, bytes) else str(value)


@dataclass(frozen=True)
class FlushResult:
    """What one flush did for one notifier.

    ``empty`` nothing buffered; ``waiting`` window (or retry backoff) not over, see ``due``;
    ``busy`` another flusher is sending it; ``sent`` every alert of the batch accepted;
    ``retry`` a recoverable failure, ``alerts`` left for ``due``; ``dead`` dead-lettered.
    """

    notifier: str
    outcome: Outcome
    alerts: int = 0
    attempts: int = 0
    due: datetime | None = None
    error: NotifyError | None = None


class DigestFlusher:
    """Sends the digests of a dispatcher's digest notifiers (see the module docstring)."""

    def __init__(
        self,
        dispatcher: Dispatcher,
        *,
        clock: Clock | None = None,
        poll: float = 1.0,
        max_per_message: int = MAX_PER_MESSAGE,
        token: str | None = None,
    ) -> None:
        self.dispatcher = dispatcher
        self.redis = dispatcher.redis
        self.keys = dispatcher.keys
        self.settings = dispatcher.settings
        self.clock = clock or dispatcher.clock
        self.poll = poll
        self.max_per_message = max_per_message
        self.token = token or f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(4)}"
        self.windows: dict[str, float] = {
            name: rt.digest for name, rt in dispatcher.notifiers.items() if rt.digest is not None
        }
        self._leftovers: list[str] | None = None
        self._take = self.redis.register_script(TAKE_SCRIPT)
        self._renew_script = self.redis.register_script(RENEW_SCRIPT)
        self._release_script = self.redis.register_script(RELEASE_SCRIPT)

    @property
    def lease_ms(self) -> int:
        """How long the lock outlives a flusher that died; renewed before each message."""
        return int((2 * self.settings.send_timeout + 10) * 1000)

    # -- entry points ----------------------------------------------------------------------
    async def flush_due(
        self, now: datetime | None = None, *, force: bool = False
    ) -> list[FlushResult]:
        """Flush every notifier whose digest is due at ``now`` (all of them with ``force``).

        Raises StoreError (after every notifier was handled) if Redis failed for one.
        """
        now = now or self.clock()
        names = [*self.windows, *await self._leftover_names()]
        outcomes = await asyncio.gather(
            *(self.flush_one(name, now, force=force) for name in names), return_exceptions=True
        )
        results: list[FlushResult] = []
        for outcome in outcomes:
            if isinstance(outcome, BaseException):
                raise outcome
            results.append(outcome)
            if outcome.notifier not in self.windows and outcome.outcome == "empty":
                self._leftovers = [n for n in self._leftovers or () if n != outcome.notifier]
        return results

    async def flush_all(self) -> list[FlushResult]:
        """Send every buffered digest now, retrying with backoff until sent or dead-lettered.

        Returns the last result per notifier that had something (``busy`` if another process
        is sending it).
        """
        last: dict[str, FlushResult] = {}
        limits = [self._limit(n) for n in (*self.windows, *await self._leftover_names())]
        for _ in range(max(limits, default=0) + 1):
            now = self.clock()
            results = await self.flush_due(now, force=True)
            last.update((r.notifier, r) for r in results if r.outcome != "empty")
            retrying = [r for r in results if r.outcome == "retry"]
            if not retrying:
                break
            delay = min((r.due - now).total_seconds() if r.due else 0.0 for r in retrying)
            await self.dispatcher.sleep(max(0.0, delay))
        return list(last.values())

    async def run(self, stop: asyncio.Event) -> None:
        """Flush due digests every ``poll`` seconds until ``stop`` is set (no final flush).

        Returns at once when there is nothing to flush: no digest notifier and no leftover.
        """
        while not stop.is_set():
            try:
                if not self.windows and not await self._leftover_names():
                    return
                await self.flush_due()
            except StoreError as e:
                log.warning("digest flusher: %s", e)
            except Exception:  # the flusher must outlive one bad pass
                log.exception("digest flusher failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.poll)

    # -- one notifier ----------------------------------------------------------------------
    async def flush_one(self, name: str, now: datetime, *, force: bool = False) -> FlushResult:
        """Send ``name``'s digest if it is due (or ``force``) and nobody else is sending it."""
        k = self.keys
        window = self.windows.get(name, 0.0)
        try:
            status, value = await self._take(
                keys=[
                    k.digest(name),
                    k.digest_since(name),
                    k.digest_sending(name),
                    k.digest_state(name),
                    k.digest_lock(name),
                ],
                args=[self.token, self.lease_ms, epoch_ms(now), int(window * 1000), int(force)],
            )
        except STORE_ERRORS as e:
            raise StoreError(f"cannot take digest {name}: {e}") from e
        status = _text(status)
        if status == "busy":
            return FlushResult(name, "busy")
        if status == "empty":
            return FlushResult(name, "empty")
        if status == "waiting":
            due = now + timedelta(milliseconds=int(_text(value)) - epoch_ms(now))
            return FlushResult(name, "waiting", due=due)
        try:
            return await self._send_batch(name, now)
        finally:
            with contextlib.suppress(StoreError):  # else the lock expires after lease_ms
                await committed(
                    lambda: self._release_script(keys=[k.digest_lock(name)], args=[self.token])
                )

    def _limit(self, name: str) -> int:
        runtime = self.dispatcher.notifiers.get(name)
        return (runtime.max_attempts if runtime else None) or self.settings.max_attempts

    async def _send_batch(self, name: str, now: datetime) -> FlushResult:
        batch, state = await self._read_batch(name)
        if not batch:
            await self._finish(name)
            return FlushResult(name, "empty")
        limit = self._limit(name)
        attempts = int(state.get("attempts", "0") or 0)
        permanent = stored_error(state.get("dead"), recoverable=False)
        if permanent is not None:  # dead-lettering after a permanent error was interrupted
            return await self._dead(name, batch, attempts, permanent, permanent.message)
        err = stored_error(state.get("error"))
        if attempts >= limit:  # exhausted before a crash: dead-letter without sending again
            last = err or NotifyError("attempts exhausted", recoverable=True, reason="unexpected")
            return await self._dead(name, batch, attempts, last, gave_up(attempts, last))
        attempts = await self._count_attempt(name)
        runtime = self.dispatcher.notifiers[name]
        sender = sender_for(runtime.notifier, max_per_message=self.max_per_message)
        sent = 0
        timeout = self.settings.send_timeout
        while sent < len(batch):
            chunk = batch[sent : sent + sender.batch]
            await self._renew(name)
            try:
                async with asyncio.timeout(timeout):
                    await sender.send([b.alert for b in chunk])
            except Exception as e:  # noqa: BLE001 - any plugin failure is a delivery failure
                err = as_notify_error(e, timeout)
                break
            sent += len(chunk)
            await self._commit(name, chunk, last=sent >= len(batch))
        else:
            structured(log, "digest-sent", notifier=name, alerts=len(batch), attempt=attempts)
            return FlushResult(name, "sent", alerts=len(batch), attempts=attempts)
        left = batch[sent:]
        assert err is not None
        if not err.recoverable:
            await self._write_state(name, dead=f"{err.reason}\t{err.message}"[:2000])
            return await self._dead(name, left, attempts, err, err.message)
        if attempts >= limit:
            return await self._dead(name, left, attempts, err, gave_up(attempts, err))
        delay = backoff(
            attempts,
            initial=self.settings.backoff_initial,
            maximum=self.settings.backoff_max,
            retry_after=err.retry_after,
            rand=self.dispatcher.rand,
        )
        due = now + timedelta(seconds=delay)
        await self._write_state(
            name, error=f"{err.reason}\t{err.message}"[:2000], next_at=str(epoch_ms(due))
        )
        structured(
            log,
            "digest-retry",
            level=logging.WARNING,
            notifier=name,
            alerts=len(left),
            attempt=attempts,
            limit=limit,
            reason=err.reason,
            error=err.message,
            retry_in_s=round(delay, 2),
        )
        return FlushResult(name, "retry", len(left), attempts, due, err)

    # -- Redis -----------------------------------------------------------------------------
    async def _read_batch(self, name: str) -> tuple[list[Buffered], dict[str, str]]:
        k = self.keys
        try:
            async with self.redis.pipeline(transaction=False) as pipe:
                pipe.hgetall(k.digest_sending(name))
                pipe.hgetall(k.digest_state(name))
                raw, state = await pipe.execute()
        except STORE_ERRORS as e:
            raise StoreError(f"cannot read digest {name}: {e}") from e
        batch: list[Buffered] = []
        for field, value in raw.items():
            try:
                batch.append(Buffered.from_json(value))
            except (ValueError, KeyError, TypeError, AttributeError) as e:
                await self._drop_unreadable(name, _text(field), value, e)
        batch.sort(key=lambda b: (b.buffered_at, b.alert.id))
        return batch, {_text(f): _text(v) for f, v in state.items()}

    async def _drop_unreadable(self, name: str, field: str, value: Any, e: Exception) -> None:
        await self.dispatcher.dead_letter(
            source_id="",
            data=value if isinstance(value, bytes | str) else repr(value),
            notifier=name,
            attempts=0,
            error=f"unreadable digest record: {type(e).__name__}: {e}",
            reason="decode",
        )
        sending = self.keys.digest_sending(name)
        await committed(lambda: self.redis.hdel(sending, field))

    async def _count_attempt(self, name: str) -> int:
        try:
            return int(await self.redis.hincrby(self.keys.digest_state(name), "attempts", 1))
        except STORE_ERRORS as e:
            raise StoreError(f"cannot count an attempt for digest {name}: {e}") from e

    async def _write_state(self, name: str, **values: str) -> None:
        state = self.keys.digest_state(name)
        await committed(lambda: self.redis.hset(state, mapping=values))  # type: ignore[arg-type]

    async def _renew(self, name: str) -> None:
        try:
            held = await self._renew_script(
                keys=[self.keys.digest_lock(name)], args=[self.token, self.lease_ms]
            )
        except STORE_ERRORS as e:
            raise StoreError(f"cannot renew the lock of digest {name}: {e}") from e
        if not held:
            log.warning("digest %s: lock lost (a send outlived its lease); sending anyway", name)

    async def _commit(self, name: str, chunk: Sequence[Buffered], *, last: bool) -> None:
        """The alerts of an accepted message: delivered markers, out of the batch. One MULTI."""
        k, ttl = self.keys, self.settings.ttl_seconds

        async def write() -> None:
            async with self.redis.pipeline(transaction=True) as pipe:
                for b in chunk:
                    pipe.sadd(k.delivered(b.alert.id), name)
                    pipe.expire(k.delivered(b.alert.id), ttl)
                pipe.hdel(k.digest_sending(name), *(b.alert.id for b in chunk))
                if last:
                    pipe.delete(k.digest_state(name))
                await pipe.execute()

        await committed(write)

    async def _finish(self, name: str) -> None:
        k = self.keys
        await committed(lambda: self.redis.delete(k.digest_sending(name), k.digest_state(name)))

    async def _dead(
        self, name: str, batch: Sequence[Buffered], attempts: int, err: NotifyError, message: str
    ) -> FlushResult:
        """Dead-letter every alert of ``batch`` not already dead for ``name``, drop the batch."""
        try:
            async with self.redis.pipeline(transaction=False) as pipe:
                for b in batch:
                    pipe.hexists(self.keys.attempts(b.alert.id), dead_field(name))
                already = await pipe.execute()
        except STORE_ERRORS as e:
            raise StoreError(f"cannot read dead markers of digest {name}: {e}") from e
        for b, done in zip(batch, already, strict=True):
            if not done:
                await self.dispatcher.dead_letter(
                    source_id=b.source_id,
                    data=b.alert.to_json(),
                    notifier=name,
                    attempts=attempts,
                    error=message,
                    reason=err.reason,
                    alert_id=b.alert.id,
                )
        await self._finish(name)
        return FlushResult(name, "dead", len(batch), attempts, error=err)

    async def _leftover_names(self) -> list[str]:
        """Configured notifiers without ``digest`` that still have a buffer (checked once)."""
        if self._leftovers is None:
            others = [n for n in self.dispatcher.notifiers if n not in self.windows]
            try:
                async with self.redis.pipeline(transaction=False) as pipe:
                    for n in others:
                        pipe.exists(self.keys.digest(n), self.keys.digest_sending(n))
                    found = await pipe.execute()
            except STORE_ERRORS as e:
                raise StoreError(f"cannot look for digest buffers: {e}") from e
            self._leftovers = [n for n, count in zip(others, found, strict=True) if count]
            for n in self._leftovers:
                log.warning("notifier %s has no digest configured but a buffer: sending it", n)
        return self._leftovers
