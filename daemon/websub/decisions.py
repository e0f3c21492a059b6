"""WebSub subscriber decisions (W3C WebSub, 2018). Pure: no I/O, times passed in.

A feed that advertises a hub and a self URL (``daemon.parse.feedlinks``) gets one subscription,
recorded in Redis as a ``Subscription`` (``daemon.websub.store``). Its life:

* ``plan`` says what to do next for one feed: subscribe (a new subscription, or a renewal
  once ``RENEW_FRACTION`` of the granted lease has passed), unsubscribe (the feed left the
  config, or stopped advertising a hub), drop the record, or nothing. A subscription request
  is recorded *before* it is sent (the hub may verify before it answers the POST); a request
  the hub refused, or never verified within ``VERIFY_TIMEOUT``, is retried with exponential
  backoff (``RETRY_MIN`` doubling to ``RETRY_MAX``); a hub that denied the subscription is asked
  again after ``DENIED_RETRY``.
* ``verify`` answers the hub's verification of intent: the challenge is echoed only when the
  mode and topic match a subscription we asked for (pending or active for ``subscribe``, being
  cancelled for ``unsubscribe``); anything else is 404, as the recommendation requires.
* ``check_signature`` checks ``X-Hub-Signature`` (``sha1``, ``sha256``, ``sha384`` or
  ``sha512`` HMAC of the raw body with the subscription's secret).
* ``skip_poll``: a feed with an active subscription is polled at the slower fallback interval.

Renewals keep the callback path and the secret (it is the same subscription); a new
subscription (another hub or topic, or after an unsubscribe) gets new ones.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Literal

from daemon.parse.feedlinks import FeedLinks

RENEW_FRACTION = 0.85  # renew once this much of the granted lease has passed
VERIFY_TIMEOUT = 600.0  # a request not verified within this long is retried
RETRY_MIN = 300.0  # first retry after a failed request; doubles up to RETRY_MAX
RETRY_MAX = 86400.0
DENIED_RETRY = 86400.0
MIN_LEASE = 60.0  # a granted lease shorter than this is taken as this (no renewal storm)
MAX_LEASE = 366 * 86400.0  # a longer one is taken as this: renewed at least once a year
SIGNATURES = {
    "sha1": hashlib.sha1,
    "sha256": hashlib.sha256,
    "sha384": hashlib.sha384,
    "sha512": hashlib.sha512,
}

State = Literal["pending", "active", "unsubscribing", "denied", "failed"]
STATES: tuple[State, ...] = ("pending", "active", "unsubscribing", "denied", "failed")


@dataclass(frozen=True, slots=True)
class Subscription:
    """One feed's subscription. Times are epoch seconds; 0 means "not set".

    ``state``: ``pending`` (requested, not verified yet), ``active`` (verified; ``expires_at``
    says until when), ``unsubscribing`` (cancellation requested), ``denied`` (the hub said no),
    ``failed`` (the last request failed; retried at ``retry_at``). ``renewing`` is when a
    renewal of an active subscription was requested (0: none pending); ``last_push`` when the
    hub last delivered content with a good signature. ``token`` is the
    callback's path segment, ``secret`` the HMAC key: neither is in ``repr`` nor logged.
    """

    feed: str
    hub: str
    topic: str
    token: str = field(repr=False)
    secret: str = field(repr=False)
    callback: str = field(default="", repr=False)  # the URL given to the hub (holds the token)
    state: State = "pending"
    requested_at: float = 0.0
    renewing: float = 0.0
    lease: float = 0.0
    expires_at: float = 0.0
    attempts: int = 0
    retry_at: float = 0.0
    error: str = ""
    last_push: float = 0.0

    def active(self, now: float) -> bool:
        """Verified and not expired: the hub is pushing to us."""
        return self.state == "active" and now < self.expires_at

    def renew_at(self) -> float:
        return self.expires_at - self.lease * (1.0 - RENEW_FRACTION)


@dataclass(frozen=True, slots=True)
class Subscribe:
    """Send ``hub.mode=subscribe``. ``fresh``: a new subscription (new callback and secret),
    else a renewal or retry of ``current``."""

    hub: str
    topic: str
    fresh: bool


@dataclass(frozen=True, slots=True)
class Unsubscribe:
    pass


@dataclass(frozen=True, slots=True)
class Drop:
    """Forget the record (and its callback path) without asking the hub anything."""


@dataclass(frozen=True, slots=True)
class Nothing:
    pass


Action = Subscribe | Unsubscribe | Drop | Nothing


def retry_delay(attempts: int) -> float:
    """Seconds before retrying after ``attempts`` failed requests in a row (>= 1)."""
    return float(min(RETRY_MAX, RETRY_MIN * 2 ** max(0, attempts - 1)))


def plan(sub: Subscription | None, links: FeedLinks, configured: bool, now: float) -> Action:
    """What to do next for one feed, given its record, the links its last poll found and
    whether it is still in the config."""
    if not configured or not links.usable:
        if sub is None:
            return Nothing()
        if sub.state in ("pending", "active"):
            return Unsubscribe()
        if sub.state == "unsubscribing" and now - sub.requested_at < VERIFY_TIMEOUT:
            return Nothing()  # waiting for the hub to verify the cancellation
        return Drop()
    assert links.self_url is not None
    if sub is None or sub.state == "unsubscribing":
        return Subscribe(links.hubs[0], links.self_url, fresh=True)
    if sub.topic != links.self_url or sub.hub not in links.hubs:
        # The feed moved to another hub or topic: a new subscription; the old hub's pushes to
        # the old callback get 410 Gone and it drops that subscription.
        return Subscribe(links.hubs[0], links.self_url, fresh=True)
    if sub.state in ("denied", "failed"):
        return Subscribe(sub.hub, sub.topic, fresh=False) if now >= sub.retry_at else Nothing()
    if sub.state == "pending":
        if now - sub.requested_at < _verify_wait(sub):
            return Nothing()
        return Subscribe(sub.hub, sub.topic, fresh=False)  # never verified: ask again
    # active
    if sub.renewing and now - sub.renewing < _verify_wait(sub):
        return Nothing()  # a renewal is waiting for verification
    if sub.retry_at and now < sub.retry_at and sub.active(now):
        return Nothing()  # the last renewal failed: wait before the next try
    if now >= sub.renew_at() or not sub.active(now):
        return Subscribe(sub.hub, sub.topic, fresh=False)
    return Nothing()


def _verify_wait(sub: Subscription) -> float:
    """How long to wait for the verification of a request before asking again: longer after
    each request in a row that was never verified."""
    return max(VERIFY_TIMEOUT, retry_delay(sub.attempts)) if sub.attempts else VERIFY_TIMEOUT


def requested(
    sub: Subscription | None,
    action: Subscribe,
    *,
    feed: str,
    token: str,
    secret: str,
    callback: str,
    now: float,
) -> Subscription:
    """The record to write before sending ``action``. ``token``, ``secret`` and ``callback``
    (which ends in ``token``) are used for a fresh subscription (the caller draws the first
    two at random); a renewal or retry keeps the subscription's own."""
    if action.fresh or sub is None:
        return Subscription(
            feed=feed,
            hub=action.hub,
            topic=action.topic,
            token=token,
            secret=secret,
            callback=callback,
            state="pending",
            requested_at=now,
        )
    # Asking again because the last request was never verified counts as a failed attempt.
    unverified = sub.state == "pending" or (sub.active(now) and sub.renewing > 0)
    attempts = sub.attempts + 1 if unverified else sub.attempts
    if sub.active(now):
        return replace(sub, renewing=now, requested_at=now, attempts=attempts)
    return replace(sub, state="pending", requested_at=now, renewing=0.0, attempts=attempts)


def unsubscribing(sub: Subscription, now: float) -> Subscription:
    return replace(sub, state="unsubscribing", requested_at=now, renewing=0.0)


def request_failed(sub: Subscription, now: float, error: str) -> Subscription:
    """The hub refused a request (or could not be reached): retry later. An active
    subscription stays active until it expires."""
    attempts = sub.attempts + 1
    retry_at = now + retry_delay(attempts)
    if sub.state == "unsubscribing":
        return replace(sub, attempts=attempts, error=error)
    if sub.active(now):
        return replace(sub, renewing=0.0, attempts=attempts, retry_at=retry_at, error=error)
    return replace(sub, state="failed", attempts=attempts, retry_at=retry_at, error=error)


@dataclass(frozen=True, slots=True)
class Verdict:
    """The answer to a verification GET, and what to record: ``update`` (write it),
    ``delete`` (forget the record), or neither."""

    status: int
    body: bytes = b""
    update: Subscription | None = None
    delete: bool = False
    reason: str = ""


def verify(
    sub: Subscription | None, query: Mapping[str, str], now: float, requested_lease: float
) -> Verdict:
    """Answer the hub's verification of intent (``hub.mode``, ``hub.topic``,
    ``hub.challenge``, ``hub.lease_seconds``; ``hub.reason`` for ``denied``)."""
    mode = query.get("hub.mode", "")
    topic = query.get("hub.topic", "")
    if sub is None:
        return Verdict(404, reason="no subscription")
    if topic != sub.topic:
        return Verdict(404, reason="topic does not match")
    if mode == "denied":
        if sub.state not in ("pending", "active", "failed"):
            return Verdict(404, reason="nothing to deny")
        reason = " ".join(query.get("hub.reason", "").split())[:200]
        update = replace(
            sub,
            state="denied",
            renewing=0.0,
            retry_at=now + DENIED_RETRY,
            error=f"denied by the hub: {reason}" if reason else "denied by the hub",
        )
        return Verdict(200, update=update, reason="denied")
    challenge = query.get("hub.challenge", "")
    if not challenge:
        return Verdict(404, reason="no challenge")
    if mode == "subscribe":
        if sub.state not in ("pending", "active"):
            return Verdict(404, reason=f"subscription is {sub.state}")
        lease = _lease(query.get("hub.lease_seconds"), requested_lease)
        update = replace(
            sub,
            state="active",
            renewing=0.0,
            lease=lease,
            expires_at=now + lease,
            attempts=0,
            retry_at=0.0,
            error="",
        )
        return Verdict(200, challenge.encode(), update=update, reason="subscribed")
    if mode == "unsubscribe":
        if sub.state != "unsubscribing":
            return Verdict(404, reason=f"subscription is {sub.state}")
        return Verdict(200, challenge.encode(), delete=True, reason="unsubscribed")
    return Verdict(404, reason="unknown mode")


def _lease(value: str | None, requested_lease: float) -> float:
    """The lease a hub granted: its ``hub.lease_seconds`` within [MIN_LEASE, MAX_LEASE] (a
    number of any length costs nothing: past 12 digits it is taken as MAX_LEASE)."""
    if value and value.isascii() and value.isdigit():
        return max(MIN_LEASE, min(MAX_LEASE, float(int(value[:13]))))
    return max(MIN_LEASE, requested_lease)


def check_signature(header: str | None, body: bytes, secret: str) -> str | None:
    """None if ``X-Hub-Signature`` (``method=hexdigest``) is the HMAC of ``body`` with
    ``secret``, else why not: ``missing``, ``unknown method``, ``mismatch``."""
    if not header:
        return "missing"
    method, sep, digest = header.strip().partition("=")
    algorithm = SIGNATURES.get(method.strip().lower())
    if not sep or algorithm is None:
        return "unknown method"
    expected = hmac.new(secret.encode(), body, algorithm).hexdigest()
    if not hmac.compare_digest(expected, digest.strip().lower()):
        return "mismatch"
    return None


def skip_poll(elapsed: float, interval: float, fallback: float) -> bool:
    """A scheduled poll of a feed with an active subscription is skipped unless the fallback
    interval (at least the feed's own) has about passed since its last poll. The scheduler
    ticks once per ``interval`` with jitter, so a poll is due from ``fallback - 0.3 interval``."""
    return elapsed < max(interval, fallback) - 0.3 * interval
