"""A feed's publishing rhythm: when to poll it next, and whether it has gone quiet. Pure.

No I/O and no clock of its own: every function takes ``now`` (epoch seconds). The pipeline
feeds it the publication times of each poll's new items (first-seen times for undated ones),
stores the result in the feed's state hash in Redis (``encode``/``decode``, a short string)
and asks it for the next interval and for a quiet episode.

What is remembered, bounded (``Rhythm``): the last publication time, the earliest one ever
seen (how long we have known the feed), the last ``GAPS`` gaps between publications, and a
decaying peak gap (the longest recent lull, halved every ``PEAK_HALF_LIFE``: a weekend or a
night stays in memory for weeks, a one-off outage fades). Items published within ``MERGE`` of
each other count as one publication (batches), and items dated before the last publication
teach nothing (late or back-dated).

**Next interval** (``plan``), within the feed's ``[lo, hi]``:

* no rhythm yet (fewer than ``MIN_GAPS_INTERVAL`` gaps): the configured interval;
* else about ``POLLS_PER_GAP`` polls per usual gap (the median of the recent gaps), growing
  once the feed is quieter than usual: ``max(usual, silence / 2) / POLLS_PER_GAP``, where
  ``silence`` is the time since the last publication (a feed silent for 8 h is polled every 2 h,
  within ``hi``);
* every item new on a poll (``overflow``: the window may have dropped items): ``lo``;
* a ``Cache-Control: max-age`` is a floor: never sooner than the server allows, capped at
  ``hi``.

``lo == hi`` (no ``min_interval``/``max_interval`` configured) is a fixed interval, as before.

**Quiet** (``quiet``): a feed is quiet when nothing was published for at least
``factor`` x its usual gap, ``PEAK_FACTOR`` x its decayed peak gap and ``floor``, and only once
enough history exists (``MIN_GAPS_QUIET`` gaps, known for ``MIN_SPAN_QUIET``), so new and
irregular feeds do not alert, and only if it published since we began watching it (a feed
already silent when added, or when Redis lost its state, does not alert). An episode is
identified by the last publication time before it: ``alerted`` records the episode that
alerted, and a new publication ends it (the silence that alerted counts as a gap, but not
towards the peak: it was not the feed's rhythm).
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable
from dataclasses import dataclass, replace

GAPS = 16  # recent gaps kept per feed
MERGE = 60.0  # publications closer than this are one (a batch)
MIN_GAPS_INTERVAL = 3  # gaps needed before the rhythm sets the interval
MIN_GAPS_QUIET = 8  # ... and before a feed can be called quiet
MIN_SPAN_QUIET = 7 * 86400.0  # known this long (a weekly cycle) before it can be called quiet
PEAK_HALF_LIFE = 14 * 86400.0
PEAK_FACTOR = 1.5
POLLS_PER_GAP = 2.0
_VERSION = "1"


@dataclass(frozen=True, slots=True)
class Rhythm:
    """What a feed's publications taught so far. Epoch seconds; ``gaps`` oldest first."""

    last: float | None = None  # the latest publication
    since: float | None = None  # the earliest publication seen: how long the feed is known
    gaps: tuple[float, ...] = ()
    peak: float = 0.0  # the longest recent gap, decaying from ``peak_at``
    peak_at: float = 0.0
    alerted: float | None = None  # ``last`` of the quiet episode that alerted
    watched: float | None = None  # the first poll that brought items: when we started watching

    @property
    def usual_gap(self) -> float | None:
        """The median recent gap, once there are ``MIN_GAPS_INTERVAL`` of them."""
        if len(self.gaps) < MIN_GAPS_INTERVAL:
            return None
        return float(statistics.median(self.gaps))


@dataclass(frozen=True, slots=True)
class Plan:
    """The next poll's interval and why: ``fixed``, ``base`` (no rhythm yet), ``rhythm``,
    ``overflow`` or ``max-age``."""

    interval: float
    reason: str


@dataclass(frozen=True, slots=True)
class Quiet:
    """A quiet episode: nothing since ``last`` for ``silence`` s, over ``threshold``."""

    last: float
    silence: float
    usual: float
    threshold: float


def decayed_peak(r: Rhythm, now: float) -> float:
    if r.peak <= 0:
        return 0.0
    age = max(0.0, now - r.peak_at)
    return float(r.peak * 0.5 ** (age / PEAK_HALF_LIFE))


def observe(r: Rhythm, times: Iterable[float], now: float, *, overflow: bool = False) -> Rhythm:
    """``r`` after a poll whose new items were published at ``times`` (future ones count as
    ``now``). With ``overflow`` the gap from the last known publication to the first new one
    is unknown (items were missed) and not learnt."""
    ts = sorted(min(t, now) for t in times)
    if not ts:
        return r
    since = ts[0] if r.since is None else min(r.since, ts[0])
    events: list[float] = []
    for t in ts:
        if r.last is not None and t < r.last + MERGE:
            continue  # known already, or late
        if events and t - events[-1] < MERGE:
            continue  # the same batch
        events.append(t)
    watched = now if r.watched is None else r.watched
    if not events:
        return replace(r, since=since, watched=watched)
    gaps: list[float] = []
    prev = r.last
    for i, t in enumerate(events):
        if prev is not None and not (overflow and i == 0):
            gaps.append(t - prev)
        prev = t
    # A silence that alerted as quiet was not the feed's rhythm: it does not raise the peak
    # (else the next episode would need 1.5 x as long to alert).
    ended_episode = r.alerted is not None and r.alerted == r.last and not overflow
    peak = max([decayed_peak(r, now), *(gaps[1:] if ended_episode else gaps)])
    return Rhythm(
        last=events[-1],
        since=since,
        gaps=(*r.gaps, *gaps)[-GAPS:],
        peak=peak,
        peak_at=now,
        alerted=None,  # a publication ends any quiet episode
        watched=watched,
    )


def clamp(interval: float, lo: float, hi: float) -> float:
    return min(max(interval, lo), hi)


def effective(stored: float | None, *, base: float, lo: float, hi: float) -> float:
    """The interval in force: the one the last successful poll chose (``stored``), kept within
    the feed's current bounds (the config may have changed since), else ``base``."""
    return base if stored is None else clamp(stored, lo, hi)


def plan(
    r: Rhythm,
    now: float,
    *,
    base: float,
    lo: float,
    hi: float,
    max_age: float | None = None,
    overflow: bool = False,
) -> Plan:
    """The interval before the next poll (see the module docstring)."""
    if hi <= lo:
        return Plan(lo, "fixed")
    usual = r.usual_gap
    if usual is None or r.last is None:
        interval, reason = base, "base"
    else:
        silence = max(0.0, now - r.last)
        interval, reason = max(usual, silence / 2) / POLLS_PER_GAP, "rhythm"
    interval = clamp(interval, lo, hi)
    if overflow:
        interval, reason = lo, "overflow"
    if max_age is not None and min(max_age, hi) > interval:
        interval, reason = min(max_age, hi), "max-age"
    return Plan(interval, reason)


def quiet(r: Rhythm, now: float, *, factor: float, floor: float) -> Quiet | None:
    """The feed's quiet episode if it is in one now (alerted or not), else None."""
    usual = r.usual_gap
    if factor <= 0 or usual is None or r.last is None or r.since is None:
        return None
    if r.watched is None or r.last <= r.watched:
        return None  # it never published while we watched: it did not *stop* publishing
    if len(r.gaps) < MIN_GAPS_QUIET or now - r.since < MIN_SPAN_QUIET:
        return None
    threshold = max(factor * usual, PEAK_FACTOR * decayed_peak(r, now), floor)
    silence = now - r.last
    return Quiet(r.last, silence, usual, threshold) if silence >= threshold else None


def quiet_due(r: Rhythm, now: float, *, factor: float, floor: float) -> Quiet | None:
    """A quiet episode that has not alerted yet (``mark_alerted`` once it did)."""
    q = quiet(r, now, factor=factor, floor=floor)
    return q if q is not None and r.alerted != r.last else None


def mark_alerted(r: Rhythm) -> Rhythm:
    return replace(r, alerted=r.last)


# -- storage (one string in the feed's state hash) ----------------------------------------------


def encode(r: Rhythm) -> str:
    """``1 last since peak peak_at alerted watched gap,gap,...`` in whole seconds (``-``:
    none)."""

    def n(v: float | None) -> str:
        return "-" if v is None else str(round(v))

    gaps = ",".join(str(round(g)) for g in r.gaps) or "-"
    fields = (
        _VERSION,
        *(n(v) for v in (r.last, r.since, r.peak, r.peak_at, r.alerted, r.watched)),
        gaps,
    )
    return " ".join(fields)


def decode(text: str | bytes | None) -> Rhythm:
    """The ``Rhythm`` ``encode`` wrote; an empty one for nothing or anything unreadable (it is
    relearnt from the next polls)."""
    if not text:
        return Rhythm()
    if isinstance(text, bytes):
        text = text.decode("ascii", "replace")
    parts = text.split(" ")
    if len(parts) != 8 or parts[0] != _VERSION:
        return Rhythm()

    def n(v: str) -> float | None:
        return None if v == "-" else float(int(v))

    try:
        gaps = () if parts[7] == "-" else tuple(float(int(g)) for g in parts[7].split(","))
        return Rhythm(
            last=n(parts[1]),
            since=n(parts[2]),
            gaps=gaps[-GAPS:],
            peak=n(parts[3]) or 0.0,
            peak_at=n(parts[4]) or 0.0,
            alerted=n(parts[5]),
            watched=n(parts[6]),
        )
    except ValueError:
        return Rhythm()
