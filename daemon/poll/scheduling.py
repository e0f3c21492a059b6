"""APScheduler 3.x adapter: one interval job per feed, which only hands the feed to the poller.

A job only calls ``Poller.submit`` and returns at once, so APScheduler's shutdown never cuts a
poll in half: the poller owns and drains what is in flight. Jobs run as plain callbacks on the
event loop (``InlineExecutor``), not as tasks: APScheduler's asyncio executor cancels the job
tasks that have not run yet when it shuts down and logs each ``CancelledError`` at ERROR.
``max_instances=1`` and ``coalesce=True`` keep a slow feed from piling up ticks; the poller also
refuses a second concurrent poll of one feed. Jitter spreads feeds with equal intervals, and
first polls are staggered over the first seconds so a restart does not fire every feed at once.

**Adaptive intervals** (``daemon/poll/rhythm.py``). A feed's effective interval changes with its
publishing rhythm, its ``Cache-Control: max-age``, an overflow or a backoff, so each
``PollResult`` says when the feed is due next (``next_poll``) and at what interval from then
on. ``follow`` (a ``Poller.on_result`` callback) moves the feed's job there with
``modify_job``: its next run time (plus jitter), and a new ``IntervalTrigger`` when the
interval changed. A job already due within ``TOLERANCE`` of that time is left alone, so a
feed whose interval holds costs nothing extra. Skipped polls report too: ``fresh`` (not due,
or another process claimed it) gives when this process may poll it (``daemon/poll/leases.py``),
``leased`` (another process polls it now) the end of its lease (at most one interval on),
``backoff`` the end of the backoff; so every process's job follows the shared state.

The alternative, one job per feed ticking at ``min_interval`` and skipping until due, was
measured with 10,000 feeds (``bench/schedule.py``, on the 2-core machine this was written
on): a job execution costs ~21 µs of CPU and the poller's skip path three Redis round trips
(lease, state, release: ~180 µs of client CPU), so 10,000 feeds polled every 10 min with a
1 min floor would spend ~167 ticks/s, ~3.4 % of a core and ~500 Redis commands/s (per
process) on doing nothing; ``modify_job`` on a store of 10,000 jobs costs ~27 µs, paid at most
once per poll (~17/s): ~0.05 % of a core.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

from apscheduler.executors.base import BaseExecutor, run_job
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.interval import IntervalTrigger

from daemon.clock import Clock, utc_now
from daemon.config.load import FeedConfig
from daemon.poll.poller import Poller
from daemon.poll.result import PollResult

START_SPREAD = 5.0  # seconds over which first polls are spread
TOLERANCE = 0.1  # a job due this fraction of its interval early (or jitter late) stays put


class InlineExecutor(BaseExecutor):  # type: ignore[misc]
    """Runs each (synchronous, instant) job as a callback in the event loop's next turn; after
    ``shutdown`` the callbacks still queued do nothing. There is no task to cancel."""

    def start(self, scheduler: Any, alias: str) -> None:
        super().start(scheduler, alias)
        self._loop: asyncio.AbstractEventLoop = scheduler._eventloop
        self._stopped = False

    def shutdown(self, wait: bool = True) -> None:
        self._stopped = True

    def _do_submit_job(self, job: Any, run_times: list[datetime]) -> None:
        self._loop.call_soon(self._run, job, run_times)

    def _run(self, job: Any, run_times: list[datetime]) -> None:
        if self._stopped:
            return
        events = run_job(job, job._jobstore_alias, run_times, self._logger.name)
        self._run_job_success(job.id, events)


class FeedScheduler:
    def __init__(
        self,
        poller: Poller,
        feeds: Iterable[FeedConfig],
        *,
        jitter: float = 0.1,
        clock: Clock = utc_now,
        rand: random.Random | None = None,
    ) -> None:
        self.poller = poller
        self.feeds = list(feeds)
        self.jitter = jitter
        self.clock = clock
        self.rand = rand or random.Random()
        self.scheduler = AsyncIOScheduler(timezone="UTC", executors={"default": InlineExecutor()})
        self._stopped = False
        self.intervals = {f.name: f.interval for f in self.feeds}  # each job's trigger interval

    def job_specs(self) -> list[dict[str, object]]:
        """The job each feed gets (pure, so tests check it without running APScheduler)."""
        now = self.clock()
        specs: list[dict[str, object]] = []
        for feed in self.feeds:
            spread = min(START_SPREAD, feed.interval * max(self.jitter, 0.01))
            specs.append(
                {
                    "id": f"poll:{feed.name}",
                    "args": (feed.name,),
                    "trigger": self._trigger(feed.interval),
                    "next_run_time": now + timedelta(seconds=self.rand.uniform(0, spread)),
                    "coalesce": True,
                    "max_instances": 1,
                    "misfire_grace_time": max(1, int(feed.interval)),
                    "replace_existing": True,
                }
            )
        return specs

    def _trigger(self, interval: float) -> IntervalTrigger:
        jitter = interval * self.jitter if self.jitter else None
        return IntervalTrigger(seconds=interval, jitter=jitter, timezone="UTC")

    def _tick(self, name: str) -> None:
        if not self._stopped:
            self.poller.submit(name)

    def follow(self, result: PollResult) -> None:
        """Move the feed's job to when the poll says it is due next (see the docstring)."""
        if result.next_poll is None or self._stopped or not self.scheduler.running:
            return
        job_id = f"poll:{result.feed}"
        job = self.scheduler.get_job(job_id)
        if job is None:
            return
        changes: dict[str, object] = {}
        interval = self.intervals.get(result.feed, result.interval or 0.0)
        if result.interval is not None and result.interval != interval:
            interval = self.intervals[result.feed] = result.interval
            changes["trigger"] = self._trigger(interval)
            changes["misfire_grace_time"] = max(1, int(interval))
        due = max(result.next_poll, self.clock().timestamp())
        spread = interval * self.jitter
        at = job.next_run_time.timestamp() if job.next_run_time else None
        if changes or at is None or not due - TOLERANCE * interval <= at <= due + spread + 1:
            changes["next_run_time"] = datetime.fromtimestamp(
                due + self.rand.uniform(0, spread), UTC
            )
            self.scheduler.modify_job(job_id, **changes)

    def hurry(self, names: Iterable[str]) -> int:
        """Tick these feeds now (within the jitter) unless they are due sooner: a dead peer's
        feeds that now prefer this process (``daemon/poll/peers.py``). Returns how many moved."""
        if self._stopped or not self.scheduler.running:
            return 0
        now = self.clock().timestamp()
        moved = 0
        for name in names:
            job = self.scheduler.get_job(f"poll:{name}")
            spread = self.intervals.get(name, 0.0) * self.jitter
            if job is None or (job.next_run_time and job.next_run_time.timestamp() <= now + spread):
                continue
            at = datetime.fromtimestamp(now + self.rand.uniform(0, spread), UTC)
            self.scheduler.modify_job(job.id, next_run_time=at)
            moved += 1
        return moved

    def start(self) -> None:
        for spec in self.job_specs():
            self.scheduler.add_job(self._tick, **spec)
        self.poller.on_result.append(self.follow)
        self.scheduler.start()

    @property
    def running(self) -> bool:
        return bool(self.scheduler.running)

    def shutdown(self) -> None:
        """Stop firing jobs, at once (APScheduler stops in the loop's next turn; ticks queued
        meanwhile do nothing). Polls in flight belong to the poller, which drains them."""
        self._stopped = True
        if self.scheduler.running:
            self.scheduler.shutdown(wait=False)
