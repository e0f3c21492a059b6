"""Redis restarted empty, or restarted mid-run: no re-alerting, no endless errors, no loss."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

from daemon.redis.embedded import EmbeddedRedis
from tests.e2e.conftest import Feedwatch, ids, reap, terminate
from tests.e2e.test_lifecycle import Lines
from tests.support.feeds import Entry, rss
from tests.support.httpserver import FeedServer
from tests.support.redis_topologies import flush_url

NOW = datetime.now(UTC)
E1 = Entry(
    "e1",
    "Kursk: new assault",
    "Fighting near Sudzha in the Kursk region.",
    NOW - timedelta(hours=1),
)
E2 = Entry(
    "e2", "Kursk border shelled", "Kursk governor reports shelling.", NOW - timedelta(minutes=30)
)
E3 = Entry("e3", "Kursk power cuts", "Outages across the Kursk region.", NOW - timedelta(minutes=5))


def test_emptied_redis_rebaselines_instead_of_realerting(
    fw: Feedwatch, feed_server: FeedServer, redis_url: str
) -> None:
    """After Redis lost everything, the next run records the feeds as seen and alerts on
    nothing; the run after that alerts only on what is really new."""
    feed_server.set("/n.xml", rss([E1]))
    fw.add_feed("n", feed_server.url("/n.xml"), backfill="24h")
    assert ids(fw.run().alerts()) == [("kursk", E1.title)]

    flush_url(redis_url)
    feed_server.set("/n.xml", rss([E2, E1]))
    lost = fw.run()
    assert lost.code == 0, lost.stderr
    assert lost.alerts() == [], "re-alerted after Redis lost its state"
    assert "redis-state-lost" in lost.stderr

    feed_server.set("/n.xml", rss([E3, E2, E1]))
    after = fw.run()
    assert ids(after.alerts()) == [("kursk", E3.title)]
    assert "redis-state-lost" not in after.stderr


def test_fresh_install_is_not_mistaken_for_a_loss(fw: Feedwatch, feed_server: FeedServer) -> None:
    """No sentinel and no local epoch: a first start alerts within backfill as usual."""
    feed_server.set("/n.xml", rss([E1]))
    fw.add_feed("n", feed_server.url("/n.xml"), backfill="24h")
    run = fw.run()
    assert ids(run.alerts()) == [("kursk", E1.title)]
    assert "redis-state-lost" not in run.stderr


def test_redis_emptied_while_running(
    fw: Feedwatch, feed_server: FeedServer, redis_url: str
) -> None:
    """A running daemon notices the loss and does not re-alert; a new item still alerts."""
    feed_server.set("/n.xml", rss([E1]))
    fw.add_feed("n", feed_server.url("/n.xml"), interval="1s", backfill="24h")
    proc = fw.popen("run")
    out, err = Lines(proc.stdout), Lines(proc.stderr)
    try:
        out.wait_for(E1.title, timeout=60)
        flush_url(redis_url)
        err.wait_for("redis-state-lost", timeout=60)
        n = err.wait_for("feed=n outcome=ok", start=len(err.lines), timeout=60)
        feed_server.set("/n.xml", rss([E3, E1]))
        out.wait_for(E3.title, timeout=60)
        terminate(proc)
    finally:
        reap(proc)
    assert [ln for ln in out.lines if E1.title in ln] and len(
        [ln for ln in out.lines if E1.title in ln]
    ) == 1, out.lines
    assert n > 0


def test_redis_restarted_mid_run_keeps_going(
    fw: Feedwatch, feed_server: FeedServer, tmp_path: Path
) -> None:
    """Redis goes away and comes back (same data, same port): polls fail as store errors
    meanwhile, then the daemon carries on and delivers a new item once."""
    server = EmbeddedRedis(tmp_path / "own-redis")
    url = server.start(reuse=False)
    port = server.port
    fw.config["redis"] = url
    feed_server.set("/n.xml", rss([E1]))
    fw.add_feed("n", feed_server.url("/n.xml"), interval="1s", backfill="24h")
    proc = fw.popen("run")
    out, err = Lines(proc.stdout), Lines(proc.stderr)
    try:
        out.wait_for(E1.title, timeout=60)
        server.stop()  # saves its data (append-only file)
        err.wait_for("outcome=error:store", timeout=60)
        again = EmbeddedRedis(tmp_path / "own-redis", port=port)
        again.start(reuse=False)
        feed_server.set("/n.xml", rss([E2, E1]))
        out.wait_for(E2.title, timeout=60)
        terminate(proc)
        again.stop()
    finally:
        reap(proc)
        server.stop()
    # the item's own alerts (a follow-up of its story names it as first_title: not counted)
    titles = [ln for ln in out.lines if ln.startswith("{") and json.loads(ln)["title"] == E1.title]
    assert len(titles) == 1, out.lines
    assert "redis-state-lost" not in "".join(err.lines)
