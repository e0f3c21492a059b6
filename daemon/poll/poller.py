"""The poller: when the pipeline runs for a feed, and never twice at once.

The scheduler only *hands* a feed to ``Poller.submit``; the poller owns the tasks in flight,
never runs two polls of one feed at once, and can drain them on shutdown (APScheduler 3.x's
asyncio executor cancels running jobs on shutdown and cannot wait for them). A WebSub push goes
through the same path (``accept_push``). Across processes on one Redis, a poll runs under the
feed's lease. The poll itself is ``daemon/poll/pipeline.py``; what it did,
``daemon/poll/result.py``.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime

from daemon.config.load import FeedConfig
from daemon.errors import StoreError
from daemon.poll.leases import Leases, claim_ttl
from daemon.poll.pipeline import Pipeline
from daemon.poll.result import SKIPPED, PollResult, log_result
from daemon.types import Caching, FetchResult

logger = logging.getLogger("daemon.poll")


class Poller:
    def __init__(
        self,
        pipeline: Pipeline,
        *,
        feeds: Mapping[str, FeedConfig],
        leases: Leases | None = None,
        lease_ttl: float = 30.0,
        max_in_flight: int = 64,
    ) -> None:
        self.pipeline = pipeline
        self.feeds = dict(feeds)
        self.leases = leases
        self.lease_ttl = lease_ttl
        self._tasks: dict[str, asyncio.Task[PollResult]] = {}
        self._claimed: set[str] = set()  # feeds whose claim a poll of ours took, until it ends
        self._closing = False
        self._slots = asyncio.Semaphore(max_in_flight)
        self.on_result: list[Callable[[PollResult], None]] = []

    # -- task tracking -----------------------------------------------------------------------
    def submit(self, name: str) -> bool:
        """Start a poll of feed ``name`` unless one is already in flight. Returns whether it did."""
        if name in self._tasks or name not in self.feeds or self._closing:
            return False
        task = asyncio.get_running_loop().create_task(
            self.poll(self.feeds[name], scheduled=True), name=f"poll:{name}"
        )
        self._tasks[name] = task
        task.add_done_callback(self._forget)
        return True

    def _forget(self, task: asyncio.Task[PollResult]) -> None:
        name = task.get_name().removeprefix("poll:")
        if self._tasks.get(name) is task:
            del self._tasks[name]

    @property
    def in_flight(self) -> int:
        return len(self._tasks)

    async def drain(self, grace: float) -> bool:
        """Refuse new polls; wait up to ``grace`` s for those in flight; True if all finished."""
        self._closing = True
        tasks = list(self._tasks.values())
        if not tasks:
            return True
        _done, pending = await asyncio.wait(tasks, timeout=grace)
        return not pending

    def cancel(self) -> None:
        for t in list(self._tasks.values()):
            t.cancel()

    def accept_push(
        self, name: str, body: bytes, headers: Mapping[str, str]
    ) -> asyncio.Task[PollResult] | None:
        """Process a WebSub content distribution of feed ``name`` like a poll's fetched body
        (parse → decide → match → publish → commit), as a task the poller owns (``drain``
        waits for it). It starts after the poll or push of the feed in flight here, if any,
        and a scheduled poll is refused while it runs; across processes it takes the feed's
        lease like a poll, waiting up to ``lease_ttl`` for it. None if the feed is unknown."""
        feed = self.feeds.get(name)
        if feed is None:
            return None
        pushed = FetchResult(
            url=feed.url,
            status=200,
            body=body,
            headers={k.lower(): v for k, v in headers.items()},
            caching=Caching(body_hash=hashlib.sha256(body).hexdigest()),
        )
        prior = self._tasks.get(name)
        task = asyncio.get_running_loop().create_task(
            self._push(feed, pushed, prior), name=f"poll:{name}"
        )
        self._tasks[name] = task
        task.add_done_callback(self._forget)
        return task

    async def _push(
        self, feed: FeedConfig, pushed: FetchResult, prior: asyncio.Task[PollResult] | None
    ) -> PollResult:
        if prior is not None:
            await asyncio.wait([prior])
        deadline = time.monotonic() + self.lease_ttl
        delay = 0.05
        while True:
            result = await self.poll(feed, pushed=pushed)
            if result.outcome != "leased" or time.monotonic() >= deadline:
                return result
            await asyncio.sleep(delay)  # another process polls the feed: wait for its lease
            delay = min(2 * delay, 2.0)

    async def poll_all(self, names: Sequence[str] | None = None) -> list[PollResult]:
        """Poll every feed once (``run --once``), concurrently, respecting backoff state."""
        todo = list(names or self.feeds)
        return list(await asyncio.gather(*(self.poll(self.feeds[n]) for n in todo)))

    # -- one poll ----------------------------------------------------------------------------
    async def poll(
        self, feed: FeedConfig, *, scheduled: bool = False, pushed: FetchResult | None = None
    ) -> PollResult:
        """Poll one feed (or process a push), under its lease (scale-out on one Redis:
        ``daemon/poll/leases.py``): skipped (``leased``) while another process polls it. A
        ``scheduled`` poll (a scheduler tick) also claims the feed for this interval, and is
        skipped (``fresh``) when another process claimed it; an explicit poll (``run --once``)
        always polls, backoff permitting."""
        async with self._slots:
            start = time.perf_counter()
            result: PollResult | None = None
            try:
                if scheduled and pushed is None:
                    result = await self._claimed_elsewhere(feed)
                if result is None:
                    async with self._lease(feed.name) as leased:
                        if not leased:
                            result = await self._leased_elsewhere(feed.name)
                        else:
                            result = await self._leased_poll(
                                feed, start, scheduled=scheduled, pushed=pushed
                            )
            except asyncio.CancelledError:
                raise
            except StoreError as e:
                result = PollResult(
                    feed=feed.name,
                    outcome="error:store",
                    error=str(e),
                    duration=time.perf_counter() - start,
                )
            except Exception as e:  # a bug, not a feed problem: report it, never stop the loop
                logger.critical("unexpected error polling %s", feed.name, exc_info=True)
                result = PollResult(
                    feed=feed.name,
                    outcome="error:internal",
                    error=f"{type(e).__name__}: {e}",
                    duration=time.perf_counter() - start,
                )
        log_result(result)
        for cb in self.on_result:
            cb(result)
        return result

    # -- scale-out: lease and claim (daemon/poll/leases.py) ---------------------------------------
    def _lease(self, name: str) -> contextlib.AbstractAsyncContextManager[bool]:
        if self.leases is None:
            return contextlib.nullcontext(True)
        return self.leases.hold(name, self.lease_ttl)

    async def _claimed_elsewhere(self, feed: FeedConfig) -> PollResult | None:
        """A tick of a feed another process claimed this interval: ``fresh``, due when the
        claim opens to us, found with one GET (no lease, no state); None: go on."""
        if self.leases is None:
            return None
        longest = claim_ttl(feed.bounds[1])
        opens = await self.leases.peek(feed.name, self.pipeline.clock(), longest)
        return None if opens is None else PollResult(feed.name, "fresh", next_poll=opens)

    async def _leased_elsewhere(self, name: str) -> PollResult:
        """Another process polls the feed now: due again when its lease ends (then its claim
        says more), so a lease that outlives a dead process costs no whole interval; but no
        later than one (configured) interval: a live poll releases its lease long before the
        lease's ttl, and a process that waited the whole ttl (30 s by default) would lose a
        feed it prefers to the others' patience for several short intervals."""
        remaining = await self.leases.remaining(name) if self.leases is not None else None
        wait = min(remaining, self.feeds[name].interval) if remaining else None
        due = self.pipeline.clock().timestamp() + wait if wait else None
        return PollResult(feed=name, outcome="leased", next_poll=due)

    async def _leased_poll(
        self, feed: FeedConfig, start: float, *, scheduled: bool, pushed: FetchResult | None
    ) -> PollResult:
        """The pipeline under the lease: a poll cancelled before it ended gives its claim back
        (so another process polls the feed at its next tick); one that fetched stamps the claim
        from now, after its request, so the next poll by another process is a claim's length
        after this one's request. A push neither claims nor stamps (it fetched nothing)."""
        name = feed.name
        claim = self._claim if scheduled and pushed is None else None
        try:
            result = await self.pipeline.run(
                feed, start, scheduled=scheduled, pushed=pushed, claim=claim
            )
        except asyncio.CancelledError:
            if name in self._claimed and self.leases is not None:
                await self.leases.unclaim(name)
            raise
        finally:
            self._claimed.discard(name)
        # Only a poll that planned its next one (result.interval: it fetched, ok or not
        # modified) stamps; skipped ticks and pushes carry an interval too, but fetched nothing.
        fetched = result.outcome not in (*SKIPPED, "pushed")
        if self.leases is not None and fetched and result.interval:
            with contextlib.suppress(StoreError):  # the claim taken before the fetch still holds
                await self.leases.claim(name, self.pipeline.clock(), claim_ttl(result.interval))
        return result

    async def _claim(self, feed: FeedConfig, now: datetime, interval: float) -> float | None:
        """Claim ``feed`` for this (effective) interval: None if claimed, else when another
        process's claim opens to this one (epoch s)."""
        if self.leases is None:
            return None
        patience = self.leases.patience(feed.name, interval)
        opens = await self.leases.attempt(feed.name, now, claim_ttl(interval), patience)
        if opens is None:
            self._claimed.add(feed.name)
        return opens
