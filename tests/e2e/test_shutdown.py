"""Shutdown under load: SIGTERM twice during a busy cold poll of many feeds exits 0 with clean
logs (no traceback, no "Task exception was never retrieved", nothing at ERROR), and the next
run delivers what the cancelled polls left, each alert once."""

from __future__ import annotations

import signal
import threading
from datetime import UTC, datetime, timedelta

from tests.e2e.conftest import Feedwatch, Run, reap
from tests.support.feeds import Entry, rss
from tests.support.httpserver import FeedServer

FEEDS = 120
ITEMS = 4
NOW = datetime.now(UTC)


class Lines:
    """A stream's lines, read in a thread as they come; ``wait_for`` blocks on a condition."""

    def __init__(self, stream) -> None:  # type: ignore[no-untyped-def]
        self.lines: list[str] = []
        self.cond = threading.Condition()
        self.thread = threading.Thread(target=self._pump, args=(stream,), daemon=True)
        self.thread.start()

    def _pump(self, stream) -> None:  # type: ignore[no-untyped-def]
        for line in stream:
            with self.cond:
                self.lines.append(line)
                self.cond.notify_all()

    def wait_for(self, text: str, timeout: float) -> None:
        with self.cond:
            ok = self.cond.wait_for(lambda: any(text in ln for ln in self.lines), timeout)
        assert ok, f"{text!r} not logged: {''.join(self.lines[-20:])}"

    def text(self) -> str:
        self.thread.join(30)
        return "".join(self.lines)


def test_second_sigterm_during_a_busy_cold_poll_exits_cleanly(
    fw: Feedwatch, feed_server: FeedServer
) -> None:
    for i in range(FEEDS):
        entries = [
            Entry(f"f{i}-{j}", f"Kursk shelling {i}-{j}", f"Report {i} {j} from the Kursk border.")
            for j in range(ITEMS)
        ]
        entries = [
            Entry(e.guid, e.title, e.description, NOW - timedelta(minutes=j))
            for j, e in enumerate(entries)
        ]
        feed_server.set(f"/f{i}.xml", rss(entries))
        fw.add_feed(f"f{i}", feed_server.url(f"/f{i}.xml"), interval="1h")
    fw.config["polling"]["shutdown_grace"] = "30s"  # only the second signal ends the polls
    proc = fw.popen("run")
    out, err = Lines(proc.stdout), Lines(proc.stderr)
    try:
        busy = feed_server.wait_until(lambda: len(feed_server.requests) >= FEEDS // 4, 60)
        assert busy, "the cold poll did not start"
        proc.send_signal(signal.SIGTERM)
        err.wait_for("shutdown", 30)
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(60)
    finally:
        reap(proc)
    log = err.text()
    first = Run(code, out.text(), log)
    assert code == 0, log[-3000:]
    assert "second signal" in log and "stopped" in log
    for bad in ("Traceback", "never retrieved", " ERROR ", " CRITICAL "):
        assert bad not in log, log[-3000:]
    # Nothing lost, nothing twice: the next run delivers the rest.
    again = fw.run(timeout=120)
    assert again.code == 0, again.stderr[-3000:]
    ids = [a["id"] for a in first.alerts() + again.alerts()]
    assert len(ids) == len(set(ids)), "an alert was delivered twice"
    titles = {a["title"] for a in first.alerts() + again.alerts()}
    assert len(titles) == FEEDS * ITEMS
