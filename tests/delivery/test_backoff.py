"""backoff(): capped exponential growth, jitter bounds, Retry-After as a capped floor."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from alerts.backoff import backoff


def test_grows_exponentially_until_the_cap() -> None:
    """With rand at its top the delay doubles per attempt and stops at the maximum."""
    delays = [backoff(n, initial=1, maximum=10, rand=lambda: 1.0) for n in range(1, 7)]
    assert delays == [1, 2, 4, 8, 10, 10]


def test_jitter_spans_initial_to_ceiling() -> None:
    """rand 0 gives the initial delay, rand 0.5 the middle of [initial, ceiling]."""
    assert backoff(4, initial=1, maximum=100, rand=lambda: 0.0) == 1
    assert backoff(4, initial=1, maximum=100, rand=lambda: 0.5) == 4.5


def test_retry_after_is_a_floor_capped_at_maximum() -> None:
    """A server's Retry-After raises the delay, but never beyond the maximum."""
    assert backoff(1, initial=1, maximum=60, retry_after=30, rand=lambda: 0.0) == 30
    assert backoff(1, initial=1, maximum=60, retry_after=3600, rand=lambda: 0.0) == 60
    assert backoff(3, initial=1, maximum=60, retry_after=0.5, rand=lambda: 1.0) == 4


def test_huge_attempt_numbers_do_not_overflow() -> None:
    """Attempt 10,000 is simply the maximum (no OverflowError)."""
    assert backoff(10_000, initial=1, maximum=300, rand=lambda: 1.0) == 300


@given(
    attempt=st.integers(min_value=-5, max_value=2000),
    initial=st.floats(min_value=0, max_value=100),
    extra=st.floats(min_value=0, max_value=1000),
    r=st.floats(min_value=0, max_value=1, exclude_max=True),
    retry_after=st.none() | st.floats(min_value=0, max_value=10_000),
)
def test_always_within_bounds(
    attempt: int, initial: float, extra: float, r: float, retry_after: float | None
) -> None:
    """Every delay lies in [initial, maximum]."""
    maximum = initial + extra
    d = backoff(attempt, initial=initial, maximum=maximum, retry_after=retry_after, rand=lambda: r)
    assert initial <= d <= maximum
