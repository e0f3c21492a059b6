"""The daemon as a service: runs until SIGTERM, shuts down cleanly, config errors stop it."""

from __future__ import annotations

import json
import signal
import subprocess
import threading
from datetime import UTC, datetime, timedelta

from tests.e2e.conftest import Feedwatch, reap, terminate
from tests.support.feeds import Entry, rss
from tests.support.httpserver import FeedServer

NOW = datetime.now(UTC)


def _first_stdout_line(proc: subprocess.Popen[str], timeout: float) -> str | None:
    box: list[str] = []
    t = threading.Thread(
        target=lambda: box.append(proc.stdout.readline() if proc.stdout else ""), daemon=True
    )
    t.start()
    t.join(timeout)
    return box[0] if box else None


def test_run_delivers_then_sigterm_drains_and_exits_zero(
    fw: Feedwatch, feed_server: FeedServer
) -> None:
    """`feedwatch run` polls, delivers, and exits 0 on SIGTERM with a 'stopped' line."""
    feed_server.set(
        "/n.xml",
        rss(
            [Entry("k1", "Shelling in Kursk", "Kursk border villages.", NOW - timedelta(minutes=5))]
        ),
    )
    fw.add_feed("n", feed_server.url("/n.xml"), interval="1h")
    proc = fw.popen("run")
    try:
        line = _first_stdout_line(proc, timeout=60)
        assert line, "no alert printed"
        assert json.loads(line)["rule_id"] == "kursk"
        health = fw.run("health")
        assert health.code == 0 and "healthy: 1 instance" in health.stdout, health.stderr
        proc.send_signal(signal.SIGTERM)
        _out, err = proc.communicate(timeout=30)
    finally:
        reap(proc)
    assert proc.returncode == 0, err
    assert "shutdown" in err and "stopped" in err
    assert fw.run("health").code == 1  # the heartbeat is removed on a clean stop


def test_invalid_config_does_not_start(fw: Feedwatch) -> None:
    """An unknown key is reported with file:line and the daemon exits 1 without running."""
    fw.config["feeds"] = [{"name": "x", "url": "http://127.0.0.1:9/", "intervall": "5m"}]
    run = fw.run()
    assert run.code == 1
    assert "feedwatch.yaml:" in run.stderr and "intervall" in run.stderr
    assert "started" not in run.stderr


def test_missing_env_var_is_an_error_and_secrets_are_not_logged(
    fw: Feedwatch, feed_server: FeedServer
) -> None:
    """${VAR} must be set; its value never appears in the output."""
    feed_server.set("/n.xml", rss([]))
    fw.add_feed("n", feed_server.url("/n.xml") + "?token=${FEED_TOKEN}")
    missing = fw.run()
    assert missing.code == 1 and "FEED_TOKEN" in missing.stderr
    ok = fw.run("run", "--once", "--log-level", "debug", env={"FEED_TOKEN": "s3cr3t-token-value"})
    assert ok.code == 0, ok.stderr
    assert "s3cr3t-token-value" not in ok.stderr + ok.stdout


class Lines:
    """Collects a stream's lines in a thread; wait_for() returns the first line containing s."""

    def __init__(self, stream) -> None:  # type: ignore[no-untyped-def]
        self.lines: list[str] = []
        self.cond = threading.Condition()
        threading.Thread(target=self._pump, args=(stream,), daemon=True).start()

    def _pump(self, stream) -> None:  # type: ignore[no-untyped-def]
        for line in stream:
            with self.cond:
                self.lines.append(line)
                self.cond.notify_all()

    def wait_for(self, s: str, timeout: float = 30, start: int = 0) -> int:
        """Index of the first line from ``start`` containing ``s``; AssertionError on timeout."""
        with self.cond:
            ok = self.cond.wait_for(
                lambda: any(s in ln for ln in self.lines[start:]), timeout=timeout
            )
            assert ok, f"{s!r} not seen in: {''.join(self.lines[-20:])}"
            return next(i for i, ln in enumerate(self.lines) if i >= start and s in ln)


def test_sighup_reload_refuses_broken_rules_and_applies_good_ones(
    fw: Feedwatch, feed_server: FeedServer
) -> None:
    """While running: a broken rule edit is refused (old rules stay), a good one is applied."""
    k1 = Entry("k1", "Shelling in Kursk", "Border villages.", NOW - timedelta(minutes=5))
    feed_server.set("/n.xml", rss([k1]))
    fw.add_feed("n", feed_server.url("/n.xml"), interval="1s")
    rules = fw.rules / "test.yaml"
    good = rules.read_text()
    proc = fw.popen("run")
    out, err = Lines(proc.stdout), Lines(proc.stderr)
    try:
        out.wait_for('"rule_id": "kursk"', timeout=60)
        rules.write_text("rules:\n  - {id: kursk, title: K, query: '(Kursk'}\n")
        proc.send_signal(signal.SIGHUP)
        i = err.wait_for("rules-reload")
        assert "ok=false" in err.lines[i] and "kept=2" in err.lines[i], err.lines[i]
        rules.write_text(good + "  - {id: kherson, title: Kherson, query: Kherson}\n")
        proc.send_signal(signal.SIGHUP)
        j = err.wait_for("rules-reload ok=true", start=i + 1)
        assert "rules=3" in err.lines[j]
        k2 = Entry("k2", "Kherson ferry hit", "Kherson river port.", NOW - timedelta(minutes=1))
        feed_server.set("/n.xml", rss([k2, k1]))
        out.wait_for('"rule_id": "kherson"', timeout=60)
        terminate(proc)
    finally:
        reap(proc)
    assert proc.returncode == 0
