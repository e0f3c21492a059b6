"""End to end through the real command: serve a feed, ``run --once``, read the alerts printed."""

from __future__ import annotations

import json
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
    """Every kind of bad feed is a per-feed error with the feed's name; the good feed alerts."""
    fw.config["fetch"] = {"deadline": "2s", "max_bytes": "1MiB", "max_redirects": 3}
    feed_server.set("/good.xml", rss([E1]))
    feed_server.fail("/gone.xml", 404)
    feed_server.fail("/gone410.xml", 410)
    feed_server.fail("/boom.xml", 500)
    feed_server.set(
        "/page.html", b"<html><body><p>Not a feed</p></body></html>", content_type="text/html"
    )
    feed_server.set("/garbage.xml", b"\x00\x01 not xml at all <<<")
    feed_server.set("/empty.xml", b"")
    feed_server.set("/huge.xml", b"<rss>" + b" " * (2 * 2**20) + b"</rss>")
    feed_server.gzip_bomb("/bomb.xml", 200 * 2**20)
    feed_server.redirect("/loop1.xml", "/loop2.xml")
    feed_server.redirect("/loop2.xml", "/loop1.xml")
    feed_server.slow("/drip.xml", rss([E1]), chunk=1, interval=0.5)
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
    expected = {
        "gone": "error:http", "gone410": "error:http", "boom": "error:http",
        "page": "error:parse", "garbage": "error:parse", "empty": "error:parse",
        "huge": "error:too_large", "bomb": "error:too_large", "loop": "error:redirects",
        "drip": "error:deadline", "down": "error:connect",
    }  # fmt: skip
    for name in ["good", "lol", *expected]:
        path = {"loop": "/loop1.xml", "page": "/page.html"}.get(name, f"/{name}.xml")
        fw.add_feed(name, feed_server.url(path))
    fw.config["feeds"][-1]["url"] = "http://127.0.0.1:9/nothing.xml"  # "down": nothing listens
    run = fw.run(timeout=120)
    assert run.code == 0, run.stderr
    assert ids(run.alerts()) == [("kursk", E1.title)]
    for name, outcome in expected.items():
        assert f"feed={name} outcome={outcome}" in run.stderr, (name, run.stderr)
    assert "feed=lol outcome=error:parse" in run.stderr or "feed=lol outcome=ok" in run.stderr


def test_roles_split_publish_and_delivery(fw: Feedwatch, feed_server: FeedServer) -> None:
    """--role poller publishes without delivering; --role notifier delivers what is waiting."""
    feed_server.set("/news.xml", rss([E1, E3]))
    fw.add_feed("news", feed_server.url("/news.xml"))
    poller = fw.run("run", "--once", "--role", "poller")
    assert poller.code == 0, poller.stderr
    assert poller.alerts() == []
    notifier = fw.run("run", "--once", "--role", "notifier")
    assert notifier.code == 0, notifier.stderr
    assert ids(notifier.alerts()) == [("dprk-troops", E3.title), ("kursk", E1.title)]
    assert fw.run("run", "--once", "--role", "notifier").alerts() == []


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


def test_status_shows_feeds_delivery_and_instances(fw: Feedwatch, feed_server: FeedServer) -> None:
    """After a run, status lists each feed's outcome, items and new-in-24h, and delivery."""
    feed_server.set("/news.xml", rss([E1, E2]))
    feed_server.fail("/bad.xml", 500)
    fw.add_feed("news", feed_server.url("/news.xml"))
    fw.add_feed("bad", feed_server.url("/bad.xml"))
    assert fw.run().code == 0
    table = fw.run("status")
    assert table.code == 0, table.stderr
    lines = {ln.split()[0]: ln for ln in table.stdout.splitlines() if ln.strip()}
    assert "ok" in lines["news"] and "error:http" in lines["bad"]
    assert "0 pending" in table.stdout and "0 dead letters" in table.stdout
    doc = json.loads(fw.run("status", "--json").stdout)
    news = next(f for f in doc["feeds"] if f["name"] == "news")
    bad = next(f for f in doc["feeds"] if f["name"] == "bad")
    assert (news["items_seen"], news["new_24h"], news["error_streak"]) == (2, 2, 0)
    assert bad["error_streak"] == 1 and bad["next_poll"] > doc["now"]
    assert doc["delivery"]["pending"] == 0 and doc["delivery"]["lag"] == 0
