"""One poll of one feed: fetch → parse → normalise → new? → match → stories → publish → commit.

``Pipeline.run`` is the whole path for one feed; ``daemon/poll/poller.py`` decides when it runs (the
tasks in flight, leases and claims across processes, WebSub pushes). Every failure is a value
in the ``PollResult`` (``daemon/poll/result.py``); a feed that fails is backed off in its state
in Redis, and the next poll is planned from the feed's rhythm (``daemon/poll/rhythm.py``).
"""

from __future__ import annotations

import contextlib
import random
import time
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime, timedelta

from daemon.clock import Clock, utc_now
from daemon.config.load import FeedConfig
from daemon.errors import FeedError, FeedwatchError, StoreError
from daemon.fetch.client import Fetcher
from daemon.match.matcher import Matcher
from daemon.poll.decide import decide, next_poll_delay
from daemon.poll.health import FeedHealth
from daemon.poll.parse_pool import ParsePool
from daemon.poll.result import PollResult
from daemon.poll.rhythm import Rhythm, effective, observe, plan
from daemon.poll.state import Commit, FeedStore
from daemon.publish.alerting import StoryResult, StoryStage, build_alert, publish_plain, rule_finder
from daemon.publish.silence import Silences
from daemon.publish.stream import Publisher
from daemon.redis.sentinel import StateGuard
from daemon.types import Caching, FetchResult
from daemon.websub.service import WebSubService

# A scheduled poll is skipped when the feed was polled (by any process) less than this fraction
# of its effective interval ago: not due yet (e.g. a max-age). APScheduler's jitter can bring
# two ticks 0.8 intervals apart. Across processes, the claim (daemon/poll/leases.py) is stricter.
FRESH_FRACTION = 0.7
# Asked before a scheduled poll fetches: claim the feed for this interval (daemon/poll/poller.py);
# None when claimed, else when the claim opens to this process (epoch s).
Claim = Callable[[FeedConfig, datetime, float], Awaitable[float | None]]


class Pipeline:
    """The stages of a poll and what they need; no task or concurrency bookkeeping."""

    def __init__(
        self,
        *,
        fetcher: Fetcher,
        store: FeedStore,
        publisher: Publisher,
        matcher: Callable[[], Matcher],
        parser: ParsePool,
        default_notify: Sequence[str],
        max_backoff: float,
        clock: Clock = utc_now,
        guard: StateGuard | None = None,
        stories: StoryStage | None = None,
        silences: Silences | None = None,
        health: FeedHealth | None = None,
        websub: WebSubService | None = None,
    ) -> None:
        self.fetcher = fetcher
        self.store = store
        self.publisher = publisher
        self.matcher = matcher
        self.parser = parser
        self.default_notify = tuple(default_notify)
        self.max_backoff = max_backoff
        self.clock = clock
        self.guard = guard
        self.stories = stories  # None: one alert per (rule, feed, item), no stories
        self.silences = silences or (stories.silences if stories is not None else None)
        self.health = health  # None: no feed-health alerts
        self.websub = websub  # None: no WebSub discovery, pushes or slower fallback polling

    async def run(
        self,
        feed: FeedConfig,
        start: float,
        *,
        scheduled: bool,
        pushed: FetchResult | None = None,  # a WebSub push: its body instead of a fetch
        claim: Claim | None = None,
    ) -> PollResult:
        """One poll of ``feed``; ``start``: its ``perf_counter`` start (durations count from
        it). A ``scheduled`` poll is skipped when not due (``fresh``) or pushed by WebSub
        (``websub``), and asks ``claim`` last, just before its fetch."""
        name = feed.name
        try:
            state = await self.store.load(name)
            if self.guard is not None and not state.polled_before:
                # No state for this feed: new feed, or Redis lost everything? (cheap GET)
                await self.guard.check("poll")
        except StoreError as e:
            return PollResult(
                feed=name, outcome="error:store", error=str(e), duration=time.perf_counter() - start
            )
        now = self.clock()
        if pushed is None and state.next_after and now.timestamp() < state.next_after:
            return PollResult(
                feed=name,
                outcome="backoff",
                duration=time.perf_counter() - start,
                next_poll=state.next_after,
            )
        lo, hi = feed.bounds
        interval = effective(state.interval, base=feed.interval, lo=lo, hi=hi)
        if (
            scheduled
            and state.last_poll is not None
            and state.error_streak == 0
            and now.timestamp() - state.last_poll < interval * FRESH_FRACTION
        ):
            # Not due: polled (by any process on this Redis) within this interval.
            return PollResult(
                feed=name,
                outcome="fresh",
                duration=time.perf_counter() - start,
                next_poll=state.last_poll + interval,
                interval=interval,
            )
        if (
            scheduled
            and self.websub is not None
            and state.last_poll is not None
            and state.error_streak == 0
            and await self.websub.skip_poll(feed, now.timestamp() - state.last_poll)
        ):
            # WebSub pushes this feed: polled at the slower fallback interval.
            return PollResult(feed=name, outcome="websub", duration=time.perf_counter() - start)
        if claim is not None and (opens := await claim(feed, now, interval)) is not None:
            # Another process claimed it for this interval (daemon/poll/leases.py).
            return PollResult(
                feed=name,
                outcome="fresh",
                duration=time.perf_counter() - start,
                next_poll=opens,
                interval=interval,
            )

        try:
            t0 = time.perf_counter()
            fetched = pushed or await self.fetcher.fetch(name, feed.url, state.caching)
            fetch_s = None if pushed else time.perf_counter() - t0
            if fetched.not_modified:
                return await self._finish(
                    feed,
                    start,
                    "not_modified",
                    fetched.status,
                    0,
                    caching=fetched.caching,
                    failing=state.error_streak > 0,
                    fetch_seconds=fetch_s,
                    before=state.rhythm,
                    max_age=fetched.max_age,
                )
            if (
                pushed is None
                and state.polled_before
                and fetched.caching.body_hash == state.caching.body_hash
            ):
                return await self._finish(
                    feed,
                    start,
                    "unchanged",
                    fetched.status,
                    len(fetched.body),
                    caching=fetched.caching,
                    failing=state.error_streak > 0,
                    fetch_seconds=fetch_s,
                    before=state.rhythm,
                    max_age=fetched.max_age,
                )
            t0 = time.perf_counter()
            if self.websub is not None and pushed is None:
                items, links = await self.parser.parse_links(
                    name, fetched.body, fetched.headers, fetched.url, feed.tags
                )
                await self.websub.discovered(name, links)
            else:
                items = await self.parser.parse(
                    name, fetched.body, fetched.headers, fetched.url, feed.tags
                )
            parse_s = time.perf_counter() - t0
        except FeedError as e:
            if pushed is not None:  # a bad push says nothing about fetching the feed
                return PollResult(feed=name, outcome=f"error:{e.kind}", error=e.message)
            return await self._failed(feed, start, state.error_streak, e)

        try:
            ids = [i.id for i in items]
            seen = await self.store.seen_flags(name, ids)
            now = self.clock()
            decision = decide(
                items,
                seen,
                first_poll=not state.polled_before,
                backfill=feed.backfill,
                now=now,
                baseline=self.guard is not None and self.guard.baseline(name),
            )
            # Stories first: every new item, alertable or not (daemon/publish/alerting.py).
            stories = (
                await self.stories.assign(decision.new, now, alertable=decision.alertable)
                if self.stories
                else {}
            )
            matcher = self.matcher()
            matches = [
                (build_alert(rm, item, now=now, default_notify=self.default_notify), rm.rule)
                for item in decision.alertable
                for rm in matcher.match(item)
            ]
            matched = tuple(rule.id for _, rule in matches)
            if self.stories is not None:
                told = await self.stories.publish(
                    matches, decision.alertable, stories, rule_finder(matcher.ruleset.rules), now
                )
            else:
                told = await publish_plain(
                    self.publisher, self.silences, [a for a, _ in matches], now
                )
            entry_ids = tuple(o.entry_id for o in told.published if o.entry_id)
            alerted = tuple(o.candidate.rule_id for o in told.published if o.entry_id)
            if self.guard is not None and pushed is None:  # a push may hold only a few items
                self.guard.done(name)
            # Publication times (first-seen for undated items) teach the feed's rhythm.
            epoch = now.timestamp()
            times = [i.published.timestamp() if i.published else epoch for i in decision.new]
            return await self._finish(
                feed,
                start,
                "ok" if pushed is None else "pushed",
                fetched.status,
                len(fetched.body),
                caching=fetched.caching,
                failing=state.error_streak > 0 and pushed is None,
                present_ids=ids,
                new=len(decision.new),
                items=len(items),
                alerts=len(entry_ids),
                published=entry_ids,
                overflow=decision.overflow,
                matched=matched,
                alerted=alerted,
                fetch_seconds=fetch_s,
                parse_seconds=parse_s,
                told=told,
                before=state.rhythm,
                rhythm=observe(state.rhythm, times, epoch, overflow=decision.overflow),
                max_age=fetched.max_age,
            )
        except StoreError as e:
            return PollResult(
                feed=name, outcome="error:store", error=str(e), duration=time.perf_counter() - start
            )

    async def _finish(
        self,
        feed: FeedConfig,
        start: float,
        outcome: str,
        status: int | None,
        nbytes: int,
        *,
        caching: Caching | None = None,
        present_ids: Sequence[str] = (),
        new: int = 0,
        items: int = 0,
        alerts: int = 0,
        published: tuple[str, ...] = (),
        overflow: bool = False,
        matched: tuple[str, ...] = (),
        alerted: tuple[str, ...] = (),
        fetch_seconds: float | None = None,
        parse_seconds: float | None = None,
        told: StoryResult | None = None,
        failing: bool = False,
        before: Rhythm | None = None,
        rhythm: Rhythm | None = None,
        max_age: float | None = None,
    ) -> PollResult:
        now = self.clock()
        if failing and self.health is not None:
            await self.health.recovered(feed.name)
        before = before or Rhythm()
        rhythm = rhythm or before
        lo, hi = feed.bounds
        due = plan(
            rhythm,
            now.timestamp(),
            base=feed.interval,
            lo=lo,
            hi=hi,
            max_age=max_age,
            overflow=overflow,
        )
        if self.health is not None:
            rhythm, quiet_entry = await self.health.watch(feed, before, rhythm, now)
            if quiet_entry:
                alerts += 1
                published = (*published, quiet_entry)
                alerted = (*alerted, "feed-health")
        await self.store.commit(
            feed.name,
            Commit(
                outcome=outcome,
                now=now,
                caching=caching,
                error_streak=0,
                next_after=0.0,
                present_ids=present_ids,
                new_count=new,
                rhythm=rhythm,
                interval=due.interval,
                interval_reason=due.reason,
                push=outcome == "pushed",
            ),
        )
        return PollResult(
            feed=feed.name,
            outcome=outcome,
            status=status,
            bytes=nbytes,
            items=items,
            new=new,
            alerts=alerts,
            duration=time.perf_counter() - start,
            published=published,
            overflow=overflow,
            fetch_seconds=fetch_seconds,
            parse_seconds=parse_seconds,
            matched=matched,
            alerted=alerted,
            held=told.held if told else 0,
            throttled=told.throttled if told else 0,
            silenced=told.silenced if told else 0,
            next_poll=now.timestamp() + due.interval,
            interval=due.interval,
            interval_reason=due.reason,
        )

    async def _failed(
        self, feed: FeedConfig, start: float, streak: int, e: FeedError
    ) -> PollResult:
        now = self.clock()
        retry_after = getattr(e, "retry_after", None)
        delay = next_poll_delay(
            feed.interval, streak + 1, max_backoff=self.max_backoff, retry_after=retry_after
        )
        # Jitter the retry so feeds that failed together do not retry together.
        delay *= random.uniform(0.9, 1.1)
        next_after = (now + timedelta(seconds=delay)).timestamp()
        status = getattr(e, "status", None)
        try:
            await self.store.commit(
                feed.name,
                Commit(
                    outcome=f"error:{e.kind}",
                    now=now,
                    error=e.message,
                    error_streak=streak + 1,
                    next_after=next_after,
                ),
            )
        except FeedwatchError:
            pass  # Redis down as well: the feed error is what we report
        entry: str | None = None
        if self.health is not None:
            with contextlib.suppress(FeedwatchError):
                entry = await self.health.failed(feed, e, streak + 1, now)
        return PollResult(
            feed=feed.name,
            outcome=f"error:{e.kind}",
            status=status,
            error=e.message,
            duration=time.perf_counter() - start,
            alerts=1 if entry else 0,
            published=(entry,) if entry else (),
            alerted=("feed-health",) if entry else (),
            next_poll=next_after,
        )
