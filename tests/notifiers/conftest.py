"""Fixtures for notifier tests: alerts built by a helper, a fake HTTP service, an httpx client."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime

import httpx
import pytest

from alerts.wire import Alert, AlertItem, AlertMatch, AlertRule
from tests.notifiers.fakeservice import FakeService

HOSTILE_TITLE = (
    "<!channel> <@U123> <http://evil|click> <script>alert(1)</script>\r\n"
    "Bcc: cr@evil =?UTF-8?Q?=0A?=Bcc: x@evil"
)


def make_alert(
    *,
    id: str = "alert-0001",
    title: str = "Ukraine says its forces advanced in Kursk",
    link: str | None = "https://news.example.org/kursk?a=1&b=2",
    excerpt: str = "Ukrainian troops pushed deeper into the Kursk region on Tuesday.",
    feed: str = "example-news",
    severity: str = "high",
    rule_title: str = "Kursk offensive",
    rule_id: str = "kursk",
    terms: tuple[str, ...] = ("kursk", "ukrain*"),
    published: datetime | None = datetime(2024, 8, 13, 9, 30, tzinfo=UTC),
    kind: str = "new",
) -> Alert:
    """An alert; matches are found in the title by term (wildcards as prefixes)."""
    matches = []
    low = title.lower()
    for term in terms:
        word = term.rstrip("*").lower()
        pos = low.find(word)
        if pos >= 0:
            matches.append(AlertMatch(term=term, field="title", start=pos, end=pos + len(word)))
        else:
            matches.append(AlertMatch(term=term, field="summary", start=0, end=0))
    return Alert(
        id=id,
        rule=AlertRule(id=rule_id, title=rule_title, severity=severity),
        item=AlertItem(
            id="item-1", title=title, link=link, excerpt=excerpt, published=published, feed=feed
        ),
        matches=tuple(matches),
        created=datetime(2024, 8, 13, 9, 31, tzinfo=UTC),
        notify=("n",),
        kind=kind,
    )


@pytest.fixture
def service() -> Iterator[FakeService]:
    """A running fake HTTP service on 127.0.0.1."""
    with FakeService() as svc:
        yield svc


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    """The shared client notifiers get (environment proxies ignored: traffic stays local)."""
    async with httpx.AsyncClient(trust_env=False) as client:
        yield client


@pytest.fixture
def debug_logs(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    """Capture every log record, DEBUG and up, from every logger.

    httpx's logger is opened explicitly: daemon logging setup may have raised it to WARNING,
    and these tests must see its "HTTP Request: POST <url>" line to prove it is redacted.
    """
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="httpx")
    return caplog


def assert_no_secret(secret: str, *texts: str) -> None:
    """``secret`` appears in none of ``texts``."""
    for text in texts:
        assert secret not in text, f"secret leaked into: {text[:300]!r}"
