"""Stories end to end through the real command: three local feeds carrying one report in three
rewrites, corroboration, and two daemon processes on one Redis."""

from __future__ import annotations

import subprocess
from datetime import UTC, datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any

from daemon.config.yamlfile import load_yaml, to_plain
from tests.e2e.conftest import Feedwatch, Run
from tests.support.feeds import Entry, rss
from tests.support.httpserver import FeedServer

PAIRS = Path(__file__).parent.parent / "data" / "stories" / "pairs.yaml"
NOW = datetime.now(UTC)
REWRITES = {"wire": "troops-wire", "kyiv": "troops-rewrite", "desk": "troops-cut"}


@cache
def _items() -> dict[str, Any]:
    return dict(to_plain(load_yaml(PAIRS))["items"])


def serve(server: FeedServer, feed: str) -> str:
    """Serve feed ``feed`` carrying its rewrite of the story; returns its URL."""
    name = REWRITES[feed]
    it = _items()[name]
    link = f"https://{feed}.example.org/{name}"
    entry = Entry(name, it["title"], it["text"], NOW - timedelta(minutes=30), link)
    server.set(f"/{feed}.xml", rss([entry]))
    return server.url(f"/{feed}.xml")


def kursk_only(fw: Feedwatch, extra: str = "") -> None:
    rule = f"{{id: kursk, title: Fighting in Kursk, query: Kursk, severity: high{extra}}}"
    (fw.rules / "test.yaml").write_text(f"rules:\n  - {rule}\n")


def ok(run: Run) -> list[dict[str, Any]]:
    assert run.code == 0, run.stderr
    return run.alerts()


def test_one_alert_then_follow_ups_with_sources_growing(
    fw: Feedwatch, feed_server: FeedServer
) -> None:
    """Feeds added one by one: one new alert, then two updates listing more sources."""
    kursk_only(fw)
    seen: list[dict[str, Any]] = []
    for feed in REWRITES:
        fw.add_feed(feed, serve(feed_server, feed), publisher=feed)
        (alert,) = ok(fw.run())
        seen.append(alert)
    assert [a["kind"] for a in seen] == ["new", "update", "update"]
    assert [a["sources"] for a in seen] == [["wire"], ["wire", "kyiv"], ["wire", "kyiv", "desk"]]
    assert [a["source_count"] for a in seen] == [1, 2, 3]
    assert len({a["story_id"] for a in seen}) == 1
    assert seen[1]["first_alert_id"] == seen[2]["first_alert_id"] == seen[0]["id"]
    assert ok(fw.run()) == []


def test_update_in_text_format(fw: Feedwatch, feed_server: FeedServer) -> None:
    """The console's text line of a follow-up says who else reported it and how many."""
    kursk_only(fw)
    fw.config["notifiers"]["out"]["format"] = "text"
    fw.add_feed("wire", serve(feed_server, "wire"), publisher="wire")
    assert fw.run().code == 0
    fw.add_feed("kyiv", serve(feed_server, "kyiv"), publisher="kyiv")
    run = fw.run()
    assert run.code == 0, run.stderr
    assert "[HIGH] update kursk: also reported by kyiv — 2 sources: " in run.stdout


def test_min_sources_two(fw: Feedwatch, feed_server: FeedServer) -> None:
    """min_sources 2: nothing after the first feed, one alert listing both after the second."""
    kursk_only(fw, ", min_sources: 2, within: 6h")
    fw.add_feed("wire", serve(feed_server, "wire"), publisher="wire")
    assert ok(fw.run()) == []
    fw.add_feed("kyiv", serve(feed_server, "kyiv"), publisher="kyiv")
    (alert,) = ok(fw.run())
    assert alert["kind"] == "new" and alert["sources"] == ["wire", "kyiv"]


def test_two_processes_one_story_one_alert(
    tmp_path: Path, redis_url: str, feed_server: FeedServer
) -> None:
    """Two `run --once` processes on one Redis, each polling a feed with a rewrite of one
    story, at the same time: one new alert between them (the other item is its follow-up)."""
    procs: list[subprocess.Popen[str]] = []
    for feed in ("wire", "kyiv"):
        (tmp_path / feed).mkdir()
        fw = Feedwatch(tmp_path / feed, redis_url)
        kursk_only(fw)
        fw.add_feed(feed, serve(feed_server, feed), publisher=feed)
        procs.append(fw.popen("run", "--once"))
    alerts: list[dict[str, Any]] = []
    for p in procs:
        out, err = p.communicate(timeout=90)
        assert p.returncode == 0, err
        alerts += Run(p.returncode, out, err).alerts()
    assert sorted(a["kind"] for a in alerts) == ["new", "update"]
    assert len({a["story_id"] for a in alerts}) == 1
    assert {a["feed"] for a in alerts} == {"wire", "kyiv"}


def test_silence_commands(fw: Feedwatch, feed_server: FeedServer) -> None:
    """silence add / list / expire: a silenced rule prints nothing; after expire it alerts."""
    import json

    kursk_only(fw)
    added = fw.run("silence", "add", "kursk", "--for", "2h", "--comment", "too noisy")
    assert added.code == 0, added.stderr
    sid = added.stdout.strip()
    listed = json.loads(fw.run("silence", "list", "--json").stdout)
    assert [(s["id"], s["rule_id"], s["comment"], s["active"]) for s in listed] == [
        (sid, "kursk", "too noisy", True)
    ]
    assert sid in fw.run("silence", "list").stdout
    fw.add_feed("wire", serve(feed_server, "wire"), publisher="wire")
    run = fw.run()
    assert ok(run) == [] and "silenced=1" in run.stderr
    assert fw.run("silence", "expire", sid).code == 0
    assert fw.run("silence", "expire", sid).code == 1
    assert fw.run("silence", "list").stdout.strip() == "no silences"
    fw.add_feed("kyiv", serve(feed_server, "kyiv"), publisher="kyiv")
    (alert,) = ok(fw.run())
    assert alert["kind"] == "new" and alert["sources"] == ["wire", "kyiv"]
    bad = fw.run("silence", "add", "kursk", "--for", "soon")
    assert bad.code == 2 and "--for" in bad.stderr


def test_sources_are_publishers_not_feeds(fw: Feedwatch, feed_server: FeedServer) -> None:
    """Two feeds of one outlet (links on one registrable domain) are one source: min_sources 2
    waits for another publisher, and the alert lists publishers."""
    kursk_only(fw, ", min_sources: 2, within: 6h")
    outlets = (
        ("bbc-world", "www.bbc.co.uk", "troops-wire"),
        ("bbc-europe", "feeds.bbc.co.uk", "troops-rewrite"),
        ("reuters", "www.reuters.com", "troops-cut"),
    )
    alerts: list[dict[str, Any]] = []
    for feed, host, name in outlets:
        it = _items()[name]
        link = f"https://{host}/news/{name}"
        entry = Entry(name, it["title"], it["text"], NOW - timedelta(minutes=30), link)
        feed_server.set(f"/{feed}.xml", rss([entry]))
        fw.add_feed(feed, feed_server.url(f"/{feed}.xml"))
        alerts = ok(fw.run())
        if feed != "reuters":
            assert alerts == []  # still one publisher: bbc.co.uk
    (alert,) = alerts
    assert alert["sources"] == ["bbc.co.uk", "reuters.com"] and alert["source_count"] == 2


def test_an_aggregator_copy_counts_as_its_outlet(fw: Feedwatch, feed_server: FeedServer) -> None:
    """An aggregator's item (link on news.google.com) with <source url="https://www.bbc.co.uk/…">
    is the same source as the BBC's own feed: min_sources 2 waits for another publisher."""
    kursk_only(fw, ", min_sources: 2, within: 6h")
    outlets = (
        ("bbc-world", "https://www.bbc.co.uk/news/troops-wire", None, "troops-wire"),
        (
            "gnews",
            "https://news.google.com/rss/articles/CBMiAWE?oc=5",
            "https://www.bbc.co.uk/news/world",
            "troops-rewrite",
        ),
        ("reuters", "https://www.reuters.com/world/troops-cut", None, "troops-cut"),
    )
    alerts: list[dict[str, Any]] = []
    for feed, link, source_url, name in outlets:
        it = _items()[name]
        entry = Entry(name, it["title"], it["text"], NOW - timedelta(minutes=30), link, source_url)
        feed_server.set(f"/{feed}.xml", rss([entry]))
        fw.add_feed(feed, feed_server.url(f"/{feed}.xml"))
        alerts = ok(fw.run())
        if feed != "reuters":
            assert alerts == []  # still one publisher: bbc.co.uk
    (alert,) = alerts
    assert alert["sources"] == ["bbc.co.uk", "reuters.com"] and alert["source_count"] == 2


def test_an_item_matching_three_rules_is_one_message(
    fw: Feedwatch, feed_server: FeedServer
) -> None:
    """Three rules routed to one notifier match the story: one message naming all three,
    highest severity first; the next outlet's item is one follow-up naming them too."""
    (fw.rules / "test.yaml").write_text(
        "rules:\n"
        "  - {id: kursk, title: Fighting in Kursk, query: Kursk, severity: high}\n"
        "  - {id: troops, title: Troops, query: troops, severity: critical}\n"
        "  - {id: zelenskyy, title: Zelenskyy, query: Zelenskyy, severity: low}\n"
    )
    fw.add_feed("wire", serve(feed_server, "wire"), publisher="wire")
    (first,) = ok(fw.run())
    assert first["rules"] == ["troops", "kursk", "zelenskyy"]
    assert (first["rule_id"], first["severity"], first["kind"]) == ("troops", "critical", "new")
    fw.add_feed("kyiv", serve(feed_server, "kyiv"), publisher="kyiv")
    (second,) = ok(fw.run())
    assert second["rules"] == ["troops", "kursk", "zelenskyy"] and second["kind"] == "update"
    assert second["first_alert_id"] == first["id"]
