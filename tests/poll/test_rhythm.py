"""The pure rhythm model (daemon/poll/rhythm.py): learning gaps, the next interval, quiet episodes.

Time is plain epoch seconds passed in (the injected clock); nothing here sleeps or reads a
clock.
"""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from daemon.poll.rhythm import (
    GAPS,
    MERGE,
    MIN_SPAN_QUIET,
    Rhythm,
    decayed_peak,
    decode,
    effective,
    encode,
    mark_alerted,
    observe,
    plan,
    quiet,
    quiet_due,
)

T0 = 1_790_000_000.0
MIN, HOUR, DAY = 60.0, 3600.0, 86400.0


def regular(every: float, count: int, start: float = T0) -> tuple[Rhythm, float]:
    """A feed that published every ``every`` s, polled after each item; (rhythm, now)."""
    r, now = Rhythm(), start
    for i in range(count):
        now = start + i * every
        r = observe(r, [now], now)
    return r, now


# -- learning ---------------------------------------------------------------------------------


def test_gaps_come_from_publication_times_in_order() -> None:
    """One poll with several dated items learns every gap between them, oldest first."""
    r = observe(Rhythm(), [T0 + 3 * HOUR, T0, T0 + HOUR], T0 + 4 * HOUR)
    assert (r.last, r.since, r.gaps) == (T0 + 3 * HOUR, T0, (HOUR, 2 * HOUR))
    assert r.peak == 2 * HOUR


def test_batches_are_one_publication_and_late_items_teach_nothing() -> None:
    """Items within MERGE of each other are one publication; items dated before the last
    known one (late, back-dated) add no gap; future dates count as now."""
    r = observe(Rhythm(), [T0, T0 + 10, T0 + 20], T0 + 30)
    assert (r.last, r.gaps) == (T0, ())
    r = observe(r, [T0 - HOUR, T0 + MERGE / 2], T0 + HOUR)
    assert (r.last, r.gaps, r.since) == (T0, (), T0 - HOUR)
    r = observe(r, [T0 + 9 * DAY], T0 + 2 * HOUR)
    assert (r.last, r.gaps) == (T0 + 2 * HOUR, (2 * HOUR,))


def test_overflow_does_not_learn_the_gap_to_the_missed_items() -> None:
    """Every item new: items were missed between the last known one and these."""
    r, now = regular(HOUR, 3)
    r2 = observe(r, [now + 5 * HOUR, now + 6 * HOUR], now + 6 * HOUR, overflow=True)
    assert r2.gaps == (*r.gaps, HOUR)


def test_a_publication_ends_the_quiet_episode() -> None:
    r = mark_alerted(regular(HOUR, 3)[0])
    assert r.alerted == r.last
    assert observe(r, [r.last + DAY], r.last + DAY).alerted is None  # type: ignore[operator]
    assert observe(r, [r.last - 1], r.last + DAY).alerted == r.alerted  # type: ignore[operator]


def test_a_silence_that_alerted_does_not_raise_the_peak() -> None:
    """The gap that ends an alerted quiet episode is learnt, but not as the feed's longest
    lull, so the next episode alerts as soon as the first did."""
    r, now = regular(HOUR, 8 * 24)
    later = now + 3 * DAY
    resumed = observe(mark_alerted(r), [later], later)
    assert resumed.gaps[-1] == 3 * DAY and resumed.peak == decayed_peak(r, later)
    unflagged = observe(r, [later], later)
    assert unflagged.peak == 3 * DAY


times = st.lists(st.floats(min_value=T0 - 30 * DAY, max_value=T0 + 30 * DAY), max_size=40)


@given(st.lists(times, max_size=12), st.booleans())
def test_memory_stays_bounded_and_consistent(polls: list[list[float]], overflow: bool) -> None:
    """Whatever the polls bring: at most GAPS gaps, each at least MERGE, ``last`` never goes
    back, and nothing is dated after the poll."""
    r, now = Rhythm(), T0
    for i, ts in enumerate(polls):
        now = T0 + i * HOUR
        before = r.last
        r = observe(r, ts, now, overflow=overflow)
        assert len(r.gaps) <= GAPS and all(g >= MERGE for g in r.gaps)
        if before is not None:
            assert r.last is not None and r.last >= before
        assert r.last is None or r.last <= now
        assert r.since is None or r.last is None or r.since <= r.last


# -- the next interval ------------------------------------------------------------------------


def test_fixed_when_no_bounds_are_configured() -> None:
    r, now = regular(MIN, 20)
    assert plan(r, now, base=600, lo=600, hi=600, max_age=3600, overflow=True) == (
        plan(Rhythm(), now, base=600, lo=600, hi=600)
    )
    assert plan(r, now, base=600, lo=600, hi=600).reason == "fixed"


def test_base_interval_until_there_is_a_rhythm() -> None:
    r, now = regular(MIN, 3)  # two gaps: not enough
    p = plan(r, now, base=600, lo=60, hi=3600)
    assert (p.interval, p.reason) == (600, "base")


def test_interval_shrinks_for_busy_feeds_and_grows_with_silence() -> None:
    """Two polls per usual gap; once silent for longer than usual, a quarter of the silence;
    always within [lo, hi]."""
    r, now = regular(10 * MIN, 10)
    assert plan(r, now, base=600, lo=60, hi=3600) == plan(
        r, now + 5 * MIN, base=600, lo=60, hi=3600
    )
    p = plan(r, now, base=600, lo=60, hi=3600)
    assert (p.interval, p.reason) == (5 * MIN, "rhythm")
    assert plan(r, now + 2 * HOUR, base=600, lo=60, hi=3600).interval == 30 * MIN
    assert plan(r, now + 8 * HOUR, base=600, lo=60, hi=3600).interval == HOUR  # capped
    busy, t = regular(30, 10)  # every 30 s: merged into one publication per minute
    assert plan(busy, t, base=600, lo=90, hi=3600).interval == 90  # floor


def test_overflow_polls_at_the_floor_and_max_age_is_a_floor_capped_at_hi() -> None:
    r, now = regular(HOUR, 10)
    assert plan(r, now, base=600, lo=60, hi=7200, overflow=True).interval == 60
    p = plan(r, now, base=600, lo=60, hi=7200, max_age=3 * HOUR)
    assert (p.interval, p.reason) == (7200, "max-age")
    p = plan(r, now, base=600, lo=60, hi=7200, max_age=HOUR, overflow=True)
    assert (p.interval, p.reason) == (HOUR, "max-age")  # never sooner than the server allows
    assert plan(r, now, base=600, lo=60, hi=7200, max_age=60).reason == "rhythm"


rhythms = st.builds(
    lambda gaps, last, peak: Rhythm(last=last, since=T0 - 30 * DAY, gaps=tuple(gaps), peak=peak),
    st.lists(st.floats(min_value=MERGE, max_value=30 * DAY), max_size=GAPS),
    st.one_of(st.none(), st.floats(min_value=T0 - 30 * DAY, max_value=T0)),
    st.floats(min_value=0, max_value=60 * DAY),
)


@given(
    rhythms,
    st.floats(min_value=0, max_value=60 * DAY),
    st.floats(min_value=1, max_value=DAY),
    st.floats(min_value=1, max_value=DAY),
    st.one_of(st.none(), st.floats(min_value=0, max_value=10 * DAY)),
    st.booleans(),
)
def test_interval_always_within_bounds_and_never_before_max_age(
    r: Rhythm, later: float, a: float, b: float, max_age: float | None, overflow: bool
) -> None:
    lo, hi = min(a, b), max(a, b)
    base = (lo + hi) / 2
    p = plan(r, T0 + later, base=base, lo=lo, hi=hi, max_age=max_age, overflow=overflow)
    assert lo <= p.interval <= hi
    if max_age is not None and lo < hi:
        assert p.interval >= min(max_age, hi)


def test_effective_interval_is_kept_within_the_current_bounds() -> None:
    assert effective(None, base=600, lo=60, hi=3600) == 600
    assert effective(7200, base=600, lo=60, hi=3600) == 3600  # max_interval lowered since
    assert effective(120, base=600, lo=600, hi=600) == 600  # adaptive polling turned off


# -- quiet --------------------------------------------------------------------------------------


def test_a_regular_feed_is_quiet_after_k_usual_gaps_and_the_floor() -> None:
    """Hourly for 10 days, 16 items a day (a 9 h gap each night), factor 4, floor 12 h."""
    r, now = Rhythm(), T0
    for day in range(10):
        for h in range(16):
            now = T0 + day * DAY + h * HOUR
            r = observe(r, [now], now)
    # The longest recent gap, a 9 h night, decays but still counts: 1.5 x 9 h > the 12 h floor.
    assert quiet(r, now + 12.5 * HOUR, factor=4, floor=12 * HOUR) is None
    q = quiet(r, now + 13 * HOUR, factor=4, floor=12 * HOUR)
    assert q is not None and (q.usual, q.last, q.silence) == (HOUR, now, 13 * HOUR)
    assert q.threshold == 1.5 * decayed_peak(r, now + 13 * HOUR) > 12 * HOUR
    # Without nights (a 24/7 feed) the floor rules: quiet at 12 h.
    flat, t = regular(HOUR, 10 * 24)
    assert quiet(flat, t + 12 * HOUR - 1, factor=4, floor=12 * HOUR) is None
    q = quiet(flat, t + 12 * HOUR, factor=4, floor=12 * HOUR)
    assert q is not None and q.threshold == 12 * HOUR
    assert quiet(flat, t + 12 * HOUR, factor=24, floor=0) is None  # k x usual gap: 24 h


def test_no_alert_without_enough_history_or_when_irregular() -> None:
    young, now = regular(HOUR, 30)  # 29 hours known: not a week
    assert quiet(young, now + 5 * DAY, factor=4, floor=12 * HOUR) is None
    few = observe(Rhythm(), [T0, T0 + 10 * DAY], T0 + 10 * DAY)  # a week, one gap
    assert quiet(few, T0 + 30 * DAY, factor=4, floor=12 * HOUR) is None
    # Bursty: ten 1-minute gaps, then a 6-day lull last week: quiet only after 1.5 x ~6 days.
    r, now = regular(2 * MIN, 10, start=T0 - 14 * DAY)
    r = observe(r, [T0 - 8 * DAY], T0 - 8 * DAY)
    r, now = r, T0 - 8 * DAY
    assert quiet(r, now + 5 * DAY, factor=4, floor=12 * HOUR) is None
    assert quiet(r, now + 9 * DAY, factor=4, floor=12 * HOUR) is not None
    assert quiet(r, now + 9 * DAY, factor=0, floor=12 * HOUR) is None  # turned off


def test_one_alert_per_episode() -> None:
    r, now = regular(HOUR, 8 * 24)
    later = now + 2 * DAY
    assert quiet_due(r, later, factor=4, floor=12 * HOUR) is not None
    r = mark_alerted(r)
    assert quiet_due(r, later + DAY, factor=4, floor=12 * HOUR) is None
    r = observe(r, [later + DAY], later + DAY)  # publishes again
    assert quiet_due(r, later + DAY + HOUR, factor=4, floor=12 * HOUR) is None
    assert quiet_due(r, later + 5 * DAY, factor=4, floor=12 * HOUR) is not None


def test_a_feed_silent_when_we_started_watching_never_alerts() -> None:
    """Added (or Redis lost its state) with a long history that ended a month ago: it did not
    stop publishing under our watch; once it publishes again, it can."""
    history = [T0 - 40 * DAY + i * 12 * HOUR for i in range(20)]
    r = observe(Rhythm(), history, T0)
    assert r.watched == T0 and len(r.gaps) == GAPS
    assert quiet(r, T0 + 30 * DAY, factor=4, floor=12 * HOUR) is None
    r = observe(r, [T0 + DAY], T0 + DAY)
    assert quiet(r, T0 + 40 * DAY, factor=4, floor=12 * HOUR) is not None


def test_min_span_is_a_week() -> None:
    r, now = regular(HOUR, 20, start=T0)
    r = observe(r, [T0 - MIN_SPAN_QUIET], now)  # an old item from the feed's first poll
    assert quiet(r, now + DAY, factor=4, floor=12 * HOUR) is not None


# -- storage ------------------------------------------------------------------------------------


@given(rhythms, st.booleans())
def test_encode_decode_round_trips_in_whole_seconds(r: Rhythm, alerted: bool) -> None:
    r = mark_alerted(r) if alerted else r
    back = decode(encode(r).encode())
    assert back.gaps == tuple(float(round(g)) for g in r.gaps)
    assert back.last == (None if r.last is None else float(round(r.last)))
    assert (back.alerted is None) == (r.alerted is None)
    assert back.alerted == back.last if alerted else back.alerted is None
    assert back.watched == (None if r.watched is None else float(round(r.watched)))
    assert len(encode(r)) < 240  # bounded: 16 gaps of at most 7 digits


def test_unreadable_rhythm_is_relearnt() -> None:
    for junk in (None, b"", "2 1 2 3 4 5 6 7", "1 x - - - - - -", "1 1 2", "garbage"):
        assert decode(junk) == Rhythm()
