"""APScheduler jobs: one per feed, jittered, no overlap; a tick only hands work to the poller."""

from __future__ import annotations

import asyncio
import logging
import random
from datetime import UTC, datetime, timedelta

import pytest

from daemon.config.load import FeedConfig
from daemon.poll.result import PollResult
from daemon.poll.scheduling import START_SPREAD, FeedScheduler

NOW = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)


class StubPoller:
    """Records what the scheduler hands over (the scheduler's only collaborator)."""

    def __init__(self) -> None:
        self.submitted: list[str] = []
        self.on_result: list[object] = []

    def submit(self, name: str) -> bool:
        self.submitted.append(name)
        return True


def make(feeds: list[FeedConfig], jitter: float = 0.1) -> tuple[FeedScheduler, StubPoller]:
    poller = StubPoller()
    sched = FeedScheduler(
        poller,
        feeds,
        jitter=jitter,
        clock=lambda: NOW,  # type: ignore[arg-type]
        rand=random.Random(7),
    )
    return sched, poller


def test_one_job_per_feed_with_interval_jitter_and_no_overlap() -> None:
    """Each feed gets an interval job at its own interval, jittered, coalesced, one at a time."""
    feeds = [
        FeedConfig(name="a", url="http://x/a", interval=300.0),
        FeedConfig(name="b", url="http://x/b", interval=90.0),
    ]
    sched, _ = make(feeds)
    specs = sched.job_specs()
    assert [s["id"] for s in specs] == ["poll:a", "poll:b"]
    for spec, feed in zip(specs, feeds, strict=True):
        trigger = spec["trigger"]
        assert trigger.interval == timedelta(seconds=feed.interval)  # type: ignore[attr-defined]
        assert trigger.jitter == feed.interval * 0.1  # type: ignore[attr-defined]
        assert spec["coalesce"] is True and spec["max_instances"] == 1
        first = spec["next_run_time"]
        assert NOW <= first <= NOW + timedelta(seconds=START_SPREAD)  # type: ignore[operator]
    assert specs[0]["next_run_time"] != specs[1]["next_run_time"]


def test_no_jitter_means_none() -> None:
    """jitter 0 gives an exact interval."""
    sched, _ = make([FeedConfig(name="a", url="http://x/a", interval=60.0)], jitter=0)
    assert sched.job_specs()[0]["trigger"].jitter is None  # type: ignore[attr-defined]


def test_tick_only_submits() -> None:
    """A job body hands the feed to the poller and returns."""
    sched, poller = make([FeedConfig(name="a", url="http://x/a", interval=60.0)])
    sched._tick("a")
    assert poller.submitted == ["a"]


@pytest.mark.parametrize("turns", [0, 1])
async def test_shutdown_with_ticks_queued_logs_no_error(
    caplog: pytest.LogCaptureFixture, turns: int
) -> None:
    """Ticks due when the scheduler stops (about to fire: 0 loop turns after the start; fired
    and queued: 1) are dropped quietly: no poll submitted after the stop, and no CancelledError
    logged at ERROR (APScheduler's asyncio executor cancels its queued job tasks and does)."""
    poller = StubPoller()
    past = datetime.now(UTC) - timedelta(seconds=30)  # every first tick is due
    feeds = [FeedConfig(name=f"f{i}", url=f"http://x/{i}", interval=300.0) for i in range(20)]
    sched = FeedScheduler(poller, feeds, clock=lambda: past, rand=random.Random(7))  # type: ignore[arg-type]
    sched.start()
    for _ in range(turns):
        await asyncio.sleep(0)  # the scheduler wakes up and fires the due ticks
    sched.shutdown()
    for _ in range(5):
        await asyncio.sleep(0)
    assert poller.submitted == []
    assert [r for r in caplog.records if r.levelno >= logging.ERROR] == []


async def test_ticks_run_on_the_event_loop() -> None:
    """A due tick reaches the poller (from the loop thread: Poller.submit needs its loop)."""
    poller = StubPoller()
    past = datetime.now(UTC) - timedelta(seconds=30)
    feeds = [FeedConfig(name="a", url="http://x/a", interval=300.0)]
    sched = FeedScheduler(poller, feeds, clock=lambda: past, rand=random.Random(7))  # type: ignore[arg-type]
    sched.start()
    try:
        for _ in range(5):
            await asyncio.sleep(0)
    finally:
        sched.shutdown()
    assert poller.submitted == ["a"]


async def test_hurry_ticks_gained_feeds_now() -> None:
    """A dead peer's feeds (daemon/poll/peers.py): their jobs move to now, within the jitter; a
    job due sooner than that stays, and unknown feeds are ignored."""
    feeds = [FeedConfig(name=n, url=f"http://x/{n}", interval=600.0) for n in ("a", "b", "c")]
    sched, _poller = make(feeds, jitter=0.1)
    sched.start()
    try:
        t = NOW.timestamp()
        for name, due in (("a", t + 900), ("b", t)):
            sched.follow(PollResult(feed=name, outcome="fresh", next_poll=due, interval=600.0))
        b_at = sched.scheduler.get_job("poll:b").next_run_time
        assert sched.hurry(["a", "b", "gone"]) == 1
        assert t <= sched.scheduler.get_job("poll:a").next_run_time.timestamp() <= t + 60
        assert sched.scheduler.get_job("poll:b").next_run_time == b_at
    finally:
        sched.shutdown()
    assert sched.hurry(["c"]) == 0  # stopped: nothing moves


async def test_follow_moves_the_job_to_the_effective_interval() -> None:
    """A poll's next_poll/interval move the feed's job (and its trigger when the interval
    changed); a job already due then is left alone; a skipped poll that says nothing does
    nothing. APScheduler runs for real; NOW is in the future, so no job fires."""
    sched, poller = make([FeedConfig(name="a", url="http://x/a", interval=600.0)], jitter=0.1)
    sched.start()
    try:
        assert poller.on_result == [sched.follow]
        job = sched.scheduler.get_job("poll:a")
        t = NOW.timestamp()
        sched.follow(PollResult(feed="a", outcome="ok", next_poll=t + 120, interval=120.0))
        assert job.trigger.interval == timedelta(seconds=120)
        assert t + 120 <= job.next_run_time.timestamp() <= t + 120 + 12
        assert job.misfire_grace_time == 120
        moved = job.next_run_time
        # Due at (about) the same time, same interval: not touched.
        sched.follow(PollResult(feed="a", outcome="fresh", next_poll=t + 125, interval=120.0))
        assert job.next_run_time == moved
        # A backoff (no interval): moved to its end, trigger kept.
        sched.follow(PollResult(feed="a", outcome="backoff", next_poll=t + 3600))
        assert t + 3600 <= job.next_run_time.timestamp() <= t + 3612
        assert job.trigger.interval == timedelta(seconds=120)
        # Leased (the other process polls it): nothing to follow.
        before = job.next_run_time
        sched.follow(PollResult(feed="a", outcome="leased"))
        sched.follow(PollResult(feed="gone", outcome="ok", next_poll=t + 60, interval=60.0))
        assert job.next_run_time == before
        # A due time in the past is "now" (the injected clock), not earlier.
        sched.follow(PollResult(feed="a", outcome="ok", next_poll=t - 999, interval=3600.0))
        assert t <= job.next_run_time.timestamp() <= t + 360
    finally:
        sched.shutdown()
