"""WebSub with the real ``feedwatch run``: a local hub verifies the daemon's subscription as
soon as it asks, then pushes; a forged push is ignored and logged, a signed one alerts."""

from __future__ import annotations

import json
import socket

import httpx

from tests.e2e.conftest import Feedwatch, reap, terminate
from tests.e2e.test_lifecycle import Lines
from tests.support.httpserver import FeedServer
from tests.support.websubhub import Hub

WHEN = "Sat, 21 Nov 2026 11:50:00 +0000"


def _feed(server: FeedServer, *items: tuple[str, str]) -> bytes:
    body = "".join(
        f"<item><guid>{g}</guid><title>{t}</title><description>{t}</description>"
        f"<pubDate>{WHEN}</pubDate></item>"
        for g, t in items
    )
    return (
        '<?xml version="1.0" encoding="utf-8"?>'
        '<rss version="2.0" xmlns:atom="http://www.w3.org/2005/Atom"><channel><title>N</title>'
        f'<link>https://n.example.org/</link><atom:link rel="hub" href="{server.url("/hub")}"/>'
        f'<atom:link rel="self" href="{server.url("/n.xml")}"/>{body}</channel></rss>'
    ).encode()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_daemon_subscribes_and_alerts_on_a_signed_push(
    fw: Feedwatch, feed_server: FeedServer
) -> None:
    hub = Hub(feed_server, auto_verify=True)
    feed_server.set("/n.xml", _feed(feed_server, ("w1", "Weather")))
    fw.add_feed("n", feed_server.url("/n.xml"), interval="1h")
    port = _free_port()
    fw.config["http"] = {"listen": f"127.0.0.1:{port}", "public_url": f"http://127.0.0.1:{port}"}
    fw.config["websub"] = {"lease": "2d", "fallback_interval": "6h", "allow_private_hubs": True}
    proc = fw.popen("run")
    out, err = Lines(proc.stdout), Lines(proc.stderr)
    try:
        request = hub.wait_request(timeout=60)
        assert request["hub.lease_seconds"] == str(2 * 86400)
        hub.wait_verified(timeout=30)
        assert hub.verifications[0][1] == 200
        err.wait_for("action=verify", timeout=30)
        topic = request["hub.topic"]
        assert topic == feed_server.url("/n.xml")

        forged = _feed(feed_server, ("k1", "Shelling in Kursk"))
        assert hub.publish(topic, forged, secret="not-the-secret") == [202]
        i = err.wait_for("outcome=ignored", timeout=30)
        assert "feed=n" in err.lines[i] and 'reason="signature mismatch"' in err.lines[i]

        pushed = _feed(feed_server, ("k2", "North Korean troops seen near Kursk"))
        assert hub.publish(topic, pushed) == [202]
        line = out.lines[out.wait_for("North Korean troops seen near Kursk", timeout=60)]
        assert json.loads(line)["rules"] == ["dprk-troops", "kursk"]  # one message, both rules
        err.wait_for("outcome=pushed", timeout=30)
        terminate(proc)
    finally:
        reap(proc)
    assert proc.returncode == 0
    text = "".join(err.lines) + "".join(out.lines)
    assert request["hub.secret"] not in text
    assert request["hub.callback"].rsplit("/", 1)[1] not in text
    assert "Shelling" not in "".join(out.lines)  # the forged push raised nothing
    assert feed_server.hits("/n.xml") == 1  # subscribed: no second poll within 6 h


def test_notifier_role_asks_hubs_to_retry_later(fw: Feedwatch) -> None:
    """`--role notifier` takes no pushes: with http.public_url set it says so at start, and
    answers every /websub/ request 503 with Retry-After (never 404: to a verification that
    means "cancel this subscription"); its other routes work."""
    fw.config["http"] = {"listen": "127.0.0.1:0", "public_url": "https://fw.example.org"}
    proc = fw.popen("run", "--role", "notifier")
    err = Lines(proc.stderr)
    try:
        started = err.lines[err.wait_for(" started ", timeout=60)]
        base = "http://127.0.0.1:" + started.split("http=127.0.0.1:")[1].split()[0]
        warning = err.lines[err.wait_for("takes no WebSub pushes")]
        assert "WARNING websub role=notifier" in warning and "--role all or poller" in warning
        query = {"hub.mode": "subscribe", "hub.topic": "https://n.example/"}
        query["hub.challenge"] = "ch-4711"
        verify = httpx.get(f"{base}/websub/sometoken", params=query)
        push = httpx.post(f"{base}/websub/sometoken", content=b"<rss/>")
        for resp in (verify, push):
            assert resp.status_code == 503 and resp.headers["retry-after"] == "60"
        assert "ch-4711" not in verify.text
        assert httpx.get(f"{base}/healthz").status_code == 200
        i = err.wait_for("action=verify status=503")
        assert "WARNING" in err.lines[i]
        terminate(proc)
    finally:
        reap(proc)
    assert proc.returncode == 0
