"""Two-stage shutdown (arq, APScheduler v4): the first signal drains, the second cancels.

1. first SIGINT/SIGTERM: ``stop`` is set; the scheduler stops firing, the consumer stops
   reading, and the polls and deliveries in flight get ``grace`` seconds to finish;
2. a second signal (or the grace running out) sets ``force``: what still runs is cancelled at
   once, and the daemon waits for it to end before it closes anything. Final writes are
   shielded and bounded (``daemon/redis/shielded.py``), so a cancelled poll ends within
   ``COMMIT_TIMEOUT``; an unacked alert stays pending in the stream for the next start.

Nothing is lost and the exit is clean (code 0, no traceback, no "never retrieved").
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Coroutine

from daemon.errors import FeedwatchError
from daemon.logging import log
from daemon.poll.poller import Poller
from daemon.redis.shielded import COMMIT_TIMEOUT

logger = logging.getLogger("daemon.runtime")


class TwoStage:
    """The shutdown's two events and the bounded waits cut short by the second one."""

    def __init__(self, grace: float) -> None:
        self.grace = grace
        self.stop = asyncio.Event()  # the first signal: drain
        self.force = asyncio.Event()  # a second signal: cancel what runs, now
        self.signals = 0

    def on_signal(self, signame: str) -> None:
        self.signals += 1
        if self.signals == 1:
            log(logger, "shutdown", signal=signame, grace_s=self.grace)
            self.stop.set()
        else:
            log(logger, "shutdown", signal=signame, note="second signal: cancelling now")
            self.force.set()

    async def unless_forced(self, waiting: Coroutine[object, object, bool]) -> bool:
        """``await waiting`` (a bounded wait that says whether everything ended), cut short by
        a second signal: then False."""
        job = asyncio.ensure_future(waiting)
        force = asyncio.ensure_future(self.force.wait())
        try:
            await asyncio.wait([job, force], return_when=asyncio.FIRST_COMPLETED)
        finally:
            force.cancel()
            job.cancel()
        return job.done() and not job.cancelled() and job.result()

    async def drain(self, poller: Poller) -> None:
        """Let the polls in flight finish within the grace (less after a second signal), then
        cancel the rest and wait for their (bounded) final writes, so none runs on while the
        fetcher and Redis close under it."""
        if await self.unless_forced(poller.drain(self.grace)):
            return
        log(
            logger,
            "shutdown",
            level=logging.WARNING,
            note="polls cancelled (grace period over, or a second signal)",
            in_flight=poller.in_flight,
        )
        poller.cancel()
        await poller.drain(COMMIT_TIMEOUT + 1)

    async def finish(self, task: asyncio.Task[None], grace: float) -> None:
        """Give ``task`` up to ``grace`` s (less after a second signal), then cancel it and wait
        for it to end."""

        async def ended() -> bool:
            done, _ = await asyncio.wait([task], timeout=grace)
            return bool(done)

        if not await self.unless_forced(ended()):
            task.cancel()
        with contextlib.suppress(asyncio.CancelledError, FeedwatchError):
            await task
