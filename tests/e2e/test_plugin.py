"""A third-party notifier: the tiny distribution in tests/plugin_pkg, installed at test time.

The distribution (``feedwatch-jsonl-notifier``) registers one entry-point line in the group
``feedwatch.notifiers``; it is installed with pip into a temporary folder (never into the project
virtualenv) and made visible to the real ``feedwatch`` command through ``PYTHONPATH`` only.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from alerts.wire import Alert
from tests.e2e.conftest import Feedwatch
from tests.support.feeds import Entry, rss
from tests.support.httpserver import FeedServer

PLUGIN_SRC = Path(__file__).resolve().parent.parent / "plugin_pkg"
NOW = datetime.now(UTC)
KURSK = Entry(
    "k1",
    "Ukraine pushes deeper into Kursk region",
    "Ukrainian forces advanced near Sudzha in Russia's Kursk region on Monday.",
    NOW - timedelta(hours=1),
)
WEATHER = Entry("w1", "Weather: a mild week ahead", "Sunny spells.", NOW - timedelta(hours=2))


@pytest.fixture(scope="session")
def plugin_path(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A folder holding the installed plugin distribution (to put on PYTHONPATH)."""
    base = tmp_path_factory.mktemp("jsonl-plugin")
    src = base / "src"  # build from a copy: setuptools leaves build/ and *.egg-info behind
    shutil.copytree(PLUGIN_SRC, src, ignore=shutil.ignore_patterns("build", "*.egg-info"))
    target = base / "site"
    cmd = [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    cmd += ["--no-index", "--no-deps", "--no-build-isolation", "--target", str(target), str(src)]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stdout + p.stderr
    assert (target / "fw_jsonl" / "__init__.py").is_file()
    return str(target)


def with_plugin(plugin_path: str) -> dict[str, str]:
    """Environment additions that make the installed plugin importable."""
    extra = os.environ.get("PYTHONPATH")
    return {"PYTHONPATH": plugin_path + (os.pathsep + extra if extra else "")}


def use_jsonl(fw: Feedwatch, **options: object) -> Path:
    """Route every alert to one ``jsonl`` notifier; returns the file it writes."""
    out = fw.dir / "alerts.jsonl"
    fw.config["notifiers"] = {"archive": {"type": "jsonl", "path": str(out), **options}}
    fw.config["defaults"]["notify"] = ["archive"]
    return out


def test_plugin_delivers_alerts_through_the_real_daemon(
    fw: Feedwatch, feed_server: FeedServer, plugin_path: str
) -> None:
    """`run --once` with the plugin on PYTHONPATH appends the matching alert to its file."""
    feed_server.set("/news.xml", rss([KURSK, WEATHER]))
    fw.add_feed("news", feed_server.url("/news.xml"))
    out = use_jsonl(fw)

    run = fw.run(env=with_plugin(plugin_path))

    assert run.code == 0, run.stderr
    lines = out.read_text(encoding="utf-8").splitlines()
    assert len(lines) == 1
    alert = Alert.from_json(lines[0])
    assert (alert.rule.id, alert.item.title, alert.item.feed) == ("kursk", KURSK.title, "news")
    assert alert.notify == ("archive",)


def test_unknown_plugin_option_is_a_config_error_naming_the_key(
    fw: Feedwatch, plugin_path: str
) -> None:
    """The plugin's Options model rejects an unknown key at load, with file:line:col and name."""
    use_jsonl(fw, colour="red")

    run = fw.run("check", env=with_plugin(plugin_path))

    assert run.code == 1
    output = run.stdout + run.stderr
    assert "notifiers.archive.colour: unknown key 'colour'" in output
    assert "feedwatch.yaml:" in output and "path" in output  # location and the known keys


def test_without_the_plugin_the_type_is_unknown_and_the_known_ones_listed(fw: Feedwatch) -> None:
    """Not installed (no PYTHONPATH): `check` reports type 'jsonl' unknown, lists the built-ins."""
    use_jsonl(fw)

    run = fw.run("check", env={"PYTHONPATH": ""})

    assert run.code == 1
    output = run.stdout + run.stderr
    assert "notifiers.archive.type: unknown notifier type 'jsonl'" in output
    assert "(available: apprise, console, email, slack, telegram, webhook)" in output
