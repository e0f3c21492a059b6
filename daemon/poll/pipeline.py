"""One poll of one feed: fetch → parse → normalise → new? → match → stories → publish → commit.

``Pipeline.run`` is the whole path for one feed, and reads as it: ``_load`` the feed's state,
``_skip`` it when not due, ``_fetch`` (a conditional GET, or a WebSub push's body), stop early
when not modified or ``_unchanged``, ``_parse`` off the event loop, ``_process`` the items (new?
→ stories → match → publish, in ``_alert``), and ``_finish`` (plan the next poll, watch the
feed's health, commit its state); a ``FeedError`` goes to ``_failed`` (backoff). Each step takes
and returns values: ``Poll`` (the inputs), ``FeedState``, ``Fetched``, ``Processed``.

``daemon/poll/poller.py`` decides when it runs (the tasks in flight, leases and claims across
processes, WebSub pushes). Every failure is a value in the ``PollResult``
(``daemon/poll/result.py``); a feed that fails is backed off in its state in Redis, and the next
poll is planned from the feed's rhythm (``daemon/poll/rhythm.py``).
"""

from __future__ import annotations

import contextlib
import random
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from daemon.clock import Clock, utc_now
from daemon.config.load import FeedConfig
from daemon.errors import FeedError, FeedwatchError, StoreError
from daemon.fetch.client import Fetcher
from daemon.match.matcher import Matcher
from daemon.poll.archive import Archive
from daemon.poll.decide import Decision, decide, next_poll_delay
from daemon.poll.health import FeedHealth
from daemon.poll.parse_pool import ParsePool
from daemon.poll.result import PollResult
from daemon.poll.rhythm import Rhythm, effective, observe, plan
from daemon.poll.state import Commit, FeedState, FeedStore
from daemon.publish.alerting import StoryResult, StoryStage, build_alert, publish_plain, rule_finder
from daemon.publish.silence import Silences
from daemon.publish.stream import Publisher
from daemon.redis.sentinel import StateGuard
from daemon.types import FetchResult, Item
from daemon.websub.service import WebSubService

# A scheduled poll is skipped when the feed was polled (by any process) less than this fraction
# of its effective interval ago: not due yet (e.g. a max-age). APScheduler's jitter can bring
# two ticks 0.8 intervals apart. Across processes, the claim (daemon/poll/leases.py) is stricter.
FRESH_FRACTION = 0.7
# Asked before a scheduled poll fetches: claim the feed for this interval (daemon/poll/poller.py);
# None when claimed, else when the claim opens to this process (epoch s).
Claim = Callable[[FeedConfig, datetime, float], Awaitable[float | None]]


@dataclass(frozen=True, slots=True)
class Poll:
    """One poll's inputs: the feed, when it started, and how it was asked for."""

    feed: FeedConfig
    start: float  # perf_counter at the start: durations count from it
    scheduled: bool
    pushed: FetchResult | None = None  # a WebSub push: its body instead of a fetch
    claim: Claim | None = None

    def result(self, outcome: str, **fields: Any) -> PollResult:
        """The poll's result, timed from its start."""
        return PollResult(
            feed=self.feed.name,
            outcome=outcome,
            duration=time.perf_counter() - self.start,
            **fields,
        )


@dataclass(frozen=True, slots=True)
class Fetched:
    """What the fetch and parse steps produced (no items before the parse)."""

    result: FetchResult
    fetch_seconds: float | None  # None for a push
    items: tuple[Item, ...] = ()
    parse_seconds: float | None = None


@dataclass(frozen=True, slots=True)
class Processed:
    """What the new?, stories, match and publish steps did with the items."""

    present_ids: Sequence[str] = ()
    new: int = 0
    items: int = 0
    alerts: int = 0
    published: tuple[str, ...] = ()
    overflow: bool = False
    matched: tuple[str, ...] = ()
    alerted: tuple[str, ...] = ()
    told: StoryResult | None = None
    rhythm: Rhythm | None = None


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
        archive: Archive | None = None,
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
        self.archive = archive  # None: new items are not archived (feedwatch backtest)

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
        poll = Poll(feed, start, scheduled, pushed, claim)
        try:
            state = await self._load(poll)
            if (skipped := await self._skip(poll, state)) is not None:
                return skipped
            try:
                fetched = await self._fetch(poll, state)
                if fetched.result.not_modified:
                    return await self._finish(poll, state, "not_modified", fetched)
                if self._unchanged(poll, state, fetched):
                    return await self._finish(poll, state, "unchanged", fetched)
                fetched = await self._parse(poll, fetched)
            except FeedError as e:
                if pushed is not None:  # a bad push says nothing about fetching the feed
                    return PollResult(feed=feed.name, outcome=f"error:{e.kind}", error=e.message)
                return await self._failed(poll, state.error_streak, e)
            processed = await self._process(poll, state, fetched)
            outcome = "ok" if pushed is None else "pushed"
            return await self._finish(poll, state, outcome, fetched, processed)
        except StoreError as e:
            return poll.result("error:store", error=str(e))

    # -- the steps, in the order run takes them ----------------------------------------------

    async def _load(self, poll: Poll) -> FeedState:
        """The feed's state in Redis; a feed with none asks the sentinel whether Redis lost
        everything (one cheap GET)."""
        state = await self.store.load(poll.feed.name)
        if self.guard is not None and not state.polled_before:
            await self.guard.check("poll")
        return state

    async def _skip(self, poll: Poll, state: FeedState) -> PollResult | None:
        """Why not to fetch now (backoff, not due, pushed by WebSub, claimed by another
        process), or None to go on."""
        feed, now = poll.feed, self.clock()
        if poll.pushed is None and state.next_after and now.timestamp() < state.next_after:
            return poll.result("backoff", next_poll=state.next_after)
        lo, hi = feed.bounds
        interval = effective(state.interval, base=feed.interval, lo=lo, hi=hi)
        settled = state.last_poll is not None and state.error_streak == 0
        since = now.timestamp() - (state.last_poll or 0.0)
        if poll.scheduled and settled and since < interval * FRESH_FRACTION:
            # Not due: polled (by any process on this Redis) within this interval.
            assert state.last_poll is not None
            return poll.result("fresh", next_poll=state.last_poll + interval, interval=interval)
        if (
            poll.scheduled
            and settled
            and self.websub is not None
            and await self.websub.skip_poll(feed, since)
        ):
            # WebSub pushes this feed: polled at the slower fallback interval.
            return poll.result("websub")
        if poll.claim is not None and (opens := await poll.claim(feed, now, interval)) is not None:
            # Another process claimed it for this interval (daemon/poll/leases.py).
            return poll.result("fresh", next_poll=opens, interval=interval)
        return None

    async def _fetch(self, poll: Poll, state: FeedState) -> Fetched:
        """The body: a push's, or a conditional GET with the last poll's validators."""
        if poll.pushed is not None:
            return Fetched(poll.pushed, fetch_seconds=None)
        t0 = time.perf_counter()
        result = await self.fetcher.fetch(poll.feed.name, poll.feed.url, state.caching)
        return Fetched(result, fetch_seconds=time.perf_counter() - t0)

    def _unchanged(self, poll: Poll, state: FeedState, fetched: Fetched) -> bool:
        """The same bytes as last time (a server that ignores conditional requests)."""
        return (
            poll.pushed is None
            and state.polled_before
            and fetched.result.caching.body_hash == state.caching.body_hash
        )

    async def _parse(self, poll: Poll, fetched: Fetched) -> Fetched:
        """The items, parsed off the event loop; a polled feed's WebSub links are noted."""
        feed, body = poll.feed, fetched.result
        t0 = time.perf_counter()
        if self.websub is not None and poll.pushed is None:
            items, links = await self.parser.parse_links(
                feed.name, body.body, body.headers, body.url, feed.tags
            )
            await self.websub.discovered(feed.name, links)
        else:
            items = await self.parser.parse(feed.name, body.body, body.headers, body.url, feed.tags)
        return replace(fetched, items=tuple(items), parse_seconds=time.perf_counter() - t0)

    async def _process(self, poll: Poll, state: FeedState, fetched: Fetched) -> Processed:
        """new? → stories → match → publish, and what the new items teach the feed's rhythm."""
        name, items = poll.feed.name, fetched.items
        ids = [i.id for i in items]
        seen = await self.store.seen_flags(name, ids)
        now = self.clock()
        decision = decide(
            items,
            seen,
            first_poll=not state.polled_before,
            backfill=poll.feed.backfill,
            now=now,
            baseline=self.guard is not None and self.guard.baseline(name),
        )
        told, matched = await self._alert(decision, now, poll.feed.publisher)
        # The rules one item raised alerts for share one message (daemon/publish/stream.py).
        entry_ids = tuple(dict.fromkeys(o.entry_id for o in told.published if o.entry_id))
        if self.guard is not None and poll.pushed is None:  # a push may hold only a few items
            self.guard.done(name)
        # Publication times (first-seen for undated items) teach the feed's rhythm.
        epoch = now.timestamp()
        times = [i.published.timestamp() if i.published else epoch for i in decision.new]
        return Processed(
            present_ids=ids,
            new=len(decision.new),
            items=len(items),
            alerts=len(entry_ids),
            published=entry_ids,
            overflow=decision.overflow,
            matched=matched,
            alerted=tuple(o.candidate.rule_id for o in told.published if o.entry_id),
            told=told,
            rhythm=observe(state.rhythm, times, epoch, overflow=decision.overflow),
        )

    async def _alert(
        self, decision: Decision, now: datetime, publisher: str | None = None
    ) -> tuple[StoryResult, tuple[str, ...]]:
        """Stories first (every new item, alertable or not: daemon/publish/alerting.py), then
        the matches of the alertable items, published; also a rule id per match."""
        stories = (
            await self.stories.assign(
                decision.new, now, alertable=decision.alertable, publisher_of=publisher
            )
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
            told = await publish_plain(self.publisher, self.silences, [a for a, _ in matches], now)
        if self.archive is not None:  # every new item, with its story; never fails the poll
            await self.archive.add(decision.new, now, stories)
        return told, matched

    async def _finish(
        self,
        poll: Poll,
        state: FeedState,
        outcome: str,
        fetched: Fetched,
        done: Processed | None = None,
    ) -> PollResult:
        """Plan the next poll from the rhythm, watch the feed's health, commit the state."""
        feed, now, done = poll.feed, self.clock(), done or Processed()
        if state.error_streak > 0 and outcome != "pushed" and self.health is not None:
            await self.health.recovered(feed.name)
        before = state.rhythm or Rhythm()
        rhythm = done.rhythm or before
        lo, hi = feed.bounds
        due = plan(
            rhythm,
            now.timestamp(),
            base=feed.interval,
            lo=lo,
            hi=hi,
            max_age=fetched.result.max_age,
            overflow=done.overflow,
        )
        alerts, published, alerted = done.alerts, done.published, done.alerted
        if self.health is not None:
            rhythm, quiet_entry = await self.health.watch(feed, before, rhythm, now)
            if quiet_entry:
                alerts += 1
                published = (*published, quiet_entry)
                alerted = (*alerted, "feed-health")
        result = fetched.result
        await self.store.commit(
            feed.name,
            Commit(
                outcome=outcome,
                now=now,
                caching=result.caching,
                error_streak=0,
                next_after=0.0,
                present_ids=done.present_ids,
                new_count=done.new,
                rhythm=rhythm,
                interval=due.interval,
                interval_reason=due.reason,
                push=outcome == "pushed",
            ),
        )
        told = done.told
        return poll.result(
            outcome,
            status=result.status,
            bytes=0 if result.not_modified else len(result.body),
            items=done.items,
            new=done.new,
            alerts=alerts,
            published=published,
            overflow=done.overflow,
            fetch_seconds=fetched.fetch_seconds,
            parse_seconds=fetched.parse_seconds,
            matched=done.matched,
            alerted=alerted,
            held=told.held if told else 0,
            throttled=told.throttled if told else 0,
            silenced=told.silenced if told else 0,
            next_poll=now.timestamp() + due.interval,
            interval=due.interval,
            interval_reason=due.reason,
        )

    async def _failed(self, poll: Poll, streak: int, e: FeedError) -> PollResult:
        """Back off: the next poll after a jittered delay, the error in the feed's state, and a
        feed-health alert when it has failed for long enough."""
        feed, now = poll.feed, self.clock()
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
        return poll.result(
            f"error:{e.kind}",
            status=status,
            error=e.message,
            alerts=1 if entry else 0,
            published=(entry,) if entry else (),
            alerted=("feed-health",) if entry else (),
            next_poll=next_after,
        )
