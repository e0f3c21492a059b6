"""The demo: feed templates, the local feed server, demo/run.py's config, the shipped configs."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime, parsedate_to_datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import feedparser
import pytest
from ruamel.yaml import YAML

from daemon.config.load import load_config
from daemon.durations import parse_duration
from daemon.redis.embedded import EmbeddedRedis
from demo import run as demo_run
from demo.serve import (
    FEEDS_DIR,
    feed_names,
    is_atom,
    render,
    render_feed,
    serve,
    stop,
)

ROOT = Path(__file__).resolve().parent.parent
NOW = datetime(2025, 8, 6, 12, 0, 0, tzinfo=UTC)
EXPECTED: dict[str, dict[str, dict[str, Any]]] = YAML(typ="safe").load(
    (ROOT / "demo" / "expected.yaml").read_text(encoding="utf-8")
)
FICTIONAL_HOSTS = {"example.org", "example.com", "example.net"}


def _parsed(name: str, now: datetime = NOW) -> Any:
    return feedparser.parse(render_feed(name, now).body)


def _all_entries() -> list[tuple[str, Any]]:
    return [(name, e) for name in feed_names() for e in _parsed(name).entries]


def _text(entry: Any) -> str:
    body = entry.get("content", [{}])[0].get("value") or entry.get("summary", "")
    return f"{entry.title}\n{body}"


def _raw_time(text: str, *, atom: bool) -> datetime:
    return datetime.fromisoformat(text) if atom else parsedate_to_datetime(text)


def test_there_are_four_feeds_in_both_formats() -> None:
    """Four demo feeds exist, at least one RSS and one Atom."""
    names = feed_names()
    assert names == ["kyiv-daily", "regional-news", "wire", "world-desk"]
    kinds = {is_atom((FEEDS_DIR / f"{n}.xml").read_text(encoding="utf-8")) for n in names}
    assert kinds == {True, False}


def test_expectations_list_exactly_the_items_of_the_templates() -> None:
    """demo/expected.yaml names every item of every feed, and nothing else."""
    assert sorted(EXPECTED) == feed_names()
    for name in feed_names():
        ids = [e.id for e in _parsed(name).entries]
        assert sorted(ids) == sorted(EXPECTED[name]), name
        assert all(v["alert"] in (True, False, "any") for v in EXPECTED[name].values())


@pytest.mark.parametrize("name", feed_names())
def test_template_renders_to_a_well_formed_feed(name: str) -> None:
    """Each template parses without bozo, with 5-8 entries carrying id, link, title and text."""
    parsed = _parsed(name)
    assert parsed.bozo == 0, parsed.get("bozo_exception")
    template = (FEEDS_DIR / f"{name}.xml").read_text(encoding="utf-8")
    assert parsed.version == ("atom10" if is_atom(template) else "rss20")
    assert 5 <= len(parsed.entries) <= 8
    assert len(parsed.entries) == len(EXPECTED[name])
    for entry in parsed.entries:
        assert entry.id and entry.title and entry.link
        assert "<p>" in (entry.get("content", [{}])[0].get("value") or entry.summary)


@pytest.mark.parametrize("name", feed_names())
def test_rendered_times_are_fresh_and_timezone_aware(name: str) -> None:
    """Every item date is within the last day before 'now' and carries a UTC offset."""
    template = (FEEDS_DIR / f"{name}.xml").read_text(encoding="utf-8")
    atom = is_atom(template)
    body = render_feed(name, NOW).body.decode()
    assert "{{" not in body and "}}" not in body
    for entry in feedparser.parse(body).entries:
        raw = entry.published if "published" in entry else entry.updated
        when = _raw_time(raw, atom=atom)
        assert when.tzinfo is not None, raw
        assert NOW - timedelta(hours=24) < when <= NOW, raw
        assert entry.published_parsed is not None or entry.updated_parsed is not None


def test_every_placeholder_in_the_templates_is_replaced() -> None:
    """No '{{' is left in any rendered feed, though every template has placeholders."""
    for name in feed_names():
        template = (FEEDS_DIR / f"{name}.xml").read_text(encoding="utf-8")
        assert template.count("{{pub:") > len(EXPECTED[name])
        assert "{{" not in render(template, NOW)


def test_render_writes_rfc822_for_rss_and_rfc3339_for_atom() -> None:
    """A placeholder becomes the right instant in the format of the feed type."""
    assert render("{{pub:-90m}}", NOW, atom=False) == "Wed, 06 Aug 2025 10:30:00 GMT"
    assert render("{{pub:-90m}}", NOW, atom=True) == "2025-08-06T10:30:00Z"
    assert render("{{pub:-1h30m@+03:00}}", NOW, atom=True) == "2025-08-06T13:30:00+03:00"
    rss = render("{{pub:-2d@-05:00}}", NOW, atom=False)
    assert rss == "Mon, 04 Aug 2025 07:00:00 -0500"
    assert parsedate_to_datetime(rss) == NOW - timedelta(days=2)


def test_render_rejects_unknown_placeholders_and_naive_now() -> None:
    """A misspelt placeholder or a naive clock is an error, not silently stale output."""
    with pytest.raises(ValueError, match="unknown placeholder"):
        render("<pubDate>{{pub:35m}}</pubDate>", NOW)
    with pytest.raises(ValueError, match="timezone-aware"):
        render("{{pub:-5m}}", datetime(2025, 1, 1))


def test_ids_are_unique_and_links_fictional() -> None:
    """Item ids are unique across feeds; every link is https on example.org/.com/.net."""
    entries = _all_entries()
    ids = [e.id for _, e in entries]
    assert len(ids) == len(set(ids))
    for _, entry in entries:
        parts = urlsplit(entry.link)
        assert parts.scheme == "https" and parts.hostname in FICTIONAL_HOSTS, entry.link


@pytest.mark.parametrize(
    "passage",
    [
        "numerically superior enemy",  # seed 000
        "50,000 soldiers, including North Korean soldiers",  # seed 003
        "38,000 Russian troops",  # seed 004
    ],
)
def test_each_seed_appears_in_at_least_two_outlets(passage: str) -> None:
    """Every seed article is carried by one outlet and rewritten by another."""
    feeds = {name for name, e in _all_entries() if passage in _text(e)}
    assert len(feeds) >= 2, feeds


@pytest.mark.parametrize(
    "phrase",
    [
        "DPRK soldiers",
        "troops from North Korea",
        "Pyongyang's forces",
        "Курськ",
        "Курск",
        "arms deliveries",
        "air defense systems",
    ],
)
def test_alerting_variants_are_present(phrase: str) -> None:
    """Each wording variant the rules must catch is in an item expected to alert."""
    hits = [
        e.id
        for name, e in _all_entries()
        if phrase in _text(e) and EXPECTED[name][e.id]["alert"] is True
    ]
    assert hits, phrase


def test_near_misses_are_present_and_expected_quiet() -> None:
    """The missile test, humanitarian aid and lower-case 'us' items exist and must not alert."""
    quiet = [_text(e) for name, e in _all_entries() if EXPECTED[name][e.id]["alert"] is False]
    assert any("ballistic missile" in t and "Russia" not in t for t in quiet)
    assert any("humanitarian aid" in t and "weapon" not in t for t in quiet)
    assert any(re.search(r"\bus\b", t) and not re.search(r"\bUS\b", t) for t in quiet)
    assert sum(1 for v in EXPECTED.values() for x in v.values() if x["alert"] is False) >= 8


def _get(url: str, headers: dict[str, str] | None = None, method: str = "GET") -> Any:
    request = urllib.request.Request(url, headers=headers or {}, method=method)
    try:
        return urllib.request.urlopen(request, timeout=5)
    except urllib.error.HTTPError as e:
        return e


def test_server_serves_every_feed_on_localhost() -> None:
    """serve() listens on 127.0.0.1 and returns each rendered feed with its media type."""
    server, base = serve(0, now=NOW)
    try:
        assert base.startswith("http://127.0.0.1:") and base.endswith(str(server.server_port))
        for name in feed_names():
            with _get(f"{base}/{name}.xml") as response:
                body = response.read()
                assert response.status == 200
                kind = "atom" if name == "world-desk" else "rss"
                assert response.headers["Content-Type"].startswith(f"application/{kind}+xml")
            assert body == render_feed(name, NOW).body
            assert len(feedparser.parse(body).entries) == len(EXPECTED[name])
        with _get(f"{base}/") as response:
            assert f"{base}/wire.xml" in response.read().decode()
    finally:
        stop(server)


def test_server_answers_conditional_requests_with_304() -> None:
    """ETag and Last-Modified validators come back as 304; unknown paths are 404."""
    server, base = serve(0, now=NOW)
    try:
        with _get(f"{base}/wire.xml") as first:
            etag, modified = first.headers["ETag"], first.headers["Last-Modified"]
            first.read()
        assert modified == format_datetime(NOW, usegmt=True)
        response = _get(f"{base}/wire.xml", {"If-None-Match": etag})
        assert response.status == 304
        response = _get(f"{base}/wire.xml", {"If-None-Match": '"other"'})
        assert response.status == 200
        response = _get(f"{base}/wire.xml", {"If-Modified-Since": modified})
        assert response.status == 304
        with _get(f"{base}/wire.xml", method="HEAD") as head:
            assert head.status == 200 and head.read() == b""
            assert int(head.headers["Content-Length"]) == len(render_feed("wire", NOW).body)
        assert _get(f"{base}/missing.xml").status == 404
        assert _get(f"{base}/wire").status == 404
    finally:
        stop(server)


def test_serve_script_writes_port_file_and_stops_on_sigterm(tmp_path: Path) -> None:
    """`python demo/serve.py --write-port-file` serves on that port and exits 0 on SIGTERM."""
    port_file = tmp_path / "port"
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "demo" / "serve.py"), "--write-port-file", str(port_file)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert proc.stdout is not None
        base = proc.stdout.readline().strip()  # printed once listening and the file is written
        port = int(port_file.read_text())
        assert base == f"http://127.0.0.1:{port}"
        with _get(f"{base}/world-desk.xml") as response:
            assert len(feedparser.parse(response.read()).entries) == 7
        proc.terminate()
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if proc.stdout:
            proc.stdout.close()


def test_demo_config_is_valid_for_feedwatch(tmp_path: Path) -> None:
    """The config demo/run.py writes loads with daemon.config.load and says what the demo needs."""
    config = tmp_path / "feedwatch.yaml"
    state = tmp_path / "state dir"
    names = feed_names()
    config.write_text(demo_run.config_text("http://127.0.0.1:8123", names, state_dir=state))
    loaded = load_config(config)
    assert loaded.redis is None
    assert loaded.state_dir == state
    assert loaded.rules == (ROOT / "rules",)
    assert loaded.defaults.backfill is None and loaded.defaults.notify == ("console",)
    assert [f.name for f in loaded.feeds] == names
    assert all(f.tags == ("ukraine",) for f in loaded.feeds)
    assert loaded.feeds[0].url == f"http://127.0.0.1:8123/{names[0]}.xml"
    assert loaded.notifiers["console"].type == "console"


def test_feedwatch_command_uses_this_interpreter(tmp_path: Path) -> None:
    """demo/run.py runs `feedwatch run --once --config PATH` from this virtualenv."""
    cmd = demo_run.feedwatch_command(tmp_path / "c.yaml")
    assert cmd[-4:] == ["run", "--once", "--config", str(tmp_path / "c.yaml")]
    assert cmd[0] in (str(Path(sys.executable).with_name("feedwatch")), sys.executable)
    assert Path(cmd[0]).exists()
    assert demo_run._exit_code(-15) == 143 and demo_run._exit_code(3) == 3


def test_run_feedwatch_returns_the_child_exit_code() -> None:
    """run_feedwatch waits for the command and passes its exit code through."""
    assert demo_run.run_feedwatch([sys.executable, "-c", "raise SystemExit(3)"]) == 3
    killed = "import os, signal; os.kill(os.getpid(), signal.SIGTERM)"
    assert demo_run.run_feedwatch([sys.executable, "-c", killed]) == 128 + signal.SIGTERM


def test_leftover_embedded_redis_in_the_demo_state_dir_is_stopped(tmp_path: Path) -> None:
    """A redis-server still running in the demo's own state_dir is terminated afterwards."""
    server = EmbeddedRedis(tmp_path, persistent=False)
    server.start()  # found through state_dir/redis/server.json, as feedwatch's own
    try:
        assert server.proc is not None
        demo_run._stop_leftover_redis(tmp_path / "elsewhere")  # not ours: untouched
        assert server.proc.poll() is None
        demo_run._stop_leftover_redis(tmp_path)
        assert server.proc.wait(timeout=10) == 0
    finally:
        server.stop()


def test_root_config_is_valid() -> None:
    """feedwatch.yaml loads: 6-8 https feeds polled every 5-15 min, embedded Redis, 24h backfill."""
    config = load_config(ROOT / "feedwatch.yaml")
    assert config.redis is None
    assert config.state_dir == ROOT / ".feedwatch"
    assert config.rules == (ROOT / "rules",)
    assert config.defaults.backfill == 86400.0 and config.defaults.notify == ("console",)
    assert 6 <= len(config.feeds) <= 8
    for feed in config.feeds:
        assert feed.url.startswith("https://")
        assert 300.0 <= feed.interval <= 900.0
    assert any("ukraine" in f.tags for f in config.feeds)


def test_compose_config_is_valid_and_grace_fits_in_stop_grace_period() -> None:
    """The compose config takes Redis from the env; compose waits longer than feedwatch drains."""
    url = "redis://redis:6379/0"
    config = load_config(
        ROOT / "deploy" / "feedwatch.compose.yaml", env={"FEEDWATCH_REDIS_URL": url}
    )
    assert config.redis == url
    assert [f.url for f in config.feeds] == [
        f.url for f in load_config(ROOT / "feedwatch.yaml").feeds
    ]
    compose = YAML(typ="safe").load((ROOT / "docker-compose.yml").read_text(encoding="utf-8"))
    service = compose["services"]["feedwatch"]
    assert service["environment"]["FEEDWATCH_REDIS_URL"] == url
    assert parse_duration(service["stop_grace_period"]) > config.polling.shutdown_grace
    assert compose["services"]["redis"]["image"] == "redis:7-alpine"


def test_dockerfile_copies_existing_files_and_runs_as_non_root() -> None:
    """Every COPY source exists and is not excluded by .dockerignore; the user is not root."""
    dockerfile = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    ignored = {line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()}
    for line in dockerfile.splitlines():
        if line.startswith("COPY") and "--from" not in line:
            for source in line.split()[1:-1]:
                assert (ROOT / source).exists(), source
                assert source not in ignored, source
    # installs from the lock, with hashes, then feedwatch itself without dependencies
    assert "pip install --require-hashes -r requirements/main.txt" in dockerfile
    assert "pip install --no-deps --no-build-isolation ." in dockerfile
    assert re.search(r"^USER (?!root)\S+", dockerfile, re.M)
    assert 'ENTRYPOINT ["feedwatch"]' in dockerfile
    # one source of truth for the config: run and the HEALTHCHECK both read $FEEDWATCH_CONFIG
    assert 'CMD ["run"]' in dockerfile and "FEEDWATCH_CONFIG=/app/feedwatch.yaml" in dockerfile
    # the state (seen items, stories) outlives the container; no frontend fetched from a registry
    assert 'VOLUME ["/app/.feedwatch"]' in dockerfile
    assert "# syntax=" not in dockerfile


def test_default_shutdown_grace_is_well_below_dockers_stop_timeout() -> None:
    """docker stop sends SIGKILL after 10 s: the image's config drains well before that."""
    config = load_config(ROOT / "feedwatch.yaml")
    assert config.polling.shutdown_grace <= 10.0 / 2


def _rule_files() -> list[Path]:
    rules = ROOT / "rules"
    return [p for p in rules.rglob("*.y*ml") if "examples" not in p.parts] if rules.is_dir() else []


@pytest.mark.slow
@pytest.mark.skipif(not _rule_files(), reason="no rule files in rules/ yet")
def test_make_demo_alerts_exactly_on_the_expected_items() -> None:
    """demo/run.py exits 0 and prints alerts for every item expected to alert and no near miss."""
    done = subprocess.run(
        [sys.executable, str(ROOT / "demo" / "run.py")],
        capture_output=True,
        text=True,
        timeout=100,
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    titles = {e.id: (name, e.title) for name, e in _all_entries()}
    missing, unexpected = [], []
    for item_id, (name, title) in titles.items():
        shown = title in done.stdout
        want = EXPECTED[name][item_id]["alert"]
        if want is True and not shown:
            missing.append(title)
        if want is False and shown:
            unexpected.append(title)
    assert (missing, unexpected) == ([], []), done.stdout[-3000:]
