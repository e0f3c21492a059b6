"""The shape of ``feedwatch.yaml``: pydantic models for the sections, frozen results.

Every model rejects unknown keys. The value types (durations, sizes, names, URLs) come from
``daemon.config.values`` and raise ``PydanticCustomError`` with a message written for people;
``daemon.config.load`` turns every validation error into a located ``Problem``.

Results hold env-derived values (``secrets``) only so that their ``repr`` can hide them.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainValidator,
    model_validator,
)

from alerts.base import NotifierOptions
from daemon.config.messages import redact
from daemon.config.values import (
    MIN_INTERVAL,
    Backfill,
    Count,
    DigestWindow,
    Duration,
    Fraction,
    Int,
    Interval,
    Name,
    Severity,
    Size,
    check_feed_url,
    check_lease,
    check_lease_ttl,
    check_listen,
    check_prefix,
    check_public_url,
    check_quiet_factor,
    check_redis_url,
    check_story_window,
    lowercase,
    not_bool,
    one_or_many,
    split_listen,
)
from daemon.redis import url as redis_url

SEVERITIES = ("info", "low", "medium", "high", "critical")
REDIS_SCHEMES = tuple(redis_url.SCHEMES)
NOTIFIER_KEYS = ("type", "min_severity", "max_attempts", "digest")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# -- sections used as they are ----------------------------------------------------------------


class Defaults(_Strict):
    """Per-feed and per-rule defaults. ``backfill`` None means "all", 0.0 means "none"."""

    interval: Interval = 600.0
    # Adaptive polling bounds (daemon/poll/rhythm.py); None: the interval (fixed, as before).
    min_interval: Interval | None = None
    max_interval: Interval | None = None
    backfill: Backfill = 86400.0
    notify: tuple[Name, ...] = ()
    jitter: Fraction = Field(default=0.1, ge=0.0, le=0.5)


class FetchConfig(_Strict):
    deadline: Duration = 30.0
    connect_timeout: Duration = 10.0
    max_bytes: Size = 10_000_000
    max_redirects: Int = Field(default=5, ge=0)
    user_agent: str | None = None
    concurrency: Count = 32
    per_host: Count = 4


class PollingConfig(_Strict):
    max_backoff: Duration = 6 * 3600.0
    shutdown_grace: Duration = 5.0  # well below docker stop's 10 s before SIGKILL
    parse_workers: Int = Field(default=0, ge=0)  # 0 = one per CPU
    # How long a story is remembered after its first item (daemon/stories/index.py).
    story_window: Annotated[float, PlainValidator(check_story_window)] = 48 * 3600.0
    # A feed failing this long raises a feed-health alert (daemon/poll/health.py); 0: never.
    alert_after: Duration = 6 * 3600.0
    # A feed silent for quiet_factor x its usual gap (and at least quiet_min) raises a
    # feed-health alert (daemon/poll/rhythm.py); 0: never.
    quiet_factor: Annotated[float, AfterValidator(check_quiet_factor), not_bool("a number")] = 4.0
    quiet_min: Duration = 12 * 3600.0
    # A poll's lease on its feed (daemon/poll/leases.py), renewed every third of it while it runs.
    lease_ttl: Annotated[float, PlainValidator(check_lease_ttl)] = 30.0


class DeliveryConfig(_Strict):
    max_attempts: Count = 5
    backoff_initial: Duration = 1.0
    backoff_max: Duration = 300.0
    claim_after: Duration = 60.0
    stream_maxlen: Count = 100_000
    send_timeout: Duration = 30.0
    concurrency: Count = 16
    delivered_ttl: Duration = 7 * 86400.0


class HttpConfig(_Strict):
    """The health and metrics endpoint (``daemon.ops.http``). ``public_url``: how others reach it
    (WebSub callbacks: ``<public_url>/websub/…``; set it to turn WebSub on)."""

    listen: Annotated[str, AfterValidator(check_listen)]
    public_url: Annotated[str, AfterValidator(check_public_url)] | None = None
    # A second listener that serves only /healthz and /readyz: probes never share a
    # connection limit with the WebSub callbacks (daemon.ops.http). None: the one listener.
    health_listen: Annotated[str, AfterValidator(check_listen)] | None = None

    @property
    def host(self) -> str:
        return split_listen(self.listen)[0]

    @property
    def port(self) -> int:
        return split_listen(self.listen)[1]


class WebSubConfig(_Strict):
    """WebSub (``daemon.websub.decisions``), active when ``http.public_url`` is set. ``lease``: the
    lease asked of hubs (they may grant another); ``fallback_interval``: how often a feed
    with an active subscription is still polled (at least its own interval);
    ``allow_private_hubs``: contact hubs on loopback, private, link-local… addresses (hub URLs
    come from feeds: off, such a hub is refused)."""

    lease: Annotated[float, PlainValidator(check_lease)] = 7 * 86400.0
    fallback_interval: Interval = 3600.0
    allow_private_hubs: Annotated[bool, Field(strict=True)] = False


class ArchiveConfig(_Strict):
    """The item archive that ``feedwatch backtest`` reads (``daemon.poll.archive``): every new
    item kept ``keep`` (first seen within it), the oldest dropped past ``max_mb`` megabytes
    (10^6 bytes, approximate). On by default; ``keep: 0`` or ``max_mb: 0`` turns it off."""

    keep: Duration = 7 * 86400.0
    max_mb: Annotated[float, Field(ge=0), not_bool("a number of megabytes")] = 200.0

    @property
    def enabled(self) -> bool:
        return self.keep > 0 and self.max_mb > 0

    @property
    def max_bytes(self) -> int:
        return int(self.max_mb * 1_000_000)


class LogConfig(_Strict):
    level: Annotated[
        Literal["debug", "info", "warning", "error", "critical"], BeforeValidator(lowercase)
    ] = "info"
    format: Literal["text", "json"] = "text"


# -- raw input, resolved by daemon.config.load -----------------------------------------------------


class RawTop(_Strict):
    """Top-level keys. Sections are ``Any`` here and validated one by one."""

    redis: Annotated[str, AfterValidator(check_redis_url)] | None = None
    prefix: Annotated[str, AfterValidator(check_prefix)] = "feedwatch"
    state_dir: str = ".feedwatch"
    rules: Annotated[tuple[str, ...], BeforeValidator(one_or_many)] = ("rules",)
    defaults: Any = None
    feeds: Any = None
    notifiers: Any = None
    fetch: Any = None
    polling: Any = None
    delivery: Any = None
    log: Any = None
    http: Any = None
    websub: Any = None
    archive: Any = None


def _without_nulls(data: Any, keep: tuple[str, ...]) -> Any:
    if isinstance(data, dict):
        return {k: v for k, v in data.items() if v is not None or k in keep}
    return data


class RawFeed(_Strict):
    """One ``feeds`` entry. Omitted (or null) overrides take the value from ``defaults``."""

    name: Name
    url: Annotated[str, AfterValidator(check_feed_url)]
    interval: Interval = MIN_INTERVAL
    min_interval: Interval | None = None
    max_interval: Interval | None = None
    tags: tuple[str, ...] = ()
    backfill: Backfill = None
    # Who publishes it, for stories' sources (two BBC feeds are one source); omitted: the
    # registrable domain of each item's <source> URL, else link (daemon/stories/sources.py).
    publisher: Annotated[str, Field(min_length=1, max_length=100)] | None = None

    @model_validator(mode="before")
    @classmethod
    def _drop_nulls(cls, data: Any) -> Any:
        return _without_nulls(data, ("name", "url"))


class RawOpmlEntry(_Strict):
    """A ``feeds`` entry bringing every feed of an OPML file; its overrides apply to each."""

    opml: Annotated[str, Field(min_length=1)]
    interval: Interval = MIN_INTERVAL
    min_interval: Interval | None = None
    max_interval: Interval | None = None
    tags: tuple[str, ...] = ()
    backfill: Backfill = None

    @model_validator(mode="before")
    @classmethod
    def _drop_nulls(cls, data: Any) -> Any:
        return _without_nulls(data, ("opml",))


class RawNotifierHead(_Strict):
    """The keys every notifier entry has; all the others are the plugin's options."""

    type: str
    min_severity: Severity = "info"
    max_attempts: Count | None = None
    digest: DigestWindow | None = None


# -- results ----------------------------------------------------------------------------------


class _Redacted:
    """A dataclass ``repr`` with the object's ``secrets`` masked."""

    secrets: frozenset[str]

    def __repr__(self) -> str:
        items = fields(self)  # type: ignore[arg-type]
        shown = ", ".join(f"{f.name}={getattr(self, f.name)!r}" for f in items if f.repr)
        return redact(f"{type(self).__name__}({shown})", self.secrets)


@dataclass(frozen=True, repr=False)
class FeedConfig(_Redacted):
    """One feed. Durations in seconds; ``backfill`` None = "all", 0.0 = "none"."""

    name: str
    url: str
    interval: float
    tags: tuple[str, ...] = ()
    backfill: float | None = 86400.0
    secrets: frozenset[str] = field(default=frozenset(), repr=False, compare=False)
    min_interval: float | None = None  # None: the interval (see ``bounds``)
    max_interval: float | None = None
    publisher: str | None = None  # None: each item's <source> URL's or link's domain

    @property
    def bounds(self) -> tuple[float, float]:
        """``(lo, hi)`` the effective interval stays in; ``lo == hi``: a fixed interval."""
        lo = self.interval if self.min_interval is None else min(self.min_interval, self.interval)
        hi = self.interval if self.max_interval is None else max(self.max_interval, self.interval)
        return lo, hi


@dataclass(frozen=True, repr=False)
class NotifierConfig(_Redacted):
    """One configured notifier instance; ``options`` is a validated ``Options`` of its plugin.

    ``digest``: seconds of the digest window (alerts gathered into one message), or None.
    """

    name: str
    type: str
    min_severity: str
    max_attempts: int | None
    options: NotifierOptions
    digest: float | None = None
    secrets: frozenset[str] = field(default=frozenset(), repr=False, compare=False)


@dataclass(frozen=True, repr=False)
class Config(_Redacted):
    """The whole validated configuration. Paths are absolute.

    ``secrets`` holds every non-empty value that came from the environment, so logging can
    redact them; ``repr`` never shows them.
    """

    source: Path | None
    base_dir: Path
    redis: str | None
    prefix: str
    state_dir: Path
    rules: tuple[Path, ...]
    defaults: Defaults
    feeds: tuple[FeedConfig, ...]
    notifiers: dict[str, NotifierConfig]
    fetch: FetchConfig
    polling: PollingConfig
    delivery: DeliveryConfig
    log: LogConfig
    http: HttpConfig | None = None  # None: no HTTP endpoint
    secrets: frozenset[str] = field(default=frozenset(), repr=False, compare=False)
    websub: WebSubConfig = field(default_factory=WebSubConfig)
    archive: ArchiveConfig = field(default_factory=ArchiveConfig)

    def feed(self, name: str) -> FeedConfig:
        """The feed called ``name``; KeyError if there is none."""
        for f in self.feeds:
            if f.name == name:
                return f
        raise KeyError(name)
