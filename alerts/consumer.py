"""The delivery loop: a Redis Streams consumer-group member that hands alerts to the Dispatcher.

``run(stop)``:

1. creates the group if needed (``XGROUP CREATE … 0 MKSTREAM``: a new group starts at the
   beginning of the stream, so alerts published before the first consumer started are
   delivered);
2. re-reads its OWN pending entries (``XREADGROUP … 0``) left by a previous run under the
   same name, and delivers them;
3. reads new entries (``>``, ``COUNT``, ``BLOCK``) until ``stop`` is set, keeping at most
   ``concurrency`` alerts in flight; ``Dispatcher.deliver(..., ack=True)`` XACKs each entry
   once every notifier delivered, was dead-lettered, skipped or filtered (in the same Lua step
   as the last delivered marker when it can: ``alerts/ledger.py``);
4. runs a janitor every ``claim_after / 2`` seconds that first *touches* the entries this
   consumer holds (``XCLAIM … JUSTID`` to itself, resetting their idle time, so a delivery that
   retries for minutes is not stolen) and then claims entries idle for more than
   ``claim_after`` from consumers that died (``XAUTOCLAIM … JUSTID``) and delivers them;
5. runs the digest flusher (``alerts/digest_flush.py``) when a notifier has ``digest`` set (or
   a buffer was left behind). It stops with the consumer without forcing a flush (the buffers
   are durable); ``flush_digests()`` sends every buffer now (``run --once``).

Failures never end the loop: NOGROUP (Redis restarted empty, stream deleted) re-creates the
group; connection errors are logged and retried with capped backoff; an entry whose delivery
hit a Redis error stays pending and is claimed again later; an undecodable entry is
dead-lettered with reason ``decode`` and acknowledged. On stop, reading ends at once (within
``block_ms``) and in-flight deliveries are awaited: bound that with your own grace timeout and
cancel ``run``; XACKs and delivered markers are shielded, so a final write is not lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from collections.abc import Collection, Mapping
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import ResponseError

from alerts.backoff import backoff
from alerts.digest_flush import DigestFlusher, FlushResult
from alerts.dispatch import DeliverySettings, Dispatcher
from alerts.wire import Alert
from daemon.clock import Clock, utc_now
from daemon.errors import StoreError
from daemon.logging import log as structured
from daemon.redis.errors import STORE_ERRORS, UNAVAILABLE
from daemon.redis.keys import Keys
from daemon.redis.shielded import committed

log = logging.getLogger(__name__)

Entry = tuple[str, Mapping[Any, Any]]

_CLAIM_PAGES = 10  # XAUTOCLAIM pages scanned per janitor pass
_RECONNECT_INITIAL = 0.1
_RECONNECT_MAX = 10.0

# XAUTOCLAIM through Lua: redis-py's JUSTID parser drops the cursor we need for paging.
_AUTOCLAIM = """
return redis.call('XAUTOCLAIM', KEYS[1], ARGV[1], ARGV[2], ARGV[3], ARGV[4],
                  'COUNT', ARGV[5], 'JUSTID')
"""
# Reset the idle time of the entries we still own (and only those) without counting a delivery.
_TOUCH = """
local touched = 0
for i = 3, #ARGV do
  local p = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[i], ARGV[i], 1)
  if #p == 1 and p[1][2] == ARGV[2] then
    redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0, ARGV[i], 'JUSTID')
    touched = touched + 1
  end
end
return touched
"""


def _text(value: Any) -> str:
    return value.decode("utf-8", errors="replace") if isinstance(value, bytes) else str(value)


def stream_id(value: bytes | str) -> tuple[int, int]:
    """``"1700000000000-3"`` → ``(1700000000000, 3)`` for ordering; a bare ms means ``-0``."""
    ms, _, seq = _text(value).partition("-")
    return int(ms), int(seq or 0)


def _lost_group(e: ResponseError) -> bool:
    text = str(e)
    return "NOGROUP" in text or "UNBLOCKED" in text or "no such key" in text


class Consumer:
    """One member (``name``) of the delivery consumer group. See the module docstring."""

    def __init__(
        self,
        redis: aioredis.Redis,
        keys: Keys,
        dispatcher: Dispatcher,
        settings: DeliverySettings,
        *,
        name: str | None = None,
        clock: Clock = utc_now,
        flusher: DigestFlusher | None = None,
    ) -> None:
        self.redis = redis
        self.keys = keys
        self.dispatcher = dispatcher
        self.settings = settings
        self.name = name or f"{socket.gethostname()}-{os.getpid()}"
        self.clock = clock
        self._held: dict[str, asyncio.Task[None]] = {}
        self._slots = asyncio.Semaphore(settings.concurrency)
        self._freed = asyncio.Event()  # set when a held delivery ends, or stop is set
        self._failures = 0
        self._stop = asyncio.Event()
        self._autoclaim = redis.register_script(_AUTOCLAIM)
        self._touch_script = redis.register_script(_TOUCH)
        self.flusher = flusher or DigestFlusher(dispatcher)
        self._flusher_stop = asyncio.Event()
        self._flusher_task: asyncio.Task[None] | None = None

    # -- group -----------------------------------------------------------------------------
    async def ensure_group(self) -> None:
        """Create the consumer group (and the stream) unless it exists."""
        try:
            await self.redis.xgroup_create(self.keys.alerts, self.keys.group, id="0", mkstream=True)
        except ResponseError as e:
            if "BUSYGROUP" not in str(e):
                raise StoreError(f"cannot create consumer group: {e}") from e
        except STORE_ERRORS as e:
            raise StoreError(f"cannot create consumer group: {e}") from e

    async def pending_count(self) -> int:
        """Entries delivered to some consumer of the group and not yet acknowledged."""
        try:
            summary = await self.redis.xpending(self.keys.alerts, self.keys.group)
        except ResponseError as e:
            if _lost_group(e):
                return 0
            raise StoreError(f"cannot read pending entries: {e}") from e
        except STORE_ERRORS as e:
            raise StoreError(f"cannot read pending entries: {e}") from e
        return int(summary["pending"])

    # -- the loop --------------------------------------------------------------------------
    async def run(self, stop: asyncio.Event) -> None:
        """Deliver until ``stop`` is set, then wait for the deliveries in flight."""
        self._stop = stop
        while not stop.is_set():
            try:
                await self.ensure_group()
                break
            except StoreError as e:
                await self._pause(stop, e)
        if stop.is_set():
            return
        structured(log, "consumer-started", consumer=self.name, stream=self.keys.alerts)
        janitor = asyncio.create_task(self._janitor(stop), name=f"janitor-{self.name}")
        waker = asyncio.create_task(self._wake_on(stop), name=f"stop-{self.name}")
        if not self._flusher_stop.is_set():
            self._flusher_task = asyncio.create_task(
                self.flusher.run(self._flusher_stop), name=f"digests-{self.name}"
            )
        try:
            await self._recover_own(stop)
            await self._read_new(stop)
            while self._held:
                await asyncio.wait(list(self._held.values()))
            await self._stop_flusher()
        finally:
            janitor.cancel()
            waker.cancel()
            tasks = [waker, *self._held.values()]
            if self._flusher_task is not None:
                tasks.append(self._flusher_task)
            for task in tasks:
                task.cancel()
            await asyncio.gather(janitor, *tasks, return_exceptions=True)
            structured(log, "consumer-stopped", consumer=self.name)

    async def _recover_own(self, stop: asyncio.Event) -> None:
        last = "0"
        while not stop.is_set():
            free = await self._capacity(stop)
            if free <= 0:
                return
            entries = await self._read(stop, last, count=min(free, self.settings.read_count))
            if entries is None:
                continue  # error handled; try again
            if not entries:
                return
            for entry_id, fields in entries:
                self._submit(entry_id, fields)
            last = entries[-1][0]

    async def _read_new(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            free = await self._capacity(stop)
            if free <= 0:
                return
            entries = await self._read(
                stop, ">", count=min(free, self.settings.read_count), block=self.settings.block_ms
            )
            for entry_id, fields in entries or ():
                self._submit(entry_id, fields)

    async def _read(
        self, stop: asyncio.Event, last: str, *, count: int, block: int | None = None
    ) -> list[Entry] | None:
        """One XREADGROUP; None after an error that was handled (logged, group re-created…)."""
        try:
            reply: Any = await self.redis.xreadgroup(
                self.keys.group, self.name, {self.keys.alerts: last}, count=count, block=block
            )
        except ResponseError as e:
            if not _lost_group(e):
                await self._pause(stop, e)
                return None
            log.warning("consumer group lost (%s); re-creating it", e)
            try:
                await self.ensure_group()
            except StoreError as err:
                await self._pause(stop, err)
                return None
            return []
        except STORE_ERRORS + (OSError,) as e:
            await self._pause(stop, e)
            return None
        self._failures = 0
        if not reply:
            return []
        if isinstance(reply, Mapping):  # RESP3
            batches = [entries for value in reply.values() for entries in value]
        else:
            batches = [entries for _stream, entries in reply]
        return [(_text(i), f or {}) for batch in batches for i, f in batch]

    async def _pause(self, stop: asyncio.Event, error: BaseException) -> None:
        self._failures += 1
        delay = backoff(self._failures, initial=_RECONNECT_INITIAL, maximum=_RECONNECT_MAX)
        log.warning(
            "consumer %s: %s: %s; retrying in %.1fs", self.name, type(error).__name__, error, delay
        )
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), delay)

    async def _capacity(self, stop: asyncio.Event) -> int:
        """Free slots (waiting for one while full); 0 once ``stop`` is set."""
        while len(self._held) >= self.settings.concurrency and not stop.is_set():
            self._freed.clear()
            await self._freed.wait()  # no task per wait: _submit's callback or _wake_on sets it
        return 0 if stop.is_set() else self.settings.concurrency - len(self._held)

    async def _wake_on(self, stop: asyncio.Event) -> None:
        await stop.wait()
        self._freed.set()

    # -- one entry -------------------------------------------------------------------------
    def _submit(self, entry_id: str, fields: Mapping[Any, Any]) -> None:
        if entry_id in self._held:
            return
        task = asyncio.create_task(self._handle(entry_id, fields), name=f"deliver-{entry_id}")
        self._held[entry_id] = task

        def forget(t: asyncio.Task[None]) -> None:
            if self._held.get(entry_id) is t:
                del self._held[entry_id]
            self._freed.set()

        task.add_done_callback(forget)

    async def _handle(self, entry_id: str, fields: Mapping[Any, Any]) -> None:
        failures = 0
        async with self._slots:
            while True:
                try:
                    await self._deliver(entry_id, fields)
                    return
                except StoreError as e:
                    # Redis hiccup: delivering again is safe (delivered markers), so retry
                    # soon rather than waiting claim_after for the janitor.
                    if self._stop.is_set():
                        log.warning("entry %s left pending: %s", entry_id, e)
                        return
                    failures += 1
                    delay = backoff(failures, initial=_RECONNECT_INITIAL, maximum=_RECONNECT_MAX)
                    log.warning("entry %s: %s; retrying in %.1fs", entry_id, e, delay)
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._stop.wait(), delay)
                except Exception:  # one bad entry must never end the loop
                    log.exception("entry %s left pending after an unexpected error", entry_id)
                    return

    async def _deliver(self, entry_id: str, fields: Mapping[Any, Any]) -> None:
        if not fields:  # deleted or trimmed while pending: nothing to deliver
            await self._ack(entry_id)
            return
        raw = fields.get(b"data", fields.get("data"))
        try:
            if raw is None:
                raise ValueError("the entry has no 'data' field")
            alert = Alert.from_json(raw)
        except (ValueError, KeyError, TypeError, AttributeError) as e:
            data = raw if isinstance(raw, bytes | str) else repr(dict(fields))
            await self.dispatcher.dead_letter(
                source_id=entry_id,
                data=data,
                notifier="",
                attempts=0,
                error=f"undecodable alert: {type(e).__name__}: {e}",
                reason="decode",
            )
            await self._ack(entry_id)
            return
        await self.dispatcher.deliver(entry_id, alert, ack=True)  # XACKs after the markers

    async def _ack(self, entry_id: str) -> None:
        await committed(lambda: self.redis.xack(self.keys.alerts, self.keys.group, entry_id))

    # -- janitor ---------------------------------------------------------------------------
    async def _janitor(self, stop: asyncio.Event) -> None:
        interval = self.settings.claim_after / 2
        while True:
            try:
                await self.touch()
                if not stop.is_set():
                    await self.claim_idle(stop)
            except STORE_ERRORS + (StoreError,) as e:
                log.warning("janitor of %s: %s: %s", self.name, type(e).__name__, e)
            except Exception:  # the janitor must outlive one bad pass
                log.exception("janitor of %s failed", self.name)
            await asyncio.sleep(interval)

    async def touch(self) -> int:
        """Reset the idle time of the entries this consumer holds; returns how many."""
        held = list(self._held)
        if not held:
            return 0
        try:
            touched = await self._touch_script(
                keys=[self.keys.alerts], args=[self.keys.group, self.name, *held]
            )
        except ResponseError as e:
            if _lost_group(e):
                return 0
            raise
        return int(touched)

    async def claim_idle(self, stop: asyncio.Event | None = None) -> int:
        """Claim entries idle for more than ``claim_after`` and deliver them; returns how many."""
        min_idle = int(self.settings.claim_after * 1000)
        cursor = "0-0"
        claimed = 0
        for _ in range(_CLAIM_PAGES):
            free = self.settings.concurrency - len(self._held)
            if free <= 0 or (stop is not None and stop.is_set()):
                break
            try:
                reply = await self._autoclaim(
                    keys=[self.keys.alerts],
                    args=[self.keys.group, self.name, min_idle, cursor, free],
                )
            except ResponseError as e:
                if _lost_group(e):
                    break
                raise
            cursor = _text(reply[0])
            ids = [_text(i) for i in reply[1] if _text(i) not in self._held]
            claimed += await self._take(ids)
            if cursor == "0-0":
                break
        return claimed

    async def _take(self, ids: list[str]) -> int:
        if not ids:
            return 0
        async with self.redis.pipeline(transaction=False) as pipe:
            for entry_id in ids:
                pipe.xrange(self.keys.alerts, entry_id, entry_id, count=1)
            found = await pipe.execute()
        for entry_id, rows in zip(ids, found, strict=True):
            structured(log, "claimed", consumer=self.name, entry=entry_id)
            self._submit(entry_id, rows[0][1] if rows else {})
        return len(ids)

    # -- digests ---------------------------------------------------------------------------
    async def _stop_flusher(self) -> None:
        """Let the background flusher finish its current pass, then end it."""
        self._flusher_stop.set()
        if self._flusher_task is not None:
            await asyncio.wait([self._flusher_task])

    async def flush_digests(self) -> list[FlushResult]:
        """Send every digest buffer now, due or not (``run --once``): the background flusher
        is stopped first, then buffers are sent with retries until sent or dead-lettered."""
        await self._stop_flusher()
        return await self.flusher.flush_all()

    # -- run --once ------------------------------------------------------------------------
    async def drain(self, *, until_ids: Collection[str] | None = None, poll: float = 0.05) -> None:
        """Return once the given entries (None: all now in the stream) are acknowledged.

        That is: the group's last-delivered-id is at or past each of them and none is pending.
        Polls every ``poll`` seconds; bound it with your own timeout.
        """
        if until_ids is None:
            try:
                last = await self.redis.xrevrange(self.keys.alerts, "+", "-", count=1)
            except STORE_ERRORS as e:
                raise StoreError(f"cannot read the alert stream: {e}") from e
            if not last:
                return
            targets = [_text(last[0][0])]
        else:
            targets = [_text(i) for i in until_ids]
            if not targets:
                return
        while True:
            if await self._acked(targets, whole_prefix=until_ids is None):
                return
            await asyncio.sleep(poll)

    async def _acked(self, targets: list[str], *, whole_prefix: bool) -> bool:
        top = max(targets, key=stream_id)
        try:
            groups = await self.redis.xinfo_groups(self.keys.alerts)
            async with self.redis.pipeline(transaction=False) as pipe:
                if whole_prefix:
                    pipe.xpending_range(self.keys.alerts, self.keys.group, "-", top, 1)
                else:
                    for target in targets:
                        pipe.xpending_range(self.keys.alerts, self.keys.group, target, target, 1)
                pending = await pipe.execute()
        except ResponseError as e:
            if _lost_group(e):
                return False
            raise StoreError(f"cannot read the group state: {e}") from e
        except UNAVAILABLE as e:
            log.warning("drain: %s; polling again", e)
            return False
        except STORE_ERRORS as e:
            raise StoreError(f"cannot read the group state: {e}") from e
        group = next((g for g in groups if _text(g["name"]) == self.keys.group), None)
        if group is None or stream_id(group["last-delivered-id"]) < stream_id(top):
            return False
        return not any(pending)
