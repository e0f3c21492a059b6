"""The WebSub subscriber's pure decisions: plan, verification, signatures, fallback polling."""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import replace
from pathlib import Path

import pytest

from daemon.config.load import ConfigError, config_from_dict
from daemon.ops.status import websub_row, websub_state
from daemon.parse.feedlinks import FeedLinks
from daemon.websub.decisions import (
    DENIED_RETRY,
    MIN_LEASE,
    RENEW_FRACTION,
    RETRY_MAX,
    RETRY_MIN,
    VERIFY_TIMEOUT,
    Drop,
    Nothing,
    Subscribe,
    Subscription,
    Unsubscribe,
    check_signature,
    plan,
    request_failed,
    requested,
    retry_delay,
    skip_poll,
    verify,
)
from daemon.websub.store import Refusal

HUB, TOPIC = "https://hub.example/", "https://news.example/feed"
LINKS = FeedLinks((HUB,), TOPIC)
T0 = 1_800_000_000.0
LEASE = 86400.0


def sub(**kw: object) -> Subscription:
    base = Subscription(feed="f", hub=HUB, topic=TOPIC, token="tok", secret="s3cret")
    return replace(base, **kw)  # type: ignore[arg-type]


def active(at: float = T0) -> Subscription:
    return sub(state="active", requested_at=at, lease=LEASE, expires_at=at + LEASE)


def test_new_feed_with_hub_is_subscribed_fresh() -> None:
    assert plan(None, LINKS, True, T0) == Subscribe(HUB, TOPIC, fresh=True)
    assert plan(None, FeedLinks((HUB,), None), True, T0) == Nothing()
    assert plan(None, LINKS, False, T0) == Nothing()
    action = Subscribe(HUB, TOPIC, True)
    cb = "https://fw.example/websub/tok-9"
    new = requested(None, action, feed="f", token="tok-9", secret="sec-9", callback=cb, now=T0)
    assert (new.state, new.token, new.secret, new.callback) == ("pending", "tok-9", "sec-9", cb)
    assert new.requested_at == T0
    # Secret and callback token are never in a repr (and so in no log line).
    assert "sec-9" not in repr(new) and "tok-9" not in repr(new)


def test_pending_waits_for_verification_then_asks_again_with_backoff() -> None:
    pending = sub(state="pending", requested_at=T0)
    assert plan(pending, LINKS, True, T0 + VERIFY_TIMEOUT - 1) == Nothing()
    again = plan(pending, LINKS, True, T0 + VERIFY_TIMEOUT)
    assert again == Subscribe(HUB, TOPIC, fresh=False)
    assert isinstance(again, Subscribe)
    retried = requested(
        pending, again, feed="f", token="new", secret="new", callback="new", now=T0 + 600
    )
    assert retried.token == "tok" and retried.secret == "s3cret" and retried.attempts == 1
    # Each unverified request in a row waits longer (never less than VERIFY_TIMEOUT).
    late = replace(retried, attempts=5)
    assert plan(late, LINKS, True, late.requested_at + VERIFY_TIMEOUT) == Nothing()
    assert plan(late, LINKS, True, late.requested_at + retry_delay(5)) != Nothing()


def test_active_is_renewed_at_the_fraction_of_its_lease() -> None:
    sub_ = active()
    renew_at = T0 + LEASE * RENEW_FRACTION
    assert plan(sub_, LINKS, True, renew_at - 1) == Nothing()
    action = plan(sub_, LINKS, True, renew_at)
    assert action == Subscribe(HUB, TOPIC, fresh=False)
    assert isinstance(action, Subscribe)
    renewing = requested(sub_, action, feed="f", token="x", secret="y", callback="z", now=renew_at)
    assert renewing.state == "active" and renewing.renewing == renew_at
    assert (renewing.token, renewing.secret) == ("tok", "s3cret")
    assert plan(renewing, LINKS, True, renew_at + 60) == Nothing()  # waiting for the hub
    # Never verified: asked again after VERIFY_TIMEOUT; expired: asked too.
    assert plan(renewing, LINKS, True, renew_at + VERIFY_TIMEOUT) != Nothing()
    assert plan(sub_, LINKS, True, T0 + LEASE + 1) == Subscribe(HUB, TOPIC, fresh=False)


def test_failed_requests_back_off_and_active_stays_active() -> None:
    pending = sub(state="pending", requested_at=T0)
    failed = request_failed(pending, T0, "HTTP 500")
    assert (failed.state, failed.attempts, failed.retry_at) == ("failed", 1, T0 + RETRY_MIN)
    assert plan(failed, LINKS, True, T0 + RETRY_MIN - 1) == Nothing()
    assert plan(failed, LINKS, True, T0 + RETRY_MIN) == Subscribe(HUB, TOPIC, fresh=False)
    assert retry_delay(2) == 2 * RETRY_MIN and retry_delay(40) == RETRY_MAX
    renewal = replace(active(), renewing=T0 + 80000)
    kept = request_failed(renewal, T0 + 80000, "HTTP 503")
    assert kept.state == "active" and kept.renewing == 0 and kept.attempts == 1
    assert plan(kept, LINKS, True, T0 + 80000 + 10) == Nothing()
    assert plan(kept, LINKS, True, kept.retry_at) == Subscribe(HUB, TOPIC, fresh=False)


def test_hub_or_topic_change_starts_a_new_subscription() -> None:
    moved = FeedLinks(("https://new-hub.example/",), TOPIC)
    assert plan(active(), moved, True, T0) == Subscribe(moved.hubs[0], TOPIC, fresh=True)
    also = FeedLinks(("https://new-hub.example/", HUB), TOPIC)
    assert plan(active(), also, True, T0) == Nothing()  # our hub is still advertised
    assert plan(active(), FeedLinks((HUB,), TOPIC + "2"), True, T0).fresh  # type: ignore[union-attr]


def test_leaving_the_config_or_the_hub_unsubscribes_then_drops() -> None:
    for links, configured in ((LINKS, False), (FeedLinks(), True)):
        assert plan(active(), links, configured, T0) == Unsubscribe()
        assert plan(sub(state="pending"), links, configured, T0) == Unsubscribe()
        leaving = sub(state="unsubscribing", requested_at=T0)
        assert plan(leaving, links, configured, T0 + 1) == Nothing()
        assert plan(leaving, links, configured, T0 + VERIFY_TIMEOUT) == Drop()
        assert plan(sub(state="denied"), links, configured, T0) == Drop()
    # Back in the config while being cancelled: subscribe anew.
    leaving = sub(state="unsubscribing", requested_at=T0)
    assert plan(leaving, LINKS, True, T0) == Subscribe(HUB, TOPIC, fresh=True)


def q(**kw: str) -> dict[str, str]:
    return {f"hub.{k}": v for k, v in kw.items()}


def test_verify_subscribe_echoes_and_records_the_lease() -> None:
    pending = sub(state="pending", requested_at=T0)
    v = verify(
        pending, q(mode="subscribe", topic=TOPIC, challenge="c1", lease_seconds="3600"), T0, LEASE
    )
    assert (v.status, v.body) == (200, b"c1") and v.update is not None
    assert v.update.active(T0) and v.update.expires_at == T0 + 3600 and v.update.lease == 3600
    no_lease = verify(pending, q(mode="subscribe", topic=TOPIC, challenge="c"), T0, LEASE)
    assert no_lease.update is not None and no_lease.update.lease == LEASE
    tiny = verify(
        pending, q(mode="subscribe", topic=TOPIC, challenge="c", lease_seconds="1"), T0, LEASE
    )
    assert tiny.update is not None and tiny.update.lease == MIN_LEASE
    renewal = verify(
        replace(active(), renewing=T0 + 5),
        q(mode="subscribe", topic=TOPIC, challenge="c"),
        T0 + 9,
        LEASE,
    )
    assert renewal.status == 200 and renewal.update is not None and renewal.update.renewing == 0


@pytest.mark.parametrize(
    ("record", "query"),
    [
        (None, q(mode="subscribe", topic=TOPIC, challenge="c")),
        (sub(state="pending"), q(mode="subscribe", topic=TOPIC + "x", challenge="c")),
        (sub(state="pending"), q(mode="subscribe", topic=TOPIC)),  # no challenge
        (sub(state="unsubscribing"), q(mode="subscribe", topic=TOPIC, challenge="c")),
        (sub(state="denied"), q(mode="subscribe", topic=TOPIC, challenge="c")),
        (active(), q(mode="unsubscribe", topic=TOPIC, challenge="c")),
        (active(), q(mode="other", topic=TOPIC, challenge="c")),
        (sub(state="unsubscribing"), q(mode="denied", topic=TOPIC)),
    ],
)
def test_verify_refuses_what_we_did_not_ask(
    record: Subscription | None, query: dict[str, str]
) -> None:
    v = verify(record, query, T0, LEASE)
    assert v.status == 404 and v.body == b"" and v.update is None and not v.delete


def test_verify_unsubscribe_and_denied() -> None:
    leaving = sub(state="unsubscribing", requested_at=T0)
    v = verify(leaving, q(mode="unsubscribe", topic=TOPIC, challenge="bye"), T0, LEASE)
    assert (v.status, v.body, v.delete) == (200, b"bye", True)
    d = verify(sub(state="pending"), q(mode="denied", topic=TOPIC, reason="no\nway"), T0, LEASE)
    assert d.status == 200 and d.update is not None
    assert d.update.state == "denied" and d.update.retry_at == T0 + DENIED_RETRY
    assert d.update.error == "denied by the hub: no way"
    assert plan(d.update, LINKS, True, T0 + DENIED_RETRY) == Subscribe(HUB, TOPIC, fresh=False)


@pytest.mark.parametrize("method", ["sha1", "sha256", "sha384", "sha512"])
def test_signature_methods(method: str) -> None:
    body = b"<feed/>"
    digest = hmac.new(b"key", body, getattr(hashlib, method)).hexdigest()
    assert check_signature(f"{method}={digest}", body, "key") is None
    assert check_signature(f"{method.upper()}={digest.upper()}", body, "key") is None
    assert check_signature(f"{method}={digest}", body + b" ", "key") == "mismatch"
    assert check_signature(f"{method}={digest}", body, "other") == "mismatch"


def test_signature_missing_or_malformed() -> None:
    assert check_signature(None, b"x", "k") == "missing"
    assert check_signature("", b"x", "k") == "missing"
    assert check_signature("md5=abc", b"x", "k") == "unknown method"
    assert check_signature("sha256", b"x", "k") == "unknown method"
    assert check_signature("sha256=", b"x", "k") == "mismatch"


def test_skip_poll_uses_the_slower_interval() -> None:
    assert skip_poll(60, 60, 3600)
    assert skip_poll(3600 - 19, 60, 3600)
    assert not skip_poll(3600 - 18, 60, 3600)
    # A fallback shorter than the feed's own interval changes nothing beyond it.
    assert skip_poll(400, 600, 300) and not skip_poll(600, 600, 300)


def test_config_section(tmp_path: Path) -> None:
    default = config_from_dict({}, base_dir=tmp_path).websub
    assert (default.lease, default.fallback_interval) == (7 * 86400.0, 3600.0)
    assert default.allow_private_hubs is False
    data = {"websub": {"lease": "2d", "fallback_interval": "30m", "allow_private_hubs": True}}
    cfg = config_from_dict(data, base_dir=tmp_path).websub
    assert (cfg.lease, cfg.fallback_interval) == (172800.0, 1800.0)
    assert cfg.allow_private_hubs is True
    for bad, where, message in [
        ({"allow_private_hubs": "yes"}, "websub.allow_private_hubs", "expected true or false"),
        ({"lease": "10m"}, "websub.lease", "must be at least 3600s"),
        ({"fallback_interval": "soon"}, "websub.fallback_interval", "expected a duration"),
        ({"leese": "1d"}, "websub.leese", "unknown key 'leese' (did you mean 'lease'?)"),
    ]:
        with pytest.raises(ConfigError) as info:
            config_from_dict({"websub": bad}, base_dir=tmp_path)
        [problem] = info.value.problems
        assert problem.where == where and message in problem.message, problem


def test_status_states() -> None:
    """What `feedwatch status` calls a subscription, from its record and the time."""
    a = active()
    assert websub_state(sub(state="pending"), T0) == "pending"
    assert websub_state(a, T0 + 1) == "verified"
    assert websub_state(a, a.renew_at()) == "expiring"  # due, not renewed (yet)
    assert websub_state(replace(a, renewing=a.renew_at()), a.renew_at() + 1) == "renewing"
    assert websub_state(a, a.expires_at) == "expired"
    for state in ("failed", "denied", "unsubscribing"):
        assert websub_state(sub(state=state), T0) == state
    row = websub_row("f", True, replace(a, hub="https://u:pw@hub.example/x?k=1"), LINKS, None, T0)
    assert row is not None and row["hub"] == "https://hub.example/x"  # no credentials
    refused = Refusal("http://10.0.0.1/", "10.0.0.1 is a private address")
    assert websub_row("f", True, None, LINKS, refused, T0) == {
        "feed": "f", "configured": True, "state": "refused", "hub": "http://10.0.0.1/",
        "error": "10.0.0.1 is a private address",
    }  # fmt: skip
    assert websub_row("f", True, None, LINKS, None, T0)["state"] == "discovered"  # type: ignore[index]
    assert websub_row("f", False, None, LINKS, None, T0) is None  # left the config
    assert websub_row("f", True, None, FeedLinks(), None, T0) is None
