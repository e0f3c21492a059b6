"""APScheduler 3.x adapter: one interval job per feed, which only hands the feed to the poller.

Jobs run on the asyncio executor as coroutines that call ``Poller.submit`` and return at once,
so APScheduler's shutdown (which cancels running coroutine jobs and cannot wait) never cuts a
poll in half: the poller owns and drains what is in flight. ``max_instances=1`` and
``coalesce=True`` keep a slow feed from piling up ticks; the poller also refuses a second
concurrent poll of one feed. Jitter spreads feeds with equal intervals, and first polls are
staggered over the first seconds so a restart does not fire every feed at once.
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from datetime import timedelta

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.interval import IntervalTrigger

from daemon.clock import Clock, utc_now
from daemon.config import FeedConfig
from daemon.pipeline import Poller

START_SPREAD = 5.0  # seconds over which first polls are spread


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
        self.scheduler = AsyncIOScheduler(timezone="UTC")

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
                    "trigger": IntervalTrigger(
                        seconds=feed.interval,
                        jitter=feed.interval * self.jitter if self.jitter else None,
                        timezone="UTC",
                    ),
                    "next_run_time": now + timedelta(seconds=self.rand.uniform(0, spread)),
                    "coalesce": True,
                    "max_instances": 1,
                    "misfire_grace_time": max(1, int(feed.interval)),
                    "replace_existing": True,
                }
            )
        return specs

    async def _tick(self, name: str) -> None:
        self.poller.submit(name)

    def start(self) -> None:
        for spec in self.job_specs():
            self.scheduler.add_job(self._tick, **spec)
        self.scheduler.start()

    @property
    def running(self) -> bool:
        return bool(self.scheduler.running)

    def shutdown(self) -> None:
        """Stop firing jobs. Polls in flight belong to the poller, which drains them."""
        if self.scheduler.running:
            self.scheduler.shutdown(wait=False)
