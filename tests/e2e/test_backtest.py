"""``feedwatch backtest`` end to end: a real ``run --once`` archives what it polls, then a new
rule file is tried on the archive (text and ``--json``); ``archive: {keep: 0}`` archives
nothing."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any

from daemon.config.yamlfile import load_yaml, to_plain
from tests.e2e.conftest import Feedwatch
from tests.support.feeds import Entry, rss
from tests.support.httpserver import FeedServer

PAIRS = Path(__file__).parent.parent / "data" / "stories" / "pairs.yaml"
NOW = datetime.now(UTC)
CANDIDATE = """\
rules:
  - id: troops
    title: Troop build-up in Kursk
    query: troops AND Kursk
    severity: high
  - id: weather
    title: Weather
    query: sunny OR snow
  - id: sumy
    title: Sumy
    query: Sumy
"""


@cache
def _items() -> dict[str, Any]:
    return dict(to_plain(load_yaml(PAIRS))["items"])


def story_feed(name: str, key: str) -> bytes:
    """One rewrite of the troops story (tests/data/stories/pairs.yaml): one story, two feeds."""
    it = _items()[key]
    entry = Entry(
        key, it["title"], it["text"], NOW - timedelta(minutes=30), f"https://{name}/{key}"
    )
    return rss([entry])


def serve(fw: Feedwatch, server: FeedServer) -> None:
    server.set("/wire.xml", story_feed("wire.example.org", "troops-wire"))
    server.set("/kyiv.xml", story_feed("kyiv.example.org", "troops-rewrite"))
    weather = Entry("w1", "Weather: a sunny week", "Sunny spells.", NOW - timedelta(hours=2))
    server.set("/news.xml", rss([weather]))
    for name in ("wire", "kyiv", "news"):
        fw.add_feed(name, server.url(f"/{name}.xml"), publisher=name)


def test_backtest_over_what_run_once_archived(
    fw: Feedwatch, feed_server: FeedServer, tmp_path: Path
) -> None:
    """Every item polled is archived; the candidate rules' items, stories and days are
    reported, in text and in JSON."""
    serve(fw, feed_server)
    run = fw.run()
    assert run.code == 0, run.stderr
    candidate = tmp_path / "candidate.yaml"
    candidate.write_text(CANDIDATE)

    out = fw.run("backtest", str(candidate), "--since", "1d", "--json")
    assert out.code == 0, out.stderr
    doc = json.loads(out.stdout)
    today = (NOW - timedelta(minutes=30)).date().isoformat()  # the day the items were published
    assert doc["items"] == 3
    rules = {r["rule_id"]: r for r in doc["rules"]}
    troops = rules["troops"]
    assert (troops["matched_items"], troops["matched_stories"]) == (2, 1)
    assert sorted(i["feed"] for i in troops["items_matched"]) == ["kyiv", "wire"]
    story = troops["items_matched"][0]["story_id"]
    assert story and troops["stories"][0]["story_id"] == story
    assert troops["per_day"] == {today: {"items": 2, "stories": 1}}
    assert [i["title"] for i in rules["weather"]["items_matched"]] == ["Weather: a sunny week"]
    assert rules["sumy"]["matched_items"] == 0

    text = fw.run("backtest", str(candidate))
    assert text.code == 0, text.stderr
    assert "backtest over 3 archived items" in text.stdout
    assert "[high] troops: Troop build-up in Kursk — 2 items in 1 story" in text.stdout
    assert f"  {today}       2        1\n" in text.stdout
    assert "2 of 3 rules matched" in text.stdout


def test_archive_off(fw: Feedwatch, feed_server: FeedServer, tmp_path: Path) -> None:
    """``keep: 0`` turns the archive off: the backtest finds nothing, and says so."""
    fw.config["archive"] = {"keep": 0, "max_mb": 200}
    serve(fw, feed_server)
    assert fw.run().code == 0
    candidate = tmp_path / "candidate.yaml"
    candidate.write_text(CANDIDATE)
    out = fw.run("backtest", str(candidate))
    assert out.code == 0, out.stderr
    assert "backtest over 0 archived items" in out.stdout
    assert "archive: is off" in out.stderr


def test_backtest_bad_rules_and_since(fw: Feedwatch, tmp_path: Path) -> None:
    """An invalid rule file is reported located, a bad --since is a usage error."""
    bad = tmp_path / "bad.yaml"
    bad.write_text("rules:\n  - {id: x, query: '(Kursk'}\n")
    run = fw.run("backtest", str(bad))
    assert run.code == 1 and "bad.yaml:2:" in run.stderr
    good = tmp_path / "good.yaml"
    good.write_text(CANDIDATE)
    run = fw.run("backtest", str(good), "--since", "soon")
    assert run.code == 2 and "--since" in run.stderr
