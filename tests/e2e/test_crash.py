"""Killed between publish and ack: the alert is delivered after a restart, and not twice."""

from __future__ import annotations

import signal
import threading
from datetime import UTC, datetime, timedelta

from tests.e2e.conftest import Feedwatch, reap
from tests.e2e.test_lifecycle import Lines
from tests.support.feeds import Entry, rss
from tests.support.httpserver import FeedServer, Request, Response

NOW = datetime.now(UTC)


def test_sigkill_before_ack_then_restart_delivers_once(
    fw: Feedwatch, feed_server: FeedServer
) -> None:
    """The console notifier succeeded, the webhook hung, the process was SIGKILLed: after a
    restart the webhook gets the alert and the console does not print it again."""
    feed_server.set(
        "/n.xml",
        rss([Entry("k1", "Drone strike near Kursk", "Kursk region.", NOW - timedelta(minutes=3))]),
    )
    release = threading.Event()
    answered: list[str] = []

    def hook(req: Request) -> Response:
        if not release.is_set():
            release.wait(30)
            return Response(200, b"late")
        answered.append(req.headers.get("idempotency-key", ""))
        return Response(200, b"ok")

    feed_server.set_handler("/hook", hook)
    fw.add_feed("n", feed_server.url("/n.xml"))
    fw.config["notifiers"]["hook"] = {
        "type": "webhook",
        "url": feed_server.url("/hook"),
        "timeout": 60,
    }
    fw.config["defaults"]["notify"] = ["out", "hook"]

    proc = fw.popen("run", "--once")
    out, err = Lines(proc.stdout), Lines(proc.stderr)
    try:
        assert feed_server.wait_in_flight("/hook", 1, timeout=60), "webhook never called"
        # The console's send is recorded (its "delivered" line follows the record), and the
        # webhook's is not: the sends run concurrently, so wait for the first.
        err.wait_for("notifier=out", timeout=60)
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
    finally:
        release.set()
        reap(proc)
    out.wait_for('"rule_id": "kursk"', timeout=5)  # the console printed the alert

    again = fw.run()
    assert again.code == 0, again.stderr
    assert again.alerts() == [], "the console notifier was sent the alert twice"
    assert len(answered) == 1 and answered[0], again.stderr

    third = fw.run()
    assert third.code == 0 and third.alerts() == [] and len(answered) == 1
