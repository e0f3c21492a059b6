"""The config loader: values, defaults, env interpolation, secrets and located problems.

Golden files: every ``tests/data/config/invalid/NAME.yaml`` has a ``NAME.expected.txt`` holding
the exact ``ConfigError.render()`` text. The test changes into ``tests/data/config`` and loads
``invalid/NAME.yaml``, so problems name the file as ``invalid/NAME.yaml``. The token
``{AVAILABLE}`` in an expected file stands for the installed notifier types (other plugins may
be installed later). Goldens load with the fixed environment ``GOLDEN_ENV``. To regenerate after
an intended change, render with the same call and review the diff by hand.
"""

from __future__ import annotations

import traceback
from pathlib import Path

import pytest

from alerts import registry
from alerts.console import ConsoleOptions
from daemon.config.load import ConfigError, config_from_dict, load_config

DATA = Path(__file__).resolve().parent.parent / "data" / "config"
INVALID = sorted((DATA / "invalid").glob("*.yaml"))
GOLDEN_ENV = {"FW_TEST_FORMAT": "yaml-please"}
FEED = {"name": "bbc", "url": "https://feeds.example.org/bbc.xml"}


def _render_error(path: Path | str, env: dict[str, str] | None = None) -> str:
    with pytest.raises(ConfigError) as info:
        load_config(path, env=env or {})
    return info.value.render()


# -- valid files --------------------------------------------------------------------------------


def test_full_config_loads_with_the_right_values() -> None:
    """Every setting in valid/full.yaml arrives converted: seconds, bytes, absolute paths."""
    cfg = load_config(DATA / "valid" / "full.yaml", env={})
    base = DATA / "valid"
    assert cfg.source == base / "full.yaml" and cfg.base_dir == base
    assert cfg.redis == "rediss://cache.internal:6380/2"
    assert cfg.prefix == "fw-test:1"
    assert cfg.state_dir == base / "state" / "here"
    extra = base / "extra" / "urgent.yaml"
    assert cfg.rules == (base / "rules", extra, Path("/srv/feedwatch/rules"))
    assert (cfg.defaults.interval, cfg.defaults.backfill) == (600.0, 86400.0)
    assert cfg.defaults.notify == ("console", "loud") and cfg.defaults.jitter == 0.25

    aljazeera, bbc, kyiv = cfg.feeds
    assert (aljazeera.name, aljazeera.interval, aljazeera.backfill) == ("aljazeera", 300.0, None)
    assert aljazeera.tags == ("ukraine", "russia")
    assert (bbc.name, bbc.url) == ("bbc.world", "http://feeds.example.org/world.xml")
    assert (bbc.interval, bbc.backfill, bbc.tags) == (600.0, 86400.0, ())
    assert (kyiv.interval, kyiv.backfill) == (90.0, 0.0)
    assert cfg.feed("kyiv_independent") is kyiv

    loud = cfg.notifiers["loud"]
    assert (loud.type, loud.min_severity, loud.max_attempts) == ("console", "high", 2)
    assert loud.options == ConsoleOptions(format="json", stream="stderr")
    assert cfg.notifiers["console"].min_severity == "info"
    assert cfg.notifiers["console"].max_attempts is None

    f = cfg.fetch
    assert (f.deadline, f.connect_timeout, f.max_bytes) == (45.0, 5.0, 2 * 1024 * 1024)
    assert (f.max_redirects, f.user_agent, f.concurrency, f.per_host) == (
        0,
        "feedwatch-test/1",
        8,
        2,
    )
    p = cfg.polling
    assert (p.max_backoff, p.shutdown_grace, p.parse_workers) == (5400.0, 2.0, 3)
    d = cfg.delivery
    assert (d.max_attempts, d.backoff_initial, d.backoff_max) == (7, 0.5, 120.0)
    assert (d.claim_after, d.stream_maxlen, d.send_timeout) == (30.0, 5000, 10.0)
    assert (d.concurrency, d.delivered_ttl) == (4, 2 * 86400.0)
    assert (cfg.log.level, cfg.log.format) == ("warning", "json")
    assert cfg.secrets == frozenset()


def test_minimal_config_gets_every_default() -> None:
    """A file with one feed gets embedded Redis, console notifier and the documented defaults."""
    cfg = load_config(DATA / "valid" / "minimal.yaml", env={})
    base = DATA / "valid"
    assert cfg.redis is None and cfg.prefix == "feedwatch"
    assert cfg.state_dir == base / ".feedwatch" and cfg.rules == (base / "rules",)
    defaults = cfg.defaults
    assert (defaults.interval, defaults.backfill, defaults.jitter) == (600.0, 86400.0, 0.1)
    assert cfg.defaults.notify == ("console",)
    assert list(cfg.notifiers) == ["console"]
    assert cfg.notifiers["console"].options == ConsoleOptions()
    (feed,) = cfg.feeds
    assert (feed.interval, feed.backfill, feed.tags) == (600.0, 86400.0, ())
    assert (cfg.fetch.max_bytes, cfg.fetch.deadline) == (10_000_000, 30.0)
    assert cfg.delivery.delivered_ttl == 7 * 86400.0
    assert (cfg.polling.max_backoff, cfg.log.level, cfg.log.format) == (21600.0, "info", "text")
    assert cfg.polling.lease_ttl == 30.0


def test_empty_file_is_a_valid_config(tmp_path: Path) -> None:
    """An empty file means "all defaults, no feeds"."""
    (tmp_path / "feedwatch.yaml").write_text("", encoding="utf-8")
    cfg = load_config(tmp_path / "feedwatch.yaml", env={})
    assert cfg.feeds == () and cfg.state_dir == tmp_path / ".feedwatch"


def test_defaults_notify_is_empty_when_there_is_no_console(tmp_path: Path) -> None:
    """An omitted defaults.notify falls back to console only if a notifier is called console."""
    data = {"notifiers": {"screen": {"type": "console"}}, "feeds": [FEED]}
    assert config_from_dict(data, base_dir=tmp_path).defaults.notify == ()
    assert config_from_dict({"notifiers": {}}, base_dir=tmp_path).notifiers == {}


def test_feed_defaults_follow_the_defaults_section(tmp_path: Path) -> None:
    """Feeds without interval/backfill (or with null) take defaults.interval and backfill."""
    data = {
        "defaults": {"interval": "2m", "backfill": "all"},
        "feeds": [FEED, {"name": "b", "url": "https://b.example/", "interval": None}],
    }
    cfg = config_from_dict(data, base_dir=tmp_path)
    assert [(f.interval, f.backfill) for f in cfg.feeds] == [(120.0, None), (120.0, None)]


@pytest.mark.parametrize(
    "url",
    [
        "redis://localhost:6379/0",
        "rediss://user:pw@cache:6380",
        "unix:///run/redis.sock?db=1",
        "redis+sentinel://sentinel:26379/mymaster",
    ],
)
def test_redis_url_schemes_accepted(url: str, tmp_path: Path) -> None:
    """Every supported Redis URL scheme validates and is kept verbatim."""
    assert config_from_dict({"redis": url}, base_dir=tmp_path).redis == url


def test_rules_accepts_one_string_and_absolute_paths(tmp_path: Path) -> None:
    """``rules: path`` is one entry; absolute paths stay; relative ones use base_dir."""
    assert config_from_dict({"rules": "r"}, base_dir=tmp_path).rules == (tmp_path / "r",)
    cfg = config_from_dict({"rules": ["/etc/fw", "../x"]}, base_dir=tmp_path / "sub")
    assert cfg.rules == (Path("/etc/fw"), tmp_path / "x")


# -- environment ------------------------------------------------------------------------------


def test_env_interpolation_with_default_and_escape(tmp_path: Path) -> None:
    """${VAR}, ${VAR:-default} (unset or empty) and $${ are all applied in string values."""
    env = {"FEED_HOST": "feeds.example.org", "POLL": "90s", "EMPTY": "", "WORKERS": "3"}
    data = {
        "prefix": "${MISSING_PREFIX:-fw}",
        "defaults": {"interval": "${POLL}", "backfill": "${EMPTY:-none}"},
        "polling": {"parse_workers": "${WORKERS}"},
        "feeds": [{"name": "a", "url": "https://${FEED_HOST}/a?q=$${literal}&p=${POLL}"}],
    }
    cfg = config_from_dict(data, base_dir=tmp_path, env=env)
    assert cfg.prefix == "fw"
    assert (cfg.defaults.interval, cfg.defaults.backfill) == (90.0, 0.0)
    assert cfg.polling.parse_workers == 3
    assert cfg.feeds[0].url == "https://feeds.example.org/a?q=${literal}&p=90s"
    assert cfg.secrets == frozenset({"feeds.example.org", "90s", "3"})


def test_env_defaults_to_the_process_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Without ``env=``, variables come from os.environ."""
    monkeypatch.setenv("FW_TEST_REDIS", "redis://from-env:6379/0")
    cfg = config_from_dict({"redis": "${FW_TEST_REDIS}"}, base_dir=tmp_path)
    assert cfg.redis == "redis://from-env:6379/0"
    assert cfg.secrets == {"redis://from-env:6379/0"}


def test_keys_are_not_interpolated(tmp_path: Path) -> None:
    """A ``${...}`` in a key is not a reference; it is an unknown key."""
    with pytest.raises(ConfigError) as info:
        config_from_dict({"${X}": 1}, base_dir=tmp_path, env={"X": "feeds"})
    assert info.value.problems[0].where == "${X}"


def test_secrets_never_appear_in_problems_or_repr(tmp_path: Path) -> None:
    """Env values are masked in repr(Config), in nested reprs and in every rendered problem."""
    secret = "hunter2-T0KEN"
    env = {"SECRET": secret}
    (tmp_path / "ok.yaml").write_text(
        "redis: redis://:${SECRET}@cache:6379/0\n"
        "feeds:\n  - name: a\n    url: https://x.example/${SECRET}/rss\n"
        "fetch: {user_agent: 'fw ${SECRET}'}\n",
        encoding="utf-8",
    )
    cfg = load_config(tmp_path / "ok.yaml", env=env)
    assert secret in cfg.redis and secret in cfg.secrets  # type: ignore[operator]
    for shown in (repr(cfg), str(cfg), repr(cfg.feeds[0])):
        assert secret not in shown and "***" in shown

    (tmp_path / "bad.yaml").write_text(
        "defaults: {interval: '${SECRET}'}\n"
        "feeds:\n  - name: a\n    url: 'ftp://${SECRET}/x'\n"
        "notifiers:\n  console: {type: console, format: '${SECRET}', stream: '${SECRET}'}\n",
        encoding="utf-8",
    )
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path / "bad.yaml", env=env)
    rendered = info.value.render()
    assert len(info.value.problems) == 4 and "got '***'" in rendered
    assert secret not in rendered and secret not in repr(info.value.problems)
    assert secret not in "".join(traceback.format_exception(info.value))


# -- problems ---------------------------------------------------------------------------------


def test_every_invalid_file_has_an_expected_rendering() -> None:
    """The golden set is complete: each invalid YAML has its .expected.txt and vice versa."""
    yamls = {p.stem for p in INVALID}
    expected = {p.name.removesuffix(".expected.txt") for p in (DATA / "invalid").glob("*.txt")}
    assert yamls == expected and len(yamls) >= 11


@pytest.mark.parametrize("path", INVALID, ids=[p.stem for p in INVALID])
def test_invalid_config_renders_exactly(path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """ConfigError.render() matches the golden text, with every problem located."""
    monkeypatch.chdir(DATA)
    expected = path.with_name(path.stem + ".expected.txt").read_text(encoding="utf-8")
    expected = expected.replace("{AVAILABLE}", ", ".join(registry.available()))
    assert _render_error(f"invalid/{path.name}", GOLDEN_ENV) + "\n" == expected


def test_missing_file_is_one_problem(tmp_path: Path) -> None:
    """A config file that does not exist gives a ConfigError with a single problem."""
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path / "nope.yaml")
    (problem,) = info.value.problems
    assert problem.file == str(tmp_path / "nope.yaml")
    assert problem.message == "config file not found"
    with pytest.raises(ConfigError, match="is a folder"):
        load_config(tmp_path)


def test_config_from_dict_problems_have_no_position(tmp_path: Path) -> None:
    """Dict input reports every problem at 0:0 under the given display name."""
    data = {"feeds": [{"name": "a", "url": "https://a.example/", "interval": "soon"}], "x": 1}
    with pytest.raises(ConfigError) as info:
        config_from_dict(data, base_dir=tmp_path, display="api")
    assert [p.render() for p in info.value.problems] == [
        "api:0:0: feeds[0].interval: expected a duration like '90s' or '5m', got 'soon'",
        (
            "api:0:0: x: unknown key 'x' (known keys: redis, prefix, state_dir, rules, defaults, "
            "feeds, notifiers, fetch, polling, delivery, log, http, websub, archive)"
        ),
    ]


def test_archive_section(tmp_path: Path) -> None:
    """``archive:`` is on by default (7d, 200 MB); ``keep: 0`` or ``max_mb: 0`` turns it off;
    a bad value is a located problem."""
    default = config_from_dict({}, base_dir=tmp_path).archive
    assert (default.keep, default.max_mb, default.enabled, default.max_bytes) == (
        7 * 86400.0,
        200.0,
        True,
        200_000_000,
    )
    set_ = config_from_dict({"archive": {"keep": "36h", "max_mb": 0.5}}, base_dir=tmp_path)
    assert (set_.archive.keep, set_.archive.max_bytes) == (36 * 3600.0, 500_000)
    assert not config_from_dict({"archive": {"keep": 0}}, base_dir=tmp_path).archive.enabled
    assert not config_from_dict({"archive": {"max_mb": 0}}, base_dir=tmp_path).archive.enabled
    with pytest.raises(ConfigError) as info:
        config_from_dict({"archive": {"keep": "soon", "max_mb": True}}, base_dir=tmp_path)
    assert [p.where for p in info.value.problems] == ["archive.keep", "archive.max_mb"]


@pytest.mark.parametrize(
    ("section", "value", "message"),
    [
        ("fetch", {"deadline": -1}, "a duration cannot be negative"),
        ("fetch", {"max_bytes": -5}, "a size cannot be negative"),
        ("fetch", {"per_host": 0}, "must be at least 1"),
        ("delivery", {"max_attempts": True}, "expected a whole number, got true"),
        ("defaults", {"notify": "console"}, "expected a list, got 'console'"),
        ("fetch", {"max_bytes": [1]}, "expected a size like '10MB' or '512KiB', got a list"),
        ("defaults", {"jitter": -0.1}, "must be at least 0"),
        ("polling", {"lease_ttl": "1s"}, "must be at least 3s"),
    ],
)
def test_value_problems_read_plainly(
    section: str, value: dict[str, object], message: str, tmp_path: Path
) -> None:
    """Pydantic's errors are turned into short plain messages."""
    with pytest.raises(ConfigError) as info:
        config_from_dict({section: value}, base_dir=tmp_path)
    assert [p.message for p in info.value.problems] == [message]


def test_a_bad_notifier_is_not_also_unknown_in_defaults(tmp_path: Path) -> None:
    """defaults.notify naming a notifier whose options are invalid reports only the options."""
    data = {"defaults": {"notify": ["loud"]}, "notifiers": {"loud": {"type": "console", "x": 1}}}
    with pytest.raises(ConfigError) as info:
        config_from_dict(data, base_dir=tmp_path)
    assert [p.where for p in info.value.problems] == ["notifiers.loud.x"]


def test_adaptive_interval_bounds_resolve_per_feed(tmp_path: Path) -> None:
    """min/max_interval come from the feed, else from defaults; none at all: a fixed interval
    (the feed's bounds are its interval), as before adaptive polling existed."""
    cfg = config_from_dict(
        {
            "defaults": {"interval": "10m", "min_interval": "2m", "max_interval": "1h"},
            "feeds": [
                {"name": "a", "url": "https://a.example/"},
                {"name": "b", "url": "https://b.example/", "interval": "1h", "max_interval": "6h"},
                {"name": "c", "url": "https://c.example/", "min_interval": "10m"},
            ],
            "polling": {"quiet_factor": 0, "quiet_min": "2d"},
        },
        base_dir=tmp_path,
    )
    assert [f.bounds for f in cfg.feeds] == [(120.0, 3600.0), (120.0, 21600.0), (600.0, 3600.0)]
    assert (cfg.polling.quiet_factor, cfg.polling.quiet_min) == (0.0, 172800.0)
    plain = config_from_dict(
        {"feeds": [{"name": "a", "url": "https://a.example/"}]}, base_dir=tmp_path
    )
    assert plain.feeds[0].bounds == (600.0, 600.0)
    assert (plain.polling.quiet_factor, plain.polling.quiet_min) == (4.0, 43200.0)


def test_a_feeds_publisher_is_kept_and_checked() -> None:
    """`publisher:` names who publishes a feed (stories count publishers, not feeds)."""
    base = {"rules": [], "feeds": [{"name": "bbc", "url": "https://feeds.bbci.co.uk/news/rss.xml",
                                     "publisher": "BBC"}]}  # fmt: skip
    config = config_from_dict(base, base_dir=DATA)
    assert config.feeds[0].publisher == "BBC"
    base["feeds"][0]["publisher"] = ""
    with pytest.raises(ConfigError) as info:
        config_from_dict(base, base_dir=DATA)
    assert "feeds[0].publisher" in info.value.render()
