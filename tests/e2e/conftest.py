"""Helpers to run the real ``feedwatch`` command against a config written by the test."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

RULE_FILE = """\
rules:
  - id: kursk
    title: Fighting in the Kursk region
    query: Kursk
    severity: high
  - id: dprk-troops
    title: North Korean troops in Russia
    query: '"North Korean" NEAR/8 (troops OR soldiers)'
    severity: critical
"""


@dataclass
class Run:
    code: int
    stdout: str
    stderr: str

    def alerts(self) -> list[dict[str, Any]]:
        """The JSON alerts the console notifier printed, one per line."""
        return [json.loads(line) for line in self.stdout.splitlines() if line.startswith("{")]


class Feedwatch:
    """A config in a temp folder and a way to run ``feedwatch`` on it."""

    def __init__(self, tmp: Path, redis_url: str | None) -> None:
        self.dir = tmp
        self.rules = tmp / "rules"
        self.rules.mkdir(exist_ok=True)
        (self.rules / "test.yaml").write_text(RULE_FILE)
        self.config: dict[str, Any] = {
            "redis": redis_url,
            "state_dir": str(tmp / "state"),
            "rules": ["rules"],
            "defaults": {"notify": ["out"], "backfill": "all", "interval": "1m"},
            "feeds": [],
            "notifiers": {"out": {"type": "console", "format": "json"}},
            "polling": {"parse_workers": 1, "shutdown_grace": "5s"},
            "delivery": {"claim_after": "1s", "backoff_initial": "0.05s", "backoff_max": "0.2s"},
        }

    def add_feed(self, name: str, url: str, **extra: Any) -> None:
        self.config["feeds"].append({"name": name, "url": url, **extra})

    @property
    def path(self) -> Path:
        p = self.dir / "feedwatch.yaml"
        p.write_text(json.dumps(self.config, indent=2))  # JSON is YAML
        return p

    def argv(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "daemon", *args]

    def run(self, *args: str, env: dict[str, str] | None = None, timeout: float = 60) -> Run:
        cmd = args or ("run", "--once")
        p = subprocess.run(
            self.argv(*cmd, "--config", str(self.path)),
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=self.dir,
            env={**os.environ, **(env or {})},
        )
        return Run(p.returncode, p.stdout, p.stderr)

    def popen(self, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
        return subprocess.Popen(
            self.argv(*args, "--config", str(self.path)),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=self.dir,
            env={**os.environ, **(env or {})},
        )


@pytest.fixture
def fw(tmp_path: Path, redis_url: str) -> Feedwatch:
    return Feedwatch(tmp_path, redis_url)


def ids(alerts: Sequence[dict[str, Any]]) -> list[tuple[str, str]]:
    return sorted((a["rule_id"], a["title"]) for a in alerts)


def terminate(proc: subprocess.Popen[str], timeout: float = 30) -> int:
    """SIGTERM a running daemon and wait for its exit code."""
    proc.send_signal(signal.SIGTERM)
    return proc.wait(timeout)


def reap(proc: subprocess.Popen[str]) -> None:
    """Kill a daemon that a failing test left running (the ``finally:`` of every e2e run)."""
    if proc.poll() is None:
        proc.kill()
        proc.wait()
