"""Several ``feedwatch`` processes on one state_dir, no ``redis:`` URL: one embedded
redis-server for all of them, so every alert is delivered once, under one id."""

from __future__ import annotations

import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.e2e.conftest import Feedwatch, reap
from tests.support.feeds import Entry, rss
from tests.support.httpserver import FeedServer

NOW = datetime.now(UTC)


@pytest.mark.parametrize("processes", [2, 3])
def test_processes_started_together_deliver_each_alert_once(
    tmp_path: Path, feed_server: FeedServer, processes: int
) -> None:
    fw = Feedwatch(tmp_path, None)
    for f in range(10):
        entries = [
            Entry(
                f"f{f}-{i}",
                f"Kursk report {f}-{i}",
                f"Fighting near Kursk, item {i}.",
                NOW - timedelta(minutes=5 * i + f),
            )
            for i in range(5)
        ]
        feed_server.set(f"/f{f}.xml", rss(entries))
        fw.add_feed(f"f{f}", feed_server.url(f"/f{f}.xml"))
    argv = fw.argv("run", "--once", "--config", str(fw.path))
    procs = [
        subprocess.Popen(
            argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=fw.dir
        )
        for _ in range(processes)
    ]  # started back to back: all look for the server within the time one takes to start
    try:
        outputs = [p.communicate(timeout=120) for p in procs]
    finally:
        for p in procs:
            reap(p)
    assert [p.returncode for p in procs] == [0] * processes, [e[-2000:] for _, e in outputs]
    alerts = [line for out, _ in outputs for line in out.splitlines() if line.startswith("{")]
    ids = [line.split('"id": "', 1)[1].split('"', 1)[0] for line in alerts]
    # Every item's alert, each delivered once: with a server each, every process would deliver
    # all 50 (100 lines).
    assert len(ids) == 50 and len(set(ids)) == 50
