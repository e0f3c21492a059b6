"""End to end through the real command: serve a feed, ``run --once``, read the alerts printed."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from tests.e2e.conftest import Feedwatch, ids
from tests.support.feeds import Entry, rss
from tests.support.httpserver import FeedServer

NOW = datetime.now(UTC)

E1 = Entry(
    "a1",
    "Ukraine pushes deeper into Kursk region",
    "Ukrainian forces advanced near Sudzha in Russia's Kursk region on Monday.",
    NOW - timedelta(hours=1),
)
E2 = Entry(
    "a2", "Weather: a mild week ahead", "Sunny spells and light winds.", NOW - timedelta(hours=2)
)
E3 = Entry(
    "a3",
    "Moscow assembles 50,000 soldiers",
    "The force includes North Korean soldiers, officials in Seoul said.",
    NOW - timedelta(minutes=30),
)


def test_alerts_printed_once_then_only_new_items(fw: Feedwatch, feed_server: FeedServer) -> None:
    """First run alerts on matching items; a second run alerts only on the added one;
    a third run over the same Redis alerts on nothing."""
    feed_server.set("/news.xml", rss([E1, E2]))
    fw.add_feed("news", feed_server.url("/news.xml"))

    first = fw.run()
    assert first.code == 0, first.stderr
    alerts = first.alerts()
    assert ids(alerts) == [("kursk", E1.title)]
    a = alerts[0]
    assert a["severity"] == "high" and a["feed"] == "news"
    assert a["link"] == "https://news.example.org/a1"
    assert a["published"].startswith(E1.published.strftime("%Y-%m-%dT%H:%M"))
    assert {"term": "Kursk", "field": "title"}.items() <= a["matches"][0].items()
    assert "Kursk" in a["excerpt"]

    feed_server.set("/news.xml", rss([E3, E1, E2]))
    second = fw.run()
    assert second.code == 0, second.stderr
    assert ids(second.alerts()) == [("dprk-troops", E3.title)]

    third = fw.run()
    assert third.code == 0, third.stderr
    assert third.alerts() == []


def test_new_feed_backfill_limits_first_poll(fw: Feedwatch, feed_server: FeedServer) -> None:
    """On a feed's first poll only items within `backfill` alert; the rest are recorded."""
    old = Entry("old", "Kursk: a look back", "Kursk in August.", NOW - timedelta(days=3))
    feed_server.set("/f.xml", rss([E1, old]))
    fw.add_feed("f", feed_server.url("/f.xml"), backfill="24h")
    run = fw.run()
    assert run.code == 0, run.stderr
    assert ids(run.alerts()) == [("kursk", E1.title)]
    assert fw.run().alerts() == []


def test_bad_feeds_do_not_stop_the_others(fw: Feedwatch, feed_server: FeedServer) -> None:
    """404, HTML, garbage and a refused entity bomb are per-feed errors; the good feed alerts."""
    feed_server.set("/good.xml", rss([E1]))
    feed_server.fail("/gone.xml", 404)
    feed_server.set(
        "/page.html", b"<html><body><p>Not a feed</p></body></html>", content_type="text/html"
    )
    feed_server.set("/garbage.xml", b"\x00\x01 not xml at all <<<")
    lol = (
        b'<?xml version="1.0"?><!DOCTYPE rss [<!ENTITY a "aaaaaaaaaa">'
        + b"".join(
            b'<!ENTITY %s "&%s;&%s;&%s;&%s;&%s;&%s;&%s;&%s;&%s;&%s;">'
            % ((b"b%d" % i,) + (b"a" if i == 0 else b"b%d" % (i - 1),) * 10)
            for i in range(9)
        )
        + b']><rss version="2.0"><channel><title>&b8;</title></channel></rss>'
    )
    feed_server.set("/lol.xml", lol)
    for name, path in [
        ("good", "/good.xml"),
        ("gone", "/gone.xml"),
        ("page", "/page.html"),
        ("garbage", "/garbage.xml"),
        ("lol", "/lol.xml"),
    ]:
        fw.add_feed(name, feed_server.url(path))
    fw.add_feed("down", "http://127.0.0.1:9/nothing.xml")
    run = fw.run(timeout=120)
    assert run.code == 0, run.stderr
    assert ids(run.alerts()) == [("kursk", E1.title)]
    for name in ("gone", "page", "garbage", "down"):
        assert f"feed={name} outcome=error:" in run.stderr, (name, run.stderr)


def test_conditional_get_and_unchanged_body_cost_no_parse(
    fw: Feedwatch, feed_server: FeedServer
) -> None:
    """A 304 is recorded as not_modified, an identical body as unchanged, across processes."""
    feed_server.set("/etag.xml", rss([E1]), etag='"v1"')
    feed_server.set("/same.xml", rss([E2]))
    fw.add_feed("etag", feed_server.url("/etag.xml"))
    fw.add_feed("same", feed_server.url("/same.xml"))
    assert fw.run().code == 0
    again = fw.run()
    assert "feed=etag outcome=not_modified" in again.stderr
    assert "feed=same outcome=unchanged" in again.stderr
    assert feed_server.requests[-1].headers.get("if-none-match") in (None, '"v1"')
    assert any(r.headers.get("if-none-match") == '"v1"' for r in feed_server.requests)
