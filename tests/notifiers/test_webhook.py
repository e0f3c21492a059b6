"""The webhook notifier against a real local HTTP server."""

from __future__ import annotations

import hashlib
import hmac
import json
import traceback
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

import httpx
import pydantic
import pytest

from alerts import registry
from alerts.httperrors import parse_retry_after
from alerts.webhook import WebhookNotifier, idempotency_key, verify
from alerts.wire import Alert
from daemon import __version__
from daemon.errors import NotifyError
from tests.notifiers.conftest import HOSTILE_TITLE, assert_no_secret, make_alert
from tests.notifiers.fakeservice import Close, FakeService, Reply, Slow

URL_TOKEN = "tok-5f3a9c1e77d2"
HMAC_SECRET = "hmac-secret-b4d0e2"
BEARER = "Bearer bearer-secret-9a8b7c"


def notifier(service: FakeService, http: httpx.AsyncClient, **options: Any) -> WebhookNotifier:
    options.setdefault("url", service.url(f"/hooks/feedwatch?token={URL_TOKEN}"))
    opts = WebhookNotifier.Options.model_validate(options)
    return WebhookNotifier("ops-webhook", opts, http=http)


def test_registered_as_entry_point() -> None:
    """The built-in is discovered through the feedwatch.notifiers entry point."""
    assert registry.load("webhook") is WebhookNotifier


async def test_posts_wire_json_with_signature_and_idempotency_key(
    service: FakeService, http: httpx.AsyncClient
) -> None:
    """Body is Alert.to_json bytes; headers carry the key, the agent and a valid signature."""
    alert = make_alert(id="rule1:item-42")
    n = notifier(service, http, secret=HMAC_SECRET, headers={"Authorization": BEARER})
    await n.send(alert)
    [req] = service.requests
    assert req.method == "POST" and req.path == f"/hooks/feedwatch?token={URL_TOKEN}"
    assert req.body == alert.to_json().encode()
    assert Alert.from_json(req.body) == alert
    h = req.headers
    assert h["content-type"] == "application/json"
    assert h["idempotency-key"] == alert.id
    assert h["user-agent"] == f"feedwatch/{__version__}"
    assert h["authorization"] == BEARER
    expected = hmac.new(HMAC_SECRET.encode(), req.body, hashlib.sha256).hexdigest()
    assert h["x-feedwatch-signature"] == f"sha256={expected}"
    assert verify(HMAC_SECRET, req.body, h["x-feedwatch-signature"])
    assert not verify("other-secret", req.body, h["x-feedwatch-signature"])


async def test_no_secret_no_signature(service: FakeService, http: httpx.AsyncClient) -> None:
    """Without a secret there is no signature header."""
    await notifier(service, http).send(make_alert())
    assert "x-feedwatch-signature" not in service.requests[0].headers


async def test_hostile_item_arrives_as_inert_json(
    service: FakeService, http: httpx.AsyncClient
) -> None:
    """Hostile feed text is JSON-escaped (no raw CR/LF in the body) and round-trips exactly."""
    alert = make_alert(title=HOSTILE_TITLE, excerpt="<script>alert(1)</script>\u2028x")
    await notifier(service, http).send(alert)
    body = service.requests[0].body
    assert b"\r" not in body and b"\n" not in body
    assert json.loads(body)["item"]["title"] == HOSTILE_TITLE


def test_odd_alert_ids_become_a_hash_key() -> None:
    """An id that is not a visible-ASCII header value is hashed, never sent raw."""
    assert idempotency_key("rule:item-1") == "rule:item-1"
    for odd in ("a\r\nX-Evil: 1", "ключ", "has space", ""):
        key = idempotency_key(odd)
        assert key.startswith("sha256-") and key.isascii() and "\n" not in key


@pytest.mark.parametrize("status", [200, 201, 202, 204])
async def test_2xx_is_success(service: FakeService, http: httpx.AsyncClient, status: int) -> None:
    """Any 2xx answer is a delivery."""
    service.will(Reply(status, b"" if status == 204 else b"{}"))
    await notifier(service, http).send(make_alert())
    assert len(service.requests) == 1


@pytest.mark.parametrize(
    ("reply", "recoverable", "reason", "retry_after"),
    [
        (Reply(500, b"boom"), True, "server", None),
        (Reply(502, b""), True, "server", None),
        (Reply(503, b"", {"Retry-After": "12"}), True, "server", 12.0),
        (Reply(429, b"slow down", {"Retry-After": "45"}), True, "rate_limited", 45.0),
        (Reply(429, b""), True, "rate_limited", None),
        (Reply(408, b""), True, "timeout", None),
        (Reply(400, b"bad"), False, "client", None),
        (Reply(401, b""), False, "auth", None),
        (Reply(404, b""), False, "client", None),
        (Reply(410, b""), False, "client", None),
        (Reply(301, b"", {"Location": "http://127.0.0.1:1/elsewhere"}), False, "client", None),
    ],
)
async def test_error_statuses(
    service: FakeService,
    http: httpx.AsyncClient,
    debug_logs: pytest.LogCaptureFixture,
    reply: Reply,
    recoverable: bool,
    reason: str,
    retry_after: float | None,
) -> None:
    """Statuses map to NotifyError; no URL token, HMAC secret or header value leaks."""
    service.will(reply)
    n = notifier(service, http, secret=HMAC_SECRET, headers={"Authorization": BEARER})
    with pytest.raises(NotifyError) as info:
        await n.send(make_alert())
    e = info.value
    assert (e.recoverable, e.reason, e.retry_after) == (recoverable, reason, retry_after)
    assert f"HTTP {reply.status}" in e.message
    assert len(service.requests) == 1  # one attempt, redirects not followed
    rendered = "".join(traceback.format_exception(e))
    for secret in (URL_TOKEN, HMAC_SECRET, BEARER):
        assert_no_secret(secret, str(e), repr(e), rendered, debug_logs.text)


async def test_429_with_http_date(service: FakeService, http: httpx.AsyncClient) -> None:
    """Retry-After as an HTTP-date becomes seconds from now."""
    when = datetime.now(UTC) + timedelta(hours=1)
    service.will(Reply(429, b"", {"Retry-After": format_datetime(when, usegmt=True)}))
    with pytest.raises(NotifyError) as info:
        await notifier(service, http).send(make_alert())
    assert info.value.retry_after is not None and 0 < info.value.retry_after <= 3600


def test_parse_retry_after() -> None:
    """Seconds or HTTP-date; past dates give 0; garbage gives None."""
    now = datetime(2024, 8, 13, 12, 0, tzinfo=UTC)
    assert parse_retry_after("120", now=now) == 120.0
    assert parse_retry_after(" 1.5 ", now=now) == 1.5
    assert parse_retry_after("-3", now=now) == 0.0
    assert parse_retry_after("Tue, 13 Aug 2024 12:01:30 GMT", now=now) == 90.0
    assert parse_retry_after("Tue, 13 Aug 2024 11:00:00 GMT", now=now) == 0.0
    for bad in (None, "", "soon", "nan", "inf"):
        assert parse_retry_after(bad, now=now) is None


async def test_timeout_is_recoverable(
    service: FakeService, http: httpx.AsyncClient, debug_logs: pytest.LogCaptureFixture
) -> None:
    """A receiver that does not answer within ``timeout`` gives a recoverable timeout."""
    service.will(Slow())
    with pytest.raises(NotifyError) as info:
        await notifier(service, http, timeout=0.2).send(make_alert())
    assert (info.value.recoverable, info.value.reason) == (True, "timeout")
    assert_no_secret(URL_TOKEN, str(info.value), debug_logs.text)


async def test_closed_connection_is_recoverable(
    service: FakeService, http: httpx.AsyncClient, debug_logs: pytest.LogCaptureFixture
) -> None:
    """A connection dropped without an answer gives a recoverable transport error."""
    service.will(Close())
    with pytest.raises(NotifyError) as info:
        await notifier(service, http).send(make_alert())
    assert (info.value.recoverable, info.value.reason) == (True, "transport")
    rendered = "".join(traceback.format_exception(info.value))
    assert_no_secret(URL_TOKEN, str(info.value), rendered, debug_logs.text)


async def test_success_logs_hide_the_url(
    service: FakeService, http: httpx.AsyncClient, debug_logs: pytest.LogCaptureFixture
) -> None:
    """httpx's INFO request line is redacted; the token never reaches a handler."""
    await notifier(service, http).send(make_alert())
    assert any("HTTP Request" in r.getMessage() for r in debug_logs.records)
    assert_no_secret(URL_TOKEN, debug_logs.text)


def test_options_validation_and_repr() -> None:
    """Reserved or malformed headers are refused; repr hides URL, secret and header values."""
    url = f"https://hooks.example.invalid/x?token={URL_TOKEN}"
    opts = WebhookNotifier.Options.model_validate(
        {"url": url, "secret": HMAC_SECRET, "headers": {"Authorization": BEARER}}
    )
    for secret in (URL_TOKEN, HMAC_SECRET, BEARER):
        assert_no_secret(secret, repr(opts), str(opts))
    bad: list[dict[str, Any]] = [
        {"url": url, "headers": {"Idempotency-Key": "x"}},
        {"url": url, "headers": {"content-type": "text/plain"}},
        {"url": url, "headers": {"Bad Name": "x"}},
        {"url": url, "headers": {"X-A": "v\r\nX-Injected: 1"}},
        {"url": url, "method": "GET"},
        {"url": f"file:///etc/passwd?{URL_TOKEN}"},
        {"url": url, "timeout": 0},
    ]
    for options in bad:
        with pytest.raises(pydantic.ValidationError) as info:
            WebhookNotifier.Options.model_validate(options)
        assert_no_secret(URL_TOKEN, str(info.value))
